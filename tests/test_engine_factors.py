"""``benchmarks/engine_factors.py``: the kernel-table fits read back the factors a table was made
with (synthetic tables in the layout of aiconfigurator's; the script itself needs pyarrow only
to read the real ones)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from .conftest import REPO


@pytest.fixture(scope="module")
def factors():
    spec = importlib.util.spec_from_file_location("engine_factors", REPO / "benchmarks" / "engine_factors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _balanced_moe_table(eta: float, tau_s: float, bw: float, peak: float) -> dict[str, np.ndarray]:
    """aiconfigurator's 'balanced' routing puts token t's j-th expert at (t + j·⌈E/k⌉) mod E: T
    tokens touch min(E, T·k) experts, each streamed once; large batches at 0.6·w/(w + 1000) of
    peak, w the expert columns per device."""
    rows = []
    for E, k, h, f, tp in ((128, 4, 2880, 2880, 1), (256, 8, 7168, 256, 8), (128, 8, 4096, 1536, 2),
                           (256, 8, 7168, 2048, 1)):
        for T in (1, 2, 4, 8, 16, 32, 64, 8192, 16384):
            bytes_ = min(E, T * k) * 3 * h * f * 1.0 / tp
            w = f / tp
            t = max(tau_s + bytes_ / (eta * bw), 2 * T * k * 3 * h * f / tp / (0.6 * w / (w + 1000) * peak))
            rows.append({"moe_dtype": "fp8_block", "num_tokens": T, "hidden_size": h, "inter_size": f, "topk": k,
                         "num_experts": E, "moe_tp_size": tp, "moe_ep_size": 1, "distribution": "balanced",
                         "latency": t * 1e3})
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def test_moe_fit_counts_the_experts_balanced_routing_touches(factors):
    """A table made with η_XW 0.8 and τ_X 20 µs fits back to them: the bytes of min(E, T·k) experts
    (the old fit counted random routing's E(1 − (1 − k/E)^T), fewer bytes for the same times, and
    read η_XW low)."""
    bw, peak = 3.35e12, 1979e12
    fit = factors.fit_moe(_balanced_moe_table(0.8, 20e-6, bw, peak), {"fp8": peak}, bw)["fp8"]
    assert fit["weights"] == pytest.approx(0.8, rel=1e-3)
    assert fit["latency_us"] == pytest.approx(20.0, rel=1e-3)
    # grouped-GEMM efficiency by the width of a device's expert slice, not one median over them
    assert fit["compute"] == pytest.approx(0.6, rel=0.03) and fit["half_width"] == pytest.approx(1000, rel=0.05)


def _allreduce_table(t_of_size) -> dict[str, np.ndarray]:
    """A TP8 all-reduce table from 1 KiB to 1 GiB in aiconfigurator's layout (bf16 elements, ms)."""
    size = np.array([2.0**k for k in range(10, 31)])
    return {"kernel_source": np.array(["graph"] * len(size)), "num_gpus": np.full(len(size), 8),
            "message_size": size / 2, "latency": t_of_size(size) * 1e3}


def test_allreduce_fit_finds_the_switch_between_the_engines_kernel_and_nccl(factors):
    """A TP8 table made of two regimes (the engine's kernel, 5 µs and 0.5 of the link, up to
    16 MiB; NCCL above, 70 µs and 0.9) fits back to them and to the switch; the single regime
    over 4-64 MiB (``link``, what the all-to-all takes) fits it several times worse."""
    link_bw = 450e9

    def t(size):
        ring = 2 * 7 / 8 * size / link_bw
        return np.where(size <= 16 * 2**20, 5e-6 + ring / 0.5, 70e-6 + ring / 0.9)

    fit = factors.fit_allreduce(_allreduce_table(t), link_bw)[8]
    assert fit["switch_mib"] == 16
    assert fit["latency_us"] == pytest.approx(5.0, rel=1e-2) and fit["allreduce_link"] == pytest.approx(0.5, rel=1e-2)
    assert fit["large_latency_us"] == pytest.approx(70.0, rel=1e-6) and fit["link_large"] == pytest.approx(0.9, rel=1e-6)
    assert 0.5 < fit["link"] < 0.9 and fit["err"] < 1e-3 < 0.1 < fit["one_err"]
    lines = factors.allreduce_yaml("AIC_DB x", {8: fit})
    assert [line.split(":")[0].strip() for line in lines] == [
        "allreduce_latency_us", "link", "allreduce_link", "allreduce_large", "above_mib", "latency_us", "link"]


def test_allreduce_fit_keeps_one_regime_where_the_table_has_one(factors):
    """One straight line at every size: no switch is invented (no ``allreduce_large`` written),
    and a split leaving fewer than three sizes above it is never a candidate."""
    link_bw = 450e9
    fit = factors.fit_allreduce(_allreduce_table(lambda size: 5e-6 + 2 * 7 / 8 * size / link_bw / 0.6), link_bw)[8]
    assert "switch_mib" not in fit and fit["link"] == pytest.approx(0.6, rel=1e-2)
    assert [line.split(":")[0].strip() for line in factors.allreduce_yaml("AIC_DB x", {8: fit})] == [
        "allreduce_latency_us", "link"]


def test_allreduce_fit_at_each_tp_and_the_error_of_the_largest_tps_factors_there(factors):
    """A table measured at two and eight devices whose large-message regime is slower at two (NCCL
    without NVLS): each TP gets its own fit, the smaller one an ``allreduce_parties`` item with its
    error and, larger, that of TP8's factors on its rows; a table of one TP gets no items."""
    link_bw = 450e9

    def t(size, g, eta_large):
        ring = 2 * (g - 1) / g * size / link_bw
        return np.where(size <= 16 * 2**20, 5e-6 + ring / 0.5, 30e-6 + ring / eta_large)

    two, eight = _allreduce_table(lambda size: t(size, 2, 0.7)), _allreduce_table(lambda size: t(size, 8, 0.9))
    two["num_gpus"] = np.full(len(two["num_gpus"]), 2)
    table = {k: np.concatenate([two[k], eight[k]]) for k in two}
    fits = factors.fit_allreduce(table, link_bw)
    assert fits[2]["link_large"] == pytest.approx(0.7, rel=1e-6) and fits[8]["link_large"] == pytest.approx(0.9, rel=1e-6)
    assert fits[8]["at_largest_err"] == fits[8]["own_err"] == pytest.approx(fits[8]["err"])
    assert fits[2]["own_err"] < 1e-3 < 0.05 < fits[2]["at_largest_err"]
    lines = factors.allreduce_yaml("AIC_DB x", fits)
    assert lines[-2] == "    allreduce_parties:" and re.match(
        r"      - \{parties: 2, latency_us: 5\.0\d, link: 0\.500, large: \{above_mib: 16, latency_us: 30\.0, "
        r"link: 0\.700\}, source: \"AIC_DB x: .*TP8's factors: 1\d%", lines[-1])
    assert "allreduce_parties" not in "".join(factors.allreduce_yaml("AIC_DB x", {8: fits[8]}))
    one = {k: v for k, v in fits[8].items() if k not in ("switch_mib", "allreduce_link")}  # TP8 one regime
    assert factors.allreduce_yaml("AIC_DB x", {2: fits[2], 8: one})[-1] == lines[-1]
