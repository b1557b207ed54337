"""The shipped catalogue: every file validates, every required id exists, lookups behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdroof.spec.catalog import SUBDIRS, Catalog, builtin_root
from pdroof.spec.errors import PdroofError, SpecError

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


def test_a_catalog_dir_without_its_folders_is_an_error(tmp_path, monkeypatch, cli):
    """Loose YAML files, or an empty ``--catalog`` value (the working directory), would add nothing."""
    (tmp_path / "my-llama.yaml").write_text((ROOT / "models" / "llama-3.1-8b.yaml").read_text())
    with pytest.raises(PdroofError, match="has none of the catalogue's folders"):
        Catalog([tmp_path], use_env=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("--catalog", "", "models", "list")
    assert code == 1 and "none of the catalogue's folders (hardware/accelerators" in err


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


def test_hbm_capacities_are_binary(catalog):
    """Review D1: an H100 holds 80 GiB of which 79.2 are visible (the shared calibration's
    device report), an H200 139.8 GiB."""
    gib = 2**30
    assert catalog.get("accelerator", "h100-sxm").memory.capacity_bytes == pytest.approx(79.2 * gib)
    assert catalog.get("accelerator", "h200-sxm").memory.capacity_bytes == pytest.approx(139.8 * gib)
    for a in catalog.all("accelerator"):
        nominal = a.memory.capacity_gib_bytes or a.memory.capacity_gb_bytes
        assert 0.9 * nominal <= a.memory.capacity_bytes <= nominal, a.id
        assert a.memory.capacity_gib_bytes or a.id == "metax-c600", f"{a.id}: HBM/GDDR sizes are binary"


def test_one_hop_latency_per_link_kind(catalog):
    """Review D4: one per-hop collective latency per scale-up link kind, never a per-device
    accident (a B200 all-reduce must not be slower than an H100's)."""
    by_kind: dict[str, set] = {}
    for a in catalog.all("accelerator"):
        su = a.scale_up
        if su and su.bandwidth_bytes_per_s:
            assert su.latency_s, f"{a.id}: a scale-up link with a bandwidth needs its per-hop latency"
            by_kind.setdefault(su.kind, set()).add(su.latency_s)
    assert all(len(v) == 1 for v in by_kind.values()), by_kind
    nvlink = {k: v for k, v in by_kind.items() if k.startswith("nvlink")}
    assert len(set().union(*nvlink.values())) == 1


def test_meshes_are_declared(catalog):
    """Review D5: xGMI and Gaudi RoCE are full meshes (one direct link per pair)."""
    for a in catalog.all("accelerator"):
        if a.scale_up and a.scale_up.kind in ("xgmi", "gaudi-roce"):
            assert a.scale_up.topology == "full_mesh", a.id


def test_rtx_4090_bf16_is_the_fp32_accumulate_rate(catalog):
    """Review D13: 165.2 TFLOPS dense BF16 (330 is FP16 with FP16 accumulate)."""
    assert catalog.get("accelerator", "rtx-4090").dense_flops_per_s.bf16 == pytest.approx(165.2e12)


def test_rdma_paths_agree_with_each_other(catalog):
    """Review D2: catalogue numbers that contradict each other are defects (400G RoCE had 0.475
    of line rate against 0.87 for 200G RoCE, the same engine and verbs)."""
    nics = [p for p in catalog.all("path") if p.kind == "rdma" and p.id != "remote-pool"]  # NIC to NIC
    eff = [p.efficiency for p in nics]
    assert max(eff) / min(eff) <= 1.25, eff
    for a in nics:  # the same line rate, the same NIC class: the same efficiency
        for b in nics:
            if a.bandwidth_bytes_per_s == b.bandwidth_bytes_per_s:
                assert a.efficiency == b.efficiency, (a.id, b.id)


def test_runtime_inherits_and_merges_key_by_key(tmp_path):
    """A profile that inherits keeps every entry it does not give; a map merges key by key."""
    d = tmp_path / "hardware" / "runtimes"
    d.mkdir(parents=True)
    (d / "child.yaml").write_text(
        "id: child\nname: Child\ninherits: engine\nstructure:\n  step_latency_us: 900\n"
        "profiles:\n  h100-sxm:\n    memory: {value: 0.5, basis: assumed}\n")
    cat = Catalog([tmp_path], use_env=False)
    child, base = cat.get("runtime", "child"), cat.get("runtime", "engine")
    assert child.structure.step_latency_s == pytest.approx(900e-6)
    assert child.structure.chunk_tokens == base.structure.chunk_tokens
    assert child.profiles["h100-sxm"].memory == 0.5
    assert child.profiles["h100-sxm"].attention_decode == base.profiles["h100-sxm"].attention_decode
    assert child.fallback.memory == base.fallback.memory



def test_runtime_document_is_standalone_through_every_level(catalog, tmp_path):
    """A profile two levels down (sglang-0.5.1 -> sglang -> engine) comes out with no inherits at
    any level, and loads as itself from that document alone."""
    import json

    assert catalog.get("runtime", "sglang-0.5.1").inherits == "sglang"
    doc = catalog.runtime_document("sglang-0.5.1")
    assert "inherits" not in doc
    (tmp_path / "alone.yaml").write_text(json.dumps({**doc, "id": "alone"}))
    alone = Catalog([], use_env=False).get("runtime", str(tmp_path / "alone.yaml")).to_dict()
    own = catalog.get("runtime", "sglang-0.5.1").to_dict()
    for d in (alone, own):
        d.pop("id"), d.pop("inherits")
    assert alone == own

def test_runtime_inheritance_errors_name_the_file(tmp_path):
    d = tmp_path / "hardware" / "runtimes"
    d.mkdir(parents=True)
    (d / "loop.yaml").write_text("id: loop\nname: L\ninherits: loop\n")
    (d / "orphan.yaml").write_text("id: orphan\nname: O\ninherits: nowhere\n")
    cat = Catalog([tmp_path], use_env=False)
    with pytest.raises(SpecError, match="loop.yaml.*inherits from itself"):
        cat.get("runtime", "loop")
    with pytest.raises(SpecError, match="orphan.yaml.*inherits.*unknown runtime 'nowhere'"):
        cat.get("runtime", "orphan")
    odd = ("5", "[a, b]", "{a: 1}", "true")  # not an id: the same one line, no traceback
    for i, value in enumerate(odd):
        (d / f"odd{i}.yaml").write_text(f"id: odd{i}\nname: O\ninherits: {value}\n")
    cat = Catalog([tmp_path], use_env=False)
    for i in range(len(odd)):
        with pytest.raises(SpecError, match=f"odd{i}.yaml: inherits: must be a runtime id"):
            cat.get("runtime", f"odd{i}")


def test_engine_profiles_resolve_everywhere(catalog):
    for rid in ("trtllm", "vllm", "sglang", "atom"):
        rt = catalog.get("runtime", rid)
        assert rt.inherits == "engine" and rt.structure.default_kv
