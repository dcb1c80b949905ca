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

and prints (and with ``--output`` writes) a Markdown table of medians and ratios.
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
    output: str | None = None
    """write the Markdown table here (e.g. docs/trainer_sps.md)"""


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


def trainer_sps(script, env_id, timesteps, extra=(), flags=""):
    with tempfile.TemporaryDirectory() as cwd:
        env = {**os.environ, "WANDB_MODE": "offline"}
        subprocess.run(
            [sys.executable, str(BASELINES / script), "--env-id", env_id, "--total-timesteps",
             str(timesteps), "--eval-episodes", "0", "--checkpoint-every", "1000",
             *shlex.split(flags), *extra],
            cwd=cwd, env=env, check=True, capture_output=True,
        )  # fmt: skip
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        (run_dir,) = Path(cwd, "runs").iterdir()
        accumulator = EventAccumulator(str(run_dir))
        accumulator.Reload()
        events = accumulator.Scalars("charts/SPS")  # one per iteration
        if len(events) < 3:
            raise SystemExit(f"--timesteps {timesteps}: {script} logged {len(events)} iterations; "
                             "the steady state needs at least 3")  # fmt: skip
        # steady state: the steps and wall time between the first and the last iteration's
        # end (start-up, the first iteration and a --compile are left out)
        first, last = events[0], events[-1]
        return (last.step - first.step) / (last.wall_time - first.wall_time)


if __name__ == "__main__":
    args = tyro.cli(Args)
    preset = PAPER_000_PRESETS[args.env_id]
    num_envs, epochs = preset["num_envs"], preset["update_epochs"]
    configs = {
        "raw vector env, random actions": lambda: raw_sps(args.env_id, num_envs, args.raw_steps),
        f"ippo.py ({epochs} epochs)": lambda: trainer_sps(
            "ippo.py", args.env_id, args.timesteps, flags=args.trainer_flags
        ),
        f"ippo.py ({epochs} epochs, --vector-backend batched)": lambda: trainer_sps(
            "ippo.py",
            args.env_id,
            args.timesteps,
            ["--vector-backend", "batched"],
            args.trainer_flags,
        ),
        # (the preset's flags first, so that --trainer-flags win)
        "ippo.py throughput preset (batched, not the paper's)": lambda: trainer_sps(
            "ippo.py",
            args.env_id,
            args.throughput_timesteps,
            flags=f"{shlex.join(cli_flags(THROUGHPUT_PRESETS[args.env_id]))} {args.trainer_flags}",
        ),
        "ippo.py (1 epoch)": lambda: trainer_sps(
            "ippo.py", args.env_id, args.timesteps, ["--update-epochs", "1"], args.trainer_flags
        ),
        f"art.py k=1 ({epochs} epochs)": lambda: trainer_sps(
            "art.py", args.env_id, args.timesteps, flags=args.trainer_flags
        ),
        "art.py k=1 (1 epoch)": lambda: trainer_sps(
            "art.py", args.env_id, args.timesteps, ["--update-epochs", "1"], args.trainer_flags
        ),
        f"art.py k=1 ({epochs} epochs, --vector-backend batched)": lambda: trainer_sps(
            "art.py",
            args.env_id,
            args.timesteps,
            ["--vector-backend", "batched"],
            args.trainer_flags,
        ),
        "art.py k=1 throughput preset (batched, not the paper's)": lambda: trainer_sps(
            "art.py",
            args.env_id,
            args.throughput_timesteps,
            flags=f"{shlex.join(cli_flags(THROUGHPUT_PRESETS[args.env_id]))} {args.trainer_flags}",
        ),
    }
    if args.compile:
        configs[f"ippo.py ({epochs} epochs, --compile)"] = lambda: trainer_sps(
            "ippo.py", args.env_id, args.timesteps, ["--compile"], args.trainer_flags
        )
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
        *(f"| {name} | {m:,.0f} | {m / raw:.2f} |" for name, m in medians.items()),
    ]
    table = "\n".join(lines)
    print("\n" + table)
    print(json.dumps({"samples": samples}, indent=None))
    if args.output:
        Path(args.output).write_text(table + "\n")
