"""The equations: the generated numeric twin matches the symbols, and the physics holds."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pdroof.cost import _generated
from pdroof.cost.equations import S, codegen, groups
from pdroof.cost.numeric import evaluate
from pdroof.cost.ops import OPS

GROUPS = groups()


def test_generated_code_is_current():
    for path, text in codegen.outputs().items():
        assert path.read_text() == text, "run python -m pdroof.cost.equations.codegen"


def test_estimate_path_does_not_import_sympy():
    import subprocess
    import sys

    code = ("import sys; import pdroof.serving.estimate, pdroof.cli.estimate, pdroof.spec.catalog; "
            "sys.exit(1 if 'sympy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    # printing the equations and evaluating the crossovers use what codegen wrote, not sympy
    code = ("import sys; from pdroof.cli.app import main; "
            "main(['equations', 'crossover', '--model', 'llama-3.1-8b', '--hardware', 'h100-sxm', '--link', 'roce-400']); "
            "main(['equations', 'decode.ffn_seconds', '--latex']); sys.exit(1 if 'sympy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _point(draw_values):
    """A random but physical input point: every symbol positive, integer-ish where it counts."""
    vals = {}
    for name in dict.fromkeys(n for args in _generated.ARGS.values() for n in args):
        vals[name] = draw_values(name)
    return vals


REALISTIC = {
    "batch": (1, 256), "new_tokens": (1, 32768), "prefix_tokens": (0, 8192), "context_tokens": (1, 131072),
    "tp": (1, 8), "dp": (1, 8), "dp_prefill": (1, 8), "dp_decode": (1, 8), "own_pass_admission": (0, 1),
    "moe_tp": (1, 8), "moe_ep": (1, 8), "ep_imbalance_32": (1, 3), "layers": (1, 128), "hidden": (512, 16384), "heads": (8, 128),
    "experts": (1, 256), "experts_per_token": (0, 8), "window_tokens": (1, 4096),
    "eff_compute": (0.1, 1), "eff_weights": (0.1, 1), "eff_memory": (0.1, 1), "eff_attn_prefill": (0.1, 1),
    "eff_attn_decode": (0.1, 1), "eff_link": (0.1, 1), "eff_allreduce_link": (0.1, 1), "eff_link_large": (0.1, 1),
    "eff_gather_link": (0.1, 1), "eff_gather_link_large": (0.1, 1), "gather_switch_bytes": (0, 1e9),
    "allreduce_switch_bytes": (0, 1e9), "eff_path": (0.1, 1), "mem_reserve": (0, 0.5), "mem_reserve_free": (0, 0.5),
    "dequant_overhead": (0, 1),
    # serving: TTFT target above prefill + handoff, so the prefill pool has a positive capacity
    "ttft_target_s": (100, 1000), "prefill_s": (1e-3, 10), "handoff_s": (0, 10),
    # ... and room for at least one admitted sequence after reservations
    "decode_batch": (1, 256), "step_s": (1e-3, 1), "kv_capacity_bytes": (1e10, 1e11), "kv_request_bytes": (1e3, 1e6),
    "retained_bytes": (0, 1e6), "kv_dst_bytes": (0, 1e3), "instance_rate": (1e-3, 0.05),
    "overlap_s": (0, 10), "prefill_utilisation": (0.01, 1), "wait_factor": (0, 100), "output_tokens": (1, 4096),
}


@st.composite
def points(draw):
    def value(name):
        lo, hi = REALISTIC.get(name, (1e-3, 1e3))
        return draw(st.floats(min_value=max(lo, 1e-3), max_value=hi, allow_nan=False, allow_infinity=False))

    pt = _point(value)
    # whole tokens in pages of whole tokens, as engines page KV: a ratio of arbitrary floats (1.1
    # tokens in pages of 0.01) can land a hair either side of a whole number, which no real transfer does
    pt["page_tokens"] = float(draw(st.integers(1, 4096)))
    for name in ("transfer_tokens", "window_tokens", "topk_tokens"):
        pt[name] = float(round(pt[name])) or 1.0
    pt["experts_per_token"] = min(pt["experts_per_token"], pt["experts"])  # k of E
    pt["kv_proj_params"] = min(pt["kv_proj_params"], pt["attn_params"])  # K/V are part of the projections
    return pt


def _reference(group):
    """An independent numeric form: sympy's own lambdify (plain math, no numpy, no CSE; Lambert's W
    from mpmath, which math lacks). Its floors and ceilings take the printed form's nudge of their
    argument (``codegen.SNAP``): without it a count of ~10^8 whole things a few 10^-4 short of the
    next lands on either side (10 GB in 18-byte destinations, drawn once)."""
    exprs = GROUPS[group]
    syms = sorted(set().union(*(sp.sympify(e).free_symbols for e in exprs.values())), key=str)
    modules = [{"LambertW": lambda x: float(mpmath.lambertw(x).real),
                "floor": lambda x: math.floor(x * (1 + codegen.SNAP)),
                "ceiling": lambda x: math.ceil(x * (1 - codegen.SNAP))}, "math"]
    fns = {k: sp.lambdify(syms, sp.sympify(e), modules) for k, e in exprs.items()}
    return syms, fns


REFERENCE = {g: _reference(g) for g in GROUPS}


@settings(max_examples=30, deadline=None)
@given(points())
def test_numeric_equals_symbolic(pt):
    for group in GROUPS:
        num = evaluate(group, pt)
        syms, fns = REFERENCE[group]
        args = [pt[s.name] for s in syms]
        for name, fn in fns.items():
            assert float(num[name]) == pytest.approx(float(fn(*args)), rel=1e-9, abs=1e-30), (group, name)


@pytest.mark.parametrize("tokens, page", [(525, 75), (4200, 75), (7, 7), (96, 48), (526, 75), (1, 16)])
def test_messages_are_whole_pages(tokens, page):
    """The generated code multiplies by a shared 1/P, and 525·(1/75) is 7.000000000000001: a ceiling
    of it counted 8 pages of 75 tokens in 525 (a message too many per layer and tensor)."""
    pt = {"transfer_tokens": float(tokens), "page_tokens": float(page), "window_tokens": 1e9, "kv_tensors": 2.0,
          "full_layers": 1.0, "sliding_layers": 0.0, "sparse_layers": 0.0, "linear_layers": 0.0}
    out = evaluate("transfer", {**_point(lambda name: 1.0), **pt})
    assert float(out["messages"]) == 2 * -(-tokens // page)  # a part page is a message too


@settings(max_examples=40, deadline=None)
@given(points(), st.floats(1.01, 10), st.sampled_from(["mem_bytes_per_s", "peak_flops_per_s",
                                                        "attn_peak_flops_per_s", "link_bytes_per_s"]))
def test_time_never_grows_with_more_bandwidth_or_peak(pt, factor, name):
    for group in ("prefill", "decode", "mixed"):
        before = float(evaluate(group, pt)["seconds"])
        after = float(evaluate(group, {**pt, name: pt[name] * factor})["seconds"])
        assert after <= before * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(points())
def test_each_operation_at_least_both_bounds(pt):
    for group in ("prefill", "decode", "mixed"):
        out = evaluate(group, pt)
        for op in OPS:
            t, c, m = (float(out[f"{op}_{k}"]) for k in ("seconds", "compute_s", "memory_s"))
            assert t >= c * (1 - 1e-12) and t >= m * (1 - 1e-12), (group, op)


@settings(max_examples=40, deadline=None)
@given(points(), st.integers(1, 100_000))
def test_kv_transfer_bytes_linear_in_tokens(pt, n):
    pt = {**pt, "sliding_layers": 0.0, "linear_layers": 0.0}  # a window caps, a linear layer's state is fixed
    one = float(evaluate("transfer", {**pt, "transfer_tokens": 1.0})["bytes"])
    many = float(evaluate("transfer", {**pt, "transfer_tokens": float(n)})["bytes"])
    assert many == pytest.approx(n * one, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(points(), st.integers(1, 7))
def test_more_tp_never_more_weight_bytes_per_device(pt, extra):
    base = float(evaluate("memory", pt)["weights_bytes"])
    more = float(evaluate("memory", {**pt, "tp": pt["tp"] + extra})["weights_bytes"])
    assert more <= base


def test_prefill_attention_is_quadratic_in_prompt():
    pt = dict.fromkeys(_generated.ARGS["prefill"], 1.0)
    pt.update({"new_tokens": 1000.0, "prefix_tokens": 0.0, "sliding_layers": 0.0, "sparse_layers": 0.0,
               "linear_layers": 0.0})
    f1 = float(evaluate("prefill", pt)["attention_flops"])
    f2 = float(evaluate("prefill", {**pt, "new_tokens": 2000.0})["attention_flops"])
    assert f2 / f1 == pytest.approx(4.0, rel=2e-3)


def test_expected_experts_touched():
    pt = dict.fromkeys(_generated.ARGS["decode"], 1.0)
    pt.update({"experts": 8.0, "experts_per_token": 2.0, "expert_params": 1e6, "moe_layers": 1.0,
               "shared_params": 0.0, "weight_bytes": 1.0, "act_bytes": 0.0, "tp": 1.0, "dp": 1.0,
               "moe_tp": 1.0, "moe_ep": 1.0, "ep_imbalance_32": 1.0})
    one = float(evaluate("decode", {**pt, "batch": 1.0})["experts_bytes"])
    big = float(evaluate("decode", {**pt, "batch": 1e4})["experts_bytes"])
    assert one == pytest.approx(2e6)  # one token touches exactly k experts
    assert big == pytest.approx(8e6)  # many tokens touch them all


def test_outputs_broadcast_over_columns():
    pt = dict.fromkeys(_generated.ARGS["decode"], 1.0)
    pt["batch"] = np.arange(1.0, 6.0)
    out = evaluate("decode", pt)
    assert all(v.shape == (5,) for v in out.values())


def test_equations_cli(cli):
    code, out, _ = cli("equations")
    assert code == 0 and "roofline.seconds" in out and "crossover.hiding_bandwidth" in out and "symbols:" in out
    code, out, _ = cli("equations", "decode.ffn_seconds", "--latex")
    assert code == 0 and ("\\max" in out or "Max" in out)
    code, out, _ = cli("equations", "crossover", "--model", "llama-3.1-70b", "--hardware", "h100-sxm",
                       "--link", "roce-400")
    assert code == 0 and "decode_compute_batch:" in out and "hiding_bandwidth:" in out
    code, _, err = cli("equations", "nonsense.thing")
    assert code == 1 and "unknown equation" in err


def test_decode_compute_crossover_matches_the_roofline():
    """At the solved batch, the dense GEMMs' compute and weight-streaming terms are equal."""
    from pdroof.cost.equations.crossover import decode_compute_batch

    pt = dict.fromkeys(_generated.ARGS["decode"], 1.0)
    pt.update({"ffn_params": 3 * 4096 * 14336.0, "ffn_size": 14336.0, "hidden": 4096.0, "tp": 1.0,
               "weight_bytes": 2.0, "act_bytes": 2.0, "dequant_overhead": 0.0, "eff_compute": 0.75,
               "eff_weights": 0.85, "peak_flops_per_s": 989e12, "mem_bytes_per_s": 3.35e12, "dense_layers": 32.0,
               "layers": 32.0, "attn_params": 4096 * 6144 + 4096 * 4096.0})
    crossover = decode_compute_batch()  # once: a sympy solve (it was derived again for each of ~80 inputs)
    names = {s.name for s in crossover.free_symbols}
    b = float(crossover.xreplace({S(k): v for k, v in pt.items() if k in names}))
    out = evaluate("decode", {**pt, "batch": b})
    compute = float(out["ffn_compute_s"]) + float(out["attn_proj_compute_s"])
    memory = float(out["ffn_memory_s"]) + float(out["attn_proj_memory_s"])
    assert compute == pytest.approx(memory, rel=1e-9)


@pytest.mark.parametrize("model,hw,link", [("llama-3.1-70b", "h100-sxm", "roce-400"), ("mixtral-8x7b", "h200-sxm", "tcp-100g"),
                                           ("gpt-oss-120b", "h200-sxm", "tcp-100g")])
def test_transfer_crossover_is_never_negative(cli, model, hw, link):
    code, out, err = cli("equations", "crossover", "--model", model, "--hardware", hw, "--link", link)
    assert code == 0, err
    line = next(x for x in out.splitlines() if "transfer_prompt_tokens:" in x)
    assert float(line.split(":")[1].split()[0].replace(",", "")) >= 0


def test_sliding_window_pairs_are_the_sum_of_the_mins(catalog):
    """Review D11: a sliding layer scores Σᵢ min(w, p + i) query-key pairs (the min of the mean
    overcounted gpt-oss's sliding attention by a third at S = 256: 9.66e9 FLOPs for 7.27e9)."""
    from pdroof.cost.precision import Precision
    from pdroof.serving.stage import stage_inputs

    m, a = catalog.get("model", "gpt-oss-120b"), catalog.get("accelerator", "h100-sxm")
    base, _ = stage_inputs(m, a, catalog.get("runtime", "engine"), Precision("bf16", "bf16", "bf16"), 1)
    per_pair = 2 * base["attn_dim_prefill"] * base["heads"]
    for new, prefix, window in ((256, 0, 128), (100, 50, 128), (10, 500, 128), (600, 20, 300), (5, 0, 300)):
        pt = {**base, "batch": 1, "new_tokens": new, "prefix_tokens": prefix, "context_tokens": new + prefix,
              "window_tokens": window, "full_layers": 0, "sliding_layers": 1}
        pairs = sum(min(window, prefix + i) for i in range(1, new + 1))
        assert float(evaluate("prefill", pt)["attention_flops"]) == pytest.approx(per_pair * pairs, rel=1e-12)
    pt = {**base, "batch": 1, "new_tokens": 256, "prefix_tokens": 0, "context_tokens": 256, "full_layers": 0}
    assert float(evaluate("prefill", pt)["attention_flops"]) == pytest.approx(7.27e9, rel=2e-3)


def test_narrow_twins_equal_the_full_group():
    """A narrow twin (only some outputs, for the design space's hot loops) computes what the full
    group computes, on random physical points."""
    from pdroof.cost.numeric import evaluate

    rng = np.random.default_rng(7)
    for (group, outputs), _name in _generated.NARROW.items():
        inputs = {a: rng.uniform(*REALISTIC.get(a, (0.5, 2.0)), size=64) for a in _generated.ARGS[group]}
        full = evaluate(group, inputs)
        narrow = evaluate(group, inputs, outputs)
        assert set(narrow) == set(outputs)
        for o in outputs:
            np.testing.assert_allclose(narrow[o], full[o], rtol=1e-12, err_msg=f"{group}.{o}")


def test_routed_experts_take_their_own_factors(catalog):
    """The routed experts run as one grouped-GEMM layer: its fixed time τ_X and its streaming
    efficiency η_XW are their own (aiconfigurator's MoE tables put τ_X at 15-45 µs, far above three
    kernels' floor); without them a profile's dense factors apply, so pytorch is unchanged."""
    from pdroof.cost.precision import Precision
    from pdroof.serving.stage import stage_inputs

    m, a = catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm")
    p = Precision("fp8", "fp8", "bf16")
    plain, _ = stage_inputs(m, a, catalog.get("runtime", "pytorch"), p, 8)
    assert plain["eff_moe_weights"] == plain["eff_weights"]
    assert plain["moe_latency_s"] == pytest.approx(3 * plain["kernel_latency_s"])
    own, eff = stage_inputs(m, a, catalog.get("runtime", "sglang"), p, 8)
    assert own["moe_latency_s"] == pytest.approx(eff.moe_latency_s["fp8"]) and own["moe_latency_s"] > 1e-5
    step = {**own, "batch": 4.0, "context_tokens": 1500.0}
    base = float(evaluate("decode", step)["experts_seconds"])
    slower = float(evaluate("decode", {**step, "moe_latency_s": own["moe_latency_s"] + 1e-5})["experts_seconds"])
    assert slower - base == pytest.approx(own["moe_layers"] * 1e-5, rel=1e-9)
    # a small batch streams the touched experts' weights: no large-GEMM penalty makes it compute-bound
    out = evaluate("decode", step)
    assert float(out["experts_compute_s"]) < float(out["experts_memory_s"])
