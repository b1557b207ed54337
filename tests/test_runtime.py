"""Which runtime profile an accelerator runs: the default ``engine`` resolves per accelerator to
the first engine profile (in ``ENGINE_PREFERENCE``) whose own file has an entry for it; any other
runtime asked for stays itself on every accelerator."""

from __future__ import annotations

import pytest

from pdroof.cost.runtime import ENGINE_PREFERENCE, GENERIC, engine_id, runtime_for, runtimes_for
from pdroof.spec.catalog import Catalog
from pdroof.spec.errors import PdroofError

from .conftest import REPO


def _engines(tmp_path, stated: dict[str, tuple[str, ...]], extra: dict[str, str] | None = None) -> Catalog:
    """A user catalogue overriding each engine profile: it inherits ``engine`` (so every entry of
    ``engine`` reaches it merged) and states entries of its own only for ``stated[id]``."""
    d = tmp_path / "hardware" / "runtimes"
    d.mkdir(parents=True)
    for rid in ENGINE_PREFERENCE:
        entries = "".join(f"  {a}:\n    memory: {{value: 0.5, basis: assumed}}\n" for a in stated.get(rid, ()))
        text = f"id: {rid}\nname: {rid}\ninherits: engine\n" + (extra or {}).get(rid, "")
        (d / f"{rid}.yaml").write_text(text + ("profiles:\n" + entries if entries else ""))
    return Catalog([tmp_path], use_env=False)


STATED = {"trtllm": ("h100-sxm",), "sglang": ("h100-sxm", "mi300x"), "vllm": ("mi300x", "l40s"),
          "atom": ("mi300x", "gaudi3")}


def test_the_order_is_documented():
    readme = (REPO / "README.md").read_text()
    assert ENGINE_PREFERENCE == ("trtllm", "sglang", "vllm", "atom")
    assert "the first of\n`trtllm`, `sglang`, `vllm`, `atom` whose own file" in readme


@pytest.mark.parametrize("acc,expected", [
    ("h100-sxm", "trtllm"),   # stated by trtllm and sglang: the first in the order
    ("mi300x", "sglang"),     # sglang before vllm and atom
    ("l40s", "vllm"),
    ("gaudi3", "atom"),
    ("h200-sxm", GENERIC),    # every engine profile has it, but only inherited from engine's own entry
    ("b200", GENERIC),        # nobody's
])
def test_engine_resolves_to_the_first_engine_with_its_own_entry(tmp_path, acc, expected):
    cat = _engines(tmp_path, STATED)
    a = cat.get("accelerator", acc)
    assert "h200-sxm" in cat.get("runtime", "vllm").profiles  # merged from engine: present, yet not its own
    assert engine_id(cat, a) == expected
    assert runtime_for(cat, "engine", a).id == expected


def test_a_version_profile_is_never_a_default(tmp_path):
    """A profile standing for an engine's older releases (``up_to_version``) is skipped."""
    cat = _engines(tmp_path, STATED, {"sglang": "up_to_version: 0.5.1\n"})
    assert engine_id(cat, cat.get("accelerator", "mi300x")) == "vllm"


def test_shipped_engines(catalog):
    """On the shipped catalogue: NVIDIA parts measured for TensorRT-LLM take it; a version profile
    (``sglang-0.5.1``) and ``pytorch`` are never picked; unprofiled parts keep ``engine``."""
    picked = {a.id: engine_id(catalog, a) for a in catalog.all("accelerator")}
    assert {picked[a] for a in ("h100-sxm", "h200-sxm", "b200", "gb200")} == {"trtllm"}
    assert set(picked.values()) <= {*ENGINE_PREFERENCE, GENERIC}
    assert picked["rtx-4090"] == GENERIC


def test_an_explicit_runtime_runs_on_every_accelerator(catalog):
    accs = [catalog.get("accelerator", a) for a in ("h100-sxm", "mi300x", "l40s")]
    for ref in ("vllm", "pytorch", str(REPO / "hardware" / "runtimes" / "engine.yaml")):
        ids = {a: r.id for a, r in runtimes_for(catalog, ref, accs).items()}
        assert set(ids.values()) == {catalog.get("runtime", ref).id}, ref
    assert runtimes_for(catalog, "engine", accs)["h100-sxm"] is catalog.get("runtime", "trtllm")


def test_an_unknown_runtime_is_one_error(catalog):
    with pytest.raises(PdroofError, match="unknown runtime 'nosuch'"):
        runtime_for(catalog, "nosuch", catalog.get("accelerator", "h100-sxm"))


def test_stated_profiles_are_the_files_own(catalog):
    assert catalog.stated_profiles("trtllm") >= {"h100-sxm", "h200-sxm", "b200", "gb200"}
    assert "mi300x" in catalog.get("runtime", "trtllm").profiles  # inherited from engine
    assert "mi300x" not in catalog.stated_profiles("trtllm")
    assert catalog.stated_profiles("no-such-runtime") == frozenset()


def _profile(tmp_path, text: str) -> Catalog:
    d = tmp_path / "hardware" / "runtimes"
    d.mkdir(parents=True)
    (d / "mine.yaml").write_text("id: mine\nname: mine\ninherits: vllm\n" + text)
    return Catalog([tmp_path], use_env=False)


@pytest.mark.parametrize("tiers, field", [
    ("    - {below_gib: 40, max_sequences: 64}\n", r"smaller_devices\[0\]\.source"),  # every tier names its source
    ("    - {below_gib: 60, chunk_tokens: 4096, source: x}\n    - {below_gib: 35, chunk_tokens: 2048, source: x}\n",
     r"smaller_devices\[1\]\.below_gib"),  # smallest first, or a larger tier would shadow a smaller one
])
def test_a_bad_tier_is_refused_naming_the_field(tmp_path, tiers, field):
    with pytest.raises(PdroofError, match=rf"structure\.{field}"):
        _profile(tmp_path, "structure:\n  smaller_devices:\n" + tiers).get("runtime", "mine")


def test_sglang_releases_up_to_0_5_9_run_that_releases_kernels(catalog):
    """SGLang 0.5.2-0.5.9 (``sglang-0.5.9``) take the kernel factors aiconfigurator measured in
    0.5.9 where it measured them (B200, H200, H100): on a B200 its fused-MoE Triton kernel streams
    block-scaled fp8 experts at 0.659 of HBM and its custom all-reduce costs 7.45 us, where 0.5.14's
    FlashInfer MoE (the ``sglang`` profile) reaches 0.818 and 5.04 us; the scheduler, memory
    heuristic and defaults, and every accelerator 0.5.9 was not measured on, stay sglang's."""
    from dataclasses import replace

    from pdroof.cost.runtime import resolve

    old, new = catalog.get("runtime", "sglang-0.5.9"), catalog.get("runtime", "sglang")
    assert old.up_to_version == "0.5.9" and old.engine == "sglang"
    b200 = catalog.get("accelerator", "b200")
    e_old, e_new = resolve(old, b200), resolve(new, b200)
    assert e_old.moe_weights["fp8"] == pytest.approx(0.659) and e_new.moe_weights["fp8"] == pytest.approx(0.818)
    assert e_old.allreduce_latency_s == pytest.approx(7.45e-6) and e_new.allreduce_latency_s == pytest.approx(5.04e-6)
    assert e_old.moe_weights["fp4"] == e_new.moe_weights["fp4"]  # 0.5.9's nvfp4 MoE table is no fit: sglang's
    assert old.structure.to_dict() == new.structure.to_dict()
    mi355x = catalog.get("accelerator", "mi355x")
    assert replace(resolve(old, mi355x), origin={}) == replace(resolve(new, mi355x), origin={})  # the same values


def test_the_all_reduce_above_its_switch_comes_from_the_accelerators_own_entry(catalog, tmp_path):
    """``allreduce_large`` (the stack's second all-reduce algorithm above its own kernel's largest
    message, whose efficiency is ``allreduce_link``) is measured per accelerator: an accelerator
    without an entry runs one regime; what a calibrated profile writes for a base keeps it; a
    partial one is refused naming the field."""
    from pdroof.cost.runtime import resolve, resolved_entry

    sg, h100 = catalog.get("runtime", "sglang"), catalog.get("accelerator", "h100-sxm")
    e = resolve(sg, h100)
    ar = e.allreduce
    assert ar.switch_bytes == 16 * 2**20 and ar.link_large > ar.link == e.allreduce_link != e.link
    assert ar.large_latency_s > ar.latency_s == e.allreduce_latency_s
    assert resolve(sg, catalog.get("accelerator", "mi300x")).allreduce.switch_bytes is None
    assert resolved_entry(sg, h100)["allreduce_link"] == e.allreduce_link
    written = resolved_entry(sg, h100)["allreduce_large"]
    assert written == {"above_mib": 16, "latency_us": pytest.approx(ar.large_latency_s * 1e6), "link": ar.link_large}
    bad = _profile(tmp_path, "profiles:\n  h800:\n    allreduce_large: {above_mib: 8, link: 0.9}\n")
    with pytest.raises(PdroofError, match=r"allreduce_large\.latency_us"):
        bad.get("runtime", "mine")


def test_the_all_reduce_measured_at_a_party_count_replaces_the_entrys_own_there(catalog, tmp_path):
    """``allreduce_parties`` (TensorRT-LLM on an H100 measured at two and four devices as well as
    eight): an all-reduce among exactly that many takes its factors, any other count the entry's
    own (TP8's); resolved_entry writes the items back; a count given twice is refused naming it."""
    from pdroof.cost.runtime import resolve, resolved_entry

    trt, h100 = catalog.get("runtime", "trtllm"), catalog.get("accelerator", "h100-sxm")
    e = resolve(trt, h100)
    assert sorted(e.allreduce_parties) == [2, 4]
    own = e.allreduce
    assert own.latency_s == e.allreduce_latency_s and own.link == e.allreduce_link and own.switch_bytes == 8 * 2**20
    for n in (3, 8, 16):
        assert e.allreduce_at(n) == own
    two = e.allreduce_at(2)
    # NCCL without NVLS at two devices: a slower large-message regime; the own kernel a faster one
    assert two.link_large < own.link_large and two.link > own.link and two.latency_s < own.latency_s
    written = resolved_entry(trt, h100)["allreduce_parties"]
    assert [item["parties"] for item in written] == [2, 4]
    assert written[0]["large"]["link"] == two.link_large and written[0]["link"] == two.link
    bad = _profile(tmp_path, "profiles:\n  h800:\n    allreduce_parties:\n"
                             "      - {parties: 2, latency_us: 3, link: 0.6}\n      - {parties: 2, latency_us: 4, link: 0.5}\n")
    with pytest.raises(PdroofError, match=r"allreduce_parties\[1\]\.parties"):
        bad.get("runtime", "mine")


@pytest.mark.parametrize("entry", ["allreduce_large: {above_mib: 8, latency_us: 50, link: 0.9}",
                                   "allreduce_parties: [{parties: 2, latency_us: 3, link: 0.6}]",
                                   "host_link: {latency_us: 8, gb_per_s: 50}"])
def test_a_per_accelerator_factor_under_fallback_is_refused(tmp_path, entry):
    """``allreduce_large`` and ``host_link`` are read from an accelerator's own entry only: under
    ``fallback`` they would be ignored silently, so they are refused naming the field."""
    key = entry.split(":")[0]
    bad = _profile(tmp_path, f"fallback:\n  {entry}\n")
    with pytest.raises(PdroofError, match=rf"fallback\.{key}"):
        bad.get("runtime", "mine")
