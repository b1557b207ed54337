"""Output never destroys what is not ours (``output.render.write_atomic``, through the CLI in a
subprocess, as a user's shell runs it): devices and FIFOs are written through, a symbolic link's
target is replaced and the link kept, a directory or a full device is one error line with the
old file kept, new files take the user's umask, and no temporary file is left."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

PDROOF = [str(Path(sys.executable).with_name("pdroof"))] if Path(sys.executable).with_name("pdroof").exists() \
    else [sys.executable, "-m", "pdroof"]


def _run(*args: str, cwd: Path, umask: int | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    def pre():
        if umask is not None:
            os.umask(umask)

    return subprocess.run([*PDROOF, *args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          preexec_fn=pre, timeout=120)


def test_a_symlink_keeps_pointing_and_its_target_is_replaced(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("real.csv")
    r = _run("hardware", "list", "--format", "csv", "-o", "link.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "link.csv").is_symlink() and os.readlink(tmp_path / "link.csv") == "real.csv"
    assert (tmp_path / "real.csv").read_text().startswith("id,name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]  # no temporary file left


def test_devices_and_fifos_are_written_through(tmp_path):
    # through a link of our own: code that replaced what it is given would replace the link, never
    # the system's /dev/null (as root, a regression here must not remove a device node)
    (tmp_path / "sink").symlink_to("/dev/null")
    r = _run("hardware", "list", "--format", "csv", "-o", "sink", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "sink").is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    r = _run("hardware", "list", "--format", "csv", "-o", str(fifo), cwd=tmp_path)
    reader.join(timeout=60)
    assert r.returncode == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode) and got and got[0].startswith("id,name")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_full_device_or_a_directory_is_one_error_line_and_the_old_file_stays(tmp_path):
    (tmp_path / "full").symlink_to("/dev/full")  # a link of our own, as above
    r = _run("hardware", "list", "-o", "full", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == ["Error: full: cannot write: No space left on device"]
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with open("/dev/full", "w") as full:
        r = _run("hardware", "list", cwd=tmp_path, stdout=full)
    assert r.returncode == 1 and r.stderr.startswith("Error: cannot write to standard output")
    (tmp_path / "d").mkdir()
    r = _run("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "-o", "d", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "Error: d: is a directory"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_take_the_users_umask(tmp_path, umask, mode):
    r = _run("hardware", "list", "--format", "json", "-o", "out.json", cwd=tmp_path, umask=umask)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode) == mode


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    f = tmp_path / "kept.csv"
    f.write_text("old\n")
    f.chmod(0o640)
    r = _run("hardware", "list", "--format", "csv", "-o", "kept.csv", cwd=tmp_path, umask=0o022)
    assert r.returncode == 0 and stat.S_IMODE(os.stat(f).st_mode) == 0o640 and f.read_text() != "old\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
def test_root_replacing_a_users_file_leaves_it_theirs(tmp_path):
    f = tmp_path / "theirs.csv"
    f.write_text("old\n")
    os.chown(f, 4321, 4321)
    r = _run("hardware", "list", "--format", "csv", "-o", "theirs.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (os.stat(f).st_uid, os.stat(f).st_gid) == (4321, 4321) and f.read_text() != "old\n"


def test_no_inf_or_nan_where_a_number_belongs():
    from pdroof.output.render import csv_text
    from pdroof.spec.view import human

    assert human(float("inf")) == human(float("nan")) == human(-float("inf"), 1e-3) == "—"
    assert csv_text([{"a": float("inf"), "b": float("nan"), "c": 1.5}], ["a", "b", "c"]) == "a,b,c\n,,1.5\n"


def _odd(*args: str, cwd: Path, pre=None, env=None, stdout=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([*PDROOF, *args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          preexec_fn=pre, env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("args", [("hardware", "list"), ("equations",), ("schema", "model"),
                                  ("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--format", "json")])
def test_a_closed_or_full_standard_output_is_one_error_line(tmp_path, args):
    closed = _odd(*args, cwd=tmp_path, pre=lambda: os.close(1))
    assert closed.returncode == 1 and closed.stderr.strip().splitlines() == [
        "Error: cannot write to standard output: it is closed"]
    (tmp_path / "full").symlink_to("/dev/full")
    with open(tmp_path / "full", "w") as full:
        r = _odd(*args, cwd=tmp_path, stdout=full)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("Error: ")
    assert "No space left on device" in r.stderr


@pytest.mark.parametrize("args", [("hardware", "list"), ("equations",), ("schema", "model"), ("--version",),
                                  ("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--format", "json"),
                                  ("--help",), ("rank", "--help")])
def test_a_reader_that_goes_away_is_no_error(tmp_path, args):
    """``pdroof ... | head``: the reader closes the pipe; the command stops quietly with status 0
    (Click would turn the broken pipe into status 1, and the interpreter's last flush into a warning;
    the help, which Rich prints, would exit 1 too)."""
    assert _reader_gone(args, tmp_path) == (0, b"")


@pytest.mark.parametrize("args", [(), ("hardware",), ("--catalog", ".", "models")])
def test_help_shown_for_no_command_keeps_its_status_when_the_reader_goes_away(tmp_path, args):
    """``pdroof | head``: the help Rich prints where no command (or a group alone) is named is a
    usage error, status 2, pipe or no pipe (Rich's broken-pipe handler would make it 1)."""
    assert subprocess.run([*PDROOF, *args], cwd=tmp_path, capture_output=True, timeout=120).returncode == 2
    assert _reader_gone(args, tmp_path) == (2, b"")


def _reader_gone(args, cwd: Path) -> tuple[int, bytes]:
    p = subprocess.Popen([*PDROOF, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before anything is written: every write meets a pipe without a reader
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def test_a_reader_that_goes_away_changes_no_verdict_and_no_file(tmp_path):
    """The command carries on to its own end: a failing check still fails with its line on stderr, a
    bad file given to validate still fails, and calibrate still writes its profile after its report."""
    from .conftest import REPO

    dep = (REPO / "examples" / "deployment.yaml").read_text().replace("tpot_p99_ms:", "tpot_p99_ms: 1 #")
    (tmp_path / "fail.yaml").write_text(dep)
    code, err = _reader_gone(("check", "fail.yaml"), tmp_path)
    assert code == 1 and err.startswith(b"FAIL")
    (tmp_path / "bad.yaml").write_text("id: x\nfoo: 1\n")
    code, err = _reader_gone(("validate", str(REPO / "hardware" / "accelerators" / "h100-sxm.yaml"), "bad.yaml",
                              "--kind", "accelerator"), tmp_path)
    assert code == 1 and b"bad.yaml" in err
    code, err = _reader_gone(("calibrate", str(REPO / "tests" / "data" / "serving_llama8b_h100_trtllm.json"),
                              "--hardware", "h100-sxm", "-o", "p.yaml"), tmp_path)
    assert (code, err) == (0, b"") and (tmp_path / "p.yaml").exists()


def test_a_terminal_that_cannot_show_a_character_gets_a_question_mark(tmp_path):
    r = subprocess.run([*PDROOF, "equations"], cwd=tmp_path, capture_output=True, timeout=120,
                       env={**os.environ, "PYTHONIOENCODING": "latin-1"})
    assert r.returncode == 0 and r.stderr == b"" and b"?" in r.stdout


def test_a_size_limit_while_writing_xlsx_is_one_error_line(tmp_path):
    pytest.importorskip("openpyxl")
    import resource

    r = _odd("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--format", "xlsx", "-o", "r.xlsx",
             cwd=tmp_path, pre=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512)))
    assert r.returncode == 1 and r.stderr.strip().splitlines() == ["Error: r.xlsx: cannot write: File too large"]
    assert not list(tmp_path.iterdir())


def test_a_set_of_files_is_written_whole_or_not_at_all(tmp_path):
    """deploy --out-dir and calibrate -o with --report: a failure part-way leaves every old file."""
    (tmp_path / "launch").mkdir()
    (tmp_path / "launch" / "router.sh").write_text("old\n")
    (tmp_path / "launch" / "decode.sh").mkdir()  # the second file cannot be written
    from .conftest import REPO

    r = _run("deploy", str(REPO / "examples" / "deployment.yaml"), "--engine", "vllm", "--out-dir", "launch",
             cwd=tmp_path)
    assert r.returncode == 1 and "is a directory" in r.stderr
    assert sorted(p.name for p in (tmp_path / "launch").iterdir()) == ["decode.sh", "router.sh"]
    assert (tmp_path / "launch" / "router.sh").read_text() == "old\n"


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    import signal
    import time

    p = subprocess.Popen([*PDROOF, "rank", "-m", "llama-3.1-8b", "--top", "0", "--format", "csv", "-o", "big.csv"],
                         cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):  # until the temporary file is being written
        if list(tmp_path.glob(".big.csv.*")) or p.poll() is not None:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    assert not list(tmp_path.glob(".big.csv.*"))


def test_a_set_with_a_full_device_in_it_replaces_none_of_its_files(tmp_path):
    from .conftest import REPO

    (tmp_path / "launch").mkdir()
    for name in ("prefill.sh", "decode.sh"):
        (tmp_path / "launch" / name).write_text("old\n")
    (tmp_path / "launch" / "router.sh").symlink_to("/dev/full")
    r = _run("deploy", str(REPO / "examples" / "deployment.yaml"), "--engine", "sglang", "--out-dir", "launch",
             cwd=tmp_path)
    assert r.returncode == 1 and "No space left on device" in r.stderr
    assert all((tmp_path / "launch" / n).read_text() == "old\n" for n in ("prefill.sh", "decode.sh"))
    assert not [p for p in (tmp_path / "launch").iterdir() if p.name.startswith(".")]
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and not os.stat("/dev/full").st_mode & 0o111


def test_a_symlink_loop_is_one_error_line(cli, tmp_path):
    """Path.resolve raises RuntimeError on a loop: the paths a command resolves itself do not use it."""
    from .conftest import REPO

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    runs = REPO / "tests" / "data" / "serving_llama8b_h100_trtllm.json"
    for args in (("calibrate", str(runs), "--hardware", "h100-sxm", "-o", str(tmp_path / "a" / "x.yaml")),
                 ("rank", "-m", str(tmp_path / "a" / "m.yaml"))):
        code, _, err = cli(*args)
        assert code == 1 and err.startswith(f"Error: {tmp_path / 'a'}") and len(err.strip().splitlines()) == 1, err
