"""The package layout is the architecture: every import, module-level or inside a function,
goes down the layers (ARCHITECTURE.md), never up; and no hand-written module outgrows ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pdroof"
# Lowest first. A module may import its own layer and any layer below.
LAYERS = ("spec", "cost", "serving", "calibration", "output", "cli")
MAX_LINES = 430  # "about 400" (the generated numeric twin aside)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, mod: str | None = None):
    """(line, imported pdroof module) for every import in the file, function-level ones too
    (``from X import Y`` yields X.Y for each name, so ``from pdroof import serving`` is seen)."""
    mod = mod or _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("pdroof"):
                    yield node.lineno, name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pdroof"):
                    yield node.lineno, a.name


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None  # the package root (__version__, __main__)
    return LAYERS.index(parts[1])


FILES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_imports_only_go_down(path):
    own = _layer(_module(path))
    if own is None:
        return
    for line, target in _imports(path):
        layer = _layer(target)
        if layer is not None:
            assert layer <= own, f"{path.relative_to(PACKAGE)}:{line} imports {target} from a higher layer"


def test_every_module_is_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not loose, loose
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "_generated.py"],
                         ids=[str(p.relative_to(PACKAGE)) for p in FILES if p.name != "_generated.py"])
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_each_layer_says_what_it_owns():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) <= 4, layer


def test_the_check_sees_an_upward_import(tmp_path):
    """The test itself can fail: imports from a higher layer, inside a function or absolute from
    the package root, are seen."""
    bad = tmp_path / "probe.py"
    bad.write_text("from pdroof import serving\n\ndef f():\n    from ..serving import rank\n    return rank\n")
    found = [(line, t) for line, t in _imports(bad, "pdroof.spec.probe") if (_layer(t) or 0) > 0]
    assert found == [(1, "pdroof.serving"), (4, "pdroof.serving.rank")]


def _architecture_tree() -> dict[str, str]:
    """Layer -> its line(s) in ARCHITECTURE.md's layer diagram."""
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = text.split("```", 2)[1]
    tree: dict[str, str] = {}
    layer = None
    for line in block.splitlines():
        head = line.split("/", 1)[0].strip() if line[:1].strip() else None
        if head:
            layer = head
        if layer:
            tree[layer] = tree.get(layer, "") + " " + (line.split("/", 1)[1] if head else line)
    return tree


def test_architecture_md_names_every_module_of_each_layer():
    """The page's layer diagram lists each layer's modules (and packages); a module it does not
    name, or a layer it misses, fails here."""
    tree = _architecture_tree()
    assert set(tree) == set(LAYERS)
    for layer in LAYERS:
        names = {p.stem for p in (PACKAGE / layer).glob("*.py") if p.stem != "__init__"}
        names |= {p.name for p in (PACKAGE / layer).iterdir() if p.is_dir() and (p / "__init__.py").exists()}
        missing = sorted(n for n in names if n not in tree[layer])
        assert not missing, f"ARCHITECTURE.md's {layer}/ line does not name {missing}"


def test_architecture_md_paths_exist():
    """Every ``layer/module.py`` path the page mentions exists."""
    import re

    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    layers = "|".join(LAYERS)
    for ref in set(re.findall(rf"`((?:{layers})/[\w/]+\.(?:py|json))", text)):
        assert (PACKAGE / ref).exists(), ref
