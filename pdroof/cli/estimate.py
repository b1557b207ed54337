"""``estimate``: one model on one accelerator — prefill, a decode step, memory."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import Fmt, FormatOpt, OutOpt, RuntimeOpt, Stat, catalog, waves_option

Serving = Enum("Serving", {"single": "single", "aggregated": "aggregated"}, type=str)
Arrivals = Enum("Arrivals", {"closed": "closed", "poisson": "poisson"}, type=str)

OP_COLUMNS = [
    Column("name", "operation"), Column("kind", "kind"), Column("seconds", "time (ms)", 1e-3),
    Column("share", "share"), Column("flops", "TFLOP", 1e12), Column("bytes", "GB", 1e9), Column("bound", "bound"),
]

ModelOpt = typer.Option(..., "--model", "-m", help="model id or YAML file")
HardwareOpt = typer.Option(..., "--hardware", help="accelerator id or YAML file")


def estimate_cmd(
    ctx: typer.Context,
    model: str = ModelOpt,
    hardware: str = HardwareOpt,
    runtime: str = RuntimeOpt,
    weights: str = typer.Option("bf16", "--weights", help="weight format"),
    activations: str = typer.Option(None, "--activations", help="activation (GEMM compute) format; "
                                    "default: what the weight format implies on the accelerator"),
    kv: str = typer.Option("bf16", "--kv", help="KV-cache format"),
    tp: int = typer.Option(1, "--tp", help="attention tensor-parallel degree (devices per attention replica)"),
    dp: int = typer.Option(None, "--dp", help="attention data-parallel replicas per instance (DP attention; "
                           "devices per instance tp × dp)  [default: 1]"),
    moe_tp: int = typer.Option(None, "--moe-tp", help="MoE: tensor-parallel split of each routed expert "
                               "[default: tp × dp / moe-ep]"),
    moe_ep: int = typer.Option(None, "--moe-ep", help="MoE: expert-parallel groups the routed experts are spread "
                               "over  [default: 1]"),
    ep: int = typer.Option(None, "--ep", help="MoE: the same as --dp E --moe-ep E"),
    batch: int = typer.Option(1, "--batch", "-b", help="prompts in the prefill, sequences in the decode step "
                              "(per instance)"),
    prompt: int = typer.Option(2048, "--prompt", help="new prompt tokens per sequence"),
    context: int = typer.Option(None, "--context", help="decode context length (default: --prefix + --prompt)"),
    prefix: int = typer.Option(0, "--prefix", help="already-cached prefix tokens per prompt"),
    serving: Serving = typer.Option(Serving.single, "--serving",
                                    help="single: one prefill and one decode step; aggregated: the steady "
                                         "state of continuous batching (with --concurrency, --output)"),
    concurrency: int = typer.Option(32, "--concurrency", help="aggregated: requests in flight"),
    arrivals: Arrivals = typer.Option(Arrivals.closed, "--arrivals",
                                      help="aggregated: closed (a benchmark's clients, each replacing its finished "
                                           "request at once, as predict models them) or poisson (traffic keeping "
                                           "--concurrency in flight on average, as rank plans for)"),
    output_tokens: int = typer.Option(256, "--output", help="aggregated: output tokens per request"),
    waves: float = waves_option("aggregated, closed: requests each client sends (the first, all at once, queue)"),
    ttft_stat: Stat = typer.Option(Stat.p90, "--ttft-stat", help="aggregated: TTFT statistic to report under load"),
    tpot_stat: Stat = typer.Option(Stat.p99, "--tpot-stat", help="aggregated: TPOT statistic to report"),
    fmt: Fmt = FormatOpt,
    output: Path | None = OutOpt,
):
    """Prefill time, one decode step and memory, broken down by operation with its bound."""
    from ..cost.precision import plan
    from ..cost.runtime import runtime_for
    from ..serving.estimate import aggregated, estimate
    from ..spec.errors import PdroofError

    if ep is not None and (dp is not None or moe_ep is not None):
        raise typer.BadParameter("--ep E stands for --dp E --moe-ep E: give one or the other", param_hint="--ep")
    if ep is not None and ep < 1:
        raise PdroofError(f"--ep must be at least 1, not {ep}")
    dp, moe_ep = (ep, ep) if ep is not None else (1 if dp is None else dp, 1 if moe_ep is None else moe_ep)
    split = {"tp": tp, "dp": dp, "moe_tp": moe_tp, "moe_ep": moe_ep}
    cat = catalog(ctx)
    m, acc = cat.get("model", model), cat.get("accelerator", hardware)
    rt = runtime_for(cat, runtime, acc)
    p = plan(acc, weights, activations, kv)
    if serving.value == "aggregated":
        result = aggregated(m, acc, rt, p, **split, concurrency=concurrency, prompt=prompt, output=output_tokens,
                            prefix=prefix, ttft_stat=ttft_stat.value, tpot_stat=tpot_stat.value,
                            arrivals=arrivals.value, waves=waves)
        if fmt.value == "json":
            render.emit(render.json_text(result), output)
        else:
            a, i = result["aggregated"], result["inputs"]
            rows = [{"quantity": k, "value": v} for k, v in a.items()]
            text = render.rows_output(rows, [Column("quantity", "aggregated steady state"), Column("value", "value")],
                                      fmt.value)
            head = f"{i['model']} on {i['hardware']} · runtime {i['runtime']}\n" if fmt.value == "table" else ""
            render.emit(head + text, output)
        return
    result = estimate(m, acc, rt, p, **split, batch=batch, prompt=prompt, context=context, prefix=prefix)
    if fmt.value == "json":
        render.emit(render.json_text(result), output)
    elif fmt.value == "csv":
        render.emit(render.csv_text(_csv_rows(result), CSV_KEYS), output)
    else:
        render.emit(_table(result), output)


CSV_KEYS = ["stage", "name", "kind", "seconds", "flops", "bytes", "compute_seconds", "memory_seconds", "bound",
            "passes"]


def _csv_rows(r: dict) -> list[dict]:
    rows = []
    for stage, key in (("prefill", "seconds"), ("decode", "step_seconds")):
        passes = r[stage].get("passes", 1)  # a decode step is one pass; the prefill's ops sum its passes
        for op in r[stage]["ops"]:
            rows.append({"stage": stage, **op, "passes": passes})
        rows.append({"stage": stage, "name": "total", "seconds": r[stage][key], "flops": r[stage]["flops"],
                     "bytes": r[stage]["bytes"], "bound": r[stage]["bound"], "passes": passes})
    return rows


def _split(i: dict) -> str:
    """TP4, or TP1 · DP8 · experts 1×8 (EP) over 16 devices on 2 nodes."""
    text = f"TP{i['tp']}"
    if i["dp"] > 1:
        text += f" · DP{i['dp']}"
    if i["moe_ep"] > 1 or i["moe_tp"] != i["devices"]:
        text += f" · experts TP{i['moe_tp']}×EP{i['moe_ep']}"
    if i["nodes"] > 1:
        text += f" · {i['devices']} devices on {i['nodes']} nodes"
    return text


def _table(r: dict) -> str:
    i = r["inputs"]
    head = (f"{i['model']} on {i['hardware']} · runtime {i['runtime']} · W{i['weights']}/A{i['activations']}/"
            f"KV{i['kv']} · {_split(i)} · batch {i['batch']}")
    parts = [head + "\n"]
    pre, dec, mem = r["prefill"], r["decode"], r["memory"]
    for stage, total, title in (
        (pre, pre["seconds"], f"prefill: {i['batch']} × {i['prompt']} tokens"
                              + (f" after {i['prefix']} cached" if i["prefix"] else "")
                              + (f" in {pre['passes']} passes" if pre["passes"] > 1 else "")
                              + f" = {pre['seconds'] * 1e3:.2f} ms ({pre['bound']}-bound)"),
        (dec, dec["step_seconds"], f"decode step: {i['batch']} sequences at context {i['context']} = "
                                   f"{dec['step_seconds'] * 1e3:.2f} ms, {dec['tokens_per_second']:,.0f} tokens/s "
                                   f"({dec['bound']}-bound)"),
    ):
        rows = [{**op, "share": f"{op['seconds'] / total:.0%}"} for op in stage["ops"]]
        parts.append(render.table_text(rows, OP_COLUMNS, title=title))
    mem_rows = [
        {"quantity": "weights per device", "value": f"{mem['weights_bytes'] / 1e9:,.2f} GB"},
        {"quantity": "activation workspace", "value": f"{mem['workspace_bytes'] / 1e9:,.2f} GB"},
        {"quantity": "KV per token per device", "value": f"{mem['kv_bytes_per_token']:,.0f} B"},
        {"quantity": f"KV per sequence at {i['context']} tokens", "value": f"{mem['kv_sequence_bytes'] / 1e9:,.3f} GB"},
        {"quantity": "KV capacity", "value": f"{mem['kv_capacity_bytes'] / 1e9:,.2f} GB"},
        {"quantity": f"largest batch at {i['context']} tokens",
         "value": f"{mem['max_batch']:,}" + ("" if mem["max_batch"] == mem["kv_batch"] else
                                             f"  (the engine's limit; KV memory holds {mem['kv_batch']:,})")
         + ("" if mem["fits"] else "  (batch does not fit)")},
    ]
    parts.append(render.table_text(mem_rows, [Column("quantity", "memory"), Column("value", "value")]))
    return "".join(parts)
