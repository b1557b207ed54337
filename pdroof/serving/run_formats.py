"""Result files of other serving benchmarks, read as runs (the schema ``runs`` reads): vLLM's
``vllm bench serve --save-result`` JSON, SGLang's ``bench_serving --output-file`` JSONL (one result a
line) and InferenceX's published result records. The format is recognised from the text.

Each holds what it measured: the concurrency (``max_concurrency``; InferenceX ``conc``), the
tokens per request (vLLM and SGLang: total input and output tokens over completed requests, since
their random datasets vary lengths; InferenceX: its nominal ``isl``/``osl``) and TTFT and TPOT
statistics (InferenceX in seconds). What a file does not hold comes from ``RunDefaults`` (the
options of ``calibrate``): pdroof's model id (else recognised from a Hugging Face name), the engine,
its release, the weight format, the accelerator and the TP degree. Sources of the field names:
vllm-project/vllm vllm/benchmarks/serve.py; sgl-project/sglang python/sglang/bench_serving.py;
SemiAnalysisAI/InferenceX utils/process_result.py and the InferenceX app's API records.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..cost.parallelism import Parallelism
from ..spec.errors import PdroofError
from .runs import ENGINE_NAMES, INFERENCEX_LENGTH_RANGE, MAX_RUNS, STATS, Run, parse_run, parse_runs, read_text

FORMATS = ("pdroof", "vllm", "sglang", "inferencex")
# InferenceX's names: hardware (a suffix names the cluster: h200-nv) and model prefixes
INFERENCEX_HW = {"h100": "h100-sxm", "h200": "h200-sxm", "b200": "b200", "gb200": "gb200", "mi300x": "mi300x",
                 "mi325x": "mi325x", "mi355x": "mi355x", "h20": "h20"}
INFERENCEX_MODELS = {"dsr1": "deepseek-v3", "gptoss": "gpt-oss-120b", "llama70b": "llama-3.1-70b"}
# Hugging Face names whose architecture a pdroof model stands for (DeepSeek-R1 is DeepSeek-V3's)
MODEL_ALIASES = {"deepseek-r1": "deepseek-v3"}


@dataclass(frozen=True)
class RunDefaults:
    """What a result file may not say, from the caller."""

    model: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    weights: str | None = None
    accelerator: str | None = None
    tp: int | None = None


def detect(text: str) -> str:
    """Which format ``text`` is: one of FORMATS (``pdroof`` for anything else, whose reader then
    says what is wrong)."""
    return _classify(text)[0]


def _classify(text: str) -> tuple[str, object]:
    """(format, the text parsed as one JSON document or None): parsed once for its reader."""
    lines = itertools.islice((ln for ln in text.splitlines() if ln.strip()), 2)
    first, second = (list(lines) + ["", ""])[:2]
    if first.lstrip().startswith("{") and second.lstrip().startswith("{"):
        head = _json(first)
        if isinstance(head, dict) and _has_latency(head, "_ms"):  # one result a line
            return ("vllm" if "model_id" in head else "sglang"), None  # (vLLM's --append-result, SGLang's file)
    doc = _json(text)
    if isinstance(doc, dict) and "runs" not in doc:
        if "model_id" in doc and _has_latency(doc, "_ms"):
            return "vllm", doc
        if "backend" in doc and _has_latency(doc, "_ms"):
            return "sglang", doc
    records = doc if isinstance(doc, list) else None
    if records and isinstance(records[0], dict) and {"conc", "isl", "osl"} <= set(records[0]):
        return "inferencex", doc
    return "pdroof", doc


def read_any_runs(path: str | Path, defaults: RunDefaults = RunDefaults(), cat=None) -> tuple[str, list[Run]]:
    """(format, runs) of a result file in any of FORMATS; a file that cannot be read is one error,
    a record that cannot become a run carries its reason (as ``runs`` does). ``cat``: the catalogue
    whose models a Hugging Face name is matched against (default: the built-in one)."""
    text = read_text(path)
    fmt, doc = _classify(text)
    if fmt == "pdroof":
        return fmt, parse_runs(text, str(path), doc)
    name = Path(path).name
    if (text.count("\n") if doc is None else len(doc) if isinstance(doc, list) else 1) > MAX_RUNS:
        raise PdroofError(f"{path}: more than {MAX_RUNS:,} results: split the file")
    if doc is None:  # one result a line: each named by its line
        records = [(f"{name}:{n}", _json(ln)) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    else:
        records = [(f"{name}[{i}]", r) for i, r in enumerate(doc if isinstance(doc, list) else [doc])]
    convert = {"vllm": _from_vllm, "sglang": _from_sglang, "inferencex": _from_inferencex}[fmt]
    runs = []
    for i, (where, rec) in enumerate(records):
        try:
            if not isinstance(rec, dict):
                raise PdroofError("not a JSON object" if rec is not None else "not valid JSON")
            d = convert(rec, defaults, cat)
        except PdroofError as exc:
            runs.append(Run(where, error=f"{fmt} result: {exc}"))
            continue
        runs.append(parse_run({"id": where, **d}, i))
    return fmt, runs


def _json(text: str):
    """The JSON document, or None where the text is not one (nested past the parser's depth included:
    the run-file reader then says why)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _has_latency(d: dict, suffix: str) -> bool:
    return any(f"{s}_{m}{suffix}" in d for s in ("mean", "median") for m in ("ttft", "tpot"))


def _measured(rec: dict, key, scale: float) -> dict:
    out = {}
    for metric in ("tpot", "ttft"):
        vals = {s: float(rec[key(s, metric)]) * scale for s in STATS
                if isinstance(rec.get(key(s, metric)), (int, float)) and math.isfinite(rec[key(s, metric)])}
        if vals:
            out[f"{metric}_ms"] = vals
    return out


def _per_request(rec: dict, total_keys: tuple[str, ...]) -> int:
    """Tokens per request: a total over the completed requests (its first key that is present)."""
    done = rec.get("completed")
    total = next((rec[k] for k in total_keys if isinstance(rec.get(k), (int, float))), None)
    if not isinstance(done, (int, float)) or done <= 0 or total is None:
        raise PdroofError(f"needs 'completed' and '{total_keys[0]}' to give the tokens per request")
    return max(1, round(total / done))


def _text(rec: dict, key: str, given=None) -> str | None:
    """The record's text field ``key`` (None where absent or where an option ``given`` replaces it),
    or raise naming it."""
    value = None if given else rec.get(key)
    if value is not None and not isinstance(value, str):
        raise PdroofError(f"{key}: must be text, not {value!r}")
    return value


def _count(rec: dict, key: str, given=None, least: int = 1) -> int | None:
    """The record's whole number ``key`` of at least ``least`` (as pandas writes it too, 8.0; None
    where absent or where an option ``given`` replaces it), or raise naming it."""
    value = None if given else rec.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is not None and (type(value) is not int or value < least):
        raise PdroofError(f"{key}: must be a whole number of at least {least}, not {value!r}")
    return value


def _model(name: str | None, defaults: RunDefaults, cat) -> str:
    if defaults.model:
        return defaults.model
    found = _model_from_hf(name, cat) if name else None
    if not found:
        raise PdroofError(f"does not name a pdroof model ({name or 'no model field'}): pass --model")
    return found


def _norm(name: str) -> str:
    """A model name without its organisation, a ``Meta-`` prefix and instruct/chat, quantisation or
    revision suffixes (``-2507``, ``-0528``)."""
    s = re.sub(r"^meta-", "", name.rsplit("/", 1)[-1].lower())
    while True:
        t = re.sub(r"[-_](instruct|chat|it|fp8|fp4|nvfp4|mxfp4|awq|gptq|int4|int8|bf16|dynamic|w8a8|\d{4})$", "", s)
        if t == s:
            return MODEL_ALIASES.get(s, s)
        s = t


def _model_from_hf(name: str, cat) -> str | None:
    """pdroof's model whose id or Hugging Face repository (``hf_repo``) is ``name`` up to an
    instruct/chat or quantisation suffix (meta-llama/Llama-3.1-8B-Instruct is llama-3.1-8b)."""
    from ..spec.catalog import Catalog

    cat = cat or Catalog()
    key = _norm(name)
    hits = {m for m in cat.ids("model")
            if key in (_norm(m), _norm(getattr(cat.get("model", m), "hf_repo", None) or ""))}
    return hits.pop() if len(hits) == 1 else None


def _engine(backend: str | None, defaults: RunDefaults, fallback: str | None) -> str:
    if defaults.engine:
        return ENGINE_NAMES.get(defaults.engine.lower(), defaults.engine)
    engine = ENGINE_NAMES.get((backend or "").lower()) or fallback
    if not engine:
        raise PdroofError(f"does not say which engine served it (backend {backend!r}): pass --engine")
    return engine


def _deployment(defaults: RunDefaults, tp=None, dp: int = 1, ep: int = 1) -> dict:
    accelerator, tp = defaults.accelerator, defaults.tp or tp
    if not accelerator:
        raise PdroofError("does not say which accelerator it ran on: pass --hardware")
    if not tp:
        raise PdroofError("does not say the tensor-parallel degree: pass --tp")
    # the routed experts split over the instance's devices: moe_tp × moe_ep of them
    return {"accelerator": accelerator, "instances": 1, "tp": tp, "dp": dp,
            "moe_tp": Parallelism(tp, dp, moe_ep=ep).experts_tp, "moe_ep": ep}


def _weights(defaults: RunDefaults, precision: str | None = None) -> str:
    weights = defaults.weights or precision
    if not weights:
        raise PdroofError("does not say the weight format: pass --weights")
    return weights


def _from_vllm(rec: dict, defaults: RunDefaults, cat) -> dict:
    return {"model": _model(_text(rec, "model_id", defaults.model), defaults, cat),
            "engine": _engine(_text(rec, "backend", defaults.engine), defaults, None),
            "engine_version": defaults.engine_version,
            "weights": _weights(defaults), "kv": None, "mode": "aggregated",
            "isl": _per_request(rec, ("total_input_tokens",)), "osl": _per_request(rec, ("total_output_tokens",)),
            "concurrency": _concurrency(rec.get("max_concurrency"), rec.get("request_rate")),
            "deployment": _deployment(defaults), "measured": _measured(rec, lambda s, m: f"{s}_{m}_ms", 1.0)}


def _from_sglang(rec: dict, defaults: RunDefaults, cat) -> dict:
    info = rec.get("server_info") if isinstance(rec.get("server_info"), dict) else {}
    version = defaults.engine_version or (str(info["version"]) if info.get("version") else None)
    return {"model": _model(_text(info, "model_path", defaults.model), defaults, cat),
            "engine": _engine(_text(rec, "backend", defaults.engine), defaults, None), "engine_version": version,
            "weights": _weights(defaults), "kv": None, "mode": "aggregated",
            "isl": _per_request(rec, ("total_input_tokens", "total_input")),
            "osl": _per_request(rec, ("total_output_tokens", "total_output")),
            "concurrency": _concurrency(rec.get("max_concurrency"), rec.get("request_rate")),
            "length_range": _sglang_length_range(rec.get("random_range_ratio"), rec.get("dataset_name")),
            "deployment": _deployment(defaults, _count(info, "tp_size", defaults.tp)),
            "measured": _measured(rec, lambda s, m: f"{s}_{m}_ms", 1.0)}


def _sglang_length_range(ratio, dataset) -> list[float]:
    """bench_serving's random dataset draws each length uniformly from [max(1, r·L), L]; the
    record's isl and osl are the means (totals over requests), so the range is [2r, 2]/(1 + r) of
    them. Other datasets: lengths as recorded (taken as fixed)."""
    if dataset != "random" or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        return [1.0, 1.0]
    return [2 * ratio / (1 + ratio), 2 / (1 + ratio)]


def _from_inferencex(rec: dict, defaults: RunDefaults, cat) -> dict:
    name = str(rec.get("model") or "")  # the app's prefix (dsr1), or a Hugging Face id in raw records
    prefix = str(rec.get("infmax_model_prefix") or name)
    hw = str(rec.get("hardware") or rec.get("hw") or "").lower()
    accelerator = INFERENCEX_HW.get(hw) or INFERENCEX_HW.get(hw.split("-")[0])
    if hw and not accelerator:
        raise PdroofError(f"hardware {hw!r} is none pdroof knows by InferenceX's name")
    # the record's own hardware wins: a file of several accelerators is refused, not fitted as one
    defaults = RunDefaults(defaults.model or INFERENCEX_MODELS.get(prefix), defaults.engine,
                           defaults.engine_version or rec.get("image"), defaults.weights,
                           accelerator or defaults.accelerator, defaults.tp)
    metrics = rec["metrics"] if isinstance(rec.get("metrics"), dict) else rec
    run = {"model": _model(name, defaults, cat),
           "engine": _engine(_text(rec, "framework", defaults.engine), defaults, None),
           "engine_version": defaults.engine_version,
           "weights": _weights(defaults, rec.get("precision")), "kv": None,
           "isl": rec.get("isl"), "osl": rec.get("osl"), "concurrency": rec.get("conc"),
           "length_range": list(INFERENCEX_LENGTH_RANGE), "measured": _measured(metrics, lambda s, m: f"{s}_{m}", 1e3)}
    if rec.get("disagg"):  # prefill and decode pools, each of its workers
        return {**run, "mode": "disaggregated", "prefill": _inferencex_pool(rec, "prefill", defaults),
                "decode": _inferencex_pool(rec, "decode", defaults)}
    return {**run, "mode": "aggregated", "deployment": _inferencex_pool(rec, "decode", defaults, workers=False)}


def _inferencex_pool(rec: dict, side: str, defaults: RunDefaults, workers: bool = True) -> dict:
    """A pool of an InferenceX record: DP attention puts one attention replica on each device with
    the experts over all of them; else the experts over the instance's tp devices, ep groups of tp/ep.
    An aggregated record's fields are the decode side's (or unprefixed)."""
    tp = _count(rec, f"{side}_tp" if f"{side}_tp" in rec else "tp")  # under DP attention the replicas, --tp or not
    ep = _count(rec, f"{side}_ep" if f"{side}_ep" in rec else "ep", least=0) or 1  # 0: no expert parallelism
    dp_attention = str(rec.get(f"{side}_dp_attention", rec.get("dp_attention"))).lower() == "true"
    pool = _deployment(defaults, 1, dp=tp, ep=ep) if dp_attention and tp else _deployment(defaults, tp, ep=ep)
    if workers:
        pool["instances"] = rec.get(f"{side}_num_workers") or 1
    return pool


def _concurrency(max_concurrency, request_rate):
    """The clients a closed-loop run kept in flight: its max concurrency, with requests sent as fast
    as they finish (request rate unlimited)."""
    unlimited = request_rate in (None, "inf", "Infinity") or (isinstance(request_rate, float)
                                                                and math.isinf(request_rate))
    if type(max_concurrency) is int and max_concurrency > 0 and unlimited:
        return max_concurrency
    raise PdroofError(f"not a closed loop (request rate {request_rate}, max concurrency {max_concurrency}): pdroof "
                      "predicts benchmark runs that keep --max-concurrency requests in flight at an unlimited rate")
