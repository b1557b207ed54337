"""The serving engines ``pdroof deploy`` writes for, as their documented CLIs stand at one version:
how each names a KV-cache dtype and a transfer backend, and which accelerators it runs on. The tests
check every name against fixtures quoting the engines' own help (``tests/data/engines``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    """What pdroof emits for one engine: its version, launch command, KV-cache dtype names,
    transfer backends and defaults, and whether it runs on an accelerator vendor."""

    name: str
    version: str
    launch: str
    kv_dtypes: dict[str, str]          # pdroof KV format -> the engine's cache dtype
    transfers: dict[str, str]          # --transfer choice -> the engine's backend / connector name
    default_transfer: str
    vendors: tuple[str, ...]
    tcp_transfer: str | None = None    # the backend that runs over plain TCP, if one is documented


ENGINES = {
    "sglang": Engine("sglang", "0.5.23", "python -m sglang.launch_server",
                     {"bf16": "bf16", "fp8": "fp8_e4m3"},
                     {"mooncake": "mooncake", "nixl": "nixl", "mori": "mori"}, "mooncake", ("nvidia", "amd"),
                     tcp_transfer="mooncake_tcp"),
    # vLLM: "auto" is the model's dtype (bf16 for every catalogue model); an explicit bfloat16 "must match
    # the model data type" and is refused for some checkpoints (its --kv-cache-dtype help)
    "vllm": Engine("vllm", "0.34.0", "vllm serve", {"bf16": "auto", "fp8": "fp8"},
                   {"nixl": "NixlConnector", "mooncake": "MooncakeConnector", "mori": "MoRIIOConnector"}, "nixl",
                   ("nvidia", "amd")),
    # bf16: "auto" keeps the checkpoint's own KV format (a bf16 checkpoint stores bf16)
    "trtllm": Engine("trtllm", "main@00209af (1.2/1.3 development)", "trtllm-serve",
                     {"bf16": "auto", "fp8": "fp8"}, {"nixl": "NIXL", "ucx": "UCX"}, "nixl", ("nvidia",)),
}
ROUTER_KV_CONNECTOR = {"NixlConnector": "nixl", "MooncakeConnector": "mooncake", "MoRIIOConnector": "moriio"}
