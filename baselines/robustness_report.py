# docs and experiment results can be found at docs/robustness_report.md
"""Train defenders, attack each with fresh attackers, report clean vs. worst-case return.

The evaluation protocol of Nika et al. (TMLR 2024), Sec. 5.3 and Table 1, end to end, for
Independent Spread: every method is trained with its trainer (``ippo.py`` for Naive,
``art.py`` for Fixed-K and ART), one run per seed; then ``attack.py`` trains a new PPO
adversary from scratch against the frozen defenders for every victim i and every subset K of
k other agents, and the table reports, per method, the worst case over victims and subsets
(mean +- standard error over seeds, and the interquartile mean with its stratified bootstrap
95 % confidence interval, Agarwal et al., NeurIPS 2021) next to the clean return of the
worst-off agent. Table 1's other two envs (``--env-id adv/pursuit-v0`` or
``adv/multi_ant-v0``) are cooperative, so there the victim is the benign team ("the remaining
agents are victims who have a common reward function"): its mean return, under attackers
that control the first and the last k pursuers (Pursuit; Fixed-K trains against the first)
or each leg in turn (Ant, k = 1), the worst of those.

Every step is a subprocess writing into ``<workdir>/<method>/seed<s>/`` and is skipped when
its result already exists, so an interrupted report continues where it stopped (and a
finished one is re-tabulated in seconds). ``--preset quick`` is the README's main job (about
22 CPU-minutes, 11-14 minutes on 2 cores, small budgets stated in the output); ``--preset paper`` is
Table 1's protocol (800K steps per method and per attacker, App. D hyperparameters).

It first prints an estimate of the whole report (the raw env's steps/s measured on this
machine, times ``REPORT_FRACTION``, ``--jobs`` at a time), then every 30 s the percent of
all environment steps done (summed from the ``progress.json`` of every training run under
``--workdir``), each job's stage and an ETA. The subprocesses' output goes to ``train.log``
and ``attack/attack.log`` in each job's folder. ``--from-results`` re-tabulates a finished
report's ``results.json`` (e.g. ``docs/robustness_report.json``) without running anything.
``--ray`` runs every job as a Ray task on a local instance, ``--ray-address`` on an existing
cluster (``adv_wrappers.train.fanout``; the ``ray`` extra).

Table 1's full protocol (``--preset paper``) adds: attacks with 1 and 2 adversaries (``--k 1
2``); a plateau check of every attacker's training curve; one long attack (800K steps) on
each method's worst scenario of the first seed, to show what the shorter budget costs; and
the convergence check of Fig. 5 for the ART rows (``convergence_check.py``). With
``--results DIR`` each finished (method, seed) also writes its summary to
``DIR/<method>_seed<s>.json``: small files to commit as they land, so that a grid spread over
several sessions and machines skips what is done.
"""

import dataclasses
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium
import numpy as np
import tyro

from adv_wrappers import adversary_id
from adv_wrappers.train.envs import make_env
from adv_wrappers.train.fanout import run_jobs
from adv_wrappers.train.jobs import (
    IQM_REPS,
    Monitor,
    attack_or_resume,
    iqm_ci,
    logged_scalars,
    mean_se,
    plot_intervals,
    run_logged,
    run_seconds,
    say,
    train_or_resume,
)
from adv_wrappers.vector import make_vector_env, stacked_agent_id

BASELINES = Path(__file__).resolve().parent
SPREAD, PURSUIT, ANT = "adv/independent_spread-v0", "adv/pursuit-v0", "adv/multi_ant-v0"


def pursuers(k):
    return ["pursuer_" + str(i) for i in range(k)]


# Table 1's three environments. Per env: method -> (label, trainer, flags), with Fixed-K
# trained against one fixed subset; the victim (`agent`: every agent in turn, the worst
# case; `team`: "the remaining agents are victims who have a common reward function"); the
# subsets a test-time attacker controls; and Table 1's numbers: method -> ((mean, SE) with
# no adversary, {k: (mean, SE) with k adversaries}), over 5 seeds.
TABLE1 = {
    SPREAD: {
        "methods": {
            "naive": ("Naive", "ippo.py", []),
            # Fixed-K's K for agent i is {agent_{i+1 mod 3}}
            "fixed_k1": ("Fixed-K(k=1)", "art.py", ["--k", "1", "--fixed-subset", "agent_1"]),
            "art_k1": ("ART(k=1)", "art.py", ["--k", "1"]),
            # omega over the subsets of size exactly 2: Table 1 calls Fixed-K(k=2) "equivalent
            # to ART(k=2)", which holds only then (docs/robustness_report.md)
            "art_k2": ("ART(k=2)", "art.py", ["--k", "2", "--omega-support", "exactly_k"]),
        },
        "victim": "agent",
        "subsets": "all",  # every victim x every subset of exactly k others
        "paper": {
            "naive": ((-34.0, 1.9), {1: (-493.2, 11.2), 2: (-480.8, 16.1)}),
            "fixed_k1": ((-142.8, 24.5), {1: (-271.2, 31.0), 2: (-290.8, 36.6)}),
            "art_k1": ((-123.4, 11.7), {1: (-190.2, 13.3), 2: (-242.0, 33.4)}),
            "art_k2": ((-148.0, 15.1), {1: (-201.4, 11.7), 2: (-213.6, 9.9)}),
        },
    },
    PURSUIT: {
        "methods": {
            "naive": ("Naive", "ippo.py", []),
            **{
                f"fixed_k{k}": (
                    f"Fixed-K(k={k})",
                    "art.py",
                    ["--k", str(k), "--fixed-subset", *pursuers(k)],
                )
                for k in (1, 2, 4)
            },
            **{f"art_k{k}": (f"ART(k={k})", "art.py", ["--k", str(k)]) for k in (1, 2, 4)},
        },
        "victim": "team",
        # "a specific subset of agents with cardinality k": the first k pursuers (Fixed-K's
        # training subset) and the last k (one it never met); the worse of the two
        "subsets": "first_last",
        "paper": {
            "naive": ((40.7, 3.1), {1: (34.4, 1.2), 2: (32.3, 1.9), 4: (-2.0, 2.3)}),
            "fixed_k1": ((37.6, 2.8), {1: (35.7, 4.1), 2: (30.9, 2.8), 4: (8.5, 2.7)}),
            "fixed_k2": ((29.2, 10.5), {1: (26.3, 10.3), 2: (25.7, 9.8), 4: (17.1, 3.3)}),
            "fixed_k4": ((25.89, 7.24), {1: (23.82, 7.50), 2: (16.97, 8.12), 4: (6.21, 6.27)}),
            "art_k1": ((47.3, 1.3), {1: (50.6, 1.8), 2: (48.1, 1.9), 4: (26.0, 4.3)}),
            "art_k2": ((42.6, 3.7), {1: (37.4, 1.7), 2: (36.4, 2.4), 4: (21.0, 4.0)}),
            "art_k4": ((35.6, 4.3), {1: (32.8, 1.5), 2: (34.0, 1.6), 4: (19.3, 2.0)}),
        },
    },
    ANT: {
        "methods": {
            "naive": ("Naive", "ippo.py", []),
            "fixed_k1": ("Fixed-K(k=1)", "art.py", ["--k", "1", "--fixed-subset", "agent_0"]),
            "art_k1": ("ART(k=1)", "art.py", ["--k", "1"]),
        },
        "victim": "team",
        "subsets": "all",  # every leg in turn (k = 1 only: Table 1)
        "paper": {
            "naive": ((327.5, 48.9), {1: (2.2, 10.7)}),
            "fixed_k1": ((229.0, 30.0), {1: (29.5, 14.8)}),
            "art_k1": ((181.9, 25.4), {1: (58.2, 6.7)}),
        },
    },
}
CHECKED = ("art_k1", "art_k2")  # the rows of Fig. 5's convergence check (ART, Spread)
# An attacker has plateaued when its mean training return over the last PLATEAU_WINDOW of its
# steps exceeds the mean over the PLATEAU_WINDOW before by less than PLATEAU_TOLERANCE of
# the latter's magnitude (its return is minus its victim's).
PLATEAU_WINDOW, PLATEAU_TOLERANCE = 0.2, 0.05
PRESETS = {
    "quick": dict(
        methods=("naive", "art_k1"),
        seeds=(1,),
        train_timesteps=200_000,
        attack_timesteps=48_000,
        eval_episodes=50,
    ),  # fmt: skip
    "paper": dict(
        methods=tuple(TABLE1[SPREAD]["methods"]),
        seeds=(1, 2, 3, 4, 5),
        train_timesteps=800_000,
        attack_timesteps=200_000,
        k=(1, 2),
        # T = 50: the episode length that fits Table 1's clean returns (Naive and ART(k=1))
        # and ART(k=1)'s attacked one, of T in {25, 50, 100} (docs/robustness_report.md)
        env_kwargs='{"max_cycles": 50}',
        eval_episodes=100,
        train_flags="--vector-backend batched",
        attack_flags="--stack-scenarios --vector-backend batched",
        long_attack_timesteps=800_000,
        convergence_check=True,
    ),  # fmt: skip
}
# `--preset paper` with `--env-id` Pursuit or Ant: Table 1's protocol there (App. D: 10M and
# 13M steps; attackers with "the same hyperparameters"). No batched env: the PettingZoo path.
PAPER_PRESETS = {
    PURSUIT: dict(methods=tuple(TABLE1[PURSUIT]["methods"]), seeds=(1, 2, 3, 4, 5),
                  train_timesteps=10_000_000, attack_timesteps=10_000_000, k=(1, 2, 4),
                  eval_episodes=100),
    ANT: dict(methods=tuple(TABLE1[ANT]["methods"]), seeds=(1, 2, 3, 4, 5),
              train_timesteps=13_000_000, attack_timesteps=13_000_000, k=(1,), eval_episodes=100),
}  # fmt: skip


@dataclass
class Args:
    preset: Literal["quick", "paper", "none"] = "quick"
    """`quick` (the README's main job, ~22 CPU-minutes), `paper` (Table 1's protocol) or `none`; a
    preset replaces the defaults of methods, seeds, budgets and episodes (flags still win)"""
    env_id: Literal["adv/independent_spread-v0", "adv/pursuit-v0", "adv/multi_ant-v0"] = SPREAD
    """Table 1's environment: Independent Spread (the worst victim), Pursuit or multi-agent
    Ant (the benign team is the victim); with `--preset paper` it picks that env's protocol"""
    workdir: str = "runs/robustness_report"
    """where every run goes (`<workdir>/<method>/seed<s>/`); finished steps are skipped"""
    methods: tuple[str, ...] = ("naive", "art_k1")
    """the defenses to train (Spread: `naive`, `fixed_k1`, `art_k1`, `art_k2`; Pursuit adds
    `fixed_k2`, `fixed_k4`, `art_k4`; Ant: `naive`, `fixed_k1`, `art_k1`)"""
    seeds: tuple[int, ...] = (1,)
    """one defender (and its attackers) per seed"""
    train_timesteps: int = 200_000
    """environment steps of every defender's training"""
    attack_timesteps: int = 48_000
    """environment steps of every attacker (one per victim and subset)"""
    k: tuple[int, ...] = (1,)
    """the numbers of agents the attackers corrupt: every defender is attacked at each (Spread:
    every victim x every subset of exactly k others; Pursuit: the first and the last k
    pursuers; Ant: every leg)"""
    env_kwargs: str = "{}"
    """keyword arguments of the env for every run, as a JSON dict (e.g. `{"max_cycles":
    100}`, Independent Spread's episode length T)"""
    results: str = ""
    """also write every finished (method, seed)'s summary to `<results>/<method>_seed<s>.json`
    and skip the (method, seed) whose file exists (its set-up must match): commit them"""
    long_attack_timesteps: int = 0
    """also attack each method's worst k=1 scenario of the first seed once more, for this many
    steps, one scenario alone (0: not)"""
    convergence_check: bool = False
    """run Fig. 5's convergence check (`convergence_check.py`, victim agent_0, its worst k=1
    scenario) on every ART defender (Independent Spread)"""
    eval_episodes: int = 50
    """episodes of every evaluation (clean and under attack), seeded"""
    jobs: int = 2
    """runs in parallel (one CPU core each: every run uses one torch thread)"""
    ray: bool = False
    """run every job as a Ray task (the `ray` extra), on a new local instance with `--jobs` CPUs"""
    ray_address: str = ""
    """join this Ray cluster instead (`auto`, `<head>:6379`, `ray://<head>:10001`; implies
    `--ray`); `--workdir` must then be on a filesystem every node sees, at the same path"""
    train_flags: str = ""
    """extra flags of every trainer, as one string (e.g. `"--num-steps 50"` for tests)"""
    attack_flags: str = ""
    """extra flags of every attacker, as one string"""
    plot: bool = True
    """save `<workdir>/robustness.png` and `<workdir>/robustness_iqm.png` (matplotlib)"""
    from_results: str = ""
    """re-tabulate this finished report's `results.json` (e.g. `docs/robustness_report.json`)
    into `--workdir` without running anything; its methods, seeds and k replace the flags"""


def attack_folder(k):
    """The folder of a defender's attack with k adversaries (k = 1: `attack/`)."""
    return "attack" if k == 1 else f"attack_k{k}"


def env_agents(env_id, env_kwargs):
    """The env's possible agents (building it checks ``env_kwargs``)."""
    env = make_env(env_id, env_kwargs)()
    env.close()
    return list(env.possible_agents)


def attack_plan(args, agents, k):
    """The attack.py calls of one defender at k adversaries: (folder, victim/subset flags)."""
    table = TABLE1[args.env_id]
    if table["subsets"] == "all":
        victim = [] if table["victim"] == "agent" else ["--victim", "team"]
        return [(attack_folder(k), victim)]
    first, last = agents[:k], agents[-k:]
    return [(f"{attack_folder(k)}_{'+'.join(subset)}", ["--victim", "team", "--attacked", *subset])
            for subset in (first, last)]  # fmt: skip


def setup_of(args, method, seed):
    """What a (method, seed)'s summary depends on: a committed one is reused only if equal."""
    return {
        "env_id": args.env_id, "env_kwargs": json.loads(args.env_kwargs), "method": method,
        "seed": seed, "train_timesteps": args.train_timesteps,
        "attack_timesteps": args.attack_timesteps, "k": list(args.k),
        "eval_episodes": args.eval_episodes, "train_flags": args.train_flags,
        "attack_flags": args.attack_flags,
        "long_attack_timesteps": args.long_attack_timesteps if seed == args.seeds[0] else 0,
        "convergence_check": args.convergence_check and method in CHECKED,
    }  # fmt: skip


def committed(args, method, seed):
    """The summary in ``--results`` for this (method, seed), if any (``SystemExit`` if it was
    made with another set-up)."""
    if not args.results:
        return None
    path = Path(args.results) / f"{method}_seed{seed}.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved["setup"] != setup_of(args, method, seed):
        raise SystemExit(
            f"{path} was made with another set-up: {saved['setup']}; this report's is "
            f"{setup_of(args, method, seed)} (use another --results folder)"
        )
    return saved["summary"]


def train_and_attack(args, method, seed, stage, agents):
    """Train one defender and attack it (each step skipped if done); return its summary.
    ``agents`` are the env's possible agents, listed once by the caller: this runs on a thread,
    and building an MPE env there is not safe (mpe2 sets up pygame fonts in its constructor,
    and two threads doing so at once crash the process)."""
    name = f"{method}/seed{seed}"
    done = committed(args, method, seed)
    if done is not None:
        stage[name] = "done"
        say(f"skipped: {method} seed {seed} (its summary is in {args.results})")
        return done
    cwd = Path(args.workdir) / method / f"seed{seed}"
    stage[name] = "training"
    _, script, flags = TABLE1[args.env_id]["methods"][method]
    defender = train_or_resume(BASELINES / script, cwd, [
        "--env-id", args.env_id, "--env-kwargs", args.env_kwargs, "--seed", str(seed),
        "--exp-name", method, "--total-timesteps", str(args.train_timesteps), *flags,
        *shlex.split(args.train_flags),
    ])  # fmt: skip
    attacks = {}
    for k in args.k:
        stage[name] = f"attacking (k={k})"
        attacks[k] = {"scenarios": []}
        for folder, victim in attack_plan(args, agents, k):  # every call's scenarios together
            attacks[k]["scenarios"] += attack_or_resume(BASELINES / "attack.py", cwd, [
                "--defender", str(defender.resolve()), "--k", str(k), *victim, "--seed",
                str(seed), "--total-timesteps", str(args.attack_timesteps), "--eval-episodes",
                str(args.eval_episodes), *shlex.split(args.attack_flags),
            ], folder=folder)["scenarios"]  # fmt: skip
    summary = summarize(attacks)
    own = own_adversaries(defender, summary, args.k)
    if own:
        summary["own_adversaries"] = own
    first = args.k[0]
    if args.long_attack_timesteps and seed == args.seeds[0]:
        stage[name] = "long attack"
        worst = next(r for r in attacks[first]["scenarios"]
                     if r["scenario"] == summary[f"worst_scenario_k{first}"])  # fmt: skip
        kwargs = worst["threat"]["kwargs"]
        flags = [f for f in shlex.split(args.attack_flags) if f != "--stack-scenarios"]
        (long,) = attack_or_resume(BASELINES / "attack.py", cwd, [
            "--defender", str(defender.resolve()), "--k", str(kwargs["k"]), "--victim",
            kwargs["victim"] or "team", "--attacked", *kwargs["subset"], "--seed", str(seed),
            "--total-timesteps", str(args.long_attack_timesteps), "--eval-episodes",
            str(args.eval_episodes), *flags,
        ], folder="attack_long")["scenarios"]  # fmt: skip
        summary["long_attack"] = {
            "scenario": long["scenario"], "timesteps": args.long_attack_timesteps,
            "attacked": long["attacked"][0], "short": worst["attacked"][0],
            "plateau": plateau(long),
        }  # fmt: skip
    if args.convergence_check and method in CHECKED:
        stage[name] = "convergence check"
        attack_run = sorted((cwd / attack_folder(first)).glob("runs/*/attack_results.json"))[-1]
        run_logged([sys.executable, BASELINES / "convergence_check.py", "--attack",
                    attack_run.parent.resolve(), "--seed", str(seed), "--eval-episodes",
                    str(args.eval_episodes)], cwd, "convergence.log")  # fmt: skip
        check = json.loads(next(attack_run.parent.glob("convergence/*/result.json")).read_text())
        summary["convergence"] = {key: check[key] for key in (
            "victim", "scenario", "steps", "warmup_steps", "before", "after", "gain")}  # fmt: skip
    summary["compute_seconds"] = run_seconds(cwd)  # its runs' TensorBoard spans
    if args.results:
        path = Path(args.results) / f"{method}_seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"setup": setup_of(args, method, seed), "summary": summary}
        path.with_suffix(".tmp").write_text(json.dumps(record, indent=2))
        path.with_suffix(".tmp").replace(path)
    stage[name] = "done"
    say(f"done: {method} seed {seed}")
    return summary


def window(steps, values, back=0):
    """The values logged in a run's ``back``-th ``PLATEAU_WINDOW`` of steps, counted from its
    end (0: the last)."""
    end = steps[-1]
    low, high = end * (1 - (back + 1) * PLATEAU_WINDOW), end * (1 - back * PLATEAU_WINDOW)
    return values[(steps > low) & (steps <= high)]


def plateau(result):
    """The plateau check of one attacker from its training curve: the mean return of its
    adversaries over the last ``PLATEAU_WINDOW`` of its run and over the window before, the
    relative gain, and whether it is below ``PLATEAU_TOLERANCE`` (``None`` if not logged)."""
    attacker = Path(result["attacker"])
    run_dir = attacker.parent.parent  # runs/<run>/checkpoints/final.safetensors
    curves = []
    for j in result["threat"]["kwargs"]["subset"]:
        for tag in (stacked_agent_id(result["scenario"], adversary_id(j)), adversary_id(j)):
            steps, values = logged_scalars(run_dir, f"charts/episodic_return/{tag}")
            if len(values):
                curves.append((steps, values))
                break
    if not curves:
        return None
    steps, values = curves[0][0], np.mean([v for _, v in curves], axis=0)
    last, before = window(steps, values), window(steps, values, back=1)
    if not len(last) or not len(before):
        return None
    gain = (last.mean() - before.mean()) / max(abs(before.mean()), 1e-9)
    return {"last": float(last.mean()), "before": float(before.mean()), "relative_gain": float(gain),
            "plateaued": bool(gain < PLATEAU_TOLERANCE)}  # fmt: skip


def own_adversaries(defender, summary, ks):
    """The adversaries a defender trained against (``art.py``: ART's and Fixed-K's) beside the
    fresh attackers, for every attacked scenario it also trained against: the victim's mean
    return over the last ``PLATEAU_WINDOW`` of the defender's training under its own
    adversaries (``adversary/victim_return/<victim>/<subset>``, omega's batch) and under the
    fresh attacker over the last ``PLATEAU_WINDOW`` of the attacker's training (minus the
    plateau check's ``last``). Both are training-time returns, actions sampled; ``own`` above
    ``fresh`` means the defender trained against weaker adversaries than those that evaluate
    it. Empty for a defender without adversaries of its own (Naive)."""
    run_dir = Path(defender).parent.parent  # runs/<run>/checkpoints/final.safetensors
    own = {}
    for k in ks:
        for scenario, check in summary[f"plateau_k{k}"].items():
            parts = dict(part.split("=", 1) for part in scenario.split(",") if "=" in part)
            if check is None or set(parts) != {"victim", "attacked"}:
                continue
            tag = f"adversary/victim_return/{parts['victim']}/{parts['attacked']}"
            steps, values = logged_scalars(run_dir, tag)
            if not len(values):
                continue
            own[scenario] = {"own": float(window(steps, values).mean()), "fresh": -check["last"]}
    return own


# Environment steps of the whole report per CPU-second, as a fraction of the raw vector env's
# steps/s on the same machine: everything included (training at the App. D preset, attackers
# against frozen defenders, ART's extra omega episodes, evaluations). Measured with the quick
# preset (docs/robustness_report.md): 976K steps in 1,339 CPU-s where the raw env ran 3,976
# steps/s, 976,000 / 1,339 / 3,976 = 0.18. (The trainers alone: 0.21-0.23,
# docs/trainer_sps.md.)
REPORT_FRACTION = 0.18
# The same on the fast path (defenders and attackers on the batched env, attackers stacked):
# the episode-length study at T = 100 ran 4,000,000 steps in 41.7 min, one job, where the raw
# env ran 3,505 steps/s: 4e6 / 2,502 / 3,505 = 0.46.
REPORT_FRACTION_BATCHED = 0.46


def raw_env_sps(env_id, env_kwargs, seconds=2.0):
    """Steps/s of the bare vector env (8 copies, random actions) on this machine, now."""
    with make_vector_env(make_env(env_id, env_kwargs), 8) as envs:
        envs.reset(seed=0)
        rng, space = np.random.default_rng(0), envs.single_action_space
        shape = (8, envs.num_agents, *space.shape)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:  # Discrete (Spread, Pursuit) or Box (Ant)
            if isinstance(space, gymnasium.spaces.Discrete):
                envs.step(rng.integers(0, space.n, size=shape))
            else:
                envs.step(rng.uniform(space.low, space.high, size=shape).astype(space.dtype))
            steps += 8
    return steps / (time.perf_counter() - start)


def summarize(attacks):
    """One defender's attack results per k -> the worst-off victim's clean return (the team's,
    per subset K: the agents outside K), and per k
    the worst attacked return, its scenario, every scenario's return and its plateau check."""
    first = next(iter(attacks.values()))
    clean = {}  # victim (the team: per subset K, the agents outside K) -> its clean return
    for r in first["scenarios"]:
        victim = r["victims"][0] if r["victims"] else r["scenario"]
        clean[victim] = r["clean"][0]
    summary = {"clean_min": min(clean.values()), "clean_mean": float(np.mean(list(clean.values())))}
    for k, results in attacks.items():
        worst = min(results["scenarios"], key=lambda r: r["attacked"][0])
        summary[f"attacked_min_k{k}"] = worst["attacked"][0]
        summary[f"worst_scenario_k{k}"] = worst["scenario"]
        summary[f"scenarios_k{k}"] = {r["scenario"]: r["attacked"][0] for r in results["scenarios"]}
        summary[f"plateau_k{k}"] = {r["scenario"]: plateau(r) for r in results["scenarios"]}
    return summary


def upgrade(run):
    """A summary of an earlier version of this script (one k = 1, unsuffixed keys) in
    today's keys."""
    if "attacked_min" not in run:
        return run
    return {"clean_min": run["clean_min"], "clean_mean": run["clean_mean"],
            "attacked_min_k1": run["attacked_min"], "worst_scenario_k1": run["worst_scenario"],
            "scenarios_k1": run["scenarios"]}  # fmt: skip


def fmt(m, se):
    return f"{m:.1f}" if np.isnan(se) else f"{m:.1f} ± {se:.1f}"


def fmt_iqm(iqm, low, high):
    return f"{iqm:.1f}" if np.isnan(low) else f"{iqm:.1f} [{low:.1f}, {high:.1f}]"


def paper_cell(env_id, method, k):
    """Table 1's number for this method with k adversaries (k = 0: no adversary)."""
    clean, attacked = TABLE1[env_id]["paper"][method]
    cell = clean if k == 0 else attacked.get(k)
    return "–" if cell is None else fmt(*cell)


def adversaries(k):
    return f"{k} adversar{'y' if k == 1 else 'ies'}"


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.preset != "none":  # the preset replaces the defaults; flags given still win
        preset = PRESETS[args.preset]
        if args.preset == "paper" and args.env_id != SPREAD:
            preset = PAPER_PRESETS[args.env_id]
        default = dataclasses.replace(Args(), preset=args.preset, env_id=args.env_id, **preset)
        args = tyro.cli(Args, default=default)
    finished = None
    if args.from_results:  # a finished report: its runs and set-up, nothing is run
        finished = json.loads(Path(args.from_results).read_text())
        fields = ("env_id", "methods", "seeds", "k", "train_timesteps", "attack_timesteps",
                  "eval_episodes", "env_kwargs", "long_attack_timesteps", "convergence_check")  # fmt: skip
        setup = {f: finished["args"][f] for f in fields if f in finished["args"]}
        setup["k"] = setup["k"] if isinstance(setup["k"], list) else [setup["k"]]
        args = dataclasses.replace(args, **{f: tuple(v) if isinstance(v, list) else v
                                            for f, v in setup.items()})  # fmt: skip
    TABLE = TABLE1[args.env_id]
    METHODS = TABLE["methods"]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown} for {args.env_id}; known: {list(METHODS)}")
    try:
        env_kwargs = json.loads(args.env_kwargs)
        agents = env_agents(args.env_id, env_kwargs)
    except (ValueError, TypeError) as exc:
        raise SystemExit(
            f"--env-kwargs must be a JSON dict of the env's arguments: {exc}"
        ) from None
    n = len(agents)
    if not args.k or any(not 1 <= k < n for k in args.k) or len(set(args.k)) != len(args.k):
        raise SystemExit(
            f"--k must be distinct numbers of adversaries in [1, {n - 1}]; got {args.k}"
        )
    if args.convergence_check and args.env_id != SPREAD:
        raise SystemExit(
            f"--convergence-check runs on {SPREAD} (a per-agent victim); not on {args.env_id}"
        )
    if TABLE["victim"] == "agent":  # every victim x every subset of exactly k others
        n_attacks = {k: n * math.comb(n - 1, k) for k in args.k}
        whom = "every victim x every subset of"
    elif TABLE["subsets"] == "all":  # the team, every subset of exactly k agents
        n_attacks = {k: math.comb(n, k) for k in args.k}
        whom = "the benign team; every subset of"
    else:  # the team, the first and the last k agents
        n_attacks = {k: 2 for k in args.k}
        whom = "the benign team; the first and the last"
    per_defender = sum(n_attacks[k] * args.attack_timesteps for k in args.k)
    print(
        f"robustness report on {args.env_id} {env_kwargs or ''}: methods {list(args.methods)}, "
        f"seeds {list(args.seeds)}; each defender trained for {args.train_timesteps:,} steps, "
        f"then attacked by "
        + " and ".join(f"{n_attacks[k]} fresh PPO attackers ({whom} k={k})" for k in args.k)
        + f" of {args.attack_timesteps:,} steps each; {args.eval_episodes} evaluation episodes; "
        f"{args.jobs} jobs in parallel; runs in {args.workdir}/",
        flush=True,
    )  # fmt: skip
    start = time.time()
    # seed by seed: a grid stopped early has every method of its first seeds
    jobs = [(m, s) for s in args.seeds for m in args.methods]
    if finished is not None:
        print(f"re-tabulating {args.from_results} (nothing is run)", flush=True)
        per_run = {f"{m}/seed{s}": upgrade(finished["runs"][f"{m}/seed{s}"]) for m, s in jobs}
    else:
        extra = args.long_attack_timesteps * len(args.methods) + sum(
            0.05 * args.train_timesteps for m in args.methods if m in CHECKED
            for _ in args.seeds if args.convergence_check
        )  # fmt: skip
        total = int(len(jobs) * (args.train_timesteps + per_defender) + extra)
        parallel = min(args.jobs, len(jobs), os.cpu_count() or 1)
        raw = raw_env_sps(args.env_id, env_kwargs)
        batched = all("batched" in shlex.split(f) for f in (args.train_flags, args.attack_flags))
        fraction = REPORT_FRACTION_BATCHED if batched else REPORT_FRACTION
        print(
            f"estimate: {total:,} environment steps; this machine steps the raw env at "
            f"{raw:,.0f} steps/s now, a report runs at ~{fraction} of that per core "
            f"{'on the batched path ' if batched else ''}(docs/robustness_report.md"
            f"{'' if args.env_id == SPREAD else '; measured on Independent Spread'}), "
            f"{parallel} at a time: about {total / (raw * fraction * parallel) / 60:.0f} min "
            f"(progress every 30 s)",
            flush=True,
        )
        names = [f"{m}/seed{s}" for m, s in jobs]
        with Monitor(args.workdir, total, names) as stage:  # threads, or one Ray task per job
            done = run_jobs(lambda job: train_and_attack(args, *job, stage, agents), jobs,
                            workers=args.jobs, ray=args.ray or bool(args.ray_address),
                            ray_address=args.ray_address or None, names=names, stage=stage)  # fmt: skip
        per_run = {f"{m}/seed{s}": r for (m, s), r in zip(jobs, done, strict=True)}

    # per method: mean ± SE and the IQM [stratified bootstrap 95 % CI] over seeds
    keys = ["clean_min", *(f"attacked_min_k{k}" for k in args.k)]
    rows, table = {}, []
    for m in args.methods:
        runs = [per_run[f"{m}/seed{s}"] for s in args.seeds]
        rows[m] = {}
        for key in keys:
            rows[m][key] = mean_se([r[key] for r in runs])
            rows[m][f"{key}_iqm"] = iqm_ci([r[key] for r in runs])
        cells = [f"{fmt(*rows[m][key])} | {fmt_iqm(*rows[m][f'{key}_iqm'])}" for key in keys]
        paper = [paper_cell(args.env_id, m, k) for k in (0, *args.k)]
        table.append(f"| {METHODS[m][0]} | {' | '.join(cells)} | {' | '.join(paper)} |")
    team = None if TABLE["victim"] == "agent" else "team"
    worst = "worst victim" if team is None else "team, worst K"
    attacked = "".join(
        f" under attack ({worst}, k={k}) | under attack: IQM [95 % CI] |" for k in args.k
    )
    paper = "".join(f" paper: {adversaries(k)} |" for k in args.k)
    columns = 3 + 2 * len(args.k) + len(args.k)
    header = (
        f"| method | clean ({'worst agent' if team is None else 'team, worst K'}) | clean: IQM [95 % CI] |{attacked} paper: no adversary "
        f"|{paper}\n|{'---|' * (columns + 1)}"
    )
    report = "\n".join([header, *table])

    # the attackers' plateau check, the long attacks and the convergence check
    extra_tables = []
    checks = [p for run in per_run.values() for k in args.k
              for p in run.get(f"plateau_k{k}", {}).values() if p is not None]  # fmt: skip
    if checks:
        lines = ["| method | k | attackers plateaued | relative gain over the last window: "
                 "median (max) |", "|---|---|---|---|"]  # fmt: skip
        for m in args.methods:
            for k in args.k:
                ps = [p for s in args.seeds
                      for p in per_run[f"{m}/seed{s}"].get(f"plateau_k{k}", {}).values() if p]  # fmt: skip
                if ps:
                    gains = [100 * p["relative_gain"] for p in ps]
                    lines.append(
                        f"| {METHODS[m][0]} | {k} | {sum(p['plateaued'] for p in ps)} of "
                        f"{len(ps)} | {np.median(gains):+.1f} % ({max(gains):+.1f} %) |"
                    )
        extra_tables.append("\n".join(lines))
    pairs = {m: [p for s in args.seeds
                 for p in per_run[f"{m}/seed{s}"].get("own_adversaries", {}).values()]
             for m in args.methods}  # fmt: skip
    if any(pairs.values()):
        lines = ["| method | scenarios it trained against (all seeds) | victim's return under its "
                 "own adversaries | under the fresh attackers | own - fresh: mean ± SE (min, max) "
                 "|", "|---|---|---|---|---|"]  # fmt: skip
        for m, ps in pairs.items():
            if ps:
                gaps = [p["own"] - p["fresh"] for p in ps]
                rows[m]["own_adversary_gap"] = mean_se(gaps)
                lines.append(
                    f"| {METHODS[m][0]} | {len(ps)} | {np.mean([p['own'] for p in ps]):.1f} | "
                    f"{np.mean([p['fresh'] for p in ps]):.1f} | {fmt(*rows[m]['own_adversary_gap'])} "
                    f"({min(gaps):+.1f}, {max(gaps):+.1f}) |"
                )
        extra_tables.append("\n".join(lines))
    longs = {m: per_run[f"{m}/seed{args.seeds[0]}"].get("long_attack") for m in args.methods}
    if any(longs.values()):
        lines = [
            f"| method (seed {args.seeds[0]}) | worst scenario | {args.attack_timesteps:,} "
            f"steps | {args.long_attack_timesteps:,} steps |",
            "|---|---|---|---|",
        ]
        for m, r in longs.items():
            if r:
                lines.append(f"| {METHODS[m][0]} | `{r['scenario']}` | {r['short']:.1f} | "
                             f"{r['attacked']:.1f} |")  # fmt: skip
        extra_tables.append("\n".join(lines))
    checked = [m for m in args.methods
               if all("convergence" in per_run[f"{m}/seed{s}"] for s in args.seeds)]  # fmt: skip
    if checked:
        lines = ["| method | victim's gain after 5 % more training: mean ± SE over seeds | "
                 "per seed (± paired SE over episodes) | paper (Fig. 5) |", "|---|---|---|---|"]  # fmt: skip
        for m in checked:
            gains = [per_run[f"{m}/seed{s}"]["convergence"]["gain"] for s in args.seeds]
            rows[m]["convergence_gain"] = mean_se([g[0] for g in gains])
            lines.append(
                f"| {METHODS[m][0]} | {fmt(*rows[m]['convergence_gain'])} | "
                + ", ".join(f"{g[0]:+.1f} ± {g[1]:.1f}" for g in gains)
                + " | ≈ 0 |"
            )
        extra_tables.append("\n".join(lines))
    minutes = (time.time() - start) / 60
    seconds = [r["compute_seconds"] for r in per_run.values() if "compute_seconds" in r]
    compute = (
        f" Compute: {sum(seconds) / 3600:.1f} core-hours, from the TensorBoard spans of the "
        f"runs of {len(seconds)} of the {len(per_run)} (method, seed) jobs (one core each: "
        f"about {sum(seconds) / 3600 / args.jobs:.1f} h of wall time at --jobs {args.jobs})."
        if seconds
        else ""
    )
    budget = (
        f"{len(args.seeds)} seed(s) {list(args.seeds)}; defenders {args.train_timesteps:,} steps, "
        f"attackers {args.attack_timesteps:,} steps x "
        + " + ".join(f"{n_attacks[k]} (k={k})" for k in args.k)
        + f" per defender, {args.eval_episodes} evaluation episodes; mean ± standard error over "
        f"seeds, and IQM [stratified bootstrap 95 % CI, {IQM_REPS} resamples of the seeds]"
        + (f"; env {env_kwargs}" if env_kwargs else "")
    )
    body = "\n\n".join([report, *extra_tables])
    print(
        f"\n{body}\n\nBudget: {budget}. Wall time {minutes:.1f} min (finished steps "
        f"skipped).{compute}"
    )
    if args.preset == "quick" and finished is None:
        print(
            "This is a small budget for a quarter-hour run, not the paper's: the paper-scale "
            "reproduction (800K steps, 3 seeds, fresh attackers) is in docs/robustness_report.md."
        )
    out = Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"env_id": args.env_id, "args": vars(args), "budget": budget, "rows": rows,
               "runs": per_run, "paper": {m: [c, {str(k): v for k, v in a.items()}]
                                          for m, (c, a) in TABLE["paper"].items()}}  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(body + f"\n\nBudget: {budget}.{compute}\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = np.arange(len(args.methods))
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            means = [rows[m][key][0] for m in args.methods]
            errs = [0 if np.isnan(rows[m][key][1]) else rows[m][key][1] for m in args.methods]
            label = "clean" if key == "clean_min" else f"k={key.rsplit('k', 1)[1]}"
            ax.bar(x + (i - (len(keys) - 1) / 2) * width, means, width, yerr=errs, label=label,
                   capsize=3)  # fmt: skip
        ax.set_xticks(x, [METHODS[m][0] for m in args.methods])
        ax.set_ylabel("return of the worst-off agent" if team is None else "the team's return")
        ax.set_title(f"{args.env_id}, fresh attackers")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "robustness.png", dpi=120)
        # every summary side by side: mean ± SE (bar: mean - SE to mean + SE) and IQM [CI]
        estimates = {}
        for m in args.methods:
            estimates[METHODS[m][0]] = [
                t
                for key in keys
                for t in (
                    (rows[m][key][0], rows[m][key][0] - rows[m][key][1],
                     rows[m][key][0] + rows[m][key][1]),
                    rows[m][f"{key}_iqm"],
                )
            ]  # fmt: skip
        names = [("clean" if key == "clean_min" else f"k={key.rsplit('k', 1)[1]}") for key in keys]
        plot_intervals(
            out / "robustness_iqm.png", estimates,
            [f"{name}: {what}" for name in names for what in ("mean ± SE", "IQM, 95 % CI")],
            xlabel=f"{'return of the worst-off agent' if team is None else 'the team return'} "
            f"({len(args.seeds)} seeds)",
            sharex=[i for i in range(len(keys)) for _ in range(2)],
        )  # fmt: skip
        print(f"plots: {out / 'robustness.png'}, {out / 'robustness_iqm.png'}")
    print(f"results: {out / 'results.json'}, {out / 'report.md'}")
