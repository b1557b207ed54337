"""``equations``: the symbolic model, printed from the expressions the numbers come from."""

from __future__ import annotations

import typer

from ..output import render


def equations_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="an equation (e.g. decode.seconds, crossover.hiding_bandwidth); "
                                          "a group name (prefill, decode, memory, transfer, kernels, crossover) "
                                          "lists its equations"),
    latex: bool = typer.Option(False, "--latex", help="print LaTeX"),
    model: str = typer.Option(None, "--model", "-m", help="evaluate crossovers for this model ..."),
    hardware: str = typer.Option(None, "--hardware", help="... on this accelerator"),
    link: str = typer.Option(None, "--link", help="... with this KV path"),
    runtime: str = typer.Option("engine", "--runtime", help="runtime profile for the evaluation (engine: the "
                                                            "engine profile best supported on the accelerator)"),
    weights: str = typer.Option("bf16", "--weights"),
    kv: str = typer.Option("bf16", "--kv"),
    tokens: int = typer.Option(4096, "--tokens", help="prompt tokens (for the bandwidth crossover)"),
):
    """Show the symbolic equations; with --model and --hardware also the solved crossovers."""
    from ..cost.printed import printed
    from ..cost.symbols import SYMBOLS
    from ..spec.errors import PdroofError

    if bool(model) != bool(hardware):  # crossovers need both, and a value given alone must not be ignored
        raise PdroofError("the crossovers need --model and --hardware together")
    eqs = printed()
    if name and name not in eqs:
        chosen = {k: v for k, v in eqs.items() if k.startswith(name + ".")}
        if not chosen:
            groups = sorted({k.split(".")[0] for k in eqs})
            raise PdroofError(f"unknown equation {name!r}; groups: {', '.join(groups)} (try `pdroof equations`)")
    else:
        chosen = {name: eqs[name]} if name else {k: v for k, v in eqs.items() if _headline(k)}
    lines = [f"% {key}\n{key.replace('.', '_')} = {forms['latex']}\n" if latex else f"{key} =\n{forms['text']}\n"
             for key, forms in chosen.items()]
    if not name:
        lines += ["symbols:", *(f"  {s.name:28s} [{s.unit}] {s.meaning}" for s in SYMBOLS.values())]
    if model and hardware:
        lines += _crossovers(ctx, model, hardware, link, runtime, weights, kv, tokens)
    render.emit("".join(f"{line}\n" for line in lines))


def _headline(key: str) -> bool:
    group, out = key.split(".", 1)
    return group in ("roofline", "crossover", "transfer") or (
        group in ("prefill", "decode") and out.endswith("_seconds")) or key in (
        "memory.weights_bytes", "memory.kv_sequence_bytes", "memory.max_batch")


def _crossovers(ctx, model, hardware, link, runtime, weights, kv, tokens) -> list[str]:
    """The crossovers' lines: solved for one model, accelerator and KV path."""
    from ..cost.numeric import evaluate
    from ..cost.precision import plan
    from ..cost.runtime import runtime_for
    from ..serving.estimate import estimate
    from ..serving.handoff import layerwise_overlap
    from ..serving.stage import stage_inputs
    from ..spec.units import format_bytes
    from .options import catalog

    cat = catalog(ctx)
    m, acc = cat.get("model", model), cat.get("accelerator", hardware)
    rt = runtime_for(cat, runtime, acc)
    p = plan(acc, weights, None, kv)
    inputs, _ = stage_inputs(m, acc, rt, p, tp=1)
    inputs.update({"batch": 1, "wire_bytes": format_bytes(kv), "transfer_tokens": tokens, "page_tokens": tokens,
                   # without a path the transfer crossovers are not shown; these only complete the inputs
                   "path_latency_s": 0.0, "path_bytes_per_s": 1.0, "eff_path": 1.0, "overlap_s": 0.0})
    values = {"decode_compute_batch": ("decode batch where the dense GEMMs turn compute-bound", "sequences")}
    if link:
        path = cat.get("path", link)
        pre = estimate(m, acc, rt, p, prompt=tokens)["prefill"]["seconds"]
        inputs.update({"path_latency_s": path.latency_s, "path_bytes_per_s": path.bandwidth_bytes_per_s,
                       "eff_path": path.efficiency, "overlap_s": layerwise_overlap(pre, m.layers)})
        values["transfer_prompt_tokens"] = (f"prompt length below which KV transfer over {path.id} exceeds "
                                            "prefill compute", "tokens")
        values["transfer_floor_tokens"] = ("prompt length from which it also exceeds prefill's weight-streaming "
                                           "floor (if larger than the line above: never exceeds prefill)", "tokens")
        values["hiding_bandwidth"] = (f"path bandwidth that hides a {tokens}-token transfer behind layer-wise "
                                      "prefill (negative: latency alone exceeds the overlap)", "GB/s")
    cx = evaluate("crossover", inputs)
    lines = [f"crossovers for {m.id} on {acc.id} (runtime {rt.id}, {p.label()}):"]
    for key, (text, unit) in values.items():
        v = float(cx[key]) / (1e9 if unit == "GB/s" else 1)
        lines.append(f"  {key}: {v:,.1f} {unit}  — {text}")
    return lines
