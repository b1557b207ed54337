"""Which measured serving runs and which base profile one calibrated runtime can stand for
(``pdroof calibrate RUNS``): one accelerator's, one engine's, from a profile of that engine, under a
name that can be the profile's id."""

from __future__ import annotations

import re
from pathlib import Path

from ..cost.runtime import ENGINE_PREFERENCE, GENERIC, engine_profile_id
from ..serving.runs import Run
from ..spec.catalog import Catalog
from ..spec.errors import PdroofError
from ..spec.kinds import ID
from ..spec.schema import Record


def runs_to_fit(runs: list[Run], path: str | Path, acc: Record) -> list[Run]:
    """The measured runs of ``path``, refused whole where a run is broken or measured on another
    accelerator, engine or kind of deployment than one profile can stand for."""
    for r in runs:
        if r.error:
            raise PdroofError(f"{path}: run {r.id}: {r.error}")
    measured = [r for r in runs if any(s in m for m in r.measured.values() for s in ("mean", "median"))]
    if not measured:
        raise PdroofError(f"{path}: no run measured a TPOT or TTFT mean or median (measured.tpot_ms.mean, ...) "
                          "to fit")
    others = sorted({pool.accelerator for r in measured for pool in r.pools.values()} - {acc.id})
    if others:
        raise PdroofError(f"{path}: runs measured on {', '.join(others)}, not {acc.id}: a profile is fitted to "
                          "one accelerator's runs")
    engines = sorted({r.engine or "?" for r in measured})
    if len(engines) > 1:
        raise PdroofError(f"{path}: runs of several engines ({', '.join(engines)}): a profile stands for one engine")
    return measured


def default_base(cat: Catalog, runs: list[Run], acc: Record) -> str:
    """The profile the runs' engine and releases resolve to (as ``predict`` picks it)."""
    ids = sorted({engine_profile_id(cat, r.engine, r.engine_version, acc) for r in runs})
    if len(ids) > 1:
        raise PdroofError(f"the runs' releases stand for different profiles ({', '.join(ids)}): "
                          "name one with --runtime")
    return ids[0]


def base_for(cat: Catalog, requested: str | None, runs: list[Run], acc: Record) -> tuple[str, str | None]:
    """The profile a fit of ``runs`` starts from, and why where it is not the one named. With none
    named, the profile the runs' engine and release resolve to (as ``predict`` picks it for a run
    without ``--runtime``); the same for the default, ``engine``, and for the runs' engine named by
    its own profile (an older release's profile stands for the release's scheduler, not the
    newest's), except that runs whose releases stand for different profiles then start from the
    engine's own; any other profile or file as named."""
    engines = {r.engine for r in runs}
    if requested not in (None, GENERIC):
        rt = cat.get("runtime", requested)
        if not (rt.up_to_version is None and requested == (rt.engine or rt.id) and engines == {requested}):
            return requested, None
    try:
        base = default_base(cat, runs, acc)
    except PdroofError:
        if requested is None:
            raise
        own = requested if requested != GENERIC else next(iter(engines)) if len(engines) == 1 else None
        if own is None or own not in cat.files("runtime"):
            raise
        return own, None if own == requested else f"the default runtime, {GENERIC}, stands for the runs' engine"
    if requested is None or base == requested:
        return base, None
    if requested == GENERIC:
        named = None not in engines
        return base, (f"the default runtime, {GENERIC}, stands for the runs' engine" if named
                      else f"the default runtime, {GENERIC}, stands for {base} on {acc.id}")
    versions = ", ".join(sorted({str(r.engine_version) for r in runs}))
    return base, f"the {requested} profile for the runs' release ({versions})"


def check_base(base: Record, runs: list[Run], path: str | Path) -> None:
    """Refuse a base that is another engine's profile than the runs' (of file ``path``)."""
    engine = base.engine or base.id
    ran = {r.engine for r in runs} - {None}
    if engine in ENGINE_PREFERENCE and ran and engine not in ran:
        raise PdroofError(f"{path}: runs measured on {', '.join(sorted(ran))}, but runtime {base.id} stands for "
                          f"{engine}")


def check_profile_id(profile_id: str) -> None:
    """The output file's name is the profile's id: refuse one that is not an id."""
    if not re.fullmatch(ID.pattern, profile_id):
        raise PdroofError(f"{profile_id!r}: the output file's name is the profile's id: lower-case letters, digits, "
                          "'.', '_' and '-' (e.g. my-h100.yaml)")
