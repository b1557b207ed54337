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

from .errors import PdroofError
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
    if kind == "runtime":
        from .profile import load_runtime

        return load_runtime(path)
    from .kinds import load_spec

    return load_spec(kind, path)


@cache
def _load_cached(kind: str, path: str, mtime: float) -> Record:
    return _load(kind, Path(path))


def load_file(kind: str, path: str | Path) -> Record:
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        mtime = -1.0
    return _load_cached(kind, str(p), mtime)


class Catalog:
    """The spec files visible to one invocation."""

    def __init__(self, extra: list[str | Path] | None = None, use_env: bool = True):
        roots: list[Path] = [builtin_root()]
        env = os.environ.get(ENV_VAR, "") if use_env else ""
        for d in [*(p for p in env.split(os.pathsep) if p), *(extra or [])]:
            p = Path(d)
            if not p.is_dir():
                raise PdroofError(f"catalogue directory {str(d)!r} does not exist")
            roots.append(p)
        self.roots = roots

    def files(self, kind: str) -> dict[str, Path]:
        """id -> file for every spec of ``kind``; later roots override earlier ones."""
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
        if looks_like_path(ref):
            return load_file(kind, ref)
        files = self.files(kind)
        if ref not in files:
            import difflib

            close = difflib.get_close_matches(ref, list(files), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(files))}"
            raise PdroofError(f"unknown {NOUNS[kind]} {ref!r}{hint}")
        rec = load_file(kind, files[ref])
        if rec.id != ref:
            from .errors import SpecError

            raise SpecError(str(files[ref]), "id", f"{rec.id!r} does not match the file name {ref!r}")
        return rec

    def all(self, kind: str) -> list[Record]:
        return [self.get(kind, i) for i in self.ids(kind)]
