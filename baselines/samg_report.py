# docs and experiment results can be found at docs/samg_report.md
"""He et al.'s evaluation of robustness to state perturbations, end to end (Tables 4 and 5).

He et al. (TMLR 2023), "Robust Multi-Agent Reinforcement Learning with State Uncertainty",
App. E-F. Every row is one trainer run per seed, on the particle envs with the original MPE
rewards (`{"rewards": "original"}`; the off-policy trainers act with relaxed one-hots,
`{"continuous_actions": true}`, as the MADDPG reference does):

* `rma3c`: RMA3C (`rma3c.py`), trained against its own learned state adversaries chi;
* `<algo>_n` ("w/ N"): MADDPG, M3DDPG, MAPPO trained under random state noise: each
  coordinate N(0, 0.5^2) truncated to [-1, 1] (Table 3's lambda, l, u;
  `state_perturbation_v0(attack="truncated_normal", epsilon=1)`);
* `<algo>_chi` ("w/ chi*"): the same trained under "a well-trained adversary policy chi*
  (adversaries that are trained for the maximum training episodes in RMA3C)" (App. E.5):
  the final adversaries of the RMA3C run of the same seed, frozen in
  `state_perturbation_v0(attack={agent: chi_agent})`.

Table 4's figure is the mean episode reward (summed over agents, as the reference's scripts
sum it) of the last 1000 training episodes, read from each run's TensorBoard log. On top of
the paper's protocol, every trained policy is then attacked by a **fresh** adversary trained
from scratch against it (`attack.py --threat state_perturbation_v0`, radius 1, the defenders
sampling as in training): the paper measures robustness only against the adversaries its
runs trained alongside, which a defense may have learned to beat without being robust.

Table 5 (`--table 5`): cooperative navigation with 6 agents; RMA3C and the "w/ chi*" rows
are trained as above, then every trained policy plays `--eval-episodes` episodes against the
RMA3C run's well-trained chi* (the same seed's).

Every step is a subprocess in `<workdir>/<env>/<row>/seed<s>/`, skipped once its result
exists (an interrupted report continues where it stopped); `--jobs` run in parallel. The
report (a table per env, the paper's numbers beside ours) is printed and written to
`<workdir>/samg_report.md` and `<workdir>/samg_report.json`.
"""

import json
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from adv_wrappers.state_perturbation import perturber_id
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.envs import evaluate, make_env
from adv_wrappers.train.jobs import (
    Monitor,
    attack_or_resume,
    logged_scalars,
    mean_ci95,
    train_or_resume,
)

BASELINES = Path(__file__).resolve().parent

# row -> (label, trainer, perturbation during training)
ROWS = {
    "rma3c": ("RMA3C", "rma3c.py", "own chi"),
    "maddpg_n": ("MADDPG w/ N", "maddpg.py", "noise"),
    "m3ddpg_n": ("M3DDPG w/ N", "m3ddpg.py", "noise"),
    "mappo_n": ("MAPPO w/ N", "mappo.py", "noise"),
    "maddpg_chi": ("MADDPG w/ chi*", "maddpg.py", "chi"),
    "m3ddpg_chi": ("M3DDPG w/ chi*", "m3ddpg.py", "chi"),
    "mappo_chi": ("MAPPO w/ chi*", "mappo.py", "chi"),
}
ENVS = {
    "cn": ("adv/cooperative_navigation-v0", {}),
    "ka": ("adv/keep_away-v0", {}),
    "cn6": ("adv/cooperative_navigation-v0", {"N": 6}),
}
# MAPPO "only works in fully cooperative tasks" (App. E.3): no MAPPO rows for keep-away
COOPERATIVE = {"cn", "cn6"}
# He et al. (TMLR 2023), Table 4 (mean episode reward of the last 1000 training episodes)
PAPER_TABLE4 = {
    "cn": {"rma3c": -401.7, "maddpg_n": -506.48, "m3ddpg_n": -506.54, "mappo_n": -569.07,
           "maddpg_chi": -548.80, "m3ddpg_chi": -547.99, "mappo_chi": -585.83},
    "ka": {"rma3c": -8.93, "maddpg_n": -13.76, "m3ddpg_n": -13.45, "maddpg_chi": -16.30,
           "m3ddpg_chi": -16.26},
}  # fmt: skip
# Table 5: CN with 6 agents, 2000 test episodes x 10 runs against a well-trained chi*
PAPER_TABLE5 = {"maddpg_chi": (-3405.274, 66.18), "m3ddpg_chi": (-3452.22, 80.16),
                "mappo_chi": (-3121.90, 18.49), "rma3c": (-3079.37, 16.16)}  # fmt: skip
# Table 3: MAPPO's column (lr 7e-4, gamma 0.99, one hidden layer of 64 ReLU, one minibatch);
# 10 epochs and the linear-decay-free schedule of the MAPPO reference's particle-env scripts
MAPPO_FLAGS = (
    "--learning-rate 7e-4 --gamma 0.99 --hidden-sizes 64 --activation relu --num-envs 8 "
    "--num-steps 125 --minibatch-size 1000 --update-epochs 10 --no-anneal-lr "
    "--checkpoint-every 25"
)
NOISE = {"epsilon": 1.0, "attack": "truncated_normal"}
EPISODE_STEPS = 25


@dataclass
class Args:
    table: Literal[4, 5] = 4
    """Table 4 (`--envs cn ka`, 3 agents) or Table 5 (cooperative navigation, 6 agents)"""
    envs: tuple[str, ...] = ("cn",)
    """Table 4's envs: `cn` (cooperative navigation), `ka` (keep-away)"""
    rows: tuple[str, ...] = tuple(ROWS)
    """the rows (`rma3c`, `maddpg_n`, `m3ddpg_n`, `mappo_n`, `maddpg_chi`, `m3ddpg_chi`,
    `mappo_chi`); Table 5 uses RMA3C and the chi* rows"""
    seeds: tuple[int, ...] = (1, 2, 3)
    """one run of every row per seed"""
    train_timesteps: int = 250_000
    """environment steps of every training run (the paper: 10k episodes x 25 steps)"""
    last_episodes: int = 1000
    """Table 4's window: the mean of the last this many training episodes"""
    attack_timesteps: int = 250_000
    """environment steps of every fresh adversary (0: no fresh adversaries)"""
    eval_episodes: int = 200
    """episodes of every evaluation (fresh adversaries; Table 5's test), seeded"""
    workdir: str = "runs/samg_report"
    """where every run goes (`<workdir>/<env>/<row>/seed<s>/`); finished steps are skipped"""
    jobs: int = 2
    """runs in parallel (one CPU core each)"""
    train_flags: str = ""
    """extra flags of the off-policy trainers (RMA3C, MADDPG, M3DDPG), as one string (e.g.
    `"--learning-starts 1000"`)"""
    mappo_flags: str = ""
    """extra flags of `mappo.py`, as one string (after Table 3's)"""
    attack_flags: str = ""
    """extra flags of every attacker, as one string"""


def env_kwargs(env, row):
    """The env's keyword arguments for a row's trainer (relaxed one-hots off-policy)."""
    kwargs = {**ENVS[env][1], "rewards": "original"}
    if ROWS[row][1] != "mappo.py":
        kwargs["continuous_actions"] = True
    return kwargs


def chi_star(args, env, seed):
    """The final adversaries of the RMA3C run of ``(env, seed)``: ``{agent: policy ref}``."""
    final = train_or_resume(BASELINES / "rma3c.py", folder(args, env, "rma3c", seed),
                            trainer_flags(args, env, "rma3c", seed))  # fmt: skip
    agents = [a for a in read_record(final)["agents"] if not a.endswith("_obs_adversary")]
    return {a: {"checkpoint": str(final.resolve()), "agent": perturber_id(a)} for a in agents}


def folder(args, env, row, seed):
    return Path(args.workdir) / env / row / f"seed{seed}"


def trainer_flags(args, env, row, seed):
    _, script, perturbation = ROWS[row]
    flags = [
        "--env-id", ENVS[env][0], "--env-kwargs", json.dumps(env_kwargs(env, row)),
        "--seed", str(seed), "--exp-name", row, "--total-timesteps", str(args.train_timesteps),
        "--eval-episodes", "0",
    ]  # fmt: skip
    if script == "mappo.py":
        flags += shlex.split(MAPPO_FLAGS)
    if perturbation == "noise":
        flags += ["--threat", "state_perturbation_v0", "--threat-kwargs", json.dumps(NOISE)]
    elif perturbation == "chi":
        chi = {"epsilon": NOISE["epsilon"], "attack": chi_star(args, env, seed)}
        flags += ["--threat", "state_perturbation_v0", "--threat-kwargs", json.dumps(chi)]
    extra = args.mappo_flags if script == "mappo.py" else args.train_flags
    return [*flags, *shlex.split(extra)]


def last_episodes_return(args, checkpoint):
    """Table 4's figure: the mean over the last ``args.last_episodes`` training episodes of
    the episode reward summed over agents (every agent's logged mean return, summed)."""
    record = read_record(checkpoint)
    run_dir = checkpoint.parent.parent
    agents = [a for a in record["agents"] if not a.endswith("_obs_adversary")]
    total = None
    for a in agents:
        steps, values = logged_scalars(run_dir, f"charts/episodic_return/{a}")
        keep = steps > record["global_step"] - args.last_episodes * EPISODE_STEPS
        total = values[keep] if total is None else total + values[keep]
    return float(np.mean(total)), len(agents)


def attack(args, env, row, seed, checkpoint):
    """A fresh chi trained against the frozen policy: the victims' summed return."""
    if args.attack_timesteps <= 0:
        return None
    result = attack_or_resume(BASELINES / "attack.py", folder(args, env, row, seed), [
        "--defender", str(checkpoint.resolve()), "--threat", "state_perturbation_v0",
        "--epsilon", str(NOISE["epsilon"]), "--stochastic-defenders", "--seed", str(seed),
        "--total-timesteps", str(args.attack_timesteps), "--eval-episodes",
        str(args.eval_episodes), *shlex.split(args.attack_flags),
    ])  # fmt: skip
    (scenario,) = result["scenarios"]
    n = len(scenario["victims"])  # the victims' mean return x n: the sum over agents
    return {"clean": n * scenario["clean"][0], "fresh_chi": n * scenario["attacked"][0]}


def table5_test(args, env, row, seed, checkpoint):
    """Table 5: the trained policy (sampling) against the same seed's RMA3C chi*."""
    out = folder(args, env, row, seed) / "table5.json"
    if out.exists():
        return json.loads(out.read_text())
    record = read_record(checkpoint)
    agents = [a for a in record["agents"] if not a.endswith("_obs_adversary")]
    threat = {
        "name": "state_perturbation_v0",
        "kwargs": {"epsilon": NOISE["epsilon"], "attack": chi_star(args, env, seed)},
    }
    env_fn = make_env(ENVS[env][0], env_kwargs(env, row), threat)
    policies = {a: load_policy(checkpoint, agent=a, deterministic=False, seed=1000 * seed + k)
                for k, a in enumerate(agents)}  # fmt: skip
    results = evaluate(env_fn, policies, args.eval_episodes, seed=10_000 * seed)
    summed = np.sum([results[a] for a in agents], axis=0)
    value = {"chi_star": float(summed.mean()), "episodes": args.eval_episodes}
    out.write_text(json.dumps(value))
    return value


def run_row(args, env, row, seed, stage, lock):
    """Train one row's run (and the RMA3C run it needs), then evaluate it."""
    name = f"{env}/{row}/seed{seed}"
    stage[name] = "training"
    with lock[(env, seed)] if ROWS[row][2] != "noise" else _NULL:  # chi* is trained once
        final = train_or_resume(BASELINES / ROWS[row][1], folder(args, env, row, seed),
                                trainer_flags(args, env, row, seed))  # fmt: skip
    result = {"row": row, "seed": seed}
    result["train_last"], result["agents"] = last_episodes_return(args, final)
    stage[name] = "evaluating"
    if args.table == 5:
        result |= table5_test(args, env, row, seed, final)
    else:
        result |= attack(args, env, row, seed, final) or {}
    stage[name] = "done"
    return result


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _Null()


def fmt(values):
    if not values:
        return "-"
    mean, ci = mean_ci95(values)
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {ci:.1f}"


def report(args, results):
    lines = []
    for env in args.envs:
        rows = [r for r in results if r["env"] == env]
        if args.table == 4:
            lines += [f"### {env}: Table 4 (mean episode reward, summed over agents)", "",
                      "| row | paper: last 1000 training episodes | ours: last 1000 training "
                      "episodes | ours: clean | ours: fresh chi* |", "|---|---|---|---|---|"]  # fmt: skip
        else:
            lines += [f"### {env}: Table 5 (test episodes against the RMA3C run's chi*)", "",
                      "| row | paper | ours: against chi* | ours: last 1000 training episodes |",
                      "|---|---|---|---|"]  # fmt: skip
        for row in args.rows:
            mine = [r for r in rows if r["row"] == row]
            if not mine:
                continue
            label = ROWS[row][0]
            train = fmt([r["train_last"] for r in mine])
            if args.table == 4:
                paper = PAPER_TABLE4.get(env, {}).get(row, "-")
                clean = fmt([r["clean"] for r in mine if "clean" in r])
                fresh = fmt([r["fresh_chi"] for r in mine if "fresh_chi" in r])
                lines.append(f"| {label} | {paper} | {train} | {clean} | {fresh} |")
            else:
                paper = PAPER_TABLE5.get(row)
                paper_s = f"{paper[0]} ± {paper[1]}" if paper else "-"
                test = fmt([r["chi_star"] for r in mine if "chi_star" in r])
                lines.append(f"| {label} | {paper_s} | {test} | {train} |")
        seeds = sorted({r["seed"] for r in rows})
        lines += ["", f"seeds {seeds}; mean ± 95 % CI (Student's t) over seeds", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.table == 5:
        args.envs = ("cn6",)
        args.rows = tuple(r for r in args.rows if ROWS[r][2] != "noise")
    unknown = [e for e in args.envs if e not in ENVS] + [r for r in args.rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown envs/rows {unknown}; envs: {list(ENVS)}, rows: {list(ROWS)}")
    plan = [
        (env, row, seed)
        for seed in args.seeds
        for env in args.envs
        for row in args.rows
        if env in COOPERATIVE or ROWS[row][1] != "mappo.py"
    ]
    locks = {(env, seed): threading.Lock() for env, _, seed in plan}
    per_run = args.train_timesteps + (args.attack_timesteps if args.table == 4 else 0)
    names = [f"{e}/{r}/seed{s}" for e, r, s in plan]
    with Monitor(args.workdir, per_run * len(plan), names) as stage, \
            ThreadPoolExecutor(args.jobs) as pool:  # fmt: skip
        futures = [pool.submit(run_row, args, e, r, s, stage, locks) for e, r, s in plan]
        results = [f.result() | {"env": e} for f, (e, _, _) in zip(futures, plan, strict=True)]
    text = report(args, results)
    print(text)
    Path(args.workdir, "samg_report.md").write_text(text + "\n")
    Path(args.workdir, "samg_report.json").write_text(json.dumps(results, indent=2))
