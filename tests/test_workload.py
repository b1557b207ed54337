"""Workloads: presets, YAML files, overrides."""

from __future__ import annotations

import pytest

from pdroof.serving.workload import PRESETS, resolve
from pdroof.spec.errors import PdroofError, SpecError


def test_presets_cover_the_study_regimes():
    assert set(PRESETS) == {"chat", "code-completion", "summarization", "agent-request", "agent-task",
                            "long-context-retrieval", "long-document-qa"}
    assert (PRESETS["agent-task"].prompt_tokens, PRESETS["agent-task"].output_tokens) == (200_000, 1500)
    assert PRESETS["chat"].ttft_s == 10.0 and PRESETS["chat"].tpot_s == 0.025  # the study's r*


def test_overrides_and_prefix():
    w = resolve("summarization", prompt_tokens=10_000, prefix_hit=0.75, tpot_s=0.05)
    assert w.new_tokens == 2500 and w.prefix_tokens == 7500 and w.tpot_s == 0.05
    assert w.mean_context == 10_000 + 150


def test_yaml_workload(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("id: rag\nprompt_tokens: 8000\noutput_tokens: 200\nprefix_hit: 0.5\nttft_ms: 1500\n")
    w = resolve(str(f))
    assert (w.id, w.prompt_tokens, w.ttft_s, w.tpot_s) == ("rag", 8000, 1.5, 0.025)
    f.write_text("id: rag\nprompt_tokens: lots\noutput_tokens: 200\n")
    with pytest.raises(SpecError, match="prompt_tokens: must be a number"):
        resolve(str(f))


def test_bad_values():
    with pytest.raises(PdroofError, match="unknown workload"):
        resolve("bogus")
    with pytest.raises(PdroofError, match="--prefix-hit"):
        resolve("chat", prefix_hit=1.0)
    with pytest.raises(PdroofError, match="--rate must be positive"):
        resolve("chat", rate_per_s=-1.0)


def test_rank_with_workload_file(cli, tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("id: rag\nprompt_tokens: 8000\noutput_tokens: 200\n")
    code, out, err = cli("rank", "--workload", str(f), "--accelerators", "h100-sxm", "--top", "2", "-f", "csv")
    assert code == 0, err
    assert out.startswith("rank,")


def test_targets_name_their_statistic(tmp_path):
    """Review D3: a target says which statistic it bounds; presets bound the study's p90 TTFT
    and p99 TPOT; a workload file names one statistic per metric."""
    assert (PRESETS["chat"].ttft_stat, PRESETS["chat"].tpot_stat) == ("p90", "p99")
    f = tmp_path / "w.yaml"
    f.write_text("id: rag\nprompt_tokens: 8000\noutput_tokens: 200\nttft_p50_ms: 800\ntpot_p90_ms: 40\n")
    w = resolve(str(f))
    assert (w.ttft_stat, w.ttft_s, w.tpot_stat, w.tpot_s) == ("p50", 0.8, "p90", 0.04)
    f.write_text("id: rag\nprompt_tokens: 8000\noutput_tokens: 200\nttft_ms: 800\nttft_p99_ms: 2000\n")
    with pytest.raises(SpecError, match="one statistic of TTFT"):
        resolve(str(f))
    assert resolve("chat", ttft_stat="mean").ttft_stat == "mean"
    with pytest.raises(PdroofError, match="unknown statistic"):
        resolve("chat", tpot_stat="p95")
