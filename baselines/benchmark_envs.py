# docs and experiment results can be found at docs/envs/index.md
"""Raw steps/s of every bundled env with random actions (a script, not a test).

    python baselines/benchmark_envs.py [--seconds 2] [--output docs/envs/steps_per_second.json]

Each env is built with its default arguments (the papers' configurations) and stepped with
random actions pre-sampled from its action spaces, resets included, for ``--seconds`` of
process CPU time, three times; the median is reported. Turn-based games count one move as a
step. The JSON file feeds the steps/s column of ``docs/envs/index.md`` (``python
docs/gen_env_pages.py`` writes it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pettingzoo

from adv_envs import ENVS, EnvInfo
from adv_wrappers.policies import sample_random_action

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "envs" / "steps_per_second.json"


def _parallel_rate(env, seconds: float, rng: np.random.Generator) -> float:
    env.reset(seed=0)
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
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    os.environ.setdefault("MUJOCO_GL", "egl")
    results: dict[str, object] = {}
    for info in ENVS:
        rate = measure(info, args.seconds)
        results[info.id] = round(rate, 1)
        print(f"{info.id:<34} {rate:>10,.0f} steps/s")
    results["_measured"] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
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
