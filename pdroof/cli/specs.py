"""``hardware``, ``models``, ``paths`` and ``tiers``: list and show catalogue entries."""

from __future__ import annotations

from pathlib import Path

import typer

from ..cost.architecture import summary
from ..output import render
from ..output.render import Column
from ..spec.units import GB, GIB, KV_FORMATS, TERA
from ..spec.view import show_rows
from .options import Fmt, FormatOpt, OutOpt, catalog

SHOW_COLUMNS = [Column("field", "field"), Column("value", "value"), Column("unit", "unit"),
                Column("source", "source")]


def _peak(fmt: str):
    return lambda r: r["dense_flops_per_s"].get(fmt)


ACCELERATOR_COLUMNS = [
    Column("id", "id"), Column("name", "name"), Column("vendor", "vendor"),
    Column("memory_capacity_bytes", "memory (GiB)", GIB), Column("memory_bandwidth_bytes_per_s", "HBM (GB/s)", GB),
    Column("bf16_flops_per_s", "BF16 (TFLOP/s)", TERA), Column("fp8_flops_per_s", "FP8 (TFLOP/s)", TERA),
    Column("fp4_flops_per_s", "FP4 (TFLOP/s)", TERA), Column("scale_up", "scale-up"),
    Column("power_w", "power (W)"), Column("price_usd_per_hour", "$/h"),
]


def accelerator_row(a) -> dict:
    peaks = a.dense_flops_per_s
    return {
        "id": a.id, "name": a.name, "vendor": a.vendor,
        "memory_capacity_bytes": a.memory.capacity_bytes,  # usable: visible where a source gives it
        "memory_bandwidth_bytes_per_s": a.memory.bandwidth_bytes_per_s,
        "bf16_flops_per_s": peaks.bf16, "fp8_flops_per_s": peaks.fp8, "fp4_flops_per_s": peaks.fp4,
        "scale_up": a.scale_up.kind if a.scale_up else None,
        "power_w": a.power_w, "price_usd_per_hour": a.price_usd_per_hour,
    }


MODEL_COLUMNS = [
    Column("id", "id"), Column("name", "name"), Column("attention", "attention"),
    Column("layers", "layers"), Column("params_total", "params (B)", 1e9),
    Column("params_active", "active (B)", 1e9),
    Column("kv_bytes_per_token_bf16", "KV bf16 (B/token)"),
]


def model_row(m) -> dict:
    s = summary(m, ("bf16",))
    return {
        "id": m.id, "name": m.name, "attention": m.attention.kind + (" moe" if m.moe else ""),
        "layers": m.layers, "params_total": s["params_total"], "params_active": s["params_active"],
        "kv_bytes_per_token_bf16": s["kv_bytes_per_token"]["bf16"],
    }


PATH_COLUMNS = [
    Column("id", "id"), Column("name", "name"), Column("kind", "kind"),
    Column("bandwidth_bytes_per_s", "GB/s per dir", GB), Column("latency_s", "latency (µs)", 1e-6),
    Column("efficiency", "efficiency"), Column("cross_node", "cross-node"), Column("cross_vendor", "cross-vendor"),
]

TIER_COLUMNS = [
    Column("id", "id"), Column("name", "name"), Column("kind", "kind"),
    Column("capacity_bytes", "capacity (GB)", GB), Column("bandwidth_bytes_per_s", "GB/s", GB),
    Column("latency_s", "latency (µs)", 1e-6),
]


def _plain_row(r) -> dict:
    return r.to_dict()


def make_group(kind: str, noun: str, columns, row_of) -> typer.Typer:
    group = typer.Typer(help=f"List and show {noun}s.", no_args_is_help=True)

    @group.command("list", help=f"List the {noun}s in the catalogue.")
    def list_(ctx: typer.Context, fmt: Fmt = FormatOpt, output: Path | None = OutOpt):
        recs = catalog(ctx).all(kind)
        rows = [row_of(r) for r in recs]
        doc = [r.to_dict() for r in recs] if fmt.value == "json" else None
        render.emit(render.rows_output(rows, columns, fmt.value, title=f"{noun}s", json_obj=doc), output)

    @group.command("show", help=f"Show one {noun} (an id, or a path to a YAML file).")
    def show(ctx: typer.Context, ref: str = typer.Argument(..., metavar="ID|FILE"), fmt: Fmt = FormatOpt,
             output: Path | None = OutOpt):
        rec = catalog(ctx).get(kind, ref)
        derived = summary(rec, KV_FORMATS) if kind == "model" else None
        if fmt.value == "json":
            doc = {**derived, "spec": rec.to_dict()} if derived else rec.to_dict()
            doc["provenance"] = rec.provenance
            render.emit(render.json_text(doc), output)
            return
        rows = show_rows(rec)
        if derived:
            rows = _derived_rows(derived) + rows
        render.emit(render.rows_output(rows, SHOW_COLUMNS, fmt.value, title=f"{noun} {rec.id}"), output)

    return group


def _derived_rows(d: dict) -> list[dict]:
    rows = [
        {"field": "params_total", "value": f"{d['params_total'] / 1e9:.2f}", "unit": "B params",
         "source": "derived"},
        {"field": "params_active", "value": f"{d['params_active'] / 1e9:.2f}", "unit": "B params",
         "source": "derived"},
    ]
    for fmt, b in d["weights_bytes"].items():
        rows.append({"field": f"weights_bytes.{fmt}", "value": f"{b / GB:.1f}", "unit": "GB", "source": "derived"})
    for fmt, b in d["kv_bytes_per_token"].items():
        rows.append({"field": f"kv_bytes_per_token.{fmt}", "value": f"{b:,.0f}", "unit": "B/token",
                     "source": "derived"})
    for fmt, b in d.get("kv_bytes_sliding_max", {}).items():
        rows.append({"field": f"kv_bytes_sliding_max.{fmt}", "value": f"{b:,.0f}", "unit": "B/sequence",
                     "source": f"derived: {d['sliding_layers']} layers capped at {d['sliding_window_tokens']} tokens"})
    return rows


hardware = make_group("accelerator", "accelerator", ACCELERATOR_COLUMNS, accelerator_row)
models = make_group("model", "model", MODEL_COLUMNS, model_row)
paths = make_group("path", "KV path", PATH_COLUMNS, _plain_row)
tiers = make_group("tier", "KV residency tier", TIER_COLUMNS, _plain_row)
