# docs and experiment results can be found at docs/performance.md
"""Training throughput of ``ippo.py`` and ``art.py`` against the raw simulator, same CPU, one run.

For one env (Independent Spread by default, the App. D preset of Nika et al. (TMLR 2024)) it
measures, in interleaved rounds (these machines are shared and noisy, so only ratios inside
one run are reported):

* the raw simulator: the same vector env the trainers use (``num_envs`` copies, sync),
  stepped with uniformly random actions (steps/s summed over copies);
* each trainer's steady-state steps/s (environment steps per second of wall time, rollouts
  and updates together, from the first to the last iteration's ``charts/SPS`` event in its
  TensorBoard log: start-up and a compile are left out), with the preset's
  ``update_epochs``, with ``--compile`` and on the batched path (``ippo.py
  --vector-backend batched``, the same preset), with the throughput preset
  (``THROUGHPUT_PRESETS``: batched, 1024 copies, 16 gradient steps per 25,600 env steps; not
  the paper's), and with one epoch (the difference is the learner's share); ``art.py`` at the
  preset, on the batched path, with the throughput preset and with one epoch;
* the attack protocol (``--attack``): ``attack.py``'s fresh k = 1 attackers against frozen
  ``ippo.py`` defenders, one scenario per run (sync and batched) against every scenario
  (victim, K) trained side by side in one run (``--stack-scenarios``), counted in
  *scenario steps* per second (the steps each scenario's attacker trains on, summed over
  the scenarios);

and prints (and with ``--output`` writes) Markdown tables of medians and ratios. Every
trainer row runs on the CPU (``--no-cuda``); with ``--cuda`` each is measured on CUDA too
(rows marked ``[CUDA]``), its ratio still to the raw simulator on the CPU.
"""

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

import adv_envs  # noqa: F401  (registers adv/ envs)
from adv_wrappers.train.config import PAPER_000_PRESETS, THROUGHPUT_PRESETS, cli_flags
from adv_wrappers.train.envs import make_env
from adv_wrappers.vector import make_vector_env

BASELINES = Path(__file__).resolve().parent


@dataclass
class Args:
    env_id: str = "adv/independent_spread-v0"
    """the env (its PAPER_000_PRESETS entry sets num_envs, num_steps, epochs, minibatch)"""
    timesteps: int = 24_000
    """steps of every trainer run (a multiple of the preset's batch)"""
    compile: bool = True
    """also measure `ippo.py --compile` (a compile of about half a minute per run)"""
    throughput_timesteps: int = 512_000
    """steps of the throughput-preset run (its batches are 25,600 steps)"""
    raw_steps: int = 2_000
    """vector-env steps of every raw measurement (times num_envs env steps)"""
    rounds: int = 3
    """interleaved rounds; medians are reported"""
    trainer_flags: str = ""
    """extra flags of every trainer run, as one string (tests use tiny batches)"""
    attack: bool = True
    """also measure the attack protocol (a defender is trained first, for a few seconds)"""
    attack_timesteps: int = 12_000
    """steps per scenario of every attack run (a multiple of the preset's batch)"""
    rows: tuple[str, ...] = ()
    """measure only the rows whose name starts with one of these (and the raw env, always);
    empty: every row. E.g. `--rows "ippo.py (30 epochs" "attack.py"`"""
    cuda: bool = False
    """also measure every trainer row on CUDA (`--cuda`, rows marked [CUDA]); the other rows
    run with `--no-cuda`, also on a machine with a GPU"""
    output: str | None = None
    """write the Markdown tables here (e.g. docs/trainer_sps.md)"""


def raw_sps(env_id, num_envs, steps, seed=0):
    envs = make_vector_env(make_env(env_id), num_envs)
    rng = np.random.default_rng(seed)
    n = [int(envs.action_spaces[a].n) for a in envs.agents]
    envs.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        envs.step(np.stack([rng.integers(0, k, num_envs) for k in n], axis=1))
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * num_envs / elapsed


def trainer_sps(script, env_id, timesteps, extra=(), flags="", eval_episodes=0, cuda=False):
    """A trainer's steady-state steps/s (on CUDA with ``cuda``, else on the CPU even where a
    GPU is: the trainers' own default is CUDA when there is one)."""
    with tempfile.TemporaryDirectory() as cwd:
        env = {**os.environ, "WANDB_MODE": "offline"}
        subprocess.run(
            [sys.executable, str(BASELINES / script), "--env-id", env_id, "--total-timesteps",
             str(timesteps), "--eval-episodes", str(eval_episodes), "--checkpoint-every", "1000",
             "--cuda" if cuda else "--no-cuda", *shlex.split(flags), *extra],
            cwd=cwd, env=env, check=True, capture_output=True,
        )  # fmt: skip
        # the trainer's own log (attack.py: that of its one ippo.py run, a level below)
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        logs = []
        for run_dir in {p.parent for p in Path(cwd, "runs").rglob("events.out.tfevents.*")}:
            accumulator = EventAccumulator(str(run_dir))
            accumulator.Reload()
            if "charts/SPS" in accumulator.Tags()["scalars"]:
                logs.append(accumulator.Scalars("charts/SPS"))  # one per iteration
        (events,) = logs
        if len(events) < 3:
            raise SystemExit(f"--timesteps {timesteps}: {script} logged {len(events)} iterations; "
                             "the steady state needs at least 3")  # fmt: skip
        # steady state: the steps and wall time between the first and the last iteration's
        # end (start-up, the first iteration and a --compile are left out)
        first, last = events[0], events[-1]
        return (last.step - first.step) / (last.wall_time - first.wall_time)


def defender(env_id, directory, timesteps, flags=""):
    """A checkpoint of ``ippo.py`` defenders (one epoch per iteration: only their inference
    cost matters here)."""
    subprocess.run(
        [sys.executable, str(BASELINES / "ippo.py"), "--env-id", env_id, "--total-timesteps",
         str(timesteps), "--eval-episodes", "0", *shlex.split(flags), "--update-epochs", "1"],
        cwd=directory, env={**os.environ, "WANDB_MODE": "offline"}, check=True,
        capture_output=True,
    )  # fmt: skip
    (path,) = Path(directory, "runs").glob("*/checkpoints/final.safetensors")
    return str(path.resolve())


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.cuda and not torch.cuda.is_available():  # (a trainer's --cuda falls back to the CPU)
        raise SystemExit("--cuda: torch sees no CUDA device here")
    preset = PAPER_000_PRESETS[args.env_id]
    num_envs, epochs = preset["num_envs"], preset["update_epochs"]
    raw_row = "raw vector env, random actions"
    configs = {raw_row: lambda: raw_sps(args.env_id, num_envs, args.raw_steps)}
    scenarios = {}  # attack rows -> scenarios per run
    if args.attack:
        workdir = tempfile.TemporaryDirectory(prefix="benchmark_sps_")  # removed at exit
        path = defender(args.env_id, workdir.name, args.attack_timesteps, args.trainer_flags)
        n = len(make_env(args.env_id)().possible_agents)
    for cuda in (False, True) if args.cuda else (False,):
        tag = " [CUDA]" if cuda else ""

        def trainer(script, timesteps, extra=(), flags=args.trainer_flags, cuda=cuda, **kw):
            return lambda: trainer_sps(script, args.env_id, timesteps, extra, flags, cuda=cuda,
                                       **kw)  # fmt: skip

        # (the preset's flags first, so that --trainer-flags win)
        throughput = (
            f"{shlex.join(cli_flags(THROUGHPUT_PRESETS[args.env_id]))} {args.trainer_flags}"
        )
        batched = ["--vector-backend", "batched"]
        rows = {
            f"ippo.py ({epochs} epochs)": trainer("ippo.py", args.timesteps),
            f"ippo.py ({epochs} epochs, --vector-backend batched)": trainer(
                "ippo.py", args.timesteps, batched
            ),
            "ippo.py throughput preset (batched, not the paper's)": trainer(
                "ippo.py", args.throughput_timesteps, flags=throughput
            ),
            "ippo.py (1 epoch)": trainer("ippo.py", args.timesteps, ["--update-epochs", "1"]),
            f"art.py k=1 ({epochs} epochs)": trainer("art.py", args.timesteps),
            "art.py k=1 (1 epoch)": trainer("art.py", args.timesteps, ["--update-epochs", "1"]),
            f"art.py k=1 ({epochs} epochs, --vector-backend batched)": trainer(
                "art.py", args.timesteps, batched
            ),
            "art.py k=1 throughput preset (batched, not the paper's)": trainer(
                "art.py", args.throughput_timesteps, flags=throughput
            ),
        }
        configs |= {name + tag: row for name, row in rows.items()}
        if args.attack:
            one = ["--victim", "agent_0", "--attacked", "agent_1"]
            for label, extra, count in [
                ("1 scenario per run", one, 1),
                ("1 scenario per run, --vector-backend batched", [*one, *batched], 1),
                (f"{n * (n - 1)} scenarios stacked", ["--stack-scenarios"], n * (n - 1)),
                (f"{n * (n - 1)} scenarios stacked, --vector-backend batched",
                 ["--stack-scenarios", *batched], n * (n - 1)),
            ]:  # fmt: skip
                name = f"attack.py k=1, {label}{tag}"
                scenarios[name] = count
                run = trainer("attack.py", args.attack_timesteps, ["--defender", path, *extra],
                              eval_episodes=1)  # fmt: skip
                configs[name] = lambda run=run, count=count: count * run()
        if args.compile:
            configs[f"ippo.py ({epochs} epochs, --compile){tag}"] = trainer(
                "ippo.py", args.timesteps, ["--compile"]
            )
    if args.rows:
        configs = {name: measure for name, measure in configs.items()
                   if name == raw_row or name.startswith(args.rows)}  # fmt: skip
        scenarios = {name: count for name, count in scenarios.items() if name in configs}
    samples = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, measure in configs.items():
            samples[name].append(measure())
            print(f"round {r + 1}: {name}: {samples[name][-1]:,.0f} steps/s", flush=True)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    raw = medians["raw vector env, random actions"]
    lines = [
        f"| {args.env_id} ({num_envs} copies) | steps/s (median of {args.rounds}) | ÷ raw |",
        "|---|---|---|",
        *(f"| {name} | {m:,.0f} | {m / raw:.2f} |" for name, m in medians.items()
          if name not in scenarios),
    ]  # fmt: skip
    if scenarios:
        base = medians.get("attack.py k=1, 1 scenario per run", float("nan"))
        lines += [
            "",
            f"| attack protocol, k = 1 ({num_envs} copies per scenario) | scenario steps/s "
            f"(median of {args.rounds}) | ÷ one scenario per run (sync, CPU) |",
            "|---|---|---|",
            *(f"| {name} | {medians[name]:,.0f} | {medians[name] / base:.2f} |"
              for name in scenarios),
        ]  # fmt: skip
    table = "\n".join(lines)
    print("\n" + table)
    print(json.dumps({"samples": samples}, indent=None))
    if args.output:
        Path(args.output).write_text(table + "\n")
