"""Shared fixtures: the built-in catalogue, the shared calibration data, and a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdroof.cli.app import main
from pdroof.spec.catalog import Catalog

REPO = Path(__file__).resolve().parent.parent
CALIBRATION = REPO.parent / "shared" / "calibration"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog(use_env=False)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``pdroof ARGS``; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("PDROOF_CATALOG", raising=False)

    def run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def cli_json(cli):
    def run(*args: str):
        code, out, err = cli(*args, "--format", "json")
        assert code == 0, err
        return json.loads(out)

    return run


def needs_calibration():
    return pytest.mark.skipif(not CALIBRATION.is_dir(), reason="../shared/calibration not present")
