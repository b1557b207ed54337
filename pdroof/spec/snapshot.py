"""The shipped catalogue, pre-parsed: a JSON file mapping each built-in spec file's exact text to
the data PyYAML reads from it (as JSON), so a command that only uses built-in specs never imports or runs
the YAML parser (a third of ``rank``'s start-up otherwise).

The lookup is by the whole text, so an edited or user file simply misses and is parsed as YAML:
the snapshot can make reading faster, never different. ``python -m pdroof.spec.snapshot`` rewrites
it after a spec changes; ``--check`` (run by CI, and by a test) fails while it is out of date.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parent / "_catalog.json"
_SPEC_DIRS = ("hardware", "models")


@cache
def _texts() -> dict[str, object]:
    try:
        return json.loads(SNAPSHOT.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def parsed(text: str):
    """The data of a built-in spec whose text is exactly ``text`` (a fresh copy), or None."""
    data = _texts().get(text)
    return None if data is None else json.loads(data)


def build(root: Path) -> str:
    """The snapshot of every spec file under ``root``'s catalogue directories whose data survives a
    JSON round trip unchanged (types included); any other file is left to the YAML parser."""
    from .yamlio import parse_yaml

    files: dict[str, object] = {}
    for sub in _SPEC_DIRS:
        for f in sorted((root / sub).rglob("*.y*ml")):
            text = f.read_text(encoding="utf-8")
            data = parse_yaml(text, str(f), snapshot=False)
            encoded = json.dumps(data, separators=(",", ":"))
            if repr(json.loads(encoded)) == repr(data):
                files[text] = encoded
    return json.dumps({"format": 1, "files": files}, sort_keys=True, separators=(",", ":")) + "\n"


def main() -> int:
    from .catalog import builtin_root

    text = build(builtin_root())
    if "--check" in sys.argv:
        current = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
        if current != text:
            print(f"{SNAPSHOT} is out of date; run python -m pdroof.spec.snapshot", file=sys.stderr)
            return 1
        return 0
    SNAPSHOT.write_text(text, encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
