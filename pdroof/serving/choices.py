"""The hand-off choices over the grid: which KV paths each pair of accelerators can use; for each
pair and decode KV format, the (wire format, path) choices worth evaluating (a slower path or a
wider wire format is dominated); and which decode rows see one and the same hand-off, so that it
is computed once for them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec.units import format_bytes
from .handoff import path_bandwidth, path_reach, path_reason
from .space import Candidates, Stage


@dataclass
class PairLinks:
    """For every (prefill accelerator, decode accelerator): the usable KV paths and their
    effective bandwidth, and why the others are excluded."""

    ok: np.ndarray          # [A, A, paths] bool
    useful: np.ndarray      # [A, A, paths] bool: possible and not dominated by another path
    bandwidth: np.ndarray   # [A, A, paths] bytes/s nominal (capped by device ports)
    reasons: dict[tuple[int, int, int], str]
    reach: np.ndarray       # [A, paths] devices a path can join on the accelerator (path_reach)


def pair_links(c: Candidates) -> PairLinks:
    A, P = len(c.accelerators), len(c.paths)
    ok = np.zeros((A, A, P), dtype=bool)
    bw = np.zeros((A, A, P))
    reasons = {}
    for i, a in enumerate(c.accelerators):
        for j, b in enumerate(c.accelerators):
            for k, path in enumerate(c.paths):
                r = path_reason(path, a, b)
                if r is None:
                    ok[i, j, k] = True
                    bw[i, j, k] = path_bandwidth(path, a, b)
                else:
                    reasons[(i, j, k)] = r
    eff = np.array([p.efficiency for p in c.paths])
    lat = np.array([p.latency_s for p in c.paths])
    rate = bw * eff  # [A, A, P]
    better = ((rate[:, :, :, None] >= rate[:, :, None, :]) & (lat[None, None, :, None] <= lat[None, None, None, :])
              & ok[:, :, :, None])  # [i, j, k_other, k]: k_other at least as good as k
    strictly = (rate[:, :, :, None] > rate[:, :, None, :]) | (lat[None, None, :, None] < lat[None, None, None, :])
    first = np.arange(len(c.paths))[:, None] < np.arange(len(c.paths))[None, :]  # ties: keep the first
    # a path inside a node joins only instances that fit it together (judged per row, later): it
    # never stands in for a path across nodes
    local = np.array([not p.cross_node for p in c.paths])
    better &= ~(local[:, None] & ~local[None, :])[None, None]
    dominated = (better & (strictly | first[None, None])).any(axis=2) & ok
    reach = np.array([[path_reach(p, a) for p in c.paths] for a in c.accelerators]).reshape(A, P)
    return PairLinks(ok=ok, useful=ok & ~dominated, bandwidth=bw, reasons=reasons, reach=reach)


@dataclass
class Combos:
    """For each (prefill accelerator, decode accelerator, decode KV format): the useful
    (prefill KV format, path) choices, stored contiguously; and how many were physically possible."""

    start: np.ndarray      # [A, A, F] offset into wire/path
    count: np.ndarray      # [A, A, F] useful choices
    possible: np.ndarray   # [A, A] possible choices (before pruning), independent of the KV format
    wire: np.ndarray       # index into the prefill KV formats
    path: np.ndarray
    formats: list[str]     # decode KV formats, indexed by F


def combos(c: Candidates, links: PairLinks, wires: list[str], formats: list[str], prune: bool = True) -> Combos:
    """Useful choices: a path not dominated for the pair, and a prefill KV format the prefill side
    can write. A format other than the decode pool's is dominated when the prefill side could
    write the decode pool's own format and it is no narrower (more bytes and a conversion).
    Without ``prune``, every possible choice."""
    A = len(c.accelerators)
    wire_b = np.array([format_bytes(x) for x in wires])
    producible = np.array([[wf in a.precision_paths.kv for wf in wires] for a in c.accelerators])
    start = np.zeros((A, A, len(formats)), dtype=np.int64)
    count = np.zeros_like(start)
    possible = producible.sum(axis=1)[:, None] * links.ok.sum(axis=2)
    # the wire formats of each (prefill accelerator, decode format), the paths of each pair
    allowed = []
    for i in range(A):
        per_format = []
        for fmt in formats:
            own = fmt in wires and producible[i, wires.index(fmt)]
            dominated = own & (np.array(wires) != fmt) & (wire_b >= format_bytes(fmt))
            per_format.append(np.flatnonzero(producible[i] & ~(dominated & prune)).tolist())
        allowed.append(per_format)
    usable = links.useful if prune else links.ok
    ws: list[int] = []
    ks: list[int] = []
    for i in range(A):
        for j in range(A):
            paths = np.flatnonzero(usable[i, j]).tolist()
            for f in range(len(formats)):
                start[i, j, f] = len(ws)
                for wi in allowed[i][f]:
                    ws.extend([wi] * len(paths))
                    ks.extend(paths)
                count[i, j, f] = len(ws) - start[i, j, f]
    return Combos(start, count, possible, np.array(ws, dtype=np.int64), np.array(ks, dtype=np.int64), formats)


def handoff_classes(dec: Stage, d_rows: np.ndarray, formats: list[str]):
    """Group decode rows that see the same KV handoff (accelerator, KV format, TP, memory and host
    rates; not the weights, tier or batch): each row's index into ``formats``, each class's first
    row, and the rows of each class contiguously (``members[start[k]:start[k] + count[k]]``)."""
    dv = dec.values
    f_d = np.array([formats.index(dec.labels["kv"][d]) for d in d_rows], dtype=np.int64)
    key = np.stack([np.asarray(dec.labels["acc"])[d_rows], f_d, dv["tp"][d_rows], dv["kv_elem_bytes"][d_rows],
                    dv["mem_bytes_per_s"][d_rows] * dv["eff_memory"][d_rows], dv["host_bytes_per_s"][d_rows]], axis=1)
    # the distinct rows of key in sorted order, as np.unique(axis=0) gives them (which imports numpy.ma:
    # 20 ms of every rank's start-up): a stable sort keeps each class's rows in order, its first first
    members = np.lexsort(key.T[::-1])
    ordered = key[members]
    new = np.ones(len(members), bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    start = np.flatnonzero(new)
    count = np.diff(np.append(start, len(members)))
    return f_d, members[start], members, start, count
