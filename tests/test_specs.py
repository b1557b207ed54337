"""Strict spec validation: every kind of bad input is one clear line naming file and field."""

from __future__ import annotations

import textwrap

import pytest

from pdroof.spec.errors import SpecError
from pdroof.spec.kinds import load_spec

GOOD_PATH = """\
id: test-link
name: Test link
kind: rdma
bandwidth_gb_per_s: 50
latency_us: 5
efficiency: 0.8
cross_node: true
cross_vendor: false
"""

GOOD_MODEL = """\
id: tiny
name: Tiny
layers: 2
hidden_size: 64
attention_heads: 4
kv_heads: 2
head_dim: 16
ffn_size: 128
vocab_size: 1000
attention: {kind: gqa}
"""


def write(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_specs_load(tmp_path):
    path = load_spec("path", write(tmp_path, GOOD_PATH))
    assert path.bandwidth_bytes_per_s == 50e9 and path.latency_s == pytest.approx(5e-6)
    model = load_spec("model", write(tmp_path, GOOD_MODEL, "m.yaml"))
    assert model.kv_heads == 2 and model.moe is None


def test_sourced_number_keeps_provenance(tmp_path):
    text = GOOD_PATH.replace("bandwidth_gb_per_s: 50",
                             "bandwidth_gb_per_s: {value: 50, source: X, basis: measured}")
    rec = load_spec("path", write(tmp_path, text))
    assert rec.bandwidth_bytes_per_s == 50e9
    assert rec.provenance["bandwidth_bytes_per_s"] == {"source": "X", "basis": "measured"}


BAD = {
    "malformed YAML": ("path", "id: [unclosed\n", "<top>", "malformed YAML"),
    "empty file": ("path", "", "<top>", "empty"),
    "list at top": ("path", "- a\n- b\n", "<top>", "must be a mapping"),
    "scalar at top": ("path", "42\n", "<top>", "must be a mapping"),
    "unknown key": ("path", GOOD_PATH + "bandwith_gb_per_s: 3\n", "bandwith_gb_per_s", "unknown key"),
    "string for number": ("path", GOOD_PATH.replace("latency_us: 5", "latency_us: fast"), "latency_us",
                          "must be a number"),
    "1e12 read as string": ("path", GOOD_PATH.replace("bandwidth_gb_per_s: 50", "bandwidth_gb_per_s: 1e12"),
                            "bandwidth_gb_per_s", "decimal point"),
    "boolean for number": ("path", GOOD_PATH.replace("latency_us: 5", "latency_us: true"), "latency_us",
                           "not a boolean"),
    "negative bandwidth": ("path", GOOD_PATH.replace("bandwidth_gb_per_s: 50", "bandwidth_gb_per_s: -5"),
                           "bandwidth_gb_per_s", "must be positive"),
    "zero bandwidth": ("path", GOOD_PATH.replace("bandwidth_gb_per_s: 50", "bandwidth_gb_per_s: 0"),
                       "bandwidth_gb_per_s", "must be positive"),
    "efficiency above 1": ("path", GOOD_PATH.replace("efficiency: 0.8", "efficiency: 1.5"), "efficiency",
                           "must be <= 1"),
    "missing field": ("path", GOOD_PATH.replace("cross_node: true\n", ""), "cross_node", "missing required"),
    "bad enum": ("path", GOOD_PATH.replace("kind: rdma", "kind: pigeon"), "kind", "must be one of"),
    "non-integer layers": ("model", GOOD_MODEL.replace("layers: 2", "layers: 2.5"), "layers", "whole number"),
    "heads not divisible": ("model", GOOD_MODEL.replace("kv_heads: 2", "kv_heads: 3"), "kv_heads",
                            "not divisible"),
    "nested unknown key": ("model", GOOD_MODEL.replace("attention: {kind: gqa}",
                                                       "attention: {kind: gqa, qkv_bais: true}"),
                           "attention.qkv_bais", "unknown key"),
    "object-constructing tag": ("path", "!!python/object/apply:os.system ['echo pwned']\n", "<top>", "malformed YAML"),
    "dense layers of an MoE model without ffn_size": (
        "model", GOOD_MODEL.replace("ffn_size: 128\n", "moe: {routed_experts: 4, experts_per_token: 2, "
                                    "expert_ffn_size: 32, dense_layers: 1}\n"), "ffn_size", "moe.dense_layers"),
    "alias bomb": ("path", 'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n', "<top>",
                   "aliases are not allowed"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_one_clear_error(tmp_path, case):
    kind, text, field, words = BAD[case]
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        load_spec(kind, p)
    msg = str(exc.value)
    assert msg.startswith(str(p)), msg
    assert f": {field}:" in msg, msg
    assert words in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_validate_reports_one_line_and_exit_1(tmp_path, cli, case):
    kind, text, field, words = BAD[case]
    p = write(tmp_path, text)
    code, out, err = cli("validate", "--kind", kind, str(p))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {p}: "), err
    assert "Traceback" not in err


def test_missing_file(cli, tmp_path):
    code, _, err = cli("validate", "--kind", "model", str(tmp_path / "nope.yaml"))
    assert code == 1 and "file not found" in err


def test_unknown_id(cli):
    code, _, err = cli("models", "show", "llama-9-1b")
    assert code == 1 and err.startswith("Error: unknown model 'llama-9-1b'")
    assert len(err.strip().splitlines()) == 1


def test_tag_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    p = write(tmp_path, f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError):
        load_spec("path", p)
    assert not marker.exists()


def test_schema_is_json_schema(cli):
    import json

    for kind in ("accelerator", "path", "tier", "model", "runtime", "workload", "deployment"):
        code, out, _ = cli("schema", kind)
        assert code == 0
        doc = json.loads(out)
        assert doc["type"] == "object" and doc["additionalProperties"] is False
        assert ("id" if kind != "deployment" else "model") in doc["required"]


def test_validate_guesses_every_kind(cli):
    from .conftest import REPO

    code, out, err = cli("validate", str(REPO / "examples" / "deployment.yaml"), str(REPO / "models" / "qwen3-8b.yaml"),
                         str(REPO / "hardware" / "runtimes" / "engine.yaml"))
    assert code == 0, err
    assert "(deployment qwen3-32b)" in out and "(model qwen3-8b)" in out and "(runtime engine)" in out


ACC = """\
id: my-acc
name: My accelerator
vendor: acme
family: acme-1
memory: {MEMORY, bandwidth_gb_per_s: 1000}
dense_tflops: {bf16: 100}
precision_paths: {weights: [bf16], activations: [bf16], kv: [bf16]}
"""


@pytest.mark.parametrize("memory,expected", [
    ("capacity_gb: 80", 80e9),                       # decimal GB, as a user's spec may give it
    ("capacity_gib: 80", 80 * 2**30),                # binary, as the catalogue gives HBM
    ("capacity_gib: 80, visible_gib: 79.2", 79.2 * 2**30),  # what the device reports, where known
])
def test_memory_capacity_units(tmp_path, memory, expected):
    """Review D1: HBM sizes are binary; decimal GB stays available for users' specs."""
    rec = load_spec("accelerator", write(tmp_path, ACC.replace("MEMORY", memory)))
    assert rec.memory.capacity_bytes == pytest.approx(expected)


@pytest.mark.parametrize("memory,field", [
    ("capacity_gb: 80, capacity_gib: 80", "memory.capacity_gib"),
    ("type: HBM3", "memory.capacity_gib"),
    ("capacity_gib: 80, visible_gib: 81", "memory.visible_gib"),
])
def test_memory_capacity_is_one_clear_figure(tmp_path, memory, field):
    with pytest.raises(SpecError) as e:
        load_spec("accelerator", write(tmp_path, ACC.replace("MEMORY", memory)))
    assert field in str(e.value)
