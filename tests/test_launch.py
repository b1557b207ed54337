"""``pdroof deploy``: every emitted flag is one the engine documents at the stated version (checked
against fixtures quoting each engine's own help text, tests/data/engines), the required ones are
there, and the KV cache is stored in one exact encoding on both sides or refused by name."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import yaml

from pdroof.serving.engines import ENGINES

from .conftest import REPO

FIXTURES = {e: yaml.safe_load((REPO / "tests" / "data" / "engines" / f"{e}.yaml").read_text()) for e in ENGINES}

HET = REPO / "examples" / "deployment.yaml"
MOE = """model: deepseek-v3
workload: {prompt_tokens: 4096, output_tokens: 512, rate_per_s: 4}
targets: {ttft_p90_ms: 5000, tpot_p99_ms: 50}
prefill: {accelerator: h200-sxm, instances: 2, tp: 8, moe_ep: 8, weights: fp8, kv: fp8}
decode: {accelerator: h200-sxm, instances: 1, tp: 1, dp: DP, moe_ep: DP, weights: fp8, kv: fp8}
kv_path: ib-ndr-400
"""
AGG = """mode: aggregated
model: llama-3.1-8b
workload: {preset: chat, rate_per_s: 5}
targets: {ttft_p90_ms: 2000, tpot_p99_ms: 40}
pool: {accelerator: h100-sxm, instances: 3, tp: 1, weights: fp8, kv: fp8}
"""


def _write(tmp_path, text, name="d.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _scripts(cli, path, engine, *extra):
    code, out, err = cli("deploy", str(path), "--engine", engine, *extra)
    assert code == 0, err
    parts = re.split(r"^### (\S+)\n", out, flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


def _flags(text: str) -> list[str]:
    """Every --flag of the script's command lines (comments and heredoc YAML left out)."""
    out, heredoc = [], False
    for line in text.splitlines():
        if heredoc:
            heredoc = line != "EOF"
            continue
        if "<<'EOF'" in line:
            heredoc = True
            continue
        if line.lstrip().startswith("#"):
            continue
        out += re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", line)
    return out


def _known(flags: dict) -> set[str]:
    names = set(flags)
    for spec in flags.values():
        names |= set(spec.get("aliases") or ())
    return names


def _values(text: str, flag: str) -> list[str]:
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    return [words[i + 1] for i, w in enumerate(words) if w == flag]


def _check_documented(engine: str, scripts: dict[str, str]) -> None:
    fx = FIXTURES[engine]
    server, router = _known(fx["flags"]), _known(fx["router"]["flags"])
    for name, text in scripts.items():
        known = router if name == "router.sh" else server
        bad = [f for f in _flags(text) if f not in known]
        assert not bad, f"{engine} {name}: undocumented flags {bad}"
        assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0, name
        for flag in ("--kv-cache-dtype", "--disaggregation-transfer-backend", "--disaggregation-mode"):
            for v in _values(text, flag) if name != "router.sh" else ():
                assert v in fx["flags"][flag]["choices"], (flag, v)


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_the_heterogeneous_example_deploys(cli, engine):
    scripts = _scripts(cli, HET, engine)
    assert list(scripts) == ["prefill.sh", "decode.sh", "router.sh"]
    _check_documented(engine, scripts)
    pre, dec, router = scripts["prefill.sh"], scripts["decode.sh"], scripts["router.sh"]
    if engine == "sglang":
        assert _values(pre, "--disaggregation-mode") == ["prefill"] and _values(dec, "--disaggregation-mode") == ["decode"]
        assert _values(pre, "--disaggregation-transfer-backend") == _values(dec, "--disaggregation-transfer-backend")
        assert "--pd-disaggregation" in router and len(_values(router, "--prefill")) == 14
        assert "HIP_VISIBLE_DEVICES" in pre and "CUDA_VISIBLE_DEVICES" in dec  # MI300X prefill, H200 decode
    else:
        roles = [json.loads(_values(t, "--kv-transfer-config")[0]) for t in (pre, dec)]
        connectors = FIXTURES["vllm"]["kv_transfer_config"]["connectors"]["registered_names"]
        assert [r["kv_role"] for r in roles] == ["kv_producer", "kv_consumer"]
        assert all(r["kv_connector"] in connectors for r in roles)
        assert "--vllm-pd-disaggregation" in router and len(_values(router, "--prefill")) == 14
    assert _values(pre, "--kv-cache-dtype") == _values(dec, "--kv-cache-dtype")  # one encoding both sides


def test_trtllm_refuses_a_pool_it_cannot_run(cli):
    code, _, err = cli("deploy", str(HET), "--engine", "trtllm")
    assert code == 1 and "mi300x" in err and "nvidia" in err


@pytest.mark.parametrize("engine,dp", [("sglang", 16), ("vllm", 16), ("sglang", 8), ("vllm", 8), ("trtllm", 8)])
def test_expert_and_data_parallel_pools(cli, tmp_path, engine, dp):
    path = _write(tmp_path, MOE.replace("DP", str(dp)))
    scripts = _scripts(cli, path, engine)
    _check_documented(engine, scripts)
    pre, dec = scripts["prefill.sh"], scripts["decode.sh"]
    if engine == "sglang":
        assert _values(pre, "--tp-size") == ["8"] and _values(pre, "--ep-size") == ["8"]
        assert _values(dec, "--tp-size") == [str(dp)] and _values(dec, "--attn-dp-size") == [str(dp)]
        assert _values(dec, "--ep-size") == [str(dp)] and _values(dec, "--kv-cache-dtype") == ["fp8_e4m3"]
    elif engine == "vllm":
        assert "--enable-expert-parallel" in pre and _values(dec, "--data-parallel-size") == [str(dp)]
        assert _values(dec, "--kv-cache-dtype") == ["fp8"]
    else:
        assert _values(dec, "--tp_size") == [str(dp)] and _values(dec, "--ep_size") == [str(dp)]
        options = {n: yaml.safe_load(t.split("<<'EOF'\n")[1].split("\nEOF")[0]) for n, t in scripts.items()
                   if "<<'EOF'" in t}
        keys = FIXTURES["trtllm"]["extra_llm_api_options"]["keys"]
        for name, doc in options.items():
            if name == "router.sh":
                assert set(doc) <= {"hostname", "port", "context_servers", "generation_servers"}
                assert doc["context_servers"]["num_instances"] == len(doc["context_servers"]["urls"]) == 2
                assert all(not u.startswith("http") for u in doc["context_servers"]["urls"])
                continue
            flat = {f"{k}.{k2}" if isinstance(v, dict) else k: v2 if isinstance(v, dict) else v
                    for k, v in doc.items() for k2, v2 in (v.items() if isinstance(v, dict) else [(None, v)])}
            assert set(flat) <= set(keys), name
            assert flat["kv_cache_config.dtype"] in keys["kv_cache_config.dtype"]["choices"]
            assert flat["cache_transceiver_config.backend"] in keys["cache_transceiver_config.backend"]["choices"]
        assert options["decode.sh"]["enable_attention_dp"] is True
        assert options["prefill.sh"]["disable_overlap_scheduler"] is True
    if dp == 16:  # two hosts of eight: the instance's head address and its node rank
        assert "NODE_RANK" in dec and "HEAD_ADDR" in dec and "NODE_RANK" not in pre


def test_trtllm_does_not_write_multi_host_instances(cli, tmp_path):
    code, _, err = cli("deploy", str(_write(tmp_path, MOE.replace("DP", "16"))), "--engine", "trtllm")
    assert code == 1 and "mpirun" in err


@pytest.mark.parametrize("engine", list(ENGINES))
def test_an_aggregated_pool(cli, tmp_path, engine):
    scripts = _scripts(cli, _write(tmp_path, AGG), engine)
    _check_documented(engine, scripts)
    assert "disaggregation" not in scripts["pool.sh"] and "kv-transfer" not in scripts["pool.sh"]
    if engine == "trtllm":
        assert "router.sh" not in scripts
    else:
        assert len(_values(scripts["router.sh"], "--worker-urls")) == 1 and scripts["router.sh"].count("http://") == 3


def test_a_conversion_no_engine_makes_is_refused_by_name(cli, tmp_path):
    text = HET.read_text().replace("accelerator: mi300x", "accelerator: h100-sxm").replace(
        "accelerator: h200-sxm", "accelerator: mi300x").replace("kv: bf16", "kv: fp8")
    code, _, err = cli("deploy", str(_write(tmp_path, text)), "--engine", "sglang")
    assert code == 1 and "fp8_e4m3fn (h100-sxm) to fp8_e4m3fnuz (mi300x)" in err


def test_the_producer_writes_the_consumers_format_where_it_can(cli, tmp_path):
    text = HET.read_text().replace("accelerator: mi300x", "accelerator: h100-sxm")
    text = text.replace("  weights: fp8\n  kv: bf16\nkv_path", "  weights: fp8\n  kv: fp8\nkv_path")
    scripts = _scripts(cli, _write(tmp_path, text), "sglang")
    assert _values(scripts["prefill.sh"], "--kv-cache-dtype") == ["fp8_e4m3"]
    assert "the prefill engine writes fp8_e4m3fn itself" in scripts["prefill.sh"]


def test_transfer_backends_follow_the_kv_path(cli, tmp_path):
    text = HET.read_text().replace("kv_path: roce-400", "kv_path: tcp-100g")
    path = _write(tmp_path, text)
    scripts = _scripts(cli, path, "sglang")
    assert _values(scripts["prefill.sh"], "--disaggregation-transfer-backend") == ["mooncake_tcp"]
    code, _, err = cli("deploy", str(path), "--engine", "vllm")
    assert code == 1 and "tcp-100g" in err
    scripts = _scripts(cli, HET, "sglang", "--transfer", "nixl")
    assert _values(scripts["decode.sh"], "--disaggregation-transfer-backend") == ["nixl"]
    code, _, err = cli("deploy", str(HET), "--engine", "sglang", "--transfer", "ucx")
    assert code == 1 and "--transfer ucx" in err


def test_out_dir_writes_one_executable_script_a_pool(cli, tmp_path):
    code, _, err = cli("deploy", str(HET), "--engine", "vllm", "--out-dir", str(tmp_path / "launch"))
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "launch").iterdir())
    assert names == ["decode.sh", "prefill.sh", "router.sh"]
    assert all((tmp_path / "launch" / n).stat().st_mode & 0o111 for n in names)
    (tmp_path / "file").write_text("x")
    code, _, err = cli("deploy", str(HET), "--engine", "vllm", "--out-dir", str(tmp_path / "file"))
    assert code == 1 and "not a directory" in err


def test_replicas_over_hosts_and_side_by_side_ports(cli, tmp_path):
    """DP over hosts that do not divide evenly start every replica; DP instances side by side get ports
    (NIXL side channel, DP coordinator) apart by their replicas."""
    dense = """model: llama-3.1-70b
workload: {preset: chat, rate_per_s: 4}
targets: {ttft_p90_ms: 5000, tpot_p99_ms: 50}
prefill: {accelerator: h200-sxm, instances: 2, tp: 1, dp: 2, weights: fp8, kv: fp8}
decode: {accelerator: h200-sxm, instances: 1, tp: 4, dp: 3, weights: fp8, kv: fp8}
kv_path: ib-ndr-400
"""
    scripts = _scripts(cli, _write(tmp_path, dense), "vllm")
    _check_documented("vllm", scripts)
    dec, pre = scripts["decode.sh"], scripts["prefill.sh"]
    local = [ln for ln in dec.splitlines() if ln.startswith("LOCAL=")][0]
    for rank, want in ((0, 2), (1, 1)):  # two replicas of four devices on the first host, the third on the next
        got = subprocess.run(["bash", "-c", f"NODE_RANK={rank}; {local}; echo $LOCAL"], capture_output=True, text=True)
        assert got.stdout.strip() == str(want)
    assert "$((NODE_RANK * 2))" in dec and '"${HEADLESS[@]}"' in dec
    assert "VLLM_NIXL_SIDE_CHANNEL_PORT=$((5600 + (PORT - 30000) * 2))" in pre  # two DP ranks an instance
    assert _values(pre, "--data-parallel-rpc-port") == ["$((5757 + PORT - 30000))"]
    scripts = _scripts(cli, HET, "vllm", "--transfer", "mooncake")
    assert "VLLM_MOONCAKE_BOOTSTRAP_PORT=$((8998 + (PORT - 30000)))" in scripts["prefill.sh"]


def test_what_the_plan_decides_and_the_engine_cannot_is_refused_or_said(cli, tmp_path):
    tiered = HET.read_text().replace("kv_path: roce-400", "kv_path: roce-400").replace(
        "  kv: bf16\nkv_path", "  kv: bf16\n  tier: host-dram\nkv_path")
    code, _, err = cli("deploy", str(_write(tmp_path, tiered)), "--engine", "sglang")
    assert code == 1 and "host-dram" in err
    scripts = _scripts(cli, HET, "sglang")
    assert "retains 10 GB of prefix cache" in scripts["decode.sh"]
    assert 'MODEL_PATH="${MODEL_PATH:?a checkpoint of Qwen/Qwen3-32B in fp8}"' in scripts["prefill.sh"]
    code, _, err = cli("deploy", str(_write(tmp_path, "model: qwen3-32b\n", "bad.yaml")), "--engine", "sglang")
    assert code == 2 and err.startswith("Error:")
    agg = _scripts(cli, _write(tmp_path, AGG), "trtllm")["pool.sh"]
    assert "the pool of d.yaml" in agg and "load balancer" in agg and "router.sh" not in agg
