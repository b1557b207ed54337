"""``plan`` (the three boundary decisions for one pairing) and ``check`` (a deployment file
against its targets, for CI)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import Fmt, FormatOpt, OutOpt, RuntimeOpt, Stat, TpotStatOpt, TtftStatOpt, catalog


def plan_cmd(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="model id or YAML file"),
    prefill: str = typer.Option(..., "--prefill", help="prefill accelerator"),
    decode: str = typer.Option(..., "--decode", help="decode accelerator"),
    link: str = typer.Option("roce-400", "--link", help="KV path"),
    prefill_tp: int = typer.Option(1, "--prefill-tp", help="attention TP of a prefill replica"),
    decode_tp: int = typer.Option(1, "--decode-tp", help="attention TP of a decode replica"),
    prefill_dp: int = typer.Option(1, "--prefill-dp", help="DP-attention replicas per prefill instance"),
    decode_dp: int = typer.Option(1, "--decode-dp", help="DP-attention replicas per decode instance"),
    prefill_moe_tp: int = typer.Option(None, "--prefill-moe-tp", help="MoE: the prefill experts' TP split "
                                       "[default: tp × dp / moe-ep]"),
    decode_moe_tp: int = typer.Option(None, "--decode-moe-tp", help="MoE: the decode experts' TP split"),
    prefill_moe_ep: int = typer.Option(1, "--prefill-moe-ep", help="MoE: the prefill experts' EP degree"),
    decode_moe_ep: int = typer.Option(1, "--decode-moe-ep", help="MoE: the decode experts' EP degree"),
    prefill_weights: str = typer.Option("bf16", "--prefill-weights"),
    decode_weights: str = typer.Option("bf16", "--decode-weights"),
    prefill_kv: str = typer.Option("bf16", "--prefill-kv", help="KV format the prefill pool writes"),
    kv: str = typer.Option("bf16", "--kv", help="KV format the decode pool stores"),
    prefill_page: int = typer.Option(16, "--prefill-page-tokens"),
    decode_page: int = typer.Option(16, "--decode-page-tokens"),
    tier: str = typer.Option("hbm", "--tier", help="decode KV residency tier"),
    workload: str = typer.Option("chat", "--workload", "-w", help="preset or workload YAML"),
    prompt: int = typer.Option(None, "--prompt"),
    output_tokens: int = typer.Option(None, "--output", help="output tokens per request"),
    prefix_hit: float = typer.Option(None, "--prefix-hit"),
    ttft: float = typer.Option(None, "--ttft", help="TTFT target (ms)"),
    tpot: float = typer.Option(None, "--tpot", help="TPOT target (ms)"),
    ttft_stat: Stat = TtftStatOpt,
    tpot_stat: Stat = TpotStatOpt,
    retain_gb: float = typer.Option(0.0, "--retain-gb", help="prefix cache retained per decode device (GB)"),
    runtime: str = RuntimeOpt,
    fmt: Fmt = FormatOpt,
    output: Path | None = OutOpt,
):
    """Compute placement, KV representation and KV ownership for one prefill/decode pairing."""
    from ..cost.runtime import runtime_for
    from ..serving.boundary import Pool, plan
    from ..serving.workload import resolve
    from ..spec.errors import PdroofError
    from ..spec.units import check_format

    if not (retain_gb >= 0 and math.isfinite(retain_gb)):
        raise PdroofError(f"--retain-gb must be a finite, non-negative size, not {retain_gb}")
    for flag, f in (("--prefill-weights", prefill_weights), ("--decode-weights", decode_weights),
                    ("--prefill-kv", prefill_kv), ("--kv", kv)):
        check_format(f, flag)
    cat = catalog(ctx)
    w = resolve(workload, prompt_tokens=prompt, output_tokens=output_tokens, prefix_hit=prefix_hit,
                ttft_s=ttft / 1e3 if ttft is not None else None, tpot_s=tpot / 1e3 if tpot is not None else None,
                ttft_stat=ttft_stat and ttft_stat.value, tpot_stat=tpot_stat and tpot_stat.value)
    for flag, value in (("--prefill-dp", prefill_dp), ("--decode-dp", decode_dp), ("--prefill-moe-ep", prefill_moe_ep),
                        ("--decode-moe-ep", decode_moe_ep), ("--prefill-moe-tp", prefill_moe_tp),
                        ("--decode-moe-tp", decode_moe_tp), ("--prefill-tp", prefill_tp), ("--decode-tp", decode_tp)):
        if value is not None and not 1 <= value <= 4096:  # a split is a usage matter, not an infeasible plan
            raise PdroofError(f"{flag} must be from 1 to 4096, not {value}")
    pre_acc, dec_acc = cat.get("accelerator", prefill), cat.get("accelerator", decode)
    p = plan(cat.get("model", model),
             Pool(pre_acc, tp=prefill_tp, dp=prefill_dp, moe_tp=prefill_moe_tp, moe_ep=prefill_moe_ep,
                  weights=prefill_weights, kv=prefill_kv, page_tokens=prefill_page,
                  runtime=runtime_for(cat, runtime, pre_acc)),
             Pool(dec_acc, tp=decode_tp, dp=decode_dp, moe_tp=decode_moe_tp, moe_ep=decode_moe_ep,
                  weights=decode_weights, kv=kv, page_tokens=decode_page, tier=tier,
                  runtime=runtime_for(cat, runtime, dec_acc)),
             cat.get("path", link), cat.all("tier"), cat.get("runtime", runtime), w, retained_bytes=retain_gb * 1e9)
    doc = {"feasible": p.feasible, "reasons": p.reasons, **p.doc}
    if fmt.value == "json":
        render.emit(render.json_text(doc), output)
    elif fmt.value == "csv":  # every quantity a row, raw SI values
        rows: list[dict] = []
        rep = doc.get("representation", {})
        gate = {g["check"]: g["passed"] for g in rep.get("gate", [])}  # the hard gate: each check's verdict
        _kv(rows, "plan", doc | {"representation": {**rep, "gate": gate}}, {}, raw=True)
        render.emit(render.csv_text(rows, ["decision", "quantity", "value"]), output)
    else:
        render.emit(_plan_text(doc), output)
    if not p.feasible:
        raise typer.Exit(1)


def _kv(rows, section: str, data: dict, units: dict[str, tuple[str, float]], raw: bool = False):
    for k, v in data.items():
        if isinstance(v, dict):
            _kv(rows, f"{section}.{k}", v, units, raw)
            continue
        if raw:
            rows.append({"decision": section, "quantity": k,
                         "value": ";".join(map(str, v)) if isinstance(v, list) else v})
            continue
        unit, scale = next(((u, sc) for suffix, (u, sc) in units.items() if k.endswith(suffix)), ("", 1.0))
        rows.append({"decision": section, "quantity": k,
                     "value": render.human(v, scale) if not isinstance(v, list) else ", ".join(map(str, v)),
                     "unit": unit})


UNITS = {"_bytes": ("GB", 1e9), "_s": ("ms", 1e-3), "capacity": ("req/s", 1.0),
         "usd_per_million_tokens": ("$ per M output tokens", 1.0), "joules_per_token": ("J", 1.0),
         "tokens_per_s_per_device": ("tokens/s", 1.0)}


def _plan_text(doc: dict) -> str:
    rows: list[dict] = []
    _kv(rows, "1 placement", doc["placement"], UNITS)
    rep = dict(doc["representation"])
    for g in rep.pop("gate"):
        rows.append({"decision": "2 representation.gate", "quantity": g["check"],
                     "value": "pass" if g["passed"] else "REJECT", "unit": g["detail"]})
    _kv(rows, "2 representation", rep, UNITS)
    if "ownership" in doc:
        _kv(rows, "3 ownership", doc["ownership"], UNITS)
    if "serving" in doc:
        _kv(rows, "serving", doc["serving"], UNITS)
    verdict = "feasible" if doc["feasible"] else "infeasible: " + "; ".join(doc["reasons"])
    cols = [Column("decision", "decision"), Column("quantity", "quantity"), Column("value", "value"),
            Column("unit", "unit")]
    return render.table_text(rows, cols, title="PD boundary plan", caption=verdict)


def check_cmd(
    ctx: typer.Context,
    deployment: Path = typer.Argument(..., help="deployment YAML"),
    fmt: Fmt = FormatOpt,
    output: Path | None = OutOpt,
):
    """Check a deployment against its targets: exit 0 when every target holds, 1 when one fails
    (printing which and by how much), 2 for invalid input."""
    from ..serving.deployment import check
    from ..spec.errors import PdroofError
    from .app import one_line

    try:
        v = check(deployment, catalog(ctx))
    except PdroofError as exc:
        print(f"Error: {one_line(str(exc))}", file=sys.stderr)
        raise typer.Exit(2) from None
    checks = [{"check": c.name, "passed": c.passed, "value": c.value, "limit": c.limit, "unit": c.unit,
               "margin": _margin(c), "detail": c.detail} for c in v.checks]
    if fmt.value == "json":
        render.emit(render.json_text({"passed": v.passed, "checks": checks, "plan": v.plan.doc if v.plan else None}),
                    output)
    elif fmt.value == "csv":
        render.emit(render.csv_text(checks, ["check", "passed", "value", "limit", "unit", "margin", "detail"]), output)
    else:
        cols = [Column("check", "check"), Column("passed", "ok"), Column("value", "value", digits=4),
                Column("limit", "limit", digits=4), Column("unit", "unit"), Column("margin", "margin"),
                Column("detail", "detail")]
        title = f"{deployment}{_engines(v.plan)}: " + ("all targets hold" if v.passed else "FAILS")
        render.emit(render.table_text(checks, cols, title=title), output)
        for c in v.checks:
            if not c.passed:
                what = c.detail if c.name == "feasible" else (f"{c.value:.4g} {c.unit} against {c.limit:.4g} "
                                                              f"({_margin(c)})")
                print(f"FAIL {c.name}: {what}", file=sys.stderr)
    raise typer.Exit(0 if v.passed else 1)


def _engines(p) -> str:
    """`` (runtime prefill X, decode Y)``: what each pool was judged to run."""
    placement = p.doc.get("placement", {}) if p is not None else {}
    if not placement:
        return ""
    return " (runtime " + ", ".join(f"{side} {placement[side]['runtime']}" for side in ("prefill", "decode")) + ")"


def _margin(c) -> str:
    if c.name == "feasible":
        return "—"
    if not c.limit or not math.isfinite(c.value):
        return "—" if c.passed else "unbounded"
    r = (c.limit - c.value) / c.limit
    return f"{r:+.0%} headroom" if c.passed else f"over by {-r:.0%}"
