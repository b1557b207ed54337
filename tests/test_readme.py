"""Every command README shows works as shown, and every command is documented there."""

from __future__ import annotations

import re
import shlex

import pytest

from .conftest import REPO

README = (REPO / "README.md").read_text()


def _console_commands():
    cmds = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("pdroof "):
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                cmds.append((line, nxt.startswith("# Error")))
    return cmds


COMMANDS = _console_commands()


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    """One directory for all README commands: later ones use files earlier ones wrote."""
    tmp_path = tmp_path_factory.mktemp("readme")
    for name in ("tests", "hardware", "models", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "my-specs" / "models").mkdir(parents=True)
    (tmp_path / "my-specs" / "models" / "my-model.yaml").write_text(
        (REPO / "models" / "qwen3-8b.yaml").read_text().replace("id: qwen3-8b", "id: my-model"))
    return tmp_path


@pytest.fixture
def workdir(shared_dir, monkeypatch):
    monkeypatch.chdir(shared_dir)
    return shared_dir


@pytest.mark.parametrize("line,fails", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_readme_command(cli, workdir, line, fails):
    argv = shlex.split(line.split(" > ")[0])[1:]
    code, out, err = cli(*argv)
    if fails:
        assert code == 1 and err.startswith("Error: infeasible"), err
    else:
        assert code == 0, err
        if "-o" in argv:
            assert (workdir / argv[argv.index("-o") + 1]).stat().st_size > 0
        elif "--out-dir" in argv:
            assert any((workdir / argv[argv.index("--out-dir") + 1]).iterdir())
        else:
            assert out.strip()


def test_setup_commands_match_ci():
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install . && pdroof" in README and "pip install '.[test]' && pytest -q" in README
    assert "pip install --quiet '.[test]'" in ci and "pytest -q" in ci


def test_every_command_is_documented():
    from pdroof.cli.app import register

    app = register()

    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    for name in names:
        assert f"`pdroof {name}" in README, name


def test_gitignore_covers_what_readmes_commands_write():
    """Files README's commands write with -o are ignored, so following README leaves no stray file."""
    import fnmatch

    patterns = [ln.strip() for ln in (REPO / ".gitignore").read_text().splitlines() if ln.strip()
                and not ln.startswith("#")]
    text = (REPO / "README.md").read_text()
    written = set(re.findall(r"(?:-o|--emit-deployment) ([A-Za-z0-9._-]+\.[a-z]+)", text))
    folders = set(re.findall(r"^pdroof .*--out-dir ([A-Za-z0-9._-]+)", text, flags=re.M))
    assert written and folders
    for name in written:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
    for name in folders:
        assert f"{name}/" in patterns, name
