"""``measure`` writes what ``calibrate`` reads; runs with PyTorch present (skipped otherwise)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from pdroof.calibration.measurements import read_measurements

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed (optional extra 'measure')")
def test_smoke_on_cpu_writes_a_readable_file(cli, tmp_path):
    out = tmp_path / "m.json"
    code, text, err = cli("measure", "--smoke", "--device", "cpu", "-o", str(out))
    assert code == 0, err
    data = read_measurements(out)  # the same checks calibrate applies
    assert {r["dtype"] for r in data["gemm"]} == {"bf16"}
    assert all(r["s"] > 0 for sec in ("gemm", "attn_prefill", "attn_decode", "copy") for r in data[sec])
    assert json.loads(out.read_text())["meta"]["smoke"] is True


@pytest.mark.skipif(HAS_TORCH, reason="PyTorch is installed")
def test_without_torch_is_one_clear_error(cli, tmp_path):
    code, _, err = cli("measure", "--smoke", "-o", str(tmp_path / "m.json"))
    assert code == 1 and "needs PyTorch" in err and not (tmp_path / "m.json").exists()
    assert "download.pytorch.org/whl/cpu" in err  # how to get a CPU-only build


def test_full_size_on_cpu_is_refused(cli, tmp_path):
    code, _, err = cli("measure", "--device", "cpu", "-o", str(tmp_path / "m.json"))
    assert code == 1 and err.startswith("Error: ")
