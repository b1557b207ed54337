"""How ``rank`` shows its rows: the compact and the wide table's columns, a pool as whole instances
of a split, and rows that differ in one shown choice (or none) and no number folded into one."""

from __future__ import annotations

from ..output.render import Column
from ..spec.view import human


def id_list(text: str | None) -> tuple[str, ...] | None:
    """Comma-separated ids, each once (a repeated id would evaluate its rows twice)."""
    return tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip())) if text else None


def _hw(r: dict, side: str) -> str:
    """Whole instances of a pool and their split: 3× b200 (one device each), 2× h200-sxm TP8,
    1× h200-sxm TP8·EP8, or
    1× h200-sxm DP16·EP (DP attention over one-device replicas, the experts over every device)."""
    if r[f"{side}_hw"] is None:
        return "—"
    tp, dp, ep = r[f"{side}_tp"], r[f"{side}_dp"], r[f"{side}_moe_ep"]
    split = [f"TP{tp}"] if tp > 1 else []  # one device an instance: no split to name
    if dp > 1:
        split.append(f"DP{dp}")
    if ep > 1:
        split.append("EP" if ep == tp * dp and dp > 1 else f"EP{ep}")
    return " ".join([f"{r[f'{side}_instances']}× {r[f'{side}_hw']}", *(["·".join(split)] if split else [])])


TABLE = [
    Column("rank", "#"), Column("mode", "mode", text=lambda v: "disagg" if v == "disaggregated" else "agg"),
    Column("prefill", "prefill (instances W/A)"), Column("decode", "decode (instances W, KV)"),
    Column("link", "wire · path · tier"), Column("engine", "engine"),
    Column("ttft_unloaded_s", "TTFT idle (ms)", 1e-3), Column("tpot_s", "TPOT (ms)", 1e-3),
    Column("decode_batch", "batch"),
    Column("prefill_device_share", "P share"), Column("tokens_per_s_per_device", "tok/s/dev"),
    Column("usd_per_million_tokens", "$/Mtok"), Column("joules_per_token", "J/tok"), Column("binding", "binds"),
]


# --show-infeasible: the stage rows excluded, each with its reason
EXCLUDED = [Column("stage", "stage"), Column("configuration", "configuration"), Column("reason", "reason")]

# The default table: one line a row at 100 columns (--wide: every column of TABLE; --columns: a choice)
COMPACT = [
    Column("rank", "#"), Column("prefill_short", "prefill W"), Column("decode_short", "decode W/KV"),
    Column("path_short", "KV path"), Column("ttft_unloaded_s", "TTFT", 1e-3), Column("tpot_s", "TPOT", 1e-3),
    Column("tokens_per_s_per_device", "tok/s/dev"), Column("usd_per_million_tokens", "$/Mtok"),
]


def _short(r: dict, side: str) -> str:
    """h200-sxm×8 fp8 (decode: weights/KV format)."""
    if r[f"{side}_hw"] is None:
        return "—"
    if side == "prefill":
        return f"{_hw(r, side)} {r['prefill_precision'].split('/')[0]}"
    return f"{_hw(r, side)} {r['decode_weights']}/{r['kv_format']}"


def columns_for(wide: bool, names: str | None, rate: float | None, devices) -> list[Column]:
    """The table's columns: ``--columns`` (keys of the rows, or of TABLE's and COMPACT's), else the
    compact or the wide set, with the sizing columns a rate or a device budget (or inventory) adds."""
    from ..serving.rank import COLUMNS
    from ..spec.errors import PdroofError

    if names:
        known = {c.key: c for c in (*TABLE, *COMPACT)}
        keys = id_list(names) or ()
        bad = [k for k in keys if k not in known and k not in dict(COLUMNS)]
        if bad:
            raise PdroofError(f"--columns: unknown column {bad[0]!r}; known: "
                              f"{', '.join(sorted(set(known) | set(dict(COLUMNS))))}")
        return [known.get(k) or Column(k, k) for k in keys]
    cols = list(TABLE if wide else COMPACT)
    if rate:  # the title says for what rate, and within what budget
        cols.insert(len(cols) - 1 if wide else len(cols), Column("devices", "devices"))
    if devices:
        cols.insert(len(cols) - 1 if wide else len(cols), Column("max_rate_for_devices", "max req/s"))
    return cols


def _engine(r: dict) -> str:
    """The row's runtime profiles: one id, or prefill→decode where the pools run different ones."""
    pre, dec = r["prefill_runtime"], r["decode_runtime"]
    return dec if pre in (None, dec) else f"{pre}→{dec}"


def table_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        pre = "—" if r["prefill_hw"] is None else f"{_hw(r, 'prefill')} {r['prefill_precision']}"
        dec = f"{_hw(r, 'decode')} {r['decode_weights']}, {r['kv_format']}"
        link = "colocated" if r["path"] is None else f"{r['wire_format']} · {r['path']} · {r['tier']}"
        out.append({**r, "prefill": pre, "decode": dec, "link": link, "engine": _engine(r),
                    "prefill_short": _short(r, "prefill"), "decode_short": _short(r, "decode"),
                    "path_short": "colocated" if r["path"] is None else r["path"]})
    return out


# what a table row reports beyond its descriptive cells: rows alike in all of these (as printed)
# and different in one descriptive cell fold into one
OUTCOMES = ("ttft_s", "ttft_unloaded_s", "tpot_s", "tokens_per_s_per_device", "usd_per_million_tokens",
            "joules_per_token", "decode_batch", "prefill_instances", "decode_instances", "devices", "requests_per_s",
            "max_rate_for_devices", "binding")


def _join(a: str, b: str) -> str:
    """Two cells as one with the part that differs listed: fp4/bf16 and fp4/fp16 → fp4/bf16|fp16
    (``a`` as it is where ``b``'s part is listed already)."""
    cut = " /·,"
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    while head and a[head - 1] not in cut:  # back to a word's start
        head -= 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    while tail and a[len(a) - tail] not in cut:
        tail -= 1
    if b[head:len(b) - tail] in a[head:len(a) - tail].split("|"):  # an alternative listed already
        return a
    return a[:len(a) - tail] + "|" + b[head:len(b) - tail] + a[len(a) - tail:]


def fold(rows: list[dict], columns: list[Column]) -> list[dict]:
    """Table rows, consecutive ones that differ only in one shown descriptive cell, with the same
    numbers (as printed), folded into the first: its rank becomes a range and that cell lists the
    alternatives. A row that differs in no shown cell (a choice the columns leave out: the wire
    format or the tier in the compact table) folds too, its rank joining the range and the folded
    row marked ``_unshown``, so that no two lines read alike. JSON and CSV keep every row."""
    def numbers(r):
        return tuple(human(r.get(k)) for k in OUTCOMES) + tuple(
            c.cell(r) for c in columns if isinstance(r.get(c.key), (int, float)) and c.key != "rank")

    words = [c for c in columns if c.key != "rank" and not isinstance(rows[0].get(c.key), (int, float))] if rows else []
    out: list[dict] = []
    axis = None  # the cell the current group differs in
    for r in rows:
        if out and numbers(out[-1]["_first"]) == numbers(r):
            first = out[-1]["_first"]
            diff = [c for c in words if c.cell(first) != c.cell(r)]
            prev, span = out[-1], f"{first['rank']}–{r['rank']}"
            if not diff:
                out[-1] = {**prev, "rank": span, "_unshown": True}
                continue
            if len(diff) == 1 and axis in (None, diff[0].key):
                axis = diff[0].key
                out[-1] = {**prev, axis: _join(prev[axis], diff[0].cell(r)), "rank": span}
                continue
        axis = None
        out.append({**r, "_first": r})
    return out
