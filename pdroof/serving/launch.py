"""Launch commands for a deployment: one shell script per pool (and the router that joins them)
for SGLang, vLLM or TensorRT-LLM, consistent with the plan's KV representation.

Flags come from each engine's documented CLI at the version ``ENGINES`` names; the tests check
every emitted flag against a fixture quoting the engine's own help text (``tests/data/engines``).

The KV cache travels as bytes: a transfer backend moves pages, it does not convert them. So the
two pools must store one exact encoding (FP8 on an MI300 is e4m3fnuz, on NVIDIA OCP e4m3fn); where
the plan converts, the producer writes the consumer's format if its accelerator stores that
encoding natively, and the deployment is refused, naming the conversion, if it does not.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from ..cost.parallelism import host_devices
from ..cost.precision import kv_encoding
from ..spec.errors import PdroofError
from ..spec.schema import Record
from .engines import ENGINES, ROUTER_KV_CONNECTOR, Engine

BASE_PORT = 30000       # each instance's HTTP port (an instance to a host, or to a node group)
ROUTER_PORT = 8000      # where clients connect
BOOTSTRAP_PORT = 8998   # SGLang's prefill-side bootstrap server (its default)
DIST_PORT = 5757        # first node's rendezvous port, for instances that span nodes


@dataclass
class Script:
    """One launch script: its file name and text (bash, or a config file it names)."""

    name: str
    text: str


@dataclass
class PoolLaunch:
    """One pool as the engine will run it."""

    role: str            # prefill, decode or pool (aggregated)
    acc: Record
    instances: int
    tp: int
    dp: int
    moe_ep: int
    kv: str              # the KV format this pool's engine stores
    nodes: int
    max_context: int | None
    page_tokens: int
    per_host: int        # instances one host runs side by side (1 where an instance takes a host or more)
    replicas_per_host: int  # an instance over several hosts: its attention replicas on each (DP attention)
    notes: list[str] = field(default_factory=list)

    @property
    def devices(self) -> int:
        return self.tp * self.dp

    def places(self) -> list[tuple[str, int]]:
        """(host, port) of each instance's server: hosts named ``<role>-<n>``, instances side by side
        on a host taking consecutive ports; an instance over several hosts serves from its first."""
        return [(f"{self.role}-{i // self.per_host * self.nodes}", BASE_PORT + i % self.per_host)
                for i in range(self.instances)]


def _pool(role: str, spec: Record, acc: Record, moe: bool, kv: str) -> PoolLaunch:
    count = spec.instances if spec.instances is not None else spec.count if spec.count is not None else 1
    devices, host = spec.tp * spec.dp, host_devices(acc)
    # over several hosts, whole attention replicas to a host: the last host may hold fewer
    per_host_replicas = max(1, host // spec.tp)
    hosts = -(-spec.dp // per_host_replicas) if spec.tp <= host else -(-devices // host)
    return PoolLaunch(role, acc, count, spec.tp, spec.dp, spec.moe_ep if moe else 1, kv, hosts,
                      spec.max_context, spec.page_tokens, max(1, host // devices), per_host_replicas)


def engine_conversion(acc_p: Record, kv_p: str, acc_d: Record, kv_d: str) -> str | None:
    """The KV conversion between the pools that no engine can make, named (None: there is none, or
    the producer can write the consumer's exact encoding itself)."""
    src, dst = kv_encoding(acc_p, kv_p), kv_encoding(acc_d, kv_d)
    if src == dst or (kv_d in acc_p.precision_paths.kv and kv_encoding(acc_p, kv_d) == dst):
        return None
    return f"{src} ({acc_p.id}) to {dst} ({acc_d.id})"


def _kv_formats(prefill: Record, decode: Record, acc_p: Record, acc_d: Record) -> tuple[str, str, str | None]:
    """The KV format each pool's engine stores, and a note when the producer writes the
    consumer's format; a conversion no engine can make is an error naming it."""
    src, dst = kv_encoding(acc_p, prefill.kv), kv_encoding(acc_d, decode.kv)
    if src == dst:
        return prefill.kv, decode.kv, None
    refused = engine_conversion(acc_p, prefill.kv, acc_d, decode.kv)
    if refused:
        raise PdroofError(f"the KV conversion {refused} cannot be deployed: transfer backends move bytes without "
                          f"converting them, and {acc_p.id} does not store {dst}; store one format on both pools "
                          "(bf16 reads alike everywhere) or decode on an accelerator whose format the prefill side "
                          "writes")
    return decode.kv, decode.kv, (f"the plan converts KV {src} to {dst}: the prefill engine writes {dst} itself, "
                                  "since transfer backends move bytes, not formats")


def _check(engine: Engine, pool: PoolLaunch, model: Record) -> None:
    if pool.acc.vendor not in engine.vendors:
        raise PdroofError(f"{engine.name} runs on {' and '.join(engine.vendors)} accelerators, not {pool.role} pool's "
                          f"{pool.acc.id} ({pool.acc.vendor}); deploy with another engine")
    if pool.kv not in engine.kv_dtypes:
        raise PdroofError(f"{engine.name} {engine.version} has no KV cache dtype for {pool.kv} ({pool.role} pool); "
                          f"it stores {', '.join(engine.kv_dtypes)}")
    experts = model.moe is not None and pool.moe_ep > 1
    if engine.name == "vllm" and experts and pool.moe_ep != pool.tp * pool.dp:
        raise PdroofError(f"vllm spreads the experts over every device of an instance (--enable-expert-parallel): "
                          f"moe_ep {pool.moe_ep} of {pool.tp * pool.dp} devices in the {pool.role} pool cannot be "
                          "launched")
    if engine.name == "trtllm" and pool.dp > 1 and pool.tp > 1:
        raise PdroofError(f"trtllm's attention DP runs one device a replica: tp {pool.tp} with dp {pool.dp} in the "
                          f"{pool.role} pool cannot be launched")
    if engine.name == "trtllm" and pool.nodes > 1:
        raise PdroofError(f"the {pool.role} pool's instances span {pool.nodes} nodes: trtllm-serve starts them "
                          "through mpirun or Slurm, which pdroof deploy does not write")
    if pool.nodes > 1 and pool.dp > 1 and pool.tp > host_devices(pool.acc):
        raise PdroofError(f"the {pool.role} pool's attention replicas (tp {pool.tp}) are wider than a host: "
                          f"{engine.name} cannot launch DP attention over them")
    if engine.name == "sglang" and pool.nodes > 1 and pool.devices % pool.nodes:
        raise PdroofError(f"sglang splits an instance evenly over its hosts: {pool.devices} devices of the "
                          f"{pool.role} pool do not divide over {pool.nodes}")


def _plan_notes(pool: PoolLaunch, spec: Record, model: Record, retained_bytes: float) -> None:
    """What the plan decided that the launch flags do not carry: refused where the engine would run
    something else, said in the script where the engine does it on its own."""
    if spec.tier != "hbm":
        raise PdroofError(f"the {pool.role} pool keeps KV in {spec.tier}: pdroof deploy writes pools whose KV "
                          "lives in HBM only (an offload tier is the engine's own configuration)")
    if model.moe is not None and spec.moe_tp is not None and spec.moe_tp * pool.moe_ep != pool.devices:
        raise PdroofError(f"the {pool.role} pool splits each expert over {spec.moe_tp} devices: the engines "
                          "split the experts over every device of an instance, not written by pdroof deploy")
    if spec.activations:
        pool.notes.append(f"the plan runs {spec.weights} weights with {spec.activations} activations: the "
                          "checkpoint's quantisation config must say so")
    if spec.kv_scale != "tensor":
        pool.notes.append(f"the plan scales the KV cache per {spec.kv_scale}: the engine uses its own scales")
    if retained_bytes and pool.role == "decode":
        pool.notes.append(f"the plan retains {retained_bytes / 1e9:g} GB of prefix cache a device: the engine's "
                          "prefix cache (on by default) keeps what its KV pool has room for")


def _transfer(engine: Engine, path: Record, choice: str | None) -> str:
    """The engine's KV transfer backend for the deployment's KV path."""
    if path.kind in ("storage",) or path.id == "remote-pool":
        raise PdroofError(f"kv_path {path.id} stores KV in a shared tier: pdroof deploy writes direct transfers "
                          "between the pools only")
    if path.kind == "tcp":
        if engine.tcp_transfer is None:
            raise PdroofError(f"{engine.name} documents no KV transfer over plain TCP ({path.id}); use an RDMA path "
                              "or sglang (mooncake_tcp)")
        if choice not in (None, "mooncake"):
            raise PdroofError(f"--transfer {choice}: over {path.id}, {engine.name} transfers with mooncake_tcp")
        return engine.tcp_transfer
    choice = choice or engine.default_transfer
    if choice not in engine.transfers:
        raise PdroofError(f"--transfer {choice}: {engine.name} transfers KV with {', '.join(engine.transfers)}")
    return engine.transfers[choice]


VISIBLE = {"nvidia": "CUDA_VISIBLE_DEVICES", "amd": "HIP_VISIBLE_DEVICES"}


def _header(engine: Engine, pool: PoolLaunch, model: Record, weights: str, deployment: str,
            routed: bool) -> list[str]:
    n = pool.instances
    what = "the pool" if pool.role == "pool" else f"the {pool.role} pool"
    where = (f", each over {pool.nodes} hosts" if pool.nodes > 1
             else f", {pool.per_host} to a host" if pool.per_host > 1 else ", one to a host")
    run = (f"{pool.role}.sh INSTANCE NODE_RANK on each host of each instance" if pool.nodes > 1
           else f"{pool.role}.sh INSTANCE on its host")
    hosts = ("hosts as router.sh names them" if routed
             else f"hosts {pool.role}-0, ...: put an HTTP load balancer in front of the instances' ports")
    repo = model.hf_repo or model.id
    model_path = (f'MODEL_PATH="${{MODEL_PATH:-{repo}}}"' if weights == "bf16"
                  else f'MODEL_PATH="${{MODEL_PATH:?a checkpoint of {repo} in {weights}}}"')
    lines = [
        "#!/usr/bin/env bash",
        f"# {what} of {deployment}: {n} instance{'s' if n > 1 else ''} of {pool.devices}× {pool.acc.id}"
        f"{where}; {engine.name} {engine.version}. Written by pdroof deploy.",
        f"# Run {run} (instances 0..{n - 1}; {hosts}).",
        f"# MODEL_PATH: a checkpoint of {repo} in {weights} (the engine reads its quantisation).",
        *(f"# {note}" for note in pool.notes),
        "set -euo pipefail",
        model_path,
        f'INSTANCE="${{1:?instance 0..{n - 1}}}"',
    ]
    if pool.nodes > 1:
        lines += ['NODE_RANK="${2:?node rank 0..' + str(pool.nodes - 1) + '}"',
                  f'HEAD_ADDR="${{HEAD_ADDR:-{pool.role}-$((INSTANCE * {pool.nodes}))}}"  # the instance\'s first host']
        if engine.name == "vllm":  # vLLM's nodes after the first run without an API server
            lines.append('HEADLESS=(); if [ "$NODE_RANK" -gt 0 ]; then HEADLESS=(--headless); fi')
            if pool.dp > 1:  # whole replicas to a host, the last host what is left
                rph = pool.replicas_per_host
                lines.append(f"LOCAL=$(( {pool.dp} - NODE_RANK * {rph} < {rph} ? {pool.dp} - NODE_RANK * {rph} "
                             f": {rph} ))")
    if pool.per_host > 1:  # instances side by side: each its devices and its ports
        visible = VISIBLE.get(pool.acc.vendor, "CUDA_VISIBLE_DEVICES")
        lines += [f"SLOT=$((INSTANCE % {pool.per_host}))",
                  f'export {visible}="$(seq -s, $((SLOT * {pool.devices})) $((SLOT * {pool.devices} + '
                  f'{pool.devices - 1})))"',
                  f"PORT=$(({BASE_PORT} + SLOT))"]
    else:
        lines.append(f"PORT={BASE_PORT}")
    if engine.name == "sglang":  # the prefill side's bootstrap server, one a server on a host
        lines.append(f"BOOTSTRAP_PORT=$(({BOOTSTRAP_PORT} + PORT - {BASE_PORT}))")
    return lines


def _server_args(engine: Engine, pool: PoolLaunch, model: Record, transfer: str | None) -> list[str]:
    """The server's flags (without the launch command and model), ``$VARS`` left for bash."""
    devices = pool.tp * pool.dp
    experts = model.moe is not None and pool.moe_ep > 1
    kv = engine.kv_dtypes[pool.kv]
    if engine.name == "sglang":
        args = ["--host", "0.0.0.0", "--port", "$PORT", "--tp-size", str(devices)]
        if pool.dp > 1:
            args += ["--attn-dp-size", str(pool.dp)]
        if experts:
            args += ["--ep-size", str(pool.moe_ep)]
        args += ["--kv-cache-dtype", kv, "--page-size", str(pool.page_tokens)]
        if pool.max_context:
            args += ["--context-length", str(pool.max_context)]
        if pool.nodes > 1:
            args += ["--nnodes", str(pool.nodes), "--node-rank", "$NODE_RANK", "--dist-init-addr",
                     f"$HEAD_ADDR:{DIST_PORT}"]
        if transfer:
            args += ["--disaggregation-mode", pool.role, "--disaggregation-transfer-backend", transfer,
                     "--disaggregation-bootstrap-port", "$BOOTSTRAP_PORT"]
        return args
    if engine.name == "vllm":
        args = ["--host", "0.0.0.0", "--port", "$PORT", "--tensor-parallel-size", str(pool.tp)]
        if pool.dp > 1:
            args += ["--data-parallel-size", str(pool.dp)]
        if experts:
            args += ["--enable-expert-parallel"]
        args += ["--kv-cache-dtype", kv]
        if pool.max_context:
            args += ["--max-model-len", str(pool.max_context)]
        if pool.dp > 1:  # the DP coordinator's port: one an instance on a host
            args += ["--data-parallel-rpc-port", f"$(({DIST_PORT} + PORT - {BASE_PORT}))"]
        if pool.nodes > 1 and pool.dp > 1:  # replicas over hosts: the head's address, each host's share
            args += ["--data-parallel-size-local", "$LOCAL", "--data-parallel-address", "$HEAD_ADDR",
                     "--data-parallel-start-rank", f"$((NODE_RANK * {pool.replicas_per_host}))"]
        elif pool.nodes > 1:
            args += ["--nnodes", str(pool.nodes), "--node-rank", "$NODE_RANK", "--master-addr", "$HEAD_ADDR"]
        if pool.nodes > 1:
            args.append("${HEADLESS[@]}")  # --headless on the hosts after the first
        if transfer:
            role = "kv_producer" if pool.role == "prefill" else "kv_consumer"
            args += ["--kv-transfer-config", json.dumps({"kv_connector": transfer, "kv_role": role},
                                                        separators=(",", ":"))]
        return args
    args = ["--host", "0.0.0.0", "--port", "$PORT", "--backend", "pytorch", "--tp_size", str(devices)]
    if experts:
        args += ["--ep_size", str(pool.moe_ep)]
    if pool.max_context:
        args += ["--max_seq_len", str(pool.max_context)]
    return args + ["--extra_llm_api_options", f"{pool.role}-options.yaml"]


def _trtllm_options(pool: PoolLaunch, transfer: str | None) -> dict:
    opts: dict = {"kv_cache_config": {"dtype": ENGINES["trtllm"].kv_dtypes[pool.kv]}}
    if pool.dp > 1:
        opts["enable_attention_dp"] = True
    if transfer:
        if pool.role == "prefill":
            opts["disable_overlap_scheduler"] = True
        opts["cache_transceiver_config"] = {"backend": transfer}
    return opts


def _lines(head: str, args: list[str]) -> str:
    """A shell command, a flag and its values to a line: ``$VAR`` and ``$((...))`` words quoted for
    bash to expand, every other word quoted as it is."""
    out = [head]
    for a in args:
        word = f'"{a}"' if a.startswith("$") else shlex.quote(a)
        if a.startswith("--") or len(out) == 1:
            out.append(word)
        else:
            out[-1] += " " + word
    return " \\\n    ".join(out)


def _command(engine: Engine, args: list[str]) -> str:
    model = '"$MODEL_PATH"'
    head = f"{engine.launch} --model-path {model}" if engine.name == "sglang" else f"{engine.launch} {model}"
    return _lines("exec " + head, args)


def _pool_script(engine: Engine, pool: PoolLaunch, model: Record, weights: str, transfer: str | None,
                 deployment: str, routed: bool) -> Script:
    lines = _header(engine, pool, model, weights, deployment, routed)
    slot = f"(PORT - {BASE_PORT})"
    if engine.name == "vllm" and transfer == "NixlConnector":
        # NIXL's side channel (vllm/envs.py: host default localhost, port 5600, one port a DP rank from
        # there): an address the other pool reaches, and ports apart for instances side by side
        lines += ['export VLLM_NIXL_SIDE_CHANNEL_HOST="${VLLM_NIXL_SIDE_CHANNEL_HOST:-$(hostname -I | cut -d" " -f1)}"',
                  f"export VLLM_NIXL_SIDE_CHANNEL_PORT=$((5600 + {slot} * {pool.dp}))"]
    if engine.name == "vllm" and transfer == "MooncakeConnector":  # vllm/envs.py: bootstrap port default 8998
        lines.append(f"export VLLM_MOONCAKE_BOOTSTRAP_PORT=$(({BOOTSTRAP_PORT} + {slot}))")
    if engine.name == "trtllm":
        import yaml

        lines += [f"cat > {pool.role}-options.yaml <<'EOF'",
                  yaml.safe_dump(_trtllm_options(pool, transfer), sort_keys=False).rstrip(), "EOF"]
    lines.append(_command(engine, _server_args(engine, pool, model, transfer)))
    return Script(f"{pool.role}.sh", "\n".join(lines) + "\n")


def _router_script(engine: Engine, pools: list[PoolLaunch], transfer: str | None, deployment: str) -> Script | None:
    head = ["#!/usr/bin/env bash",
            f"# router of {deployment}: clients connect on port {ROUTER_PORT}. Written by pdroof deploy.",
            "# Hosts are named <pool>-<n>: replace them with yours (sed -i 's/prefill-0/10.0.0.5/' ...).",
            "set -euo pipefail"]
    if engine.name == "trtllm":
        if transfer is None:
            return None  # an aggregated TensorRT-LLM pool: any HTTP load balancer in front of its instances
        pre, dec = pools
        config = {"hostname": "0.0.0.0", "port": ROUTER_PORT,
                  "context_servers": {"num_instances": pre.instances, "urls": [f"{h}:{p}" for h, p in pre.places()]},
                  "generation_servers": {"num_instances": dec.instances,
                                         "urls": [f"{h}:{p}" for h, p in dec.places()]}}
        import yaml

        head += ["cat > disagg-config.yaml <<'EOF'", yaml.safe_dump(config, sort_keys=False).rstrip(), "EOF",
                 "exec trtllm-serve disaggregated -c disagg-config.yaml"]
        return Script("router.sh", "\n".join(head) + "\n")
    launch = "python -m sglang_router.launch_router" if engine.name == "sglang" else "vllm-router"
    if transfer is None:
        (pool,) = pools
        args = ["--worker-urls", *(f"http://{h}:{p}" for h, p in pool.places())]
    else:
        pre, dec = pools
        if engine.name == "sglang":  # each prefill server with its bootstrap port
            args = ["--pd-disaggregation"]
            for h, p in pre.places():
                args += ["--prefill", f"http://{h}:{p}", str(BOOTSTRAP_PORT + p - BASE_PORT)]
        else:
            args = ["--vllm-pd-disaggregation", "--kv-connector", ROUTER_KV_CONNECTOR[transfer]]
            for h, p in pre.places():
                args += ["--prefill", f"http://{h}:{p}"]
        for h, p in dec.places():
            args += ["--decode", f"http://{h}:{p}"]
    args += ["--host", "0.0.0.0", "--port", str(ROUTER_PORT)]
    head.append(_lines(f"exec {launch}", args))
    return Script("router.sh", "\n".join(head) + "\n")


def launch_scripts(d: Record, cat, engine_name: str, transfer: str | None = None,
                   deployment: str = "the deployment") -> list[Script]:
    """The launch scripts of deployment ``d`` (``deployment.load``) on ``engine_name``: one per pool,
    then the router's."""
    if engine_name not in ENGINES:
        raise PdroofError(f"--engine must be one of {', '.join(ENGINES)}, not {engine_name!r}")
    engine = ENGINES[engine_name]
    model = cat.get("model", d.model)
    moe = model.moe is not None
    if d.mode == "aggregated":
        acc = cat.get("accelerator", d.pool.accelerator)
        pools = [_pool("pool", d.pool, acc, moe, d.pool.kv)]
        transfer_name, weights = None, {"pool": d.pool.weights}
    else:
        acc_p, acc_d = cat.get("accelerator", d.prefill.accelerator), cat.get("accelerator", d.decode.accelerator)
        kv_p, kv_d, note = _kv_formats(d.prefill, d.decode, acc_p, acc_d)
        pools = [_pool("prefill", d.prefill, acc_p, moe, kv_p), _pool("decode", d.decode, acc_d, moe, kv_d)]
        if note:
            pools[0].notes.append(note)
        if acc_p.vendor != acc_d.vendor:
            pools[0].notes.append(f"KV crosses vendors ({acc_p.vendor} to {acc_d.vendor}): {engine.name}'s "
                                  "documentation does not say its transfer backend does; test it first")
        transfer_name = _transfer(engine, cat.get("path", d.kv_path), transfer)
        weights = {"prefill": d.prefill.weights, "decode": d.decode.weights}
    specs = {"pool": d.pool} if d.mode == "aggregated" else {"prefill": d.prefill, "decode": d.decode}
    for pool in pools:
        _check(engine, pool, model)
        _plan_notes(pool, specs[pool.role], model, d.get("retained_bytes") or 0.0)
    router = _router_script(engine, pools, transfer_name, deployment)
    scripts = [_pool_script(engine, p, model, weights[p.role], transfer_name, deployment, router is not None)
               for p in pools]
    return scripts + ([router] if router else [])
