"""The hand-off choices over the grid (``serving.choices``): which (wire format, path) choices each
pair of accelerators keeps for each decode KV format, and which decode rows share one hand-off."""

from __future__ import annotations

import numpy as np

from pdroof.serving.choices import combos, handoff_classes, pair_links
from pdroof.serving.space import Candidates, decode_stage
from pdroof.serving.workload import PRESETS


def _cands(catalog, tiers=("hbm",)):
    return Candidates(catalog.get("model", "llama-3.1-8b"), [catalog.get("accelerator", "h100-sxm")],
                      [catalog.get("path", p) for p in ("roce-400", "nvlink4")], [catalog.get("tier", t) for t in tiers],
                      catalog.get("runtime", "engine"), PRESETS["chat"])


def _kept(cb, fmt: str, wires: list[str]) -> set[tuple[str, int]]:
    f = cb.formats.index(fmt)
    start, count = cb.start[0, 0, f], cb.count[0, 0, f]
    return {(wires[w], int(p)) for w, p in zip(cb.wire[start:start + count], cb.path[start:start + count], strict=True)}


def test_a_wider_wire_format_is_dominated_where_the_decode_format_can_be_written(catalog):
    """H100 to H100: for FP8 KV on the decode side, sending BF16 moves twice the bytes and needs a
    conversion the prefill side can skip by writing FP8; for BF16 KV, an FP8 wire is narrower and
    stays a choice. Without pruning every possible choice is kept, as many as ``possible`` counts."""
    c = _cands(catalog)
    links, wires = pair_links(c), ["bf16", "fp8"]
    pruned, every = combos(c, links, wires, ["bf16", "fp8"]), combos(c, links, wires, ["bf16", "fp8"], prune=False)
    paths = {int(p) for p in np.flatnonzero(links.useful[0, 0])}
    assert _kept(pruned, "fp8", wires) == {("fp8", p) for p in paths}
    assert _kept(pruned, "bf16", wires) == {(w, p) for w in wires for p in paths}
    for fmt in ("bf16", "fp8"):
        assert len(_kept(every, fmt, wires)) == every.possible[0, 0] == len(wires) * int(links.ok[0, 0].sum())


def test_decode_rows_that_differ_only_in_weights_or_tier_share_one_handoff(catalog):
    """Every weight format and tier of one decode instance's KV format and split sees the same hand-off
    (neither is in its key): one class for each, its rows listed together."""
    c = _cands(catalog, tiers=tuple(t.id for t in catalog.all("tier")))
    dec = decode_stage(c)
    rows = np.flatnonzero(dec.feasible)
    _, first, members, start, count = handoff_classes(dec, rows, sorted(set(dec.labels["kv"])))
    key = {d: (dec.labels["acc"][d], dec.labels["kv"][d], dec.labels["tp"][d], dec.labels["dp"][d]) for d in rows}
    assert len(first) == len(set(key.values())) and count.sum() == len(rows)
    groups = [rows[members[start[k]:start[k] + count[k]]] for k in range(len(first))]
    for k in range(len(first)):  # a class's rows in order, its first one first
        own = members[start[k]:start[k] + count[k]]
        assert first[k] == own[0] and (np.diff(own) > 0).all()
    for group in groups:
        assert len({key[d] for d in group}) == 1
        assert len({dec.labels["tier"][d] for d in group}) == len(c.tiers)
    assert max(len({dec.labels["weights"][d] for d in group}) for group in groups) > 1
