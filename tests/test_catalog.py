"""The shipped catalogue: every file validates, every required id exists, lookups behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdroof.catalog import SUBDIRS, Catalog, builtin_root
from pdroof.errors import PdroofError

ROOT = builtin_root()
KINDS = ("accelerator", "path", "tier", "runtime", "model")
FILES = [(kind, f) for kind in KINDS for sub in SUBDIRS[kind] for f in sorted((ROOT / sub).glob("*.yaml"))]

ACCELERATORS = ("a100-sxm-80g h100-sxm h100-pcie h800 h20 h200-sxm b200 gb200 l40s l20 rtx-4090 mi300x mi325x "
                "mi355x gaudi3 ascend-910b ascend-910c metax-c600").split()
MODELS = ("llama-3.1-8b llama-3.1-70b llama-3.1-405b qwen2.5-7b qwen2.5-72b qwen3-8b qwen3-32b qwen3-235b-a22b "
          "mixtral-8x7b deepseek-v3 gpt-oss-120b").split()


@pytest.mark.parametrize("kind,path", FILES, ids=[f"{k}:{p.name}" for k, p in FILES])
def test_every_shipped_file_validates(catalog, kind, path):
    rec = catalog.get(kind, path.stem)
    assert rec.id == path.stem


def test_required_ids_present(catalog):
    assert set(ACCELERATORS) <= set(catalog.ids("accelerator"))
    assert set(MODELS) <= set(catalog.ids("model"))
    kinds = {p.kind for p in catalog.all("path")}
    assert {"nvlink", "rdma", "host_staged", "tcp"} <= kinds
    assert {"hbm", "host_dram", "remote"} <= {t.kind for t in catalog.all("tier")}
    assert {"engine", "pytorch"} <= set(catalog.ids("runtime"))


def test_numbers_carry_sources(catalog):
    for acc in catalog.all("accelerator"):
        assert acc.sources, acc.id
        assert "memory.bandwidth_bytes_per_s" in acc.provenance, acc.id


def test_path_to_yaml_is_accepted(catalog):
    rec = catalog.get("model", str(ROOT / "models" / "llama-3.1-8b.yaml"))
    assert rec.id == "llama-3.1-8b"


def test_user_catalog_adds_and_overrides(tmp_path, monkeypatch):
    d = tmp_path / "cat" / "models"
    d.mkdir(parents=True)
    text = (ROOT / "models" / "llama-3.1-8b.yaml").read_text().replace("id: llama-3.1-8b", "id: my-llama")
    (d / "my-llama.yaml").write_text(text)
    assert "my-llama" in Catalog([tmp_path / "cat"], use_env=False).ids("model")
    monkeypatch.setenv("PDROOF_CATALOG", str(tmp_path / "cat"))
    assert "my-llama" in Catalog().ids("model")


def test_missing_catalog_dir_is_an_error(tmp_path):
    with pytest.raises(PdroofError, match="does not exist"):
        Catalog([tmp_path / "nope"], use_env=False)


def test_file_name_must_match_id(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    text = (ROOT / "models" / "llama-3.1-8b.yaml").read_text()
    (d / "other-name.yaml").write_text(text)
    with pytest.raises(PdroofError, match="does not match the file name"):
        Catalog([tmp_path], use_env=False).get("model", "other-name")


def test_cli_catalog_option(cli, tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    text = (ROOT / "models" / "qwen3-8b.yaml").read_text().replace("id: qwen3-8b", "id: qwen3-8b-custom")
    (d / "qwen3-8b-custom.yaml").write_text(text)
    code, out, err = cli("--catalog", str(tmp_path), "models", "list", "--format", "csv")
    assert code == 0, err
    assert "qwen3-8b-custom" in out


def test_repo_layout_is_what_ships():
    assert (Path(__file__).resolve().parent.parent / "hardware" / "accelerators").is_dir()
