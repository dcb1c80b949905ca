# docs and experiment results can be found at docs/envs/index.md
"""Raw steps/s of every bundled env with random actions (a script, not a test).

    python baselines/benchmark_envs.py [--seconds 2] [--output docs/envs/steps_per_second.json]
    python baselines/benchmark_envs.py --env adv/smax_4m_vs_3m-v0   # one env, merged in

Each env is built with its default arguments (the papers' configurations) and stepped with
random actions pre-sampled from its action spaces, resets included, for ``--seconds`` of
process CPU time, three times (each after one untimed step, which JIT-compiled envs spend
compiling); the median is reported. Turn-based games count one move as a step. The JSON file
feeds the steps/s column of ``docs/envs/index.md`` (``python
docs/gen_env_pages.py`` writes it). ``--env ID`` (repeatable) measures only those envs and
updates their entries in the existing file, keeping the others: for a new env, without
re-measuring the rest; the date of each such entry goes in ``_measured["separately"]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pettingzoo

from adv_envs import ENVS, EnvInfo
from adv_wrappers.policies import sample_random_action

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "envs" / "steps_per_second.json"


def _parallel_rate(env, seconds: float, rng: np.random.Generator) -> float:
    env.reset(seed=0)
    # one untimed step: JIT-compiled envs (SMAX) compile on their first step
    env.step({a: sample_random_action(env.action_space(a), rng) for a in env.agents})
    steps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        if not env.agents:
            env.reset()
        env.step({a: sample_random_action(env.action_space(a), rng) for a in env.agents})
        steps += 1
    return steps / (time.process_time() - start)


def _aec_rate(env, seconds: float, rng: np.random.Generator) -> float:
    env.reset(seed=0)
    steps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        if not env.agents:
            env.reset()
        obs, _, term, trunc, info = env.last()
        if term or trunc:
            env.step(None)
        else:
            mask = obs.get("action_mask") if isinstance(obs, dict) else info.get("action_mask")
            env.step(sample_random_action(env.action_space(env.agent_selection), rng, mask))
        steps += 1
    return steps / (time.process_time() - start)


def measure(info: EnvInfo, seconds: float, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(repeats):
        if info.turn_based:
            env = pettingzoo.make("aec", info.id)
            rates.append(_aec_rate(env, seconds, rng))
        else:
            env = pettingzoo.make("parallel", info.id)
            rates.append(_parallel_rate(env, seconds, rng))
        env.close()
    return float(np.median(rates))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="CPU seconds per measurement (default 2)"
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help=f"JSON output (default {OUTPUT})"
    )
    parser.add_argument(
        "--env",
        action="append",
        metavar="ID",
        help="measure only this env (repeatable) and update its entry in --output, keeping the "
        "others (default: every env, a new file)",
    )
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    by_id = {info.id: info for info in ENVS}
    unknown = sorted(set(args.env or ()) - set(by_id))
    if unknown:
        parser.error(f"unknown env IDs {unknown}; registered: {sorted(by_id)}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    date = time.strftime("%Y-%m-%d", time.gmtime())
    results: dict[str, Any] = {}
    if args.env and args.output.is_file():
        results = json.loads(args.output.read_text())
    for info in [by_id[env_id] for env_id in args.env] if args.env else ENVS:
        rate = measure(info, args.seconds)
        results[info.id] = round(rate, 1)
        print(f"{info.id:<34} {rate:>10,.0f} steps/s")
    if args.env:
        separately = results.setdefault("_measured", {}).setdefault("separately", {})
        separately.update(dict.fromkeys(args.env, date))
    else:
        results["_measured"] = {
            "date": date,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "command": "python baselines/benchmark_envs.py",
            "seconds_per_measurement": args.seconds,
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
