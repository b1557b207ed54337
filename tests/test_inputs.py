"""Input never hangs or floods memory (``spec.files.read_capped``): spec, run, measurement and
deployment files are read only if they are regular files, no further than their kind's cap, and
anything else is one error line naming the file."""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("args", [
    ("estimate", "-m", "{x}", "--hardware", "h100-sxm"),
    ("predict", "{x}"),
    ("calibrate", "{x}", "--hardware", "h100-sxm", "-o", "out.yaml"),
])
@pytest.mark.parametrize("kind", ["fifo", "zero", "directory"])
def test_what_is_not_a_regular_file_is_one_error(cli, tmp_path, monkeypatch, args, kind):
    monkeypatch.chdir(tmp_path)
    if kind == "fifo":
        os.mkfifo(tmp_path / "in.yaml")  # no writer: reading it would block for ever
        x = "in.yaml"
    elif kind == "zero":
        x = "/dev/zero"  # endless: reading it would fill memory
    else:
        (tmp_path / "d.yaml").mkdir()
        x = "d.yaml"
    code, _, err = cli(*(a.replace("{x}", x) for a in args))
    assert code in (1, 2) and err.startswith("Error: ") and x in err and len(err.strip().splitlines()) == 1
    assert ("FIFO" in err) if kind == "fifo" else ("device" in err) if kind == "zero" else ("directory" in err)


def test_a_fifo_in_a_catalogue_directory_is_named(cli, tmp_path):
    (tmp_path / "models").mkdir()
    os.mkfifo(tmp_path / "models" / "stuck.yaml")
    code, _, err = cli("--catalog", str(tmp_path), "models", "list")
    assert code == 1 and "stuck.yaml" in err and "FIFO" in err


def test_a_file_just_over_its_cap_is_refused_before_it_is_parsed(cli, tmp_path):
    from pdroof.spec.yamlio import MAX_BYTES

    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no time to write it, none to parse it
    code, _, err = cli("estimate", "-m", str(big), "--hardware", "h100-sxm")
    assert code == 1 and "larger than 4 MiB" in err


def test_run_and_measurement_files_may_be_large(tmp_path):
    from pdroof.calibration.measurements import MAX_BYTES as MEASUREMENTS
    from pdroof.serving.runs import MAX_BYTES as RUNS

    assert RUNS >= 64 * 2**20 and MEASUREMENTS >= 64 * 2**20
