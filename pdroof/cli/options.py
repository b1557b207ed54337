"""Options shared by every command, and access to the invocation's catalogue."""

from __future__ import annotations

from enum import Enum

import typer

from ..spec.catalog import Catalog


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Stat(str, Enum):
    """Which statistic of a latency a target bounds (p50 is the median)."""

    mean = "mean"
    p50 = "p50"
    p90 = "p90"
    p99 = "p99"


TtftStatOpt = typer.Option(None, "--ttft-stat", help="statistic the TTFT target bounds (default p90, the study's r*)")
TpotStatOpt = typer.Option(None, "--tpot-stat", help="statistic the TPOT target bounds (default p99, the study's r*)")

RuntimeOpt = typer.Option("engine", "--runtime", help="runtime profile id or YAML file (engine, pytorch, trtllm, "
                                                     "...); engine: on each accelerator the engine profile best "
                                                     "supported there, any other on every accelerator")
FormatOpt = typer.Option(Fmt.table, "--format", "-f", help="table (human units), json or csv (raw SI values)")
OutOpt = typer.Option(None, "--output-file", "-o", help="write to this file (atomically) instead of stdout")


# What another tool's result file (vLLM, SGLang, InferenceX) may not say, for predict and calibrate
ModelOpt = typer.Option(None, "--model", help="for another tool's result file (vLLM, SGLang, InferenceX; over what "
                                              "the file says): pdroof's model id")
EngineOpt = typer.Option(None, "--engine", help="... the engine that served the runs (trtllm, vllm, sglang)")
EngineVersionOpt = typer.Option(None, "--engine-version", help="... its release")
WeightsOpt = typer.Option(None, "--weights", help="... the weight format (bf16, fp8, fp4, ...)")
TpOpt = typer.Option(None, "--tp", min=1, help="... the tensor-parallel degree of the instance")


def _finite_waves(value: float) -> float:
    if not value < float("inf"):  # NaN and infinity pass the option's range
        raise typer.BadParameter(f"must be a finite number of at least 1, not {value}")
    return value


def waves_option(help_text: str):
    """--waves: requests per client in a closed-loop benchmark run, a finite number of at least 1."""
    return typer.Option(10.0, "--waves", min=1.0, callback=_finite_waves, help=help_text)


def catalog(ctx: typer.Context) -> Catalog:
    """The catalogue for this invocation (built-in plus --catalog and PDROOF_CATALOG dirs)."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if "catalog" not in obj:
        obj["catalog"] = Catalog(obj.get("catalog_dirs") or [])
        root.obj = obj
    return obj["catalog"]
