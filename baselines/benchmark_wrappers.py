# docs and experiment results can be found at docs/benchmarks.md
"""Overhead of the threat-model wrappers, and throughput of the vector envs.

Run ``python baselines/benchmark_wrappers.py --output docs/benchmarks.md`` (about 4 minutes on two
cores; ``--quick`` for a smoke run of about 20 seconds). This is a script, not a test: it
measures, writes a Markdown report and never fails on a slow result.

Wrapper overhead. For each env and each registered threat model (``adv_wrappers.registry``)
in both slots, the wrapped env's steps/s is divided by the raw env's steps/s. The machine is
shared and noisy, so the measurements are interleaved in the same process: every round runs
``raw, wrapped_1, raw, wrapped_2, ..., raw`` (wrapped configs in a fresh random order per
round) and compares each wrapped measurement with the mean of the raw measurements right
before and after it, in steps per CPU second of this process (other processes on the
machine do not inflate it; wall-clock ratios are reported too). The report gives the median
over rounds. Random actions are sampled once per agent before timing (``ActionTable``) and
looked up the same way for the raw and the wrapped env, so sampling costs nothing and costs
the same; an exposed adversary's actions are looked up like anyone else's. Episode resets
happen inside the timed loop (when ``env.agents`` is empty) for raw and wrapped alike.

Vector envs. Env-steps/s (``num_envs`` x ``step`` calls / s) of ``adv_wrappers.vector`` with
the sync and subprocess backends at 1, 8 and 64 copies of simple_spread, against one raw env
stepped in a loop, interleaved the same way, in wall-clock time (subprocess workers spend
their own CPU time). This section is skipped, with a note in the report, when
``adv_wrappers.vector`` cannot be imported; if it raises, the report says so and the exit
status is 1.

``--profile`` prints, instead of timing, where each wrapper's own time goes on simple_spread
(cProfile, aggregated per wrapper function and per numpy/builtin call it makes).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import functools
import gc
import importlib.metadata
import os
import platform
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adv_wrappers.registry import SLOTS, THREAT_MODELS

TARGET_RATIO = 0.95
"""The goal of the wrapper-overhead issue: wrapped steps/s >= 95 % of raw steps/s."""

TABLE_LENGTH = 1024
"""Pre-sampled actions per agent; the table is read cyclically."""

VECTOR_SIZES = (1, 8, 64)
VECTOR_BACKENDS = ("sync", "subproc")


@dataclass
class Settings:
    seconds: float
    """Wall-clock seconds of one measurement."""
    rounds: int
    """Interleaved rounds per env; the report gives medians over rounds."""
    vector_sizes: tuple[int, ...]
    """Numbers of copies for the vector-env section."""
    seed: int = 0
    """Seed of the action tables, env resets and the order of configs within a round."""


# ------------------------------------------------------------------------------ envs


def spread_fn():
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(N=3, max_cycles=25)


def pursuit_fn():
    from pettingzoo.sisl import pursuit_v5

    return pursuit_v5.parallel_env()


ENVS: dict[str, tuple[str, Callable[[], Any]]] = {
    "simple_spread_v3": ("mpe2 `simple_spread_v3.parallel_env(N=3, max_cycles=25)`", spread_fn),
    "pursuit_v5": ("`pettingzoo.sisl.pursuit_v5.parallel_env()`", pursuit_fn),
}


def wrapper_configs() -> list[tuple[str, str, str]]:
    """``(threat model name, slot, config text)`` for every registered threat model and slot."""
    configs = []
    for tm in THREAT_MODELS.values():
        for slot in SLOTS:
            value = None if slot == "exposed" else tm.embedded_value
            configs.append((tm.name, slot, f"{tm.slot_argument}={value!r}"))
    return configs


def make_wrapped(env_fn: Callable[[], Any], name: str, slot: str) -> Any:
    return THREAT_MODELS[name].make(env_fn(), slot)


# ------------------------------------------------------------------------------ timing


class ActionTable:
    """``TABLE_LENGTH`` actions per possible agent, sampled before timing.

    ``actions(agents, t)`` is the joint action of step ``t`` for the listed agents: one dict
    lookup and one list index per agent, the same cost for a raw and a wrapped env.
    """

    def __init__(self, env: Any, seed: int):
        self.table: dict[Any, list[Any]] = {}
        for i, agent in enumerate(env.possible_agents):
            space = env.action_space(agent)
            space.seed(seed + i)
            self.table[agent] = [space.sample() for _ in range(TABLE_LENGTH)]

    def actions(self, agents: Sequence[Any], t: int) -> dict[Any, Any]:
        j = t % TABLE_LENGTH
        table = self.table
        return {a: table[a][j] for a in agents}


@dataclass(frozen=True)
class Sample:
    """One measurement: env-steps done, wall-clock seconds and this process's CPU seconds."""

    steps: int
    wall: float
    cpu: float

    def rate(self, clock: str) -> float:
        return self.steps / (self.wall if clock == "wall" else self.cpu)


def measure(env: Any, table: ActionTable, seconds: float, seed: int) -> Sample:
    """Step ``env`` with the table's actions for ``seconds``; resets are inside the timing."""
    gc.collect()
    env.reset(seed=seed)
    clock, cpu_clock = time.perf_counter, time.process_time
    steps = 0
    start, cpu_start = clock(), cpu_clock()
    deadline = start + seconds
    while True:
        if not env.agents:
            env.reset()
        env.step(table.actions(env.agents, steps))
        steps += 1
        if steps % 16 == 0 and clock() >= deadline:
            return Sample(steps, clock() - start, cpu_clock() - cpu_start)


def measure_vector(venv: Any, seconds: float, seed: int) -> Sample:
    """Env-steps (``num_envs`` x ``step`` calls) of a vector env with pre-sampled actions."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, venv.action_nvec, size=(64, venv.num_envs, venv.num_agents))
    gc.collect()
    venv.reset(seed=seed)
    clock, cpu_clock = time.perf_counter, time.process_time
    calls = 0
    start, cpu_start = clock(), cpu_clock()
    deadline = start + seconds
    while True:
        venv.step(actions[calls % 64])
        calls += 1
        if clock() >= deadline:
            return Sample(venv.num_envs * calls, clock() - start, cpu_clock() - cpu_start)


@dataclass
class Paired:
    """A candidate's samples, each with the raw samples measured right before and after it."""

    samples: list[tuple[Sample, Sample, Sample]] = field(default_factory=list)

    def ratios(self, clock: str) -> list[float]:
        return [s.rate(clock) / ((a.rate(clock) + b.rate(clock)) / 2) for s, a, b in self.samples]

    def rate(self, clock: str) -> float:
        return statistics.median(s.rate(clock) for s, _, _ in self.samples)

    def extra_us(self, clock: str) -> float:
        """Median over pairs of the extra microseconds per step against the raw env."""
        return statistics.median(
            1e6 / s.rate(clock) - 1e6 / ((a.rate(clock) + b.rate(clock)) / 2)
            for s, a, b in self.samples
        )


def interleaved(
    raw: Callable[[], Sample],
    candidates: Mapping[Any, Callable[[], Sample]],
    rounds: int,
    rng: np.random.Generator,
    progress: str,
) -> tuple[list[Sample], dict[Any, Paired]]:
    """Run ``raw, c_1, raw, c_2, ..., raw`` per round (a fresh random order of candidates)."""
    raw_samples: list[Sample] = []
    paired = {key: Paired() for key in candidates}
    keys = list(candidates)
    for r in range(rounds):
        print(f"  {progress}: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        before = raw()
        raw_samples.append(before)
        for k in rng.permutation(len(keys)):
            sample = candidates[keys[k]]()
            after = raw()
            raw_samples.append(after)
            paired[keys[k]].samples.append((sample, before, after))
            before = after
    return raw_samples, paired


def median_rate(samples: list[Sample], clock: str) -> float:
    return statistics.median(s.rate(clock) for s in samples)


# ------------------------------------------------------------------------------ sections


def wrapper_section(settings: Settings) -> list[str]:
    lines = [
        "## Wrapper overhead",
        "",
        f"Target: ratio >= {TARGET_RATIO} (overhead <= {100 - 100 * TARGET_RATIO:.0f} %). "
        "*Ratio* is the median over rounds of the wrapped env's steps/s divided by the mean "
        "of the two raw measurements around it, in steps per CPU second of this process "
        "(`time.process_time`, which other processes on a shared machine do not inflate); "
        "*range* is its min-max over rounds; *wall ratio* is the same in wall-clock time; "
        "*extra us/step* is the median over rounds of 1e6 / wrapped - 1e6 / raw (CPU time); "
        "on a slow env such as pursuit it is within the noise (a 1 % change of a 2.5 ms step "
        "is 25 us).",
        "",
    ]
    for env_name, (label, env_fn) in ENVS.items():
        try:
            env_fn()
        except ImportError as exc:
            lines += [f"### {env_name}", "", f"Skipped: {exc}.", ""]
            continue
        print(f"{env_name}:", file=sys.stderr, flush=True)
        raw_env = env_fn()
        raw_table = ActionTable(raw_env, settings.seed)
        raw = functools.partial(measure, raw_env, raw_table, settings.seconds, settings.seed)
        raw()  # warm-up: caches, first resets
        candidates = {}
        for name, slot, _ in wrapper_configs():
            if not THREAT_MODELS[name].applies_to(raw_env):
                continue
            wrapped = make_wrapped(env_fn, name, slot)
            table = ActionTable(wrapped, settings.seed)
            measure(wrapped, table, 0.05, settings.seed)  # warm-up
            candidates[name, slot] = functools.partial(
                measure, wrapped, table, settings.seconds, settings.seed
            )
        raw_samples, paired = interleaved(
            raw, candidates, settings.rounds, np.random.default_rng(settings.seed), env_name
        )
        cpu_rates = [s.rate("cpu") for s in raw_samples]
        lines += [
            f"### {env_name}",
            "",
            f"{label}: raw {median_rate(raw_samples, 'cpu'):,.0f} steps per CPU second "
            f"(median of {len(raw_samples)} measurements, range {min(cpu_rates):,.0f}-"
            f"{max(cpu_rates):,.0f}); {median_rate(raw_samples, 'wall'):,.0f} steps per "
            "wall-clock second.",
            "",
            "| threat model | slot | config | steps/s | ratio | range | wall ratio "
            f"| extra us/step | >= {TARGET_RATIO} |",
            "|---|---|---|---:|---:|---:|---:|---:|:-:|",
        ]
        for name, slot, config in wrapper_configs():
            if (name, slot) not in candidates:
                lines.append(
                    f"| `{name}` | {slot} | `{config}` | n/a (space not supported) | | | | | |"
                )
                continue
            p = paired[name, slot]
            ratios = p.ratios("cpu")
            ratio = statistics.median(ratios)
            ok = "yes" if ratio >= TARGET_RATIO else "no"
            lines.append(
                f"| `{name}` | {slot} | `{config}` | {p.rate('cpu'):,.0f} | {ratio:.3f} | "
                f"{min(ratios):.3f}-{max(ratios):.3f} | "
                f"{statistics.median(p.ratios('wall')):.3f} | {p.extra_us('cpu'):.1f} | {ok} |"
            )
        lines.append("")
    return lines


def vector_section(settings: Settings) -> list[str]:
    lines = [
        "## Vector envs",
        "",
        "Env-steps/s (`num_envs` x `step` calls / s) of `adv_wrappers.vector.make_vector_env` "
        "on copies of mpe2 `simple_spread_v3.parallel_env(N=3, max_cycles=25)`, against one "
        "raw env stepped in a loop as above, interleaved the same way (`raw, vec_1, raw, "
        "vec_2, ..., raw`). Actions are pre-sampled `[64, num_envs, num_agents]` integer "
        "arrays; auto-resets happen inside `step`. Subprocess workers are started before "
        "timing and kept for all rounds. Times are wall-clock (the workers' CPU time is not "
        "this process's), so this section is noisier than the one above on a shared machine.",
        "",
    ]
    try:
        from adv_wrappers.vector import make_vector_env
    except ImportError as exc:
        return lines + [f"Skipped: `adv_wrappers.vector` is not available ({exc}).", ""]
    try:
        from mpe2 import simple_spread_v3
    except ImportError as exc:
        return lines + [f"Skipped: {exc}.", ""]
    env_fn = functools.partial(simple_spread_v3.parallel_env, N=3, max_cycles=25)
    raw_env = spread_fn()
    table = ActionTable(raw_env, settings.seed)
    raw = functools.partial(measure, raw_env, table, settings.seconds, settings.seed)
    venvs = {}
    try:
        for backend in VECTOR_BACKENDS:
            for n in settings.vector_sizes:
                print(f"vector: starting {backend} x {n}", file=sys.stderr, flush=True)
                venvs[backend, n] = venv = make_vector_env(env_fn, n, backend=backend)
                measure_vector(venv, 0.05, settings.seed)  # warm-up
        candidates = {
            key: functools.partial(measure_vector, venv, settings.seconds, settings.seed)
            for key, venv in venvs.items()
        }
        raw_samples, paired = interleaved(
            raw, candidates, settings.rounds, np.random.default_rng(settings.seed), "vector"
        )
    finally:
        for venv in venvs.values():
            venv.close()
    lines += [
        f"Raw env in a loop: {median_rate(raw_samples, 'wall'):,.0f} steps per wall-clock "
        f"second (median of {len(raw_samples)}).",
        "",
        "| backend | num_envs | env-steps/s | ratio to raw loop | range |",
        "|---|---:|---:|---:|---:|",
    ]
    for (backend, n), p in paired.items():
        ratios = p.ratios("wall")
        lines.append(
            f"| {backend} | {n} | {p.rate('wall'):,.0f} | {statistics.median(ratios):.3f} | "
            f"{min(ratios):.3f}-{max(ratios):.3f} |"
        )
    lines.append("")
    return lines


def machine_lines() -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        "| | |",
        "|---|---|",
        f"| CPU count | {os.cpu_count()} |",
        f"| CPU | {cpu} ({platform.machine()}) |",
        f"| OS | {platform.system()} {platform.release()} |",
        f"| Python | {platform.python_version()} ({platform.python_implementation()}) |",
        f"| numpy | {np.__version__} |",
        f"| pettingzoo | {version('pettingzoo')} |",
        f"| gymnasium | {version('gymnasium')} |",
        f"| mpe2 | {version('mpe2')} |",
        f"| adv-wrappers | {version('adv-wrappers')} |",
        f"| load average at start (1, 5, 15 min) | {load} |",
    ]


def report(settings: Settings, command: str, sections: list[list[str]], elapsed: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `baselines/benchmark_wrappers.py`; do not edit by hand, rerun the command. "
        "Where the time goes, and why the target is missed on simple_spread: [performance.md](performance.md).",
        "",
        f"- Command: `{command}`",
        f"- Date: {now}; the run took {elapsed:.0f} s.",
        f"- Settings: {settings.seconds:g} s per measurement, {settings.rounds} interleaved "
        f"rounds, seed {settings.seed}.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Method",
        "",
        "All measurements run in one process. Random actions are sampled before timing "
        f"({TABLE_LENGTH} per agent, from each agent's action space, looked up the same way for "
        "the raw and the wrapped env); episode resets are inside the timed loop. Each round runs "
        "`raw, wrapped_1, raw, wrapped_2, ..., raw` with the wrapped configs in a random order, "
        "and each wrapped measurement is divided by the mean of the raw measurements just "
        "before and after it, so slow drifts of a shared machine cancel. Wrapper ratios use "
        "this process's CPU time, so other processes competing for the cores do not count "
        "against the wrapper; wall-clock ratios are given next to them. Embedded slots include "
        "the cost of their random adversary (`adversary='random'` samples with the wrapper's "
        "RNG; `attack='uniform'` draws the noise). The threat models and their configurations "
        "come from `adv_wrappers.registry.THREAT_MODELS` (default arguments: "
        "`k_corruption_v0(env, k=1)`, `byzantine_v0(env)`, "
        "`partial_control_v0(env, env.possible_agents[0], 0.5)`, "
        "`state_perturbation_v0(env, 0.1)`).",
        "",
    ]
    for section in sections:
        lines += section
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------ profile


def _is_wrapper_code(key: tuple[str, int, str]) -> bool:
    path = key[0].replace(os.sep, "/")
    return "/adv_wrappers/" in path


def profile(steps: int, top: int) -> None:
    """Print where each wrapper's own time goes on simple_spread, under cProfile.

    A wrapper's time is the own time of its functions plus the time of everything they call
    directly (numpy, builtins), except the wrapped env's ``step`` and ``reset``. cProfile
    inflates small calls, so compare the numbers with each other, not with the timings.
    """
    for name, slot, config in wrapper_configs():
        env = make_wrapped(spread_fn, name, slot)
        table = ActionTable(env, 0)
        env.reset(seed=0)
        profiler = cProfile.Profile()
        profiler.enable()
        for t in range(steps):
            if not env.agents:
                env.reset()
            env.step(table.actions(env.agents, t))
        profiler.disable()
        # Stats.stats (the raw per-function table) is undocumented, so typeshed leaves it out
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        costs: dict[str, float] = {}
        for key, (_, _, own, _, callers) in stats.items():
            if _is_wrapper_code(key):
                label = f"{os.path.basename(key[0])}:{key[1]}({key[2]})"
                costs[label] = costs.get(label, 0.0) + own
                continue
            if key[2] in ("step", "reset"):
                continue  # the wrapped env itself
            for caller, (_, _, _, cumulative) in callers.items():
                if _is_wrapper_code(caller):
                    label = f"{key[2]} <- {caller[2]}"
                    costs[label] = costs.get(label, 0.0) + cumulative
        total = sum(costs.values())
        print(f"\n{name} {slot} ({config}): {1e6 * total / steps:.1f} us/step in the wrapper")
        for label, cost in sorted(costs.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {1e6 * cost / steps:6.1f} us  {label}")


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python baselines/benchmark_wrappers.py",
        description="Wrapper overhead (wrapped / raw steps/s) and vector-env throughput.",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="wall-clock seconds per measurement (default 1.0; 0.2 with --quick)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 5; 2 with --quick)"
    )
    parser.add_argument(
        "--output", default=None, help="write the Markdown report here (default: print it)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short smoke run: 0.2 s, 2 rounds, vector sizes 1 and 8",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of each wrapped simple_spread env instead",
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile(steps=5000, top=14)
        return 0
    seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 1.0)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    if not seconds > 0 or rounds < 1:
        parser.error("--seconds must be > 0 and --rounds >= 1")
    settings = Settings(
        seconds=seconds, rounds=rounds, vector_sizes=(1, 8) if args.quick else VECTOR_SIZES
    )
    command = " ".join(
        ["python baselines/benchmark_wrappers.py", *(argv if argv is not None else sys.argv[1:])]
    )
    start = time.perf_counter()
    status = 0
    sections = [wrapper_section(settings)]
    try:
        sections.append(vector_section(settings))
    except Exception as exc:  # keep the wrapper results; the report and exit code say it failed
        traceback.print_exc()
        sections.append(["## Vector envs", "", f"Failed: `{type(exc).__name__}: {exc}`.", ""])
        status = 1
    text = report(settings, command, sections, time.perf_counter() - start)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
