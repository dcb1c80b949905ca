# docs and experiment results can be found at docs/robustness_report.md
"""Train defenders, attack each with fresh attackers, report clean vs. worst-case return.

The evaluation protocol of Nika et al. (TMLR 2024), Sec. 5.3 and Table 1, end to end, for
Independent Spread: every method is trained with its trainer (``ippo.py`` for Naive,
``art.py`` for Fixed-K and ART), one run per seed; then ``attack.py`` trains a new PPO
adversary from scratch against the frozen defenders for every victim i and every subset K of
k other agents, and the table reports, per method, the worst case over victims and subsets
(mean +- standard error over seeds, and the interquartile mean with its stratified bootstrap
95 % confidence interval, Agarwal et al., NeurIPS 2021) next to the clean return of the
worst-off agent.

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
"""

import dataclasses
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from adv_wrappers.train.envs import make_env
from adv_wrappers.train.fanout import run_jobs
from adv_wrappers.train.jobs import (
    IQM_REPS,
    Monitor,
    attack_or_resume,
    iqm_ci,
    mean_se,
    plot_intervals,
    train_or_resume,
)
from adv_wrappers.vector import make_vector_env

BASELINES = Path(__file__).resolve().parent
ENV_ID = "adv/independent_spread-v0"

# method -> (label, trainer, flags); Fixed-K's K for agent i is {agent_{i+1 mod 3}}
METHODS = {
    "naive": ("Naive", "ippo.py", []),
    "fixed_k1": ("Fixed-K(k=1)", "art.py", ["--k", "1", "--fixed-subset", "agent_1"]),
    "art_k1": ("ART(k=1)", "art.py", ["--k", "1"]),
    "art_k2": ("ART(k=2)", "art.py", ["--k", "2"]),
}
# Nika et al. (TMLR 2024), Table 1, Independent Spread: (no adversary, 1 adversary), mean and
# standard error over 5 seeds.
PAPER_TABLE1 = {
    "naive": ((-34.0, 1.9), (-493.2, 11.2)),
    "fixed_k1": ((-142.8, 24.5), (-271.2, 31.0)),
    "art_k1": ((-123.4, 11.7), (-190.2, 13.3)),
    "art_k2": ((-148.0, 15.1), (-201.4, 11.7)),
}
PRESETS = {
    "quick": dict(
        methods=("naive", "art_k1"),
        seeds=(1,),
        train_timesteps=200_000,
        attack_timesteps=48_000,
        eval_episodes=50,
    ),  # fmt: skip
    "paper": dict(
        methods=tuple(METHODS),
        seeds=(1, 2, 3),
        train_timesteps=800_000,
        attack_timesteps=800_000,
        eval_episodes=100,
    ),  # fmt: skip
}


@dataclass
class Args:
    preset: Literal["quick", "paper", "none"] = "quick"
    """`quick` (the README's main job, ~22 CPU-minutes), `paper` (Table 1's protocol) or `none`; a
    preset replaces the defaults of methods, seeds, budgets and episodes (flags still win)"""
    workdir: str = "runs/robustness_report"
    """where every run goes (`<workdir>/<method>/seed<s>/`); finished steps are skipped"""
    methods: tuple[str, ...] = ("naive", "art_k1")
    """the defenses to train (`naive`, `fixed_k1`, `art_k1`, `art_k2`)"""
    seeds: tuple[int, ...] = (1,)
    """one defender (and its attackers) per seed"""
    train_timesteps: int = 200_000
    """environment steps of every defender's training"""
    attack_timesteps: int = 48_000
    """environment steps of every attacker (one per victim and subset)"""
    k: int = 1
    """the number of agents every attacker corrupts"""
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


def train_and_attack(args, method, seed, stage):
    """Train one defender and attack it (each step skipped if done); return its results."""
    cwd = Path(args.workdir) / method / f"seed{seed}"
    stage[f"{method}/seed{seed}"] = "training"
    _, script, flags = METHODS[method]
    defender = train_or_resume(BASELINES / script, cwd, [
        "--env-id", ENV_ID, "--seed", str(seed), "--exp-name", method,
        "--total-timesteps", str(args.train_timesteps), *flags, *shlex.split(args.train_flags),
    ])  # fmt: skip
    stage[f"{method}/seed{seed}"] = "attacking"
    results = attack_or_resume(BASELINES / "attack.py", cwd, [
        "--defender", str(defender.resolve()), "--k", str(args.k), "--seed", str(seed),
        "--total-timesteps", str(args.attack_timesteps), "--eval-episodes",
        str(args.eval_episodes), *shlex.split(args.attack_flags),
    ])  # fmt: skip
    stage[f"{method}/seed{seed}"] = "done"
    print(f"done: {method} seed {seed}", flush=True)
    return results


# Environment steps of the whole report per CPU-second, as a fraction of the raw vector env's
# steps/s on the same machine: everything included (training at the App. D preset, attackers
# against frozen defenders, ART's extra omega episodes, evaluations). Measured with the quick
# preset (docs/robustness_report.md): 976K steps in 1,339 CPU-s where the raw env ran 3,976
# steps/s, 976,000 / 1,339 / 3,976 = 0.18. (The trainers alone: 0.21-0.23,
# docs/trainer_sps.md.)
REPORT_FRACTION = 0.18


def raw_env_sps(seconds=2.0):
    """Steps/s of the bare vector env (8 copies, random actions) on this machine, now."""
    with make_vector_env(make_env(ENV_ID), 8) as envs:
        envs.reset(seed=0)
        rng = np.random.default_rng(0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            envs.step(rng.integers(0, 5, size=(8, envs.num_agents)))
            steps += 8
    return steps / (time.perf_counter() - start)


def summarize(results):
    """One defender's attack results -> worst-off agent's clean return, worst attacked one."""
    clean = {}
    for r in results["scenarios"]:
        (victim,) = r["victims"]
        clean[victim] = r["clean"][0]
    worst = min(results["scenarios"], key=lambda r: r["attacked"][0])
    return {
        "clean_min": min(clean.values()),
        "clean_mean": float(np.mean(list(clean.values()))),
        "attacked_min": worst["attacked"][0],
        "worst_scenario": worst["scenario"],
        "scenarios": {r["scenario"]: r["attacked"][0] for r in results["scenarios"]},
    }


def fmt(m, se):
    return f"{m:.1f}" if np.isnan(se) else f"{m:.1f} ± {se:.1f}"


def fmt_iqm(iqm, low, high):
    return f"{iqm:.1f}" if np.isnan(low) else f"{iqm:.1f} [{low:.1f}, {high:.1f}]"


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.preset != "none":  # the preset replaces the defaults; flags given still win
        default = dataclasses.replace(Args(), preset=args.preset, **PRESETS[args.preset])
        args = tyro.cli(Args, default=default)
    finished = None
    if args.from_results:  # a finished report: its runs and set-up, nothing is run
        finished = json.loads(Path(args.from_results).read_text())
        setup = {f: finished["args"][f] for f in ("methods", "seeds", "k", "train_timesteps",
                                                  "attack_timesteps", "eval_episodes")}  # fmt: skip
        args = dataclasses.replace(args, **{f: tuple(v) if isinstance(v, list) else v
                                            for f, v in setup.items()})  # fmt: skip
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {list(METHODS)}")
    n_attacks = 3 * 2 if args.k == 1 else 3
    print(
        f"robustness report on {ENV_ID}: methods {list(args.methods)}, seeds {list(args.seeds)}; "
        f"each defender trained for {args.train_timesteps:,} steps, then attacked by "
        f"{n_attacks} fresh PPO attackers (every victim x every subset of k={args.k}) of "
        f"{args.attack_timesteps:,} steps each; {args.eval_episodes} evaluation episodes; "
        f"{args.jobs} jobs in parallel; runs in {args.workdir}/",
        flush=True,
    )
    start = time.time()
    jobs = [(m, s) for m in args.methods for s in args.seeds]
    if finished is not None:
        print(f"re-tabulating {args.from_results} (nothing is run)", flush=True)
        per_run = {f"{m}/seed{s}": finished["runs"][f"{m}/seed{s}"] for m, s in jobs}
    else:
        total = len(jobs) * (args.train_timesteps + n_attacks * args.attack_timesteps)
        parallel = min(args.jobs, len(jobs), os.cpu_count() or 1)
        raw = raw_env_sps()
        print(
            f"estimate: {total:,} environment steps; this machine steps the raw env at "
            f"{raw:,.0f} steps/s now, a report runs at ~{REPORT_FRACTION} of that per core "
            f"(docs/robustness_report.md), {parallel} at a time: about "
            f"{total / (raw * REPORT_FRACTION * parallel) / 60:.0f} min (progress every 30 s)",
            flush=True,
        )
        names = [f"{m}/seed{s}" for m, s in jobs]
        with Monitor(args.workdir, total, names) as stage:  # threads, or one Ray task per job
            done = run_jobs(lambda job: train_and_attack(args, *job, stage), jobs,
                            workers=args.jobs, ray=args.ray or bool(args.ray_address),
                            ray_address=args.ray_address or None, names=names, stage=stage)  # fmt: skip
        per_run = {f"{m}/seed{s}": summarize(r) for (m, s), r in zip(jobs, done, strict=True)}

    # per method: mean ± SE and the IQM [stratified bootstrap 95 % CI] over seeds
    rows, table = {}, []
    for m in args.methods:
        runs = [per_run[f"{m}/seed{s}"] for s in args.seeds]
        rows[m] = {}
        for key in ("clean_min", "attacked_min"):
            rows[m][key] = mean_se([r[key] for r in runs])
            rows[m][f"{key}_iqm"] = iqm_ci([r[key] for r in runs])
        paper = PAPER_TABLE1[m] if args.k == 1 else None
        table.append(
            f"| {METHODS[m][0]} | {fmt(*rows[m]['clean_min'])} | "
            f"{fmt_iqm(*rows[m]['clean_min_iqm'])} | {fmt(*rows[m]['attacked_min'])} | "
            f"{fmt_iqm(*rows[m]['attacked_min_iqm'])} | "
            + (f"{fmt(*paper[0])} | {fmt(*paper[1])} |" if paper else "– | – |")
        )
    header = (
        f"| method | clean (worst agent) | clean: IQM [95 % CI] | under attack (worst victim, "
        f"k={args.k}) | under attack: IQM [95 % CI] | paper: no adversary | paper: 1 adversary "
        "|\n|---|---|---|---|---|---|---|"
    )
    report = "\n".join([header, *table])
    minutes = (time.time() - start) / 60
    budget = (
        f"{len(args.seeds)} seed(s) {list(args.seeds)}; defenders {args.train_timesteps:,} steps, "
        f"attackers {args.attack_timesteps:,} steps x {n_attacks} per defender, "
        f"{args.eval_episodes} evaluation episodes; mean ± standard error over seeds, and "
        f"IQM [stratified bootstrap 95 % CI, {IQM_REPS} resamples of the seeds]"
    )
    print(f"\n{report}\n\nBudget: {budget}. Wall time {minutes:.1f} min (finished steps skipped).")
    if args.preset == "quick" and finished is None:
        print(
            "This is a small budget for a quarter-hour run, not the paper's: the paper-scale "
            "reproduction (800K steps, 3 seeds, fresh attackers) is in docs/robustness_report.md."
        )
    out = Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"env_id": ENV_ID, "args": vars(args), "budget": budget, "rows": rows,
               "runs": per_run, "paper": PAPER_TABLE1}  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(report + f"\n\nBudget: {budget}.\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = np.arange(len(args.methods))
        for offset, key, label in (
            (-0.2, "clean_min", "clean"),
            (0.2, "attacked_min", "under attack"),
        ):
            means = [rows[m][key][0] for m in args.methods]
            errs = [0 if np.isnan(rows[m][key][1]) else rows[m][key][1] for m in args.methods]
            ax.bar(x + offset, means, 0.4, yerr=errs, label=label, capsize=3)
        ax.set_xticks(x, [METHODS[m][0] for m in args.methods])
        ax.set_ylabel("return of the worst-off agent")
        ax.set_title(f"{ENV_ID}, fresh attackers with k={args.k}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "robustness.png", dpi=120)
        # both summaries side by side: mean ± SE (bar: mean - SE to mean + SE) and IQM [CI]
        estimates = {}
        for m in args.methods:
            estimates[METHODS[m][0]] = [
                t
                for key in ("clean_min", "attacked_min")
                for t in (
                    (rows[m][key][0], rows[m][key][0] - rows[m][key][1],
                     rows[m][key][0] + rows[m][key][1]),
                    rows[m][f"{key}_iqm"],
                )
            ]  # fmt: skip
        plot_intervals(
            out / "robustness_iqm.png", estimates,
            ["clean: mean ± SE", "clean: IQM, 95 % CI", "attacked: mean ± SE",
             "attacked: IQM, 95 % CI"],
            xlabel=f"return of the worst-off agent ({len(args.seeds)} seeds)", sharex=[0, 0, 1, 1],
        )  # fmt: skip
        print(f"plots: {out / 'robustness.png'}, {out / 'robustness_iqm.png'}")
    print(f"results: {out / 'results.json'}, {out / 'report.md'}")
