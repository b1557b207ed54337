"""``rank``: the main job — enumerate the four axes, size the pools, rank, export."""

from __future__ import annotations

import math
import os
import sys
from enum import Enum
from pathlib import Path

import typer

from .options import RuntimeOpt, Stat, TpotStatOpt, TtftStatOpt
from .rank_table import EXCLUDED, columns_for, fold, id_list, table_rows

Objective = Enum("Objective", {k: k for k in ("cost", "throughput", "ttft", "tpot", "energy", "devices", "rate")},
                 type=str)
Mode = Enum("Mode", {"disagg": "disagg", "agg": "agg"}, type=str)
MODE_NAMES = {"disagg": "disaggregated", "agg": "aggregated"}
RankFormat = Enum("RankFormat", {k: k for k in ("table", "csv", "json", "xlsx")}, type=str)


def rank_cmd(
    ctx: typer.Context,
    model: str = typer.Option("llama-3.1-70b", "--model", "-m", help="model id or YAML file"),
    workload: str = typer.Option("chat", "--workload", "-w",
                                 help="preset (chat, code-completion, summarization, agent-request, agent-task, "
                                      "long-context-retrieval, long-document-qa) or workload YAML"),
    prompt: int = typer.Option(None, "--prompt", help="prompt tokens (overrides the workload)"),
    output_tokens: int = typer.Option(None, "--output", help="output tokens per request"),
    prefix_hit: float = typer.Option(None, "--prefix-hit", help="fraction of each prompt served from a prefix cache"),
    rate: float = typer.Option(None, "--rate", help="offered requests/s: report devices needed"),
    devices: int = typer.Option(None, "--devices", help="device budget: report the largest rate whole instances "
                                                        "within it sustain"),
    inventory: str = typer.Option(None, "--inventory", help="devices on hand, ACC=COUNT[,ACC=COUNT...]: "
                                  "deployments that fit them (either pool on any of those types, never a device "
                                  "twice) and the rate each sustains"),
    ttft: float = typer.Option(None, "--ttft", help="TTFT target (ms); default 10,000 (the study's r*)"),
    tpot: float = typer.Option(None, "--tpot", help="TPOT target (ms); default 25 (the study's r*)"),
    ttft_stat: Stat = TtftStatOpt,
    tpot_stat: Stat = TpotStatOpt,
    accelerators: str = typer.Option(None, "--accelerators", help="candidate accelerators, comma-separated "
                                                                  "(default: the catalogue)"),
    prefill_hw: str = typer.Option(None, "--prefill-hw", help="only these accelerators for prefill"),
    decode_hw: str = typer.Option(None, "--decode-hw", help="only these accelerators for decode"),
    weights: str = typer.Option(None, "--weights", help="only these weight formats, e.g. fp8,int4"),
    kv: str = typer.Option(None, "--kv", help="only these KV formats"),
    link: str = typer.Option(None, "--link", help="only these KV paths"),
    tp: str = typer.Option("1,2,4,8", "--tp", help="TP degrees to try"),
    dp: str = typer.Option(None, "--dp", help="MoE: only these DP-attention degrees (1: none); default: 1 and "
                                              "2-32 replicas of one device with the experts over all of them"),
    moe_ep: str = typer.Option(None, "--moe-ep", help="MoE: only these expert-parallel degrees (1: none)"),
    retain_gb: float = typer.Option(0.0, "--retain-gb", help="prefix cache retained per decode device (GB); "
                                                             "a choice separate from the KV tier"),
    runtime: str = RuntimeOpt,
    objective: Objective = typer.Option(Objective.cost, "--objective", help="what to rank by: cost, throughput "
                                        "(tokens/s/device), ttft, tpot, energy, devices (fewest for --rate), rate "
                                        "(most req/s within --devices or --inventory)"),
    mode: Mode = typer.Option(None, "--mode", help="only disaggregated (disagg) or aggregated (agg) rows"),
    price: str = typer.Option(None, "--price", help="device-hour prices over the catalogue's: "
                                                    "ACC=USD_PER_HOUR[,ACC=USD_PER_HOUR...]"),
    pareto: bool = typer.Option(False, "--pareto", help="only the non-dominated set (tokens/s/device, TTFT, TPOT)"),
    top: int = typer.Option(20, "--top", help="rows to show (0: all kept)"),
    show_infeasible: bool = typer.Option(False, "--show-infeasible", help="list excluded configurations and why"),
    wide: bool = typer.Option(False, "--wide", help="table: every column (the default fits 100 columns)"),
    columns: str = typer.Option(None, "--columns", help="table: these columns, comma-separated (row keys, as in "
                                                        "JSON and CSV, or prefill, decode, link, engine)"),
    fmt: RankFormat = typer.Option(RankFormat.table, "--format", "-f", help="table, csv, json or xlsx"),
    output: Path = typer.Option(None, "--output-file", "-o", help="write to this file (atomically)"),
    plot: Path = typer.Option(None, "--plot", help="draw the Pareto front to this PNG"),
    emit_deployment: Path = typer.Option(None, "--emit-deployment", help="write the picked row as a deployment "
                                         "file for pdroof check (at --rate, else the rate the row sustains)"),
    pick: int = typer.Option(1, "--pick", help="the row --emit-deployment writes (its rank)"),
):
    """Rank prefill/decode placements, formats, KV paths and residency for a model and workload."""
    from ..cost.runtime import runtimes_for
    from ..output import export, render
    from ..serving.rank import dead_end, infeasible_rows
    from ..serving.space import Candidates
    from ..serving.workload import resolve
    from ..spec.errors import PdroofError
    from ..spec.units import check_format
    from .options import catalog

    for flag, text in (("--accelerators", accelerators), ("--prefill-hw", prefill_hw), ("--decode-hw", decode_hw),
                       ("--weights", weights), ("--kv", kv), ("--link", link), ("--columns", columns),
                       ("--inventory", inventory), ("--price", price)):
        if text is not None and not id_list(text):  # given, yet naming nothing: never read as "no filter"
            raise PdroofError(f"{flag} names nothing: give a comma-separated list, or leave the option out")
    for flag, fmts in (("--weights", id_list(weights)), ("--kv", id_list(kv))):
        for f in fmts or ():
            check_format(f, flag)
    cat = catalog(ctx)
    w = resolve(workload, prompt_tokens=prompt, output_tokens=output_tokens, prefix_hit=prefix_hit,
                rate_per_s=rate, ttft_s=ttft / 1e3 if ttft is not None else None,
                tpot_s=tpot / 1e3 if tpot is not None else None, ttft_stat=ttft_stat and ttft_stat.value,
                tpot_stat=tpot_stat and tpot_stat.value)
    tps, dps, eps = (_degrees(flag, text) for flag, text in (("--tp", tp), ("--dp", dp), ("--moe-ep", moe_ep)))
    if devices is not None and not 1 <= devices <= 1_000_000:
        raise PdroofError(f"--devices must be a whole count from 1 to 1,000,000, not {devices}")
    if pick != 1 and not emit_deployment:
        raise PdroofError("--pick chooses the row --emit-deployment writes: give --emit-deployment FILE")
    if pick < 1:
        raise PdroofError(f"--pick counts rows from 1, not {pick}")
    if objective.value == "devices" and not rate:
        raise PdroofError("--objective devices ranks by the fewest devices for a rate: give --rate")
    if objective.value == "rate" and not (devices or inventory):
        raise PdroofError("--objective rate ranks by the most requests/s within a budget: give --devices or "
                          "--inventory")
    stock = _inventory(inventory, cat) if inventory else None
    if stock is not None and (devices or accelerators):
        raise PdroofError("--inventory names the accelerators and their counts: give it without --devices and "
                          "--accelerators")
    if not (retain_gb >= 0 and math.isfinite(retain_gb)):
        raise PdroofError(f"--retain-gb must be a finite, non-negative size, not {retain_gb}")
    accs = ([cat.get("accelerator", a) for a in stock] if stock is not None
            else [cat.get("accelerator", a) for a in id_list(accelerators)] if accelerators else cat.all("accelerator"))
    for ids in (id_list(prefill_hw), id_list(decode_hw)):
        for i in ids or ():
            if i not in {a.id for a in accs}:
                accs.append(cat.get("accelerator", i))
    paths = [cat.get("path", p) for p in id_list(link)] if link else cat.all("path")
    c = Candidates(cat.get("model", model), accs, paths, cat.all("tier"), cat.get("runtime", runtime), w,
                   weights=id_list(weights), kv=id_list(kv), tp=tps, dp=dps, moe_ep=eps,
                   prefill_ids=frozenset(id_list(prefill_hw)) if prefill_hw else None,
                   decode_ids=frozenset(id_list(decode_hw)) if decode_hw else None, devices=devices,
                   retained_bytes=retain_gb * 1e9, runtimes=runtimes_for(cat, runtime, accs),
                   prices=_prices(price, {a.id for a in accs}), inventory=stock)
    rk = _run(c, objective.value, top, pareto, mode and MODE_NAMES[mode.value])
    bad = infeasible_rows(rk) if show_infeasible else None
    reason = dead_end(rk)
    if reason:  # a ranking with no row is a failure to find one, not an empty success: nothing written
        if bad is not None:  # what was excluded, on standard output in the format asked for
            render.emit(export.to_json(rk, bad) if fmt.value == "json" else export.to_csv(rk, bad)
                        if fmt.value == "csv" else render.table_text(bad, EXCLUDED, title="excluded"))
        raise PdroofError(reason)
    if fmt.value == "xlsx" and output is None:
        raise PdroofError("--format xlsx needs -o FILE.xlsx")
    if emit_deployment:
        _emit_deployment(rk, pick, emit_deployment, model, runtime, rate, retain_gb)
    if plot:
        export.plot(rk if pareto and not top else _run(c, objective.value, 0, True), plot)
    if fmt.value == "xlsx":  # -o checked before anything was written
        export.to_xlsx(rk, output, bad)
        render.emit(f"wrote {output}: {len(rk.rows)} configurations\n")
    elif fmt.value == "json":
        render.emit(export.to_json(rk, bad), output)
    elif fmt.value == "csv":
        render.emit(export.to_csv(rk, bad), output)
    else:
        w_ = c.workload
        title = (f"{c.model.id} · {w_.id}: {w_.prompt_tokens:,} in / {w_.output_tokens:,} out"
                 + (f", prefix hit {w_.prefix_hit:.0%}" if w_.prefix_hit else "")
                 + f" · {w_.targets_text()} · runtime {c.runtime.id}"
                 + (" per accelerator" if any(r is not c.runtime for r in c.runtimes.values()) else "")
                 + (f" · {w_.rate_per_s:g} req/s" if w_.rate_per_s else "")
                 + (f" · within {devices:,} devices" if devices else "")
                 + (" · within " + ", ".join(f"{k}={n:,}" for k, n in stock.items()) if stock else "")
                 + f" · by {objective.value}" + (" · Pareto" if pareto else ""))
        rows_shown = table_rows(rk.rows)
        cols = columns_for(wide, columns, w_.rate_per_s, devices or stock)
        if not (wide or columns):  # the engines in the title: one, or the one each accelerator runs
            engines = {r[f"{side}_hw"]: r[f"{side}_runtime"] for r in rk.rows for side in ("prefill", "decode")
                       if r[f"{side}_hw"]}
            if len(set(engines.values())) == 1:
                title += f" · engine {next(iter(engines.values()))}"
            elif engines:
                title += " · engines " + ", ".join(f"{hw} {engines[hw]}" for hw in sorted(engines))
        units = "" if wide or columns else "TTFT (idle) and TPOT in ms. "
        folded = fold(rows_shown, cols)
        if len(folded) < len(rows_shown):
            units += "Rows alike in every number fold into one, their alternatives joined by |"
            units += ("; a rank range may also differ in a choice not shown (--wide shows wire format and "
                      "tier). " if any(r.get("_unshown") for r in folded) else ". ")
        text = render.table_text(folded, cols, title=title, caption=units + rk.summary())
        if bad:
            text += render.table_text(bad, EXCLUDED, title="excluded")
        render.emit(text, output)


def _emit_deployment(rk, pick: int, path: Path, model: str, runtime: str, rate: float | None,
                     retain_gb: float) -> None:
    """Row ``pick`` of the ranking as a deployment file (YAML, written atomically)."""
    import yaml

    from ..output.render import write_atomic
    from ..serving.deployment import from_row
    from ..spec.errors import PdroofError

    if not 1 <= pick <= len(rk.rows):
        raise PdroofError(f"--pick {pick}: the ranking has rows 1 to {len(rk.rows)}")
    row = rk.rows[pick - 1]
    # realpath, not Path.resolve, which raises on a symlink loop (the file's reader then says what is wrong)
    model_ref = os.path.realpath(model) if Path(model).suffix in (".yaml", ".yml") else model
    runtime_ref = os.path.realpath(runtime) if Path(runtime).suffix in (".yaml", ".yml") else runtime
    doc = from_row(row, rk.candidates.workload, model_ref, runtime_ref, rate, retain_gb)
    head = (f"# row {pick} of pdroof rank ({rk.objective}): check it with pdroof check {path.name}\n"
            f"# it sustains {row['requests_per_s']:.4g} req/s on {row['devices']} device"
            f"{'s' if row['devices'] != 1 else ''} by the model's numbers\n")
    write_atomic(path, head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    typer.echo(f"wrote {path}: row {pick} as a deployment at {doc['workload']['rate_per_s']:g} req/s", err=True)


def _degrees(flag: str, text: str | None) -> tuple[int, ...] | None:
    """Comma-separated parallel degrees, each from 1 to MAX_DEGREE (None: the option was not given)."""
    from ..cost.parallelism import MAX_DEGREE
    from ..spec.errors import PdroofError

    if text is None:
        return None
    try:
        out = tuple(dict.fromkeys(int(x) for x in text.split(",")))
    except ValueError:
        raise PdroofError(f"{flag} takes comma-separated integers, not {text!r}") from None
    if not out or any(not 1 <= t <= MAX_DEGREE for t in out):
        raise PdroofError(f"{flag} degrees must be from 1 to {MAX_DEGREE:,}, not {text!r}")
    return out


PROGRESS_FROM = 50_000_000  # enumerated configurations: below this a sweep takes well under a second


class _Progress:
    """A rich progress bar on stderr, shown only on a terminal and only for large sweeps."""

    def __init__(self):
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if total < PROGRESS_FROM or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("evaluating configurations", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _pairs(text: str, flag: str, form: str, parse) -> list[tuple[str, float]]:
    """The ``ACC=VALUE`` items of a comma-separated option, each value as ``parse`` reads it (None
    where it is not one: the item is then one error, saying the ``form`` expected)."""
    from ..spec.errors import PdroofError

    out = []
    for item in text.split(","):
        if not item.strip():
            continue
        acc, sep, value = item.partition("=")
        try:
            parsed = parse(value) if sep else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise PdroofError(f"{flag} takes {form}, not {item.strip()!r}")
        out.append((acc.strip(), parsed))
    return out


def _inventory(text: str, cat) -> dict[str, int]:
    """``ACC=COUNT`` pairs: catalogue accelerators (or YAML files) and whole device counts; a type
    named twice adds up."""
    out: dict[str, int] = {}
    for acc, count in _pairs(text, "--inventory", "ACC=COUNT with a whole count from 1 to 1,000,000",
                             lambda v: n if 1 <= (n := int(v)) <= 1_000_000 else None):
        a = cat.get("accelerator", acc)
        out[a.id] = out.get(a.id, 0) + count
    return out


def _prices(text: str | None, known: set[str]) -> dict[str, float]:
    """``ACC=USD_PER_HOUR`` pairs, each a candidate accelerator and a finite positive price."""
    from ..spec.errors import PdroofError

    out: dict[str, float] = {}
    for acc, usd in _pairs(text or "", "--price", "ACC=USD_PER_HOUR with a positive price",
                           lambda v: x if math.isfinite(x := float(v)) and x > 0 else None):
        if acc not in known:
            raise PdroofError(f"--price names {acc!r}, which is not a candidate accelerator")
        out[acc] = usd
    return out


def _run(c, objective, top, pareto, mode=None):
    from ..serving.rank import rank as run_rank

    progress = _Progress()
    try:
        return run_rank(c, objective, top, pareto, progress=progress, mode=mode)
    finally:
        progress.close()
