# docs and experiment results can be found at docs/byzantine_report.md
"""Li et al.'s evaluation of Byzantine-robust defenses, end to end (their Figs. 4 and 6).

Li et al. (ICLR 2024), "Byzantine Robust Cooperative MARL as a Bayesian Game", Sec. 4: every
method is trained with its trainer (``mappo.py`` for MAPPO, ``eir_mappo.py`` for EAR-MAPPO,
EIR-MAPPO and True Type), one run per seed. Then every trained team is attacked through
each of its N agents in turn, with that agent Byzantine (theta = e_i) in *every* evaluation
episode, by four threats:

1. **non-oblivious**: a fresh PPO adversary trained from scratch against the frozen team
   (``attack.py --threat byzantine_v0``, one scenario per agent);
2. **random**: the Byzantine agent acts uniformly at random;
3. **observation noise** at epsilon in ``--epsilons``: no agent is Byzantine, but agent i's
   observation is perturbed inside the l-inf ball by Lin et al.'s targeted attack
   (``adv_wrappers.attacks.TargetedPGD``), pulling it toward the action the trained
   adversary of agent i would take;
4. **transfer**: the adversary trained against one method's team attacks another method's
   team of the same seed (a matrix: rows are the adversary's source, columns the target).

On the XNOR/XOR toy game a fifth column is exact in spirit: the myopic worst-case ally
(``adv_envs.xnor_xor_exact.MyopicByzantineAlly``), which knows the defender's policy.

Every policy samples its actions (seeded): the robust equilibrium is mixed. Each cell is the
team's mean return over ``--eval-episodes`` episodes per (seed, agent), summarized as the
mean and 95 % confidence interval over the seeds x N attacks, as the paper plots them, and
in a second table as the interquartile mean with its stratified bootstrap 95 % CI (Agarwal et
al., NeurIPS 2021: seeds resampled within each attacked agent).
Every step is a subprocess in ``<workdir>/<method>/seed<s>/`` skipped once its result
exists, so an interrupted report continues where it stopped; the evaluations are cached in
``<workdir>/<method>/seed<s>/eval.json``. ``--from-results`` re-tabulates a finished
report's ``results.json`` (e.g. ``docs/byzantine_toy.json``) without running anything.
The (method, seed) jobs go ``--jobs`` at a time on threads, or with ``--ray`` as Ray tasks on
a local instance (``--ray-address`` on an existing cluster; ``adv_wrappers.train.fanout``,
the ``ray`` extra).
"""

import dataclasses
import json
import multiprocessing
import os
import shlex
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from adv_envs.xnor_xor_exact import MyopicByzantineAlly
from adv_wrappers import byzantine_v0, state_perturbation_v0
from adv_wrappers.attacks import TargetedPGD
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.envs import evaluate, make_env, victims_return
from adv_wrappers.train.fanout import run_jobs
from adv_wrappers.train.jobs import (
    IQM_REPS,
    Monitor,
    attack_or_resume,
    iqm_ci,
    mean_ci95,
    plot_intervals,
    train_or_resume,
)

BASELINES = Path(__file__).resolve().parent

# method -> (label, trainer, flags)
METHODS = {
    "mappo": ("MAPPO", "mappo.py", []),
    "ear_mappo": ("EAR-MAPPO", "eir_mappo.py", ["--belief", "none"]),
    "eir_mappo": ("EIR-MAPPO", "eir_mappo.py", []),
    "true_type": ("True Type", "eir_mappo.py", ["--belief", "none", "--true-type"]),
}
# The env every method trains on (the toy game's belief needs the history in the observation)
ENV_KWARGS = {
    "adv/xnor_xor-v0": {"observe_history": True},
    "adv/lbf-v0": {"n_food": 3},  # 12x12-4p-3f-c (Sec. 4 and the authors' code)
    "adv/smax_4m_vs_3m-v0": {"reward": "smac", "max_cycles": 60},  # SMAC's scale and limit
}
# Li et al.'s text: the best a team can guarantee under attack (Sec. 4.1: "50 for Toy, 1.0 for
# LBF, 20 for SMAC"), what EIR-MAPPO comes close to; its figures give no other numbers in text.
PAPER_BEST_UNDER_ATTACK = {"adv/xnor_xor-v0": 50.0, "adv/lbf-v0": 1.0, "adv/smax_4m_vs_3m-v0": 20.0}
# Hyperparameters. "paper": the trainers' presets, Li et al.'s App. C.2 tables (learning rates
# 5e-5 to 5e-4, one minibatch of 10-20 x 200 steps, 5 epochs, clip 0.05; the fresh adversary of
# Tables 3, 6 and 9 likewise), which need far more steps than this machine affords (the authors'
# code defaults to 40M per team). "fast": the same networks with 8 x 100-step rollouts in 4
# minibatches, 10 epochs, clip 0.2, learning rates 1e-3 (team) and 3e-3 (adversaries, belief),
# the robust agents updated every 2nd rollout, entropy 0.05 (docs/byzantine_report.md, where
# the choice is measured).
FAST = {
    "common": "--num-envs 8 --num-steps 100 --minibatch-size 200 --update-epochs 10 "
    "--clip-coef 0.2 --learning-rate 1e-3 --ent-coef 0.05",
    "eir_mappo.py": "--adversary-lr 3e-3 --belief-lr 3e-3 --adversary-interval 2",
    "attack.py": "--num-envs 8 --num-steps 100 --minibatch-size 200 --update-epochs 10 "
    "--clip-coef 0.2 --learning-rate 3e-3 --no-anneal-lr --max-grad-norm 10 "
    "--hidden-sizes 128 128",
}
# the paper's fresh adversary (Tables 3 and 9; ippo.py has no Huber loss or PopArt)
PAPER_ATTACK = {
    "adv/xnor_xor-v0": "--num-envs 10 --num-steps 200 --minibatch-size 2000 --update-epochs 5 "
    "--clip-coef 0.05 --max-grad-norm 10 --hidden-sizes 128 128 --no-anneal-lr "
    "--learning-rate 5e-5",
    "adv/lbf-v0": "--num-envs 20 --num-steps 200 --minibatch-size 4000 --update-epochs 5 "
    "--clip-coef 0.05 --max-grad-norm 10 --hidden-sizes 128 128 --no-anneal-lr "
    "--learning-rate 5e-4",
    "adv/smax_4m_vs_3m-v0": "--num-envs 20 --num-steps 200 --minibatch-size 4000 "
    "--update-epochs 5 --clip-coef 0.05 --max-grad-norm 10 --hidden-sizes 128 128 "
    "--no-anneal-lr --learning-rate 5e-4",
}
PRESETS = {
    "quick": dict(seeds=(1,), train_timesteps=600_000, attack_timesteps=200_000, eval_episodes=20),
    "paper": dict(seeds=(1, 2, 3, 4, 5), train_timesteps=4_000_000, attack_timesteps=1_000_000,
                  eval_episodes=32),
}  # fmt: skip


@dataclass
class Args:
    env_id: str = "adv/xnor_xor-v0"
    """the environment (Li et al.: `adv/xnor_xor-v0`, `adv/lbf-v0`, `adv/smax_4m_vs_3m-v0`)"""
    hyperparameters: Literal["fast", "paper"] = "fast"
    """`paper`: Li et al.'s tables (the trainers' presets); `fast`: what this machine's budgets
    need (see `FAST` and docs/byzantine_report.md)"""
    preset: Literal["quick", "paper", "none"] = "quick"
    """`quick` (1 seed, small budgets), `paper` (5 seeds) or `none`; a preset replaces the
    defaults of seeds, budgets and episodes (flags still win)"""
    workdir: str = "runs/byzantine_report"
    """where every run goes (`<workdir>/<method>/seed<s>/`); finished steps are skipped"""
    methods: tuple[str, ...] = tuple(METHODS)
    """the defenses (`mappo`, `ear_mappo`, `eir_mappo`, `true_type`)"""
    seeds: tuple[int, ...] = (1,)
    """one team (and its attackers) per seed"""
    train_timesteps: int = 600_000
    """environment steps of every team's training"""
    attack_timesteps: int = 200_000
    """environment steps of every fresh adversary (one per agent and team)"""
    eval_episodes: int = 20
    """episodes of every evaluation, per (seed, agent), seeded"""
    epsilons: tuple[float, ...] = (0.2, 0.5, 1.0)
    """l-inf budgets of the observation attack"""
    transfer: bool = True
    """evaluate every adversary against every other method's team of the same seed"""
    jobs: int = 2
    """runs in parallel (one CPU core each)"""
    ray: bool = False
    """run every job as a Ray task (the `ray` extra), on a new local instance with `--jobs` CPUs"""
    ray_address: str = ""
    """join this Ray cluster instead (`auto`, `<head>:6379`, `ray://<head>:10001`; implies
    `--ray`); `--workdir` must then be on a filesystem every node sees, at the same path"""
    train_flags: str = ""
    """extra flags of every trainer, as one string (e.g. `"--num-steps 50"`)"""
    attack_flags: str = ""
    """extra flags of every attacker, as one string (after the env's defaults)"""
    plot: bool = True
    """save `<workdir>/byzantine.png`, `<workdir>/byzantine_iqm.png` and `<workdir>/transfer.png`
    (matplotlib)"""
    from_results: str = ""
    """re-tabulate this finished report's `results.json` (e.g. `docs/byzantine_toy.json`) into
    `--workdir` without running anything; its set-up replaces the flags"""


def train_and_attack(args, method, seed, stage):
    """Train one team and attack it through every agent (each step skipped if done)."""
    cwd = Path(args.workdir) / method / f"seed{seed}"
    stage[f"{method}/seed{seed}"] = "training"
    _, script, flags = METHODS[method]
    kwargs = json.dumps(ENV_KWARGS.get(args.env_id, {}))
    fast = args.hyperparameters == "fast"
    tuned = f"{FAST['common']} {FAST.get(script, '')}" if fast else ""
    team = train_or_resume(BASELINES / script, cwd, [
        "--env-id", args.env_id, "--env-kwargs", kwargs, "--seed", str(seed), "--exp-name",
        method, "--total-timesteps", str(args.train_timesteps), "--eval-episodes", "0", *flags,
        *shlex.split(tuned), *shlex.split(args.train_flags),
    ])  # fmt: skip
    attack_flags = FAST["attack.py"] if fast else PAPER_ATTACK.get(args.env_id, "")
    stage[f"{method}/seed{seed}"] = "attacking"
    attack_or_resume(BASELINES / "attack.py", cwd, [
        "--defender", str(team.resolve()), "--threat", "byzantine_v0", "--stochastic-defenders",
        "--seed", str(seed), "--total-timesteps", str(args.attack_timesteps), "--eval-episodes",
        str(args.eval_episodes), *shlex.split(attack_flags), *shlex.split(args.attack_flags),
    ])  # fmt: skip
    stage[f"{method}/seed{seed}"] = "done"
    return team


class Team:
    """One trained team: its checkpoint, agents, whether it reads theta, its adversaries."""

    def __init__(self, args, method, seed, checkpoint):
        self.method, self.seed, self.checkpoint = method, seed, checkpoint
        record = read_record(checkpoint)
        threat = record.get("threat") or {}
        self.reveal = bool(threat.get("kwargs", {}).get("reveal_types"))
        self.env_kwargs = record["env_kwargs"]
        self.agents = [a for a in record["agents"] if not a.endswith("_adversary")]
        folder = Path(args.workdir) / method / f"seed{seed}" / "attack"
        results = json.loads(next(folder.glob("runs/*/attack_results.json")).read_text())
        self.attack = {r["scenario"]: r for r in results["scenarios"]}

    def scenario(self, i):
        return self.attack[f"theta=e_{i},byzantine={self.agents[i]}"]

    def policies(self, salt=0):
        """The team, sampling with seeded generators (fresh state)."""
        return {
            a: load_policy(self.checkpoint, agent=a, deterministic=False,
                           seed=10_000 * self.seed + 100 * salt + k)
            for k, a in enumerate(self.agents)
        }  # fmt: skip


def theta(n, i):
    return np.eye(n, dtype=np.float32)[i] if i is not None else np.zeros(n, np.float32)


def adversary_of(source, i, target_reveal, greedy=False, seed=0):
    """Agent i's trained adversary of team ``source``, fed what it was trained on: theta = e_i
    appended for a True Type source, removed for a True Type target of another source."""
    n = len(source.agents)
    policy = load_policy(source.scenario(i)["attacker"], agent=f"{source.agents[i]}_adversary",
                         deterministic=greedy, seed=seed)  # fmt: skip

    def act(obs):
        obs = np.asarray(obs, np.float32)
        base = obs[:-n] if target_reveal else obs
        return policy(np.concatenate([base, theta(n, i)]) if source.reveal else base)

    act.reset = policy.reset
    return act


def team_return(env_fn, policies, args, agents, seed):
    returns = evaluate(env_fn, policies, args.eval_episodes, seed)
    return float(np.mean(victims_return(returns, None, agents)))


def evaluate_team(args, team, teams):
    """Every attack on one team, per agent (cached in its folder's eval.json)."""
    cache = Path(args.workdir) / team.method / f"seed{team.seed}" / "eval.json"
    if cache.exists():
        return json.loads(cache.read_text())
    n, agents, seed = len(team.agents), team.agents, 1000 * team.seed

    def env_fn(prior=None, adversary=None, wrap=None):
        def build():
            env = make_env(args.env_id, team.env_kwargs)()
            if wrap is not None:
                env = wrap(env)
            if prior is not None or team.reveal:
                env = byzantine_v0(env, prior={prior or "0" * n: 1.0}, adversary=adversary,
                                   reveal_types=team.reveal)  # fmt: skip
            return env

        return build

    out = {"clean": team_return(env_fn(), team.policies(), args, agents, seed)}
    for i, agent in enumerate(agents):
        e_i = "".join("1" if j == i else "0" for j in range(n))
        others = [a for a in agents if a != agent]
        out[f"ppo/{i}"] = team.scenario(i)["attacked"][0]
        out[f"random/{i}"] = team_return(
            env_fn(e_i, "random"), team.policies(1), args, others, seed
        )
        for eps in args.epsilons:
            policies = team.policies(2)
            victim = policies[agent]
            pad = theta(n, None) if team.reveal else np.zeros(0, np.float32)

            def logits(x, victim=victim, pad=pad):
                import torch

                return victim.torch_logits(
                    torch.cat([x, torch.as_tensor(pad).expand(len(x), -1)], 1)
                )

            # the perturbation sees the env's observation (before a True Type's theta)
            attack = TargetedPGD(logits, adversary_of(team, i, target_reveal=False, greedy=True))
            wrap = lambda env, eps=eps, a=agent, attack=attack: state_perturbation_v0(  # noqa: E731
                env, eps, agents=[a], norm="linf", attack=attack
            )
            out[f"eps={eps:g}/{i}"] = team_return(env_fn(wrap=wrap), policies, args, agents, seed)
        if args.transfer:
            for source in teams:
                if source.seed == team.seed and source.method != team.method:
                    adversary = adversary_of(source, i, team.reveal, seed=seed + i)
                    out[f"transfer/{source.method}/{i}"] = team_return(
                        env_fn(e_i, {agent: adversary}), team.policies(3), args, others, seed
                    )
        if args.env_id == "adv/xnor_xor-v0" and n == 2:
            copy = load_policy(team.checkpoint, agent=others[0])  # the benign defender's twin
            ally = MyopicByzantineAlly(copy.action_probabilities, copy.reset)
            out[f"myopic/{i}"] = team_return(
                env_fn(e_i, {agent: ally}), team.policies(4), args, others, seed
            )
    cache.write_text(json.dumps(out, indent=2))
    return out


def one_thread():
    import torch

    torch.set_num_threads(1)


def columns(args):
    cols = ["clean", "ppo", "random", *[f"eps={e:g}" for e in args.epsilons]]
    return cols + (["myopic"] if args.env_id == "adv/xnor_xor-v0" else [])


LABELS = {"clean": "clean", "ppo": "non-oblivious (PPO)", "random": "random agent",
          "myopic": "myopic worst-case ally"}  # fmt: skip


def cell(results, method, col, seeds):
    """Mean and 95 % CI over seeds (clean) or seeds x agents (attacks)."""
    values = []
    for s in seeds:
        r = results[method][s]
        values += (
            [r["clean"]]
            if col == "clean"
            else [v for k, v in r.items() if k.rsplit("/", 1)[0] == col]
        )
    return mean_ci95(values)


def cell_iqm(results, method, col, seeds):
    """IQM and its stratified bootstrap 95 % CI: over seeds (clean), or over a seeds x
    agents matrix (attacks), the seeds resampled within each attacked agent."""
    if col == "clean":
        return iqm_ci([results[method][s]["clean"] for s in seeds])
    matrix = []
    for s in seeds:
        r = results[method][s]
        by_agent = {int(k.rsplit("/", 1)[1]): v for k, v in r.items() if k.rsplit("/", 1)[0] == col}
        matrix.append([by_agent[i] for i in sorted(by_agent)])
    return iqm_ci(matrix)


def fmt(mean, half):
    return f"{mean:.1f}" if np.isnan(half) else f"{mean:.1f} ± {half:.1f}"


def fmt_iqm(iqm, low, high):
    return f"{iqm:.1f}" if np.isnan(low) else f"{iqm:.1f} [{low:.1f}, {high:.1f}]"


# the set-up a finished report's results.json gives `--from-results`
FINISHED_ARGS = ("env_id", "hyperparameters", "methods", "seeds", "train_timesteps",
                 "attack_timesteps", "eval_episodes", "epsilons", "transfer")  # fmt: skip


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.preset != "none":  # the preset replaces the defaults; flags given still win
        default = dataclasses.replace(Args(), preset=args.preset, **PRESETS[args.preset])
        args = tyro.cli(Args, default=default)
    finished = None
    if args.from_results:  # a finished report: its runs and set-up, nothing is run
        finished = json.loads(Path(args.from_results).read_text())
        setup = {f: finished["args"][f] for f in FINISHED_ARGS}
        args = dataclasses.replace(args, **{f: tuple(v) if isinstance(v, list) else v
                                            for f, v in setup.items()})  # fmt: skip
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {list(METHODS)}")
    if finished is not None:
        results = {m: {int(s): r for s, r in finished["runs"][m].items()} for m in args.methods}
        n = sum(k.startswith("ppo/") for k in results[args.methods[0]][args.seeds[0]])
    else:
        n = len(make_env(args.env_id, ENV_KWARGS.get(args.env_id, {}))().possible_agents)
    jobs = [(m, s) for s in args.seeds for m in args.methods]  # seed by seed
    total = len(jobs) * (args.train_timesteps + n * args.attack_timesteps)
    budget = (
        f"{args.hyperparameters} hyperparameters; "
        f"{len(args.seeds)} seed(s) {list(args.seeds)}; teams {args.train_timesteps:,} steps, "
        f"fresh adversaries {args.attack_timesteps:,} steps x {n} agents per team, "
        f"{args.eval_episodes} evaluation episodes per (seed, agent); mean ± 95 % CI over "
        f"seeds x agents; IQM [stratified bootstrap 95 % CI, {IQM_REPS} resamples of the seeds "
        f"within each agent]"
    )
    print(f"Byzantine report on {args.env_id}: methods {list(args.methods)}; {budget}; "
          f"{total:,} environment steps, {args.jobs} jobs in parallel; runs in {args.workdir}/",
          flush=True)  # fmt: skip
    start = time.time()
    if finished is not None:
        print(f"re-tabulating {args.from_results} (nothing is run)", flush=True)
    else:
        names = [f"{m}/seed{s}" for m, s in jobs]
        with Monitor(args.workdir, total, names) as stage:  # threads, or one Ray task per job
            checkpoints = run_jobs(lambda job: train_and_attack(args, *job, stage), jobs,
                                   workers=min(args.jobs, os.cpu_count() or 1),
                                   ray=args.ray or bool(args.ray_address),
                                   ray_address=args.ray_address or None, names=names,
                                   stage=stage)  # fmt: skip
        teams = [Team(args, m, s, c) for (m, s), c in zip(jobs, checkpoints, strict=True)]
        print("evaluating every team under every attack ...", flush=True)
        results = {m: {} for m in args.methods}
        # one team per process, one torch thread each (more threads make these small networks
        # several times slower on a busy machine); spawned, since a forked JAX (SMAX) deadlocks
        workers = min(args.jobs, os.cpu_count() or 1)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=spawn, initializer=one_thread) as pool:
            evaluations = pool.map(evaluate_team, [args] * len(teams), teams, [teams] * len(teams))
            for team, evaluation in zip(teams, evaluations, strict=True):
                results[team.method][team.seed] = evaluation

    cols = columns(args)
    header = "| method | " + " | ".join(LABELS.get(c, f"obs. noise {c}") for c in cols) + " |"
    lines = [header, "|---" * (len(cols) + 1) + "|"]
    iqm_lines = list(lines)
    rows, rows_iqm = {}, {}
    for m in args.methods:
        rows[m] = {c: cell(results, m, c, args.seeds) for c in cols}
        rows_iqm[m] = {c: cell_iqm(results, m, c, args.seeds) for c in cols}
        lines.append(f"| {METHODS[m][0]} | " + " | ".join(fmt(*rows[m][c]) for c in cols) + " |")
        iqm_lines.append(
            f"| {METHODS[m][0]} | " + " | ".join(fmt_iqm(*rows_iqm[m][c]) for c in cols) + " |"
        )
    table = "\n".join(lines)
    transfer, transfer_iqm = {}, {}
    if args.transfer:
        lines = ["| adversary trained against \\ team | " + " | ".join(METHODS[m][0] for m in args.methods) + " |",
                 "|---" * (len(args.methods) + 1) + "|"]  # fmt: skip
        transfer_lines = list(lines)
        for src in args.methods:
            transfer[src], transfer_iqm[src] = {}, {}
            for tgt in args.methods:
                col = "ppo" if src == tgt else f"transfer/{src}"
                transfer[src][tgt] = cell(results, tgt, col, args.seeds)
                transfer_iqm[src][tgt] = cell_iqm(results, tgt, col, args.seeds)
            lines.append(
                f"| {METHODS[src][0]} | "
                + " | ".join(fmt(*transfer[src][t]) for t in args.methods)
                + " |"
            )
            transfer_lines.append(
                f"| {METHODS[src][0]} | "
                + " | ".join(fmt_iqm(*transfer_iqm[src][t]) for t in args.methods)
                + " |"
            )
        table += "\n\nTransfer (the diagonal is the non-oblivious attack):\n\n" + "\n".join(lines)
    # the same cells as interquartile means with stratified bootstrap 95 % CIs
    table += (
        "\n\nIQM [95 % CI] (stratified bootstrap: seeds resampled within each attacked agent):"
        "\n\n" + "\n".join(iqm_lines)
    )
    if args.transfer:
        table += "\n\nTransfer, IQM [95 % CI]:\n\n" + "\n".join(transfer_lines)
    best = PAPER_BEST_UNDER_ATTACK.get(args.env_id)
    paper = (
        f"Paper (Li et al., Sec. 4.1): EIR-MAPPO comes close to {best} under attack."
        if best
        else ""
    )
    minutes = (time.time() - start) / 60
    print(
        f"\n{table}\n\nBudget: {budget}. {paper}\nWall time {minutes:.1f} min (finished steps skipped)."
    )
    out = Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(
        {"env_id": args.env_id, "args": dataclasses.asdict(args), "budget": budget, "rows": rows,
         "transfer": transfer, "rows_iqm": rows_iqm, "transfer_iqm": transfer_iqm,
         "runs": results, "paper_best_under_attack": best}, indent=2))  # fmt: skip
    (out / "report.md").write_text(f"{table}\n\nBudget: {budget}.\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.5))
        x, width = np.arange(len(cols)), 0.8 / len(args.methods)
        for k, m in enumerate(args.methods):
            means = [rows[m][c][0] for c in cols]
            errs = [0 if np.isnan(rows[m][c][1]) else rows[m][c][1] for c in cols]
            ax.bar(x + (k - (len(args.methods) - 1) / 2) * width, means, width, yerr=errs,
                   label=METHODS[m][0], capsize=2)  # fmt: skip
        if best is not None:
            ax.axhline(best, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(x, [LABELS.get(c, c) for c in cols], fontsize=8)
        ax.set_ylabel("team return")
        ax.set_title(f"{args.env_id}: one Byzantine agent (95 % CI over seeds x agents)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "byzantine.png", dpi=120)
        # per column: mean ± 95 % CI (Student's t) beside the IQM with its bootstrap CI
        plot_intervals(
            out / "byzantine_iqm.png",
            {METHODS[m][0]: [t for c in cols for t in (
                (rows[m][c][0], rows[m][c][0] - rows[m][c][1], rows[m][c][0] + rows[m][c][1]),
                rows_iqm[m][c])] for m in args.methods},
            [f"{LABELS.get(c, c)}: {kind}" for c in cols for kind in ("mean ± 95 % CI", "IQM, 95 % CI")],
            xlabel=f"{args.env_id}: team return, one Byzantine agent ({len(args.seeds)} seeds)",
            sharex=[k // 2 for k in range(2 * len(cols))],
        )  # fmt: skip
        if transfer:
            fig, ax = plt.subplots(figsize=(4.5, 4))
            grid = np.array([[transfer[s][t][0] for t in args.methods] for s in args.methods])
            image = ax.imshow(grid, cmap="viridis")
            labels = [METHODS[m][0] for m in args.methods]
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.set_xlabel("team")
            ax.set_ylabel("adversary trained against")
            for (r, c), v in np.ndenumerate(grid):
                ax.text(c, r, f"{v:.1f}", ha="center", va="center", color="w", fontsize=8)
            fig.colorbar(image)
            fig.tight_layout()
            fig.savefig(out / "transfer.png", dpi=120)
    print(f"results: {out / 'results.json'}, {out / 'report.md'}")
