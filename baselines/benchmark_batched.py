# docs and experiment results can be found at docs/batched.md
"""Env steps/s of the batched torch envs (``adv_envs.batched``) against the PettingZoo envs.

    python baselines/benchmark_batched.py [--copies 1 64 1024 4096] [--device cuda]
        [--vmas-python /tmp/vmas_venv/bin/python] [--output bench.json]
    python baselines/benchmark_batched.py --threats-only     # the threat models' table only

For every env of ``adv_envs.batched.ENVS`` (or ``--envs``), in one run, with random actions
sampled before timing:

* PettingZoo: the parallel env, one copy stepped in a loop (resets included);
* vector: ``adv_wrappers.vector.SyncParallelVectorEnv`` with ``--vector-copies`` copies;
* batched: the batched env at each of ``--copies`` copies on the CPU (and, with
  ``--device cuda``, on CUDA too), ``--steps`` calls of ``step`` after one untimed step
  (same-step auto-resets included).

A figure is env steps per second (copies x ``step`` calls / s), the median of ``--repeats``
measurements; the table gives each batched figure and its ratio to PettingZoo's. The issue's
target: batched >= 100 x PettingZoo at 1024 copies on the CPU. ``--vmas-python`` runs VMAS's
``simple_spread`` (the field's batched torch simulator) at the same copy counts in that
interpreter, a separate venv that has vmas (it is not a dependency of this project), and
adds a row.

Threat models (``--threats``, on by default): the vector-env path a trainer steps
(``adv_wrappers.train.envs.make_vector_env``) on cooperative navigation, clean and under
each threat model that the batched path runs (exposed adversaries; and attack.py's
configuration, the defenders frozen as ``"random"`` policies), on the sync backend with
``--vector-copies`` copies and on the batched backend with ``--threat-copies`` copies; the
table gives both and their ratio.

Clocks. CPU figures are per second of this process's CPU time (``time.process_time``), with
torch on ``--threads`` threads (default 1, like the PettingZoo envs): on a shared machine
other processes then neither inflate nor deflate a figure, and the ratios compare the same
single core. CUDA figures are wall-clock (synchronized before reading the clock).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import tyro

import adv_envs  # noqa: F401  (registers adv/ envs)
from adv_envs import batched
from adv_wrappers.train.envs import make_env, make_vector_env
from adv_wrappers.vector import SyncParallelVectorEnv

TARGET = 100.0
"""The issue's target: batched steps/s >= 100 x PettingZoo's at 1024 copies on the CPU."""


@dataclass
class Args:
    envs: tuple[str, ...] = tuple(batched.ENVS)
    """the envs (registry IDs of adv_envs.batched.ENVS)"""
    copies: tuple[int, ...] = (1, 64, 1024, 4096)
    """numbers of batched copies"""
    steps: int = 100
    """timed step() calls of every batched measurement"""
    seconds: float = 2.0
    """wall-clock seconds of every PettingZoo and vector-env measurement"""
    vector_copies: int = 8
    """copies of the SyncParallelVectorEnv"""
    device: str = "cpu"
    """'cuda' adds CUDA figures (the CPU is always measured)"""
    vmas_python: str | None = None
    """a Python interpreter with vmas installed (a separate venv); adds VMAS's simple_spread"""
    output: str | None = None
    """write the figures as JSON here"""
    seed: int = 0
    """seed of the actions and resets"""
    threads: int = 1
    """torch's CPU threads (torch.set_num_threads)"""
    repeats: int = 3
    """measurements per figure; the median is reported"""
    env_kwargs: dict[str, dict] = field(default_factory=dict)
    """extra arguments per env ID (the defaults are the papers' configurations)"""
    threats: bool = True
    """measure the threat models' vector-env path (module docstring)"""
    threats_only: bool = False
    """measure only the threat models (no env table)"""
    threat_copies: int = 1024
    """copies of the batched backend in the threat models' table"""


def _module(env_id: str):
    import importlib

    return importlib.import_module(f"adv_envs.{env_id.split('/')[1].rsplit('-', 1)[0]}")


def _action_table(spaces: list, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    table = []
    for space in spaces:
        if hasattr(space, "n"):
            table.append(rng.integers(0, space.n, n))
        else:
            table.append(rng.random((n, *space.shape), dtype=np.float32))
    return table


def pettingzoo_sps(env_id: str, kwargs: dict, seconds: float, seed: int) -> float:
    env = _module(env_id).parallel_env(**kwargs)
    agents = env.possible_agents
    table = _action_table([env.action_space(a) for a in agents], 4096, np.random.default_rng(seed))
    env.reset(seed=seed)
    steps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(100):
            k = steps % 4096
            env.step({a: table[i][k] for i, a in enumerate(agents)})
            if not env.agents:
                env.reset()
            steps += 1
    return steps / (time.process_time() - start)


def vector_sps(env_id: str, kwargs: dict, copies: int, seconds: float, seed: int) -> float:
    module = _module(env_id)
    envs = SyncParallelVectorEnv([lambda: module.parallel_env(**kwargs)] * copies)
    probe = module.parallel_env(**kwargs)
    spaces = [probe.action_space(a) for a in probe.possible_agents]
    rng = np.random.default_rng(seed)
    if hasattr(spaces[0], "n"):
        pool = [np.stack([rng.integers(0, s.n, copies) for s in spaces], 1) for _ in range(64)]
    else:
        d = max(s.shape[0] for s in spaces)
        pool = [rng.random((copies, len(spaces), d), dtype=np.float32) for _ in range(64)]
    envs.reset(seed=seed)
    steps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(20):
            envs.step(pool[steps % 64])
            steps += 1
    elapsed = time.process_time() - start
    envs.close()
    return steps * copies / elapsed


def batched_sps(env_id: str, kwargs: dict, copies: int, steps: int, device: str, seed: int):
    env = batched.make(env_id, copies, device=device, seed=seed, **kwargs)
    g = torch.Generator(device=env.device).manual_seed(seed)
    if env.action_discrete:
        nvec = torch.tensor(env.action_nvec, device=env.device)
        pool = [
            (torch.rand((copies, env.num_agents), device=env.device, generator=g) * nvec).long()
            for _ in range(16)
        ]
    else:
        shape = (copies, env.num_agents, env.action_dim)
        pool = [torch.rand(shape, device=env.device, generator=g) for _ in range(16)]
    env.reset()
    env.step(pool[0])  # untimed: first-call allocations
    if env.device.type == "cuda":
        sync, clock = torch.cuda.synchronize, time.perf_counter
    else:
        sync, clock = (lambda: None), time.process_time
    sync()
    start = clock()
    for t in range(steps):
        env.step(pool[t % 16])
    sync()
    return steps * copies / (clock() - start)


VMAS_SNIPPET = """
import json, sys, time, torch, vmas
copies, steps, device, seed, threads = json.loads(sys.argv[1])
torch.set_num_threads(threads)
clock = time.perf_counter if device == "cuda" else time.process_time
out = {}
for n in copies:
    env = vmas.make_env("simple_spread", num_envs=n, device=device, continuous_actions=False,
                        seed=seed, max_steps=25, n_agents=3)
    env.reset()
    g = torch.Generator(device=device).manual_seed(seed)
    pool = [[torch.randint(0, 5, (n, 1), device=device, generator=g) for _ in env.agents]
            for _ in range(16)]
    def step(acts):
        obs, rews, dones, infos = env.step(acts)
        if bool(dones.all()):  # one batched reset, as TorchRL's VMAS wrapper does
            env.reset()
        else:  # otherwise VMAS resets finished copies one by one
            for i in dones.nonzero().flatten().tolist():
                env.reset_at(i)
    step(pool[0])
    if device == "cuda": torch.cuda.synchronize()
    start = clock()
    for t in range(steps):
        step(pool[t % 16])
    if device == "cuda": torch.cuda.synchronize()
    out[n] = steps * n / (clock() - start)
print(json.dumps(out))
"""


def vmas_sps(python: str, copies, steps: int, device: str, seed: int, threads: int):
    result = subprocess.run(
        [python, "-c", VMAS_SNIPPET, json.dumps([list(copies), steps, device, seed, threads])],
        capture_output=True,
        text=True,
        check=True,
    )
    return {int(k): v for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}


THREAT_ENV = "adv/cooperative_navigation-v0"
THREATS: dict[str, tuple[dict | None, dict | None]] = {
    "clean": (None, None),
    "k_corruption_v0(k=1)": ({"name": "k_corruption_v0", "kwargs": {"k": 1}}, None),
    "byzantine_v0": ({"name": "byzantine_v0", "kwargs": {}}, None),
    "partial_control_v0(eps=0.5)": (
        {"name": "partial_control_v0", "kwargs": {"agent": "agent_0", "epsilon": 0.5}},
        None,
    ),
    "state_perturbation_v0(truncated_normal, eps=1)": (
        {"name": "state_perturbation_v0", "kwargs": {"epsilon": 1.0, "attack": "truncated_normal"}},
        None,
    ),
    "attack.py: k_corruption_v0, defenders frozen": (
        {"name": "k_corruption_v0", "kwargs": {"k": 1, "victim": "agent_0"}},
        {"agent_0": "random", "agent_1": "random", "agent_2": "random"},
    ),
}
"""The threat models' table: name -> (threat configuration, frozen agents)."""


def threat_sps(name: str, backend: str, copies: int, seconds: float, seed: int) -> float:
    """Env steps/s of the trainers' vector env for ``THREATS[name]`` (random valid actions)."""
    threat, frozen = THREATS[name]
    envs = make_vector_env(make_env(THREAT_ENV, {}, threat, frozen=frozen), copies, backend)
    rng = np.random.default_rng(seed)
    pool = [rng.integers(0, 5, (copies, envs.num_agents)) for _ in range(16)]
    envs.reset(seed=seed)
    envs.step(pool[0])
    steps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        envs.step(pool[steps % 16])
        steps += 1
    elapsed = time.process_time() - start
    envs.close()
    return steps * copies / elapsed


def median(repeats: int, measure, *args) -> float:
    return float(np.median([measure(*args) for _ in range(repeats)]))


def main(args: Args) -> dict:
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if args.device != "cpu" else [])
    results: dict = {
        "_measured": {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__,
            "torch_threads": args.threads,
            "repeats": args.repeats,
            "clock": "process CPU time (CPU), wall-clock (CUDA)",
            "load_average": os.getloadavg()[0],
            "cuda": torch.cuda.get_device_name() if "cuda" in devices else None,
            "command": "python baselines/benchmark_batched.py " + " ".join(sys.argv[1:]),
        }
    }
    for env_id in () if args.threats_only else args.envs:
        env_id = batched.env_id_of(env_id)
        kwargs = args.env_kwargs.get(env_id, {})
        r = args.repeats
        row = {
            "pettingzoo": median(r, pettingzoo_sps, env_id, kwargs, args.seconds, args.seed),
            f"vector_{args.vector_copies}": median(
                r, vector_sps, env_id, kwargs, args.vector_copies, args.seconds, args.seed
            ),
        }
        for device in devices:
            for n in args.copies:
                row[f"{device}_{n}"] = median(
                    r, batched_sps, env_id, kwargs, n, args.steps, device, args.seed
                )
        results[env_id] = row
        print(f"measured {env_id}", flush=True)
    if args.threats or args.threats_only:
        rows = {}
        for name in THREATS:
            rows[name] = {
                backend: median(args.repeats, threat_sps, name, backend, n, args.seconds, args.seed)
                for backend, n in (("sync", args.vector_copies), ("batched", args.threat_copies))
            }
        results["_threats"] = rows
        print("measured the threat models", flush=True)
    if args.vmas_python and not args.threats_only:
        for device in devices:
            runs = [
                vmas_sps(args.vmas_python, args.copies, args.steps, device, args.seed, args.threads)
                for _ in range(args.repeats)
            ]
            results.setdefault("vmas/simple_spread", {}).update(
                {f"{device}_{n}": float(np.median([run[n] for run in runs])) for n in args.copies}
            )
    return results


def threats_table(results: dict, args: Args) -> str:
    lines = [
        f"| cooperative navigation | sync vector env ({args.vector_copies}) | batched "
        f"({args.threat_copies}) | batched / sync |",
        "|---|---|---|---|",
    ]
    for name, row in results["_threats"].items():
        lines.append(
            f"| {name} | {row['sync']:,.0f} | {row['batched']:,.0f} | "
            f"{row['batched'] / row['sync']:,.0f}x |"
        )
    return "\n".join(lines)


def table(results: dict, args: Args) -> str:
    devices = ["cpu"] + (["cuda"] if args.device != "cpu" else [])
    columns = [(d, n) for d in devices for n in args.copies]
    vec = f"vector_{args.vector_copies}"
    head = ["env", "PettingZoo", f"vector ({args.vector_copies})"]
    head += [f"{d} {n}" for d, n in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    reference = results.get("adv/cooperative_navigation-v0", {}).get("pettingzoo")
    for env_id, row in results.items():
        if env_id.startswith("_"):
            continue
        pz = row.get("pettingzoo", reference)
        cells = [env_id.split("/")[1].rsplit("-", 1)[0]]
        cells += [f"{row['pettingzoo']:,.0f}" if "pettingzoo" in row else "-"]
        cells += [f"{row[vec]:,.0f}" if vec in row else "-"]
        for d, n in columns:
            value = row.get(f"{d}_{n}")
            ratio = f" ({value / pz:,.0f}x)" if value is not None and pz else ""
            cells.append("-" if value is None else f"{value:,.0f}{ratio}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = tyro.cli(Args)
    results = main(args)
    print()
    print(
        "env steps/s (copies x step calls per second of CPU time; CUDA: of wall-clock time), "
        "median of --repeats; in brackets: x PettingZoo "
        "(one copy stepped in a loop); the VMAS row is compared with cooperative_navigation's "
        "PettingZoo figure"
    )
    if not args.threats_only:
        print(table(results, args))
    if "_threats" in results:
        print("\nthe trainers' vector env under the threat models (env steps/s of CPU time):")
        print(threats_table(results, args))
    if 1024 in args.copies and not args.threats_only:
        ratios = {
            e: r["cpu_1024"] / r["pettingzoo"]
            for e, r in results.items()
            if not e.startswith("_") and "pettingzoo" in r
        }
        worst = min(ratios, key=ratios.get)
        verdict = "met" if ratios[worst] >= TARGET else "MISSED"
        print(
            f"\ntarget batched >= {TARGET:.0f} x PettingZoo at 1024 CPU copies: {verdict} "
            f"(lowest {ratios[worst]:,.0f}x, {worst})"
        )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
