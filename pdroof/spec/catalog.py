"""Finds specs by id or path: the built-in catalogue, plus user catalogues (``--catalog DIR`` or the
``PDROOF_CATALOG`` environment variable, ``os.pathsep``-separated). User entries override built-ins.

A catalogue directory has the layout of this repository: ``hardware/accelerators``,
``hardware/paths``, ``hardware/tiers``, ``hardware/runtimes`` and ``models`` (the ``hardware/``
level may be left out).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from .errors import PdroofError, SpecError
from .schema import Record

ENV_VAR = "PDROOF_CATALOG"

SUBDIRS: dict[str, tuple[str, ...]] = {
    "accelerator": ("hardware/accelerators", "accelerators"),
    "path": ("hardware/paths", "paths"),
    "tier": ("hardware/tiers", "tiers"),
    "runtime": ("hardware/runtimes", "runtimes"),
    "model": ("models",),
}

NOUNS = {"accelerator": "accelerator", "path": "KV path", "tier": "KV tier", "runtime": "runtime", "model": "model"}


def builtin_root() -> Path:
    """Where the shipped catalogue is: inside the installed package, or the repository root."""
    package = Path(__file__).resolve().parent.parent  # pdroof/
    packaged = package / "_catalog"
    if (packaged / "models").is_dir():
        return packaged
    return package.parent


def looks_like_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or os.sep in ref or "/" in ref


def _load(kind: str, path: Path) -> Record:
    from .kinds import load_spec

    return load_spec(kind, path)


@cache
def _load_cached(kind: str, path: str, mtime: float) -> Record:
    return _load(kind, Path(path))


def _mtime(path: str | Path) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return -1.0


def load_file(kind: str, path: str | Path) -> Record:
    return _load_cached(kind, str(Path(path)), _mtime(path))


_RUNTIMES: dict[tuple, Record] = {}


def _runtime_cached(path: str, mtime: float, others: tuple, parent_data) -> Record:
    """A runtime profile, read again only when it or a profile it may inherit from changed."""
    from .profile import load_runtime

    key = (path, mtime, others)
    if key not in _RUNTIMES:
        _RUNTIMES[key] = load_runtime(path, parent_data)
    return _RUNTIMES[key]


class Catalog:
    """The spec files visible to one invocation."""

    def __init__(self, extra: list[str | Path] | None = None, use_env: bool = True):
        roots: list[Path] = [builtin_root()]
        env = os.environ.get(ENV_VAR, "") if use_env else ""
        for d in [*(p for p in env.split(os.pathsep) if p), *(extra or [])]:
            p = Path(d)
            if not p.is_dir():
                raise PdroofError(f"catalogue directory {str(d)!r} does not exist")
            if not any((p / sub).is_dir() for subs in SUBDIRS.values() for sub in subs):
                # a folder of loose YAML files (or an empty --catalog value: the working directory)
                # would add nothing, silently
                raise PdroofError(f"catalogue directory {str(d)!r} has none of the catalogue's folders "
                                  f"({', '.join(s for subs in SUBDIRS.values() for s in subs)})")
            roots.append(p)
        self.roots = roots
        self._files: dict[str, dict[str, Path]] = {}
        self._stated: dict[str, frozenset[str]] = {}
        self._versions: dict[str, list[tuple[tuple, str]]] | None = None

    def files(self, kind: str) -> dict[str, Path]:
        """id -> file for every spec of ``kind``; later roots override earlier ones. Listed once
        per catalogue (one invocation): a command that looks up thousands of specs lists no
        directory twice."""
        if kind not in self._files:
            self._files[kind] = self._list(kind)
        return self._files[kind]

    def _list(self, kind: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root in self.roots:
            for sub in SUBDIRS[kind]:
                d = root / sub
                if d.is_dir():
                    for f in sorted(d.glob("*.y*ml")):
                        found[f.stem] = f
        return found

    def ids(self, kind: str) -> list[str]:
        return sorted(self.files(kind))

    def get(self, kind: str, ref: str) -> Record:
        """A spec by id, or by the path of a YAML file."""
        if kind == "runtime":
            return self._runtime(ref)
        if looks_like_path(ref):
            return load_file(kind, ref)
        return self._by_id(kind, ref)

    def _file(self, kind: str, ref: str) -> Path:
        files = self.files(kind)
        if ref not in files:
            import difflib

            close = difflib.get_close_matches(ref, list(files), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(files))}"
            raise PdroofError(f"unknown {NOUNS[kind]} {ref!r}{hint}")
        return files[ref]

    def _by_id(self, kind: str, ref: str) -> Record:
        files = {ref: self._file(kind, ref)}
        rec = load_file(kind, files[ref])
        if rec.id != ref:
            raise SpecError(str(files[ref]), "id", f"{rec.id!r} does not match the file name {ref!r}")
        return rec

    def _runtime(self, ref: str) -> Record:
        """A runtime profile, its ``inherits`` chain resolved by id in this catalogue."""
        path = Path(ref) if looks_like_path(ref) else self._file("runtime", ref)
        mtimes = tuple((str(f), _mtime(f)) for f in self.files("runtime").values())
        rec = _runtime_cached(str(path), _mtime(path), mtimes, self._parent_data)
        if not looks_like_path(ref) and rec.id != ref:
            raise SpecError(str(path), "id", f"{rec.id!r} does not match the file name {ref!r}")
        return rec

    def _parent_data(self, pid: str, child: str, chain: tuple[str, ...] = ()) -> dict:
        """The raw document of runtime ``pid`` with what it inherits merged in (``child``: the file
        that names it, for errors)."""
        from .profile import inherit
        from .yamlio import read_yaml

        if not isinstance(pid, str) or not pid:
            raise SpecError(child, "inherits", f"must be a runtime id, not {pid!r}")
        if pid in chain or len(chain) > 8:
            loop = " -> ".join((*chain, pid))
            raise SpecError(child, "inherits", f"runtime {pid!r} inherits from itself ({loop})")
        try:
            pfile = self._file("runtime", pid)
        except PdroofError as exc:
            raise SpecError(child, "inherits", str(exc)) from None
        data = read_yaml(pfile)
        if not isinstance(data, dict):
            raise SpecError(str(pfile), "", "a runtime profile is a mapping")
        up = data.get("inherits")
        return inherit(self._parent_data(up, str(pfile), chain + (pid,)), data) if up else data

    def runtime_document(self, ref: str) -> dict:
        """A runtime profile's document as written, with what it inherits merged in and the
        ``inherits`` key gone: a standalone profile (``calibrate`` writes its fits onto one)."""
        from .profile import inherit
        from .yamlio import read_yaml

        self.get("runtime", ref)  # a bad profile is reported as its own file and field
        path = Path(ref) if looks_like_path(ref) else self._file("runtime", ref)
        data = read_yaml(path)
        up = data.get("inherits")
        doc = inherit(self._parent_data(up, str(path)), data) if up else data
        doc.pop("inherits", None)  # the merged chain's too: a parent's own inherits comes in with it
        return doc

    def stated_profiles(self, runtime_id: str) -> frozenset[str]:
        """Accelerator ids whose ``profiles`` entry the runtime profile's own file states, not the
        ones it inherits (empty for an id this catalogue lacks). Read once per catalogue."""
        if runtime_id not in self._stated:
            from .yamlio import read_yaml

            path = self.files("runtime").get(runtime_id)
            data = read_yaml(path) if path is not None else {}
            profiles = data.get("profiles") if isinstance(data, dict) else None
            self._stated[runtime_id] = frozenset(profiles) if isinstance(profiles, dict) else frozenset()
        return self._stated[runtime_id]

    def version_profiles(self) -> dict[str, list[tuple[tuple, str]]]:
        """Engine -> [(version key of ``up_to_version``, runtime id)], lowest bound first: the
        profiles that stand for an engine's older releases. Read once per catalogue; a profile
        that does not load raises its error (file and field), as any lookup of it would."""
        if self._versions is None:
            from .profile import version_key

            found: dict[str, list[tuple[tuple, str]]] = {}
            for rid in self.ids("runtime"):
                rt = self.get("runtime", rid)
                if rt.up_to_version is not None:
                    found.setdefault(rt.engine or rid, []).append((version_key(rt.up_to_version), rid))
            self._versions = {e: sorted(v) for e, v in found.items()}
        return self._versions

    def all(self, kind: str) -> list[Record]:
        return [self.get(kind, i) for i in self.ids(kind)]
