"""``transfer``: moving one request's KV over a KV path."""

from __future__ import annotations

from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import Fmt, FormatOpt, OutOpt, RuntimeOpt, catalog

COLUMNS = [
    Column("quantity", "quantity"), Column("value", "value"),
]


def transfer_cmd(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="model id or YAML file"),
    link: str = typer.Option(..., "--link", help="KV path id or YAML file"),
    kv: str = typer.Option("bf16", "--kv", help="KV wire format"),
    tokens: int = typer.Option(4096, "--tokens", help="tokens whose KV moves"),
    page_tokens: int = typer.Option(None, "--page-tokens", help="tokens per page (default: per-layer bulk)"),
    src: str = typer.Option(None, "--from", help="prefill accelerator: to judge overlap with its prefill"),
    dst: str = typer.Option(None, "--to", help="decode accelerator: to check the path is possible"),
    runtime: str = RuntimeOpt,
    tp: int = typer.Option(1, "--tp", help="TP of the prefill instance (each rank sends its KV shard)"),
    dst_tp: int = typer.Option(None, "--dst-tp", help="TP of the decode instance (each rank receives its shard; "
                                                     "default --tp): the slower end sets the time"),
    weights: str = typer.Option(None, "--weights", help="prefill weight format (for the prefill time, with --from)  "
                                "[default: bf16]"),
    fmt: Fmt = FormatOpt,
    output: Path | None = OutOpt,
):
    """Bytes, messages and time of one KV handoff, and whether layer-wise overlap hides it."""
    from ..cost.precision import plan
    from ..cost.runtime import GENERIC, runtime_for
    from ..serving.estimate import estimate
    from ..serving.handoff import layerwise_overlap, path_reason, transfer
    from ..spec.errors import PdroofError

    if not src and (weights is not None or runtime != GENERIC):
        given = [f for f, v in (("--weights", weights is not None), ("--runtime", runtime != GENERIC)) if v]
        raise typer.BadParameter(f"{' and '.join(given)} {'set' if len(given) > 1 else 'sets'} the prefill's time: "
                                 "give --from, the prefill accelerator")
    weights = weights or "bf16"
    if not 1 <= tokens <= 10**7:  # a request's tokens: what a context could physically hold
        raise PdroofError(f"--tokens must be from 1 to 10,000,000, not {tokens}")
    cat = catalog(ctx)
    m, path = cat.get("model", model), cat.get("path", link)
    prefill_s, overlap, notes = None, None, []
    ends = tuple(cat.get("accelerator", h) for h in (src, dst) if h)
    if len(ends) == 2:
        reason = path_reason(path, *ends)
        if reason:
            raise PdroofError(f"infeasible: {reason}")
    if src:
        a = ends[0]
        rt = runtime_for(cat, runtime, a)
        pre = estimate(m, a, rt, plan(a, weights, None, kv), prompt=tokens, tp=tp)
        if pre["memory"]["fits"]:
            prefill_s = pre["prefill"]["seconds"]
            overlap = layerwise_overlap(prefill_s, m.layers)
            notes.append(f"prefill of {tokens} tokens on {a.id}×{tp} ({weights}, runtime {rt.id}): "
                         f"{pre['prefill']['seconds'] * 1e3:.2f} ms")
        else:
            notes.append(f"{m.id} in {weights} does not fit {a.id}×{tp}: overlap not judged (try --tp)")
    if dst_tp is not None and dst_tp < 1:
        raise PdroofError(f"--dst-tp must be at least 1, not {dst_tp}")
    r = transfer(m, path, kv, tokens, page_tokens=page_tokens, overlap_s=overlap, ends=ends, tp=tp, dst_tp=dst_tp)
    r["prefill_seconds"] = prefill_s
    if fmt.value == "json":
        render.emit(render.json_text(r), output)
        return
    if fmt.value == "csv":
        render.emit(render.csv_text([r], list(r)), output)
        return
    rows = [
        {"quantity": "bytes", "value": f"{r['bytes'] / 1e6:,.1f} MB per sending rank, "
                                       f"{r['receiver_bytes'] / 1e6:,.1f} MB per receiving rank"},
        {"quantity": "messages", "value": f"{r['messages']:,} ({r['granularity']})"},
        {"quantity": "time", "value": f"{r['seconds'] * 1e3:,.3f} ms (of which per-message latency "
                                      f"{r['latency_seconds'] * 1e3:,.3f} ms)"},
    ]
    if overlap is not None:
        rows.append({"quantity": "overlappable prefill", "value": f"{overlap * 1e3:,.3f} ms"})
        rows.append({"quantity": "exposed after overlap", "value": f"{r['exposed_seconds'] * 1e3:,.3f} ms"
                     + ("  (hidden but the last layer)" if r["hidden"] else "")})
    title = f"KV of {r['tokens']:,} tokens of {r['model']} in {r['kv']} over {r['path']}"
    render.emit(render.table_text(rows, COLUMNS, title=title, caption="; ".join(notes) or None), output)
