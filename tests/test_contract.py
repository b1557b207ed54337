"""Every command keeps the contract: numbers stay physical and finite, a file is what it says,
errors are one line, odd terminals still work, repeated ids count once."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO

LLAMA = (REPO / "models" / "llama-3.1-8b.yaml").read_text()
H100 = (REPO / "hardware" / "accelerators" / "h100-sxm.yaml").read_text()


@pytest.mark.parametrize("old, new, says", [
    ("layers: 32", "layers: 1000000000", "layers: must be <= 10000"),
    ("hidden_size: 4096", "hidden_size: " + "9" * 400, "hidden_size: is out of any physical range"),
    ("hidden_size: 4096", "hidden_size: 1e160", "e.g. 1.0e+160"),
    ("vocab_size: 128256", "vocab_size: 128256\nvocab_size: 128257", "duplicate key 'vocab_size'"),
])
def test_a_model_out_of_any_physical_range_is_one_error(cli, tmp_path, old, new, says):
    assert old in LLAMA
    f = tmp_path / "m.yaml"
    f.write_text(LLAMA.replace(old, new, 1))
    code, _, err = cli("estimate", "-m", str(f), "--hardware", "h100-sxm")
    assert code == 1 and says in err and len(err.strip().splitlines()) == 1


def test_a_capacity_beyond_physics_is_refused_after_its_unit(cli, tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text(H100.replace("  capacity_gib: 80", "  capacity_gib: 1.0e+300", 1))
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", str(f))
    assert code == 1 and "memory.capacity_gib: is out of any physical range" in err


def test_a_bandwidth_next_to_nothing_is_refused(cli, tmp_path):
    """1e-300 GB/s was accepted, and every time it entered overflowed; short of zero, no quantity a
    spec gives is below 1e-30 in SI units."""
    f = tmp_path / "a.yaml"
    old = "  bandwidth_gb_per_s: "
    assert old in H100
    line = next(ln for ln in H100.splitlines() if ln.startswith(old))
    f.write_text(H100.replace(line, old + "1.0e-300", 1))
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", str(f))
    assert code == 1 and "memory.bandwidth_gb_per_s: is out of any physical range (1e-300" in err


def test_the_exponent_hint_is_a_form_yaml_reads_as_a_number():
    import yaml

    from pdroof.spec.schema import _yaml_float

    for text in ("1e12", "2.5E-3", "3e+4"):
        assert isinstance(yaml.safe_load(_yaml_float(text)), float)


def test_an_error_is_one_line_however_the_value_reads(cli, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text('id: "a\\nb"\nname: x\n')
    code, _, err = cli("estimate", "-m", str(f), "--hardware", "h100-sxm")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "\\n" in err


def test_transfer_refuses_a_tp_of_zero(cli):
    for flag in ("--tp", "--dst-tp"):
        code, _, err = cli("transfer", "-m", "llama-3.1-8b", "--link", "roce-400", flag, "0")
        assert code == 1 and f"{flag} must be at least 1" in err


def test_repeated_accelerators_count_once(cli_json):
    once = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--top", "0")["meta"]
    twice = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm,h100-sxm", "--top", "0")["meta"]
    assert twice["configurations"] == once["configurations"] and twice["accelerators"] == ["h100-sxm"]


def test_an_ascii_terminal_still_gets_its_table():
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("pdroof")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pdroof"]
    r = subprocess.run([*cmd, "hardware", "list"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "0"})
    assert r.returncode == 0 and "h100-sxm" in r.stdout and not r.stderr


def test_a_runtime_that_validates_cannot_fail_later(cli, tmp_path):
    """A standalone runtime profile with an empty fallback validated and then failed mid-command (a
    KeyError traceback): the fallback must give what uncovered accelerators take."""
    import yaml

    doc = yaml.safe_load((REPO / "hardware" / "runtimes" / "pytorch.yaml").read_text())
    doc["id"] = "mine"
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump(doc))
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "metax-c600", "--weights", "int8",
                       "--runtime", str(full))
    assert code == 0, err
    for drop, field in (("memory", "fallback.memory"), ("compute", "fallback.compute.fp32")):
        part = dict(doc, fallback={k: v for k, v in doc["fallback"].items() if k != drop})
        f = tmp_path / f"no-{drop}.yaml"
        f.write_text(yaml.safe_dump(part))
        code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--runtime", str(f))
        assert code == 1 and f"{field}: missing" in err and "Traceback" not in err


def test_huge_integers_in_any_input_are_one_error(cli, tmp_path):
    """A 400-digit integer in a run file, a 5,000-digit one (beyond Python's digit limit) in a run,
    measurement or YAML file: one error line, never an overflow traceback."""
    import json

    run = json.loads((REPO / "tests" / "data" / "serving_llama8b_h100_trtllm.json").read_text())["runs"][0]
    (tmp_path / "r.json").write_text(json.dumps({"runs": [{**run, "concurrency": int("9" * 400)}]}))
    code, out, err = cli("predict", str(tmp_path / "r.json"), "--format", "json")
    assert code == 0 and "concurrency: must be between 1 and 1,000,000, not an integer of 1,329 bits" in out
    (tmp_path / "big.json").write_text('{"runs": [{"isl": ' + "9" * 5000 + "}]}")
    (tmp_path / "big.yaml").write_text("id: x\nlayers: " + "9" * 5000 + "\n")
    for args in (("predict", "big.json"), ("calibrate", "big.json", "--hardware", "h100-sxm", "-o", "o.yaml"),
                 ("estimate", "-m", "big.yaml", "--hardware", "h100-sxm")):
        code, _, err = cli(*(str(tmp_path / a) if a.startswith("big") else a for a in args))
        assert code == 1 and "digits" in err and len(err.strip().splitlines()) == 1, err


def test_a_user_file_that_reuses_a_catalogue_id_is_used_in_every_command(cli, cli_json, tmp_path):
    """A user's spec named like a catalogue entry (here an H100 with ten times the memory bandwidth) is
    the one each command evaluates, never swapped for the catalogue's by its id."""
    from .conftest import REPO

    text = (REPO / "hardware" / "accelerators" / "h100-sxm.yaml").read_text()
    mine = tmp_path / "my-h100.yaml"
    mine.write_text(text.replace("bandwidth_gb_per_s: {value: 3350", "bandwidth_gb_per_s: {value: 33500"))

    def decode_s(doc):
        return doc["decode"]["step_seconds"]

    est = {hw: decode_s(cli_json("estimate", "-m", "llama-3.1-8b", "--hardware", hw, "--batch", "1"))
           for hw in ("h100-sxm", str(mine))}
    assert est[str(mine)] < 0.5 * est["h100-sxm"]
    plans = {hw: cli_json("plan", "-m", "llama-3.1-8b", "--prefill", "h200-sxm", "--decode", hw)["serving"]
             for hw in ("h100-sxm", str(mine))}
    assert plans[str(mine)]["decode_capacity"] > 1.5 * plans["h100-sxm"]["decode_capacity"]
    ranks = {hw: cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", hw, "--mode", "agg", "--weights", "bf16",
                          "--kv", "bf16", "--tp", "1", "--top", "1")["results"][0]["decode_capacity"]
             for hw in ("h100-sxm", str(mine))}
    assert ranks[str(mine)] > 1.2 * ranks["h100-sxm"]
    dep = (REPO / "examples" / "deployment.yaml").read_text().replace("accelerator: h200-sxm", "accelerator: ACC")
    dep = dep.replace("  kv: bf16\nkv_path", "  kv: fp8\nkv_path").replace("rate_per_s: 2.0", "rate_per_s: 0.5")
    checks = {}
    for hw in ("h100-sxm", str(mine)):
        f = tmp_path / f"d-{len(checks)}.yaml"
        f.write_text(dep.replace("ACC", hw))
        code, out, err = cli("check", str(f), "--format", "json")
        doc = json.loads(out)
        checks[hw] = next(c["value"] for c in doc["checks"] if c["check"].startswith("TPOT"))
        assert doc["plan"]["placement"]["decode"]["accelerator"] == "h100-sxm"
    assert checks[str(mine)] < 0.5 * checks["h100-sxm"]


def test_what_is_not_physical_is_refused_before_any_work(cli, tmp_path):
    """Bounds keep work finite: a device budget, a rate or a target beyond anything physical, a pool of a
    billion instances, a run file nested past the parser's depth or with a field past the CSV limit."""
    for args, what in ((("rank", "--devices", "99999999999999999999"), "--devices must be a whole count"),
                       (("rank", "--rate", "1e308"), "--rate must be from"),
                       (("rank", "--ttft", "1e308"), "--ttft must be from")):
        code, _, err = cli(*args)
        assert code == 1 and err.startswith("Error: " + what), err
    from .conftest import REPO

    dep = (REPO / "examples" / "deployment.yaml").read_text().replace("instances: 14", "instances: 1000000000")
    (tmp_path / "d.yaml").write_text(dep)
    for command in (("check",), ("deploy", "--engine", "sglang")):
        code, _, err = cli(command[0], str(tmp_path / "d.yaml"), *command[1:])
        assert code == 2 and "instances" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "wide.csv").write_text("model,isl,osl\n" + "x" * 200_000 + ",1,1\n")
    for name in ("deep.json", "wide.csv"):
        code, _, err = cli("predict", str(tmp_path / name))
        assert code == 1 and err.startswith(f"Error: {tmp_path / name}: not a") and len(err.splitlines()) == 1


def test_the_sweeps_second_round_of_cases_each_one_error_line(cli, tmp_path):
    """Each was a traceback, a silent exit or a value read as no filter."""
    from .conftest import REPO

    cases = [
        (("rank", "--accelerators", ",,,"), 1, "--accelerators names nothing"),
        (("rank", "--columns", ","), 1, "--columns names nothing"),
        (("rank", "--inventory", ""), 1, "--inventory names nothing"),
        (("rank", "--price", ""), 1, "--price names nothing"),
        (("plan", "-m", "llama-3.1-8b", "--prefill", "h100-sxm", "--decode", "h200-sxm", "--prefill-dp", "0"), 1,
         "--prefill-dp must be from 1"),
        (("equations", "crossover", "-m", "llama-3.1-8b"), 1, "need --model and --hardware together"),
        (("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "99999999999999"), 1,
         "--batch must be from 1"),
        (("transfer", "-m", "llama-3.1-8b", "--link", "roce-400", "--tokens", "99999999999999"), 1,
         "--tokens must be from 1"),
    ]
    model = (REPO / "models" / "llama-3.1-8b.yaml").read_text()
    (tmp_path / "bin.yaml").write_text(model.replace("layers: 32", "layers: 0b" + "1" * 20_000))
    cases.append((("validate", str(tmp_path / "bin.yaml")), 1, "out of any physical range"))
    (tmp_path / "m.csv").write_text("section,a,b\ngemm,1,2\n,,,\n")
    cases.append((("calibrate", str(tmp_path / "m.csv"), "--hardware", "h100-sxm", "-o", str(tmp_path / "c.yaml")), 1,
                  "more field(s) than the header"))
    for args, code_wanted, text in cases:
        code, _, err = cli(*args)
        assert code == code_wanted and err.startswith("Error: ") and text in err and len(err.splitlines()) == 1, args


def test_validate_reads_an_aggregated_deployment_rank_wrote(cli, tmp_path):
    path = tmp_path / "a.yaml"
    code, _, err = cli("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--mode", "agg",
                       "--emit-deployment", str(path))
    assert code == 0, err
    code, out, err = cli("validate", str(path))
    assert code == 0, err


def test_usage_mistakes_are_one_error_line_with_exit_2(cli):
    for args, text in ((("rank", "--top", "abc"), "Invalid value for '--top'"),
                       (("rank", "--format", "xml"), "Invalid value for '--format'"),
                       (("nosuch",), "No such command 'nosuch'"),
                       (("schema", "foo"), "Invalid value")):
        code, _, err = cli(*args)
        assert code == 2 and err.startswith("Error: ") and text in err and len(err.splitlines()) == 1, (args, err)
