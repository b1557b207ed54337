"""Ranking results as files: CSV and JSON (raw SI values, columns named as in pdroof.serving.rank.COLUMNS,
with a meta block), XLSX (a results sheet and an inputs sheet; optional extra ``xlsx``), and a
plot of the Pareto front (optional extra ``plot``). Every file is written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from .. import __version__
from ..serving.rank import COLUMNS, Ranking
from ..spec.errors import PdroofError
from .render import csv_text, json_text, write_atomic

KEYS = [k for k, _ in COLUMNS]


def meta(rk: Ranking) -> dict:
    c = rk.candidates
    r = rk.results
    return {
        "pdroof": __version__, "model": c.model.id, "runtime": c.runtime.id,
        "runtimes": {a.id: c.runtime_of(a).id for a in c.accelerators}, "objective": rk.objective,
        "workload": c.workload.to_dict(), "accelerators": [a.id for a in c.accelerators],
        "paths": [p.id for p in c.paths], "tiers": [t.id for t in c.tiers],
        "weights": list(c.weights or []), "kv": list(c.kv or []), "tp": list(c.tp), "devices": c.devices,
        "inventory": c.inventory,
        "prices": {a.id: c.price_of(a) for a in c.accelerators},
        "price_overrides": dict(c.prices),
        "configurations": r.total, "feasible": r.feasible, "evaluated": r.evaluated, "dominated": r.dominated,
        "filtered": r.filtered,
        "infeasible": dict(r.infeasible), "columns": dict(COLUMNS),
    }


def to_json(rk: Ranking, infeasible: list[dict] | None = None) -> str:
    doc = {"meta": meta(rk), "results": rk.rows}
    if infeasible is not None:
        doc["infeasible"] = infeasible
    return json_text(doc)


EXCLUDED_KEYS = ["stage", "configuration", "reason"]


def to_csv(rk: Ranking, infeasible: list[dict] | None = None) -> str:
    """The ranked rows; with ``infeasible``, one table of both, told apart by ``status`` (ranked or
    excluded) so a spreadsheet filter separates them."""
    if infeasible is None:
        return csv_text(rk.rows, KEYS)
    rows = [{"status": "ranked", **r} for r in rk.rows] + [{"status": "excluded", **x} for x in infeasible]
    return csv_text(rows, ["status", *KEYS, *EXCLUDED_KEYS])


def to_xlsx(rk: Ranking, path: str | Path, infeasible: list[dict] | None = None) -> None:
    try:
        from openpyxl import Workbook
    except ImportError:
        raise PdroofError("xlsx export needs openpyxl: pip install 'pdroof[xlsx]'") from None
    wb = Workbook()
    ws = wb.active
    ws.title = "results"
    _append(ws, KEYS)
    for row in rk.rows:
        _append(ws, [row.get(k) for k in KEYS])
    inp = wb.create_sheet("inputs")
    for key, value in meta(rk).items():
        if isinstance(value, dict):
            for k, v in value.items():
                _append(inp, [f"{key}.{k}", str(v) if isinstance(v, (list, dict)) else v])
        else:
            _append(inp, [key, ", ".join(map(str, value)) if isinstance(value, list) else value])
    if infeasible is not None:
        excluded = wb.create_sheet("excluded")
        _append(excluded, EXCLUDED_KEYS)
        for x in infeasible:
            _append(excluded, [x.get(k) for k in EXCLUDED_KEYS])
    buf = io.BytesIO()
    try:
        wb.save(buf)
    except OSError as exc:  # openpyxl stages sheets in temporary files: a full disk or a size limit
        import sys

        # its half-run sheet writers are finalised as the command ends, each with an "Exception
        # ignored" report on stderr: the one error line says it all
        sys.unraisablehook = lambda _: None
        raise PdroofError(f"{path}: cannot write: {exc.strerror or exc}") from None
    write_atomic(path, buf.getvalue())


FORMULA_STARTS = ("=", "+", "-", "@")  # what a spreadsheet would evaluate (a workload's text is the user's)


def _append(ws, values: list) -> None:
    """A row whose text cells stay text: one that starts as a formula would is stored as a string."""
    ws.append(values)
    for cell in ws[ws.max_row]:
        if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
            cell.data_type = "s"


def plot(rk: Ranking, path: str | Path) -> None:
    """Pareto front: output tokens/s per device against TPOT, TTFT as marker size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PdroofError("--plot needs matplotlib: pip install 'pdroof[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 5))
    for mode, marker in (("disaggregated", "o"), ("aggregated", "s")):
        rows = [r for r in rk.rows if r["mode"] == mode]
        if rows:
            ax.scatter([r["tpot_s"] * 1e3 for r in rows], [r["tokens_per_s_per_device"] for r in rows],
                       s=[20 + 200 * min(1.0, r["ttft_unloaded_s"] / rk.candidates.workload.ttft_s) for r in rows],
                       marker=marker, label=mode, alpha=0.7)
    ax.set_xlabel("TPOT (ms)")
    ax.set_ylabel("output tokens/s per device")
    ax.set_title(f"{rk.candidates.model.id}, {rk.candidates.workload.id}: Pareto front (marker size: idle TTFT)")
    ax.legend()
    ax.grid(alpha=0.3)
    buf = io.BytesIO()  # drawn in memory, written as every export is (no temporary file of its own)
    try:
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    write_atomic(path, buf.getvalue())
