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
RMA3C run's well-trained chi* (the same seed's), and is attacked by fresh adversaries as in
Table 4 (a row kept from before that was done gets its fresh adversaries on the next run).

Every step is a subprocess in `<workdir>/<env>/<row>/seed<s>/`, skipped once its result
exists (an interrupted report continues where it stopped); `--jobs` run in parallel. Each
finished row also leaves two small files in `--results` (`docs/samg_results/` in the
documented commands, committed as they land): `<env>_<row>_seed<s>.safetensors`, the trained
policies without their training state (the replay buffer, Adam), and `<env>_<row>_seed<s>.json`,
the row's figures with the settings they were made with. A row whose JSON exists is not run
again, and a trained policy is evaluated without retraining it, so the report resumes from a
clean clone on another machine; a file made with other settings is an error, not reused. The
report (a table per env, the paper's numbers beside ours) is printed and written to
`<workdir>/samg_report.md` and `<workdir>/samg_report.json`.
"""

import itertools
import json
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.state_perturbation import perturber_id
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.checkpoint import strip_training
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
    "maddpg": ("MADDPG (clean)", "maddpg.py", None),
    # RMA3C with the GDA code's settings instead of the text's (docs/samg_report.md)
    "rma3c_code": ("RMA3C (alternating GDA, adversary lr 0.01)", "rma3c.py", "own chi"),
    # the two settings of rma3c_code one at a time
    "rma3c_alt": ("RMA3C (alternating GDA)", "rma3c.py", "own chi"),
    "rma3c_lr": ("RMA3C (adversary lr 0.01)", "rma3c.py", "own chi"),
}
ROW_FLAGS = {
    "rma3c_code": "--gda alternating --adversary-learning-rate 0.01",
    "rma3c_alt": "--gda alternating",
    "rma3c_lr": "--adversary-learning-rate 0.01",
}
ABLATIONS = ("maddpg", "rma3c_code", "rma3c_alt", "rma3c_lr")
ENVS = {
    "cn": ("adv/cooperative_navigation-v0", {}),
    # exchange target moves and speaks: one Discrete(50) action (5 moves x 10 words) here,
    # where the reference's relaxed action is two softmaxes (a relaxed_categorical head is one)
    "et": ("adv/exchange_target-v0", {}),
    "ka": ("adv/keep_away-v0", {}),
    "cn6": ("adv/cooperative_navigation-v0", {"N": 6}),
    # He et al.'s two-agent two-state game (App. A-C): 100-step episodes, learned with the
    # paper's discount 0.99 (a truncation bootstraps), judged by exact discounted values
    "game": ("adv/xnor_xor-v0", {}),
}
GAME_FLAGS = "--gamma 0.99"
# MAPPO "only works in fully cooperative tasks" (App. E.3): no MAPPO rows for keep-away
COOPERATIVE = {"cn", "cn6", "et", "game"}
DISCRETE = {"et", "game"}  # envs whose off-policy rows act with Discrete actions
# He et al. (TMLR 2023), Table 4 (mean episode reward of the last 1000 training episodes)
PAPER_TABLE4 = {
    "cn": {"rma3c": -401.7, "maddpg_n": -506.48, "m3ddpg_n": -506.54, "mappo_n": -569.07,
           "maddpg_chi": -548.80, "m3ddpg_chi": -547.99, "mappo_chi": -585.83},
    "et": {"rma3c": -47.02, "maddpg_n": -63.76, "m3ddpg_n": -61.71, "mappo_n": -94.28,
           "maddpg_chi": -77.01, "m3ddpg_chi": -75.87, "mappo_chi": -113.19},
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
# the fresh PPO adversary: larger steps than ippo.py's defaults (the defaults barely move the
# victims in 250K steps, docs/samg_report.md)
ATTACK_FLAGS = (
    "--num-envs 8 --num-steps 100 --minibatch-size 200 --update-epochs 10 --clip-coef 0.2 "
    "--learning-rate 3e-3 --no-anneal-lr --max-grad-norm 10 --hidden-sizes 128 128"
)
EPISODE_STEPS = 25


@dataclass
class Args:
    table: Literal["4", "5", "game"] = "4"
    """Table 4 (`--envs cn ka`, 3 agents), Table 5 (cooperative navigation, 6 agents) or
    `game`: the two-state game of App. A-C (RMA3C and MADDPG, exact worst-case values)"""
    envs: tuple[str, ...] = ("cn",)
    """Table 4's envs: `cn` (cooperative navigation), `et` (exchange target), `ka`
    (keep-away)"""
    rows: tuple[str, ...] = ()
    """the rows (`rma3c`, `maddpg_n`, `m3ddpg_n`, `mappo_n`, `maddpg_chi`, `m3ddpg_chi`,
    `mappo_chi`; outside the paper's tables: `maddpg`, clean MADDPG, `rma3c_code`, RMA3C
    with the settings of the authors' GDA code, and `rma3c_alt` / `rma3c_lr`, one of those
    two settings each); default: the table's (Table 4: the paper's
    rows; Table 5: RMA3C and the chi* rows; the game: `rma3c`, `maddpg`, `maddpg_n`)"""
    seeds: tuple[int, ...] = (1, 2, 3)
    """one run of every row per seed"""
    train_timesteps: int = 250_000
    """environment steps of every training run (the paper: 10k episodes x 25 steps)"""
    last_episodes: int = 1000
    """Table 4's window: the mean of the last this many training episodes"""
    attack_timesteps: int = 100_000
    """environment steps of every fresh PPO adversary (`attack.py`; 0: none)"""
    gradient_attack_timesteps: int = 50_000
    """environment steps of every fresh gradient adversary (`rma3c.py --init-actors`,
    off-policy rows; 0: none)"""
    eval_episodes: int = 200
    """episodes of every evaluation (fresh adversaries; Table 5's test), seeded"""
    workdir: str = "runs/samg_report"
    """where every run goes (`<workdir>/<env>/<row>/seed<s>/`); finished steps are skipped"""
    results: str | None = None
    """where each finished row's trained policies and figures are kept (small files to
    commit; default `<workdir>/results`); rows found there are not run again"""
    jobs: int = 2
    """runs in parallel (one CPU core each)"""
    train_flags: str = ""
    """extra flags of the off-policy trainers (RMA3C, MADDPG, M3DDPG), as one string (e.g.
    `"--learning-starts 1000"`)"""
    report_only: bool = False
    """write the tables from the runs that are finished (evaluations included) and start
    nothing: a partial report while the full one runs"""
    mappo_flags: str = ""
    """extra flags of `mappo.py`, as one string (after Table 3's)"""
    attack_flags: str = ""
    """extra flags of every attacker, as one string"""


def env_kwargs(env, row):
    """The env's keyword arguments for a row's trainer (the particle envs: the original
    rewards, and relaxed one-hots off-policy)."""
    if env == "game":
        return dict(ENVS[env][1])
    kwargs = {**ENVS[env][1], "rewards": "original"}
    if ROWS[row][1] != "mappo.py" and env not in DISCRETE:
        kwargs["continuous_actions"] = True
    return kwargs


# (env, row, seed) -> a lock: a run that two rows need (RMA3C's, for chi*) is trained once
TRAIN_LOCKS: dict[tuple[str, str, int], threading.Lock] = {}
TRAIN_LOCKS_LOCK = threading.Lock()


def settings(args):
    """What a row's figures depend on besides (env, row, seed): a kept file made with other
    settings is not reused."""
    keys = ("train_timesteps", "last_episodes", "attack_timesteps", "gradient_attack_timesteps",
            "eval_episodes", "train_flags", "mappo_flags", "attack_flags")  # fmt: skip
    return {k: getattr(args, k) for k in keys}


def kept(args, env, row, seed, suffix):
    """A row's file in ``args.results``, checked against this report's settings."""
    path = Path(args.results) / f"{env}_{row}_seed{seed}{suffix}"
    if path.exists():
        if suffix == ".json":
            made = json.loads(path.read_text()).get("settings")
        else:
            made = read_record(path)["extra"].get("samg_report", {}).get("settings")
        if made != settings(args):
            raise InvalidArgumentError(
                f"--results: {path} was made with settings {made}, not this report's "
                f"{settings(args)}; delete it or pass another --results"
            )
    return path


def trained(args, env, row, seed):
    """A row's trained policies (trained first if needed), without the training state, and
    Table 4's figure: ``(checkpoint, train_last, number of agents)``."""
    with TRAIN_LOCKS_LOCK:
        lock = TRAIN_LOCKS.setdefault((env, row, seed), threading.Lock())
    with lock:
        path = kept(args, env, row, seed, ".safetensors")
        if not path.exists():
            final = train_or_resume(BASELINES / ROWS[row][1], folder(args, env, row, seed),
                                    trainer_flags(args, env, row, seed))  # fmt: skip
            train_last, n = last_episodes_return(args, final)
            figures = {"train_last": train_last, "agents": n, "settings": settings(args)}
            strip_training(final, path, extra={"samg_report": figures})
    figures = read_record(path)["extra"]["samg_report"]
    return path, figures["train_last"], figures["agents"]


def chi_star(args, env, seed):
    """The final adversaries of the RMA3C run of ``(env, seed)`` (trained first if needed):
    ``{agent: policy ref}``."""
    final, _, _ = trained(args, env, "rma3c", seed)
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
    flags += shlex.split(ROW_FLAGS.get(row, ""))
    if env == "game":
        flags += shlex.split(GAME_FLAGS)
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
    """A fresh chi trained by PPO against the frozen policy (``attack.py``): the victims'
    summed return, clean and under attack."""
    if args.attack_timesteps <= 0:
        return {}
    result = attack_or_resume(BASELINES / "attack.py", folder(args, env, row, seed), [
        "--defender", str(checkpoint.resolve()), "--threat", "state_perturbation_v0",
        "--epsilon", str(NOISE["epsilon"]), "--stochastic-defenders", "--seed", str(seed),
        "--total-timesteps", str(args.attack_timesteps), "--eval-episodes",
        str(args.eval_episodes), *shlex.split(ATTACK_FLAGS), *shlex.split(args.attack_flags),
    ])  # fmt: skip
    (scenario,) = result["scenarios"]
    n = len(scenario["victims"])  # the victims' mean return x n: the sum over agents
    return {"clean": n * scenario["clean"][0], "fresh_chi": n * scenario["attacked"][0]}


def gradient_attack(args, env, row, seed, checkpoint):
    """A fresh chi trained the way RMA3C trains its adversaries, through a critic and the
    frozen policy's gradient (``rma3c.py --init-actors CHECKPOINT --actor-learning-rate 0``),
    then played against the policy (sampling): the summed return under it. Off-policy rows
    only (the actors must be ``rma3c.py``'s)."""
    if args.gradient_attack_timesteps <= 0 or ROWS[row][1] == "mappo.py":
        return {}
    cwd = folder(args, env, row, seed) / "gradient_attack"
    out = cwd / "result.json"
    if out.exists():
        return json.loads(out.read_text())
    chi = train_or_resume(BASELINES / "rma3c.py", cwd, [
        "--env-id", ENVS[env][0], "--env-kwargs", json.dumps(env_kwargs(env, row)),
        "--seed", str(seed), "--exp-name", "gradient_attack", "--init-actors",
        str(checkpoint.resolve()), "--actor-learning-rate", "0", "--total-timesteps",
        str(args.gradient_attack_timesteps), "--eval-episodes", "0",
        *shlex.split(args.train_flags),
    ])  # fmt: skip
    agents = [a for a in read_record(checkpoint)["agents"] if not a.endswith("_obs_adversary")]
    refs = {a: {"checkpoint": str(chi.resolve()), "agent": perturber_id(a)} for a in agents}
    threat = {"name": "state_perturbation_v0",
              "kwargs": {"epsilon": NOISE["epsilon"], "attack": refs}}  # fmt: skip
    policies = {a: load_policy(checkpoint, agent=a, deterministic=False, seed=1000 * seed + k)
                for k, a in enumerate(agents)}  # fmt: skip
    env_fn = make_env(ENVS[env][0], env_kwargs(env, row), threat)
    results = evaluate(env_fn, policies, args.eval_episodes, seed=10_000 * seed)
    value = {"gradient_chi": float(np.sum([results[a] for a in agents], axis=0).mean())}
    out.write_text(json.dumps(value))
    return value


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


def game_exact(args, row, seed, checkpoint):
    """The two-state game, exactly: the trained policies' tables pi_i(a | o) on the two
    one-hot states (sampled: softmax of the logits; greedy: the argmax), their discounted
    values (gamma 0.99) clean and against the worst-case perturbation (He et al., Prop.
    4.1; the admissible set {s1, s2}), and the worst-case expected value of Definition 4.8
    for a uniform and for an s2 initial state."""
    from adv_envs import xnor_xor_exact as exact

    tables = {}
    for mode in ("sampled", "greedy"):
        pis = []
        for agent in ("agent_0", "agent_1"):
            policy = load_policy(checkpoint, agent=agent)
            probs = np.array([policy.action_probabilities(o) for o in np.eye(2, dtype=np.float32)])
            pis.append(np.eye(2)[probs.argmax(1)] if mode == "greedy" else probs)
        clean = exact.evaluate(*pis, gamma=0.99)
        _, worst = exact.worst_case_perturbation(*pis, gamma=0.99)
        tables[mode] = {
            "pi": [p.round(4).tolist() for p in pis], "clean": clean.tolist(),
            "worst": worst.tolist(), "worst_uniform_s0": float(worst.mean()),
            "worst_s2": float(worst[1]),
        }  # fmt: skip
    return tables


def game_optimum(points=11):
    """The best worst-case expected value (uniform and s2 initial state) over a grid of
    stochastic tabular policies, ``points`` values of each pi_i(a1 | o)."""
    from adv_envs import xnor_xor_exact as exact

    grid = np.linspace(0, 1, points)
    best = {"uniform_s0": -1.0, "s2": -1.0}
    for p in itertools.product(grid, repeat=4):
        pi0 = np.array([[p[0], 1 - p[0]], [p[1], 1 - p[1]]])
        pi1 = np.array([[p[2], 1 - p[2]], [p[3], 1 - p[3]]])
        _, worst = exact.worst_case_perturbation(pi0, pi1, gamma=0.99)
        best["uniform_s0"] = max(best["uniform_s0"], float(worst.mean()))
        best["s2"] = max(best["s2"], float(worst[1]))
    return best


def finished(args, env, row, seed):
    """Whether a row's run and its evaluations are done (``--report-only`` reads only those)."""
    return kept(args, env, row, seed, ".json").exists()


def run_row(args, env, row, seed, stage):
    """Train one row's run (and the RMA3C run it needs), then evaluate it; the figures are
    kept in ``args.results``."""
    name = f"{env}/{row}/seed{seed}"
    done = kept(args, env, row, seed, ".json")
    if done.exists():
        result = json.loads(done.read_text())
        if args.table == "5" and not args.report_only and "fresh_chi" not in result:
            # kept before Table 5's policies were attacked by fresh adversaries too
            stage[name] = "evaluating"
            final = kept(args, env, row, seed, ".safetensors")
            result |= attack(args, env, row, seed, final)
            result |= gradient_attack(args, env, row, seed, final)
            done.write_text(json.dumps(result, indent=1) + "\n")
        stage[name] = "done"
        return result
    stage[name] = "training"
    final, train_last, agents = trained(args, env, row, seed)
    result = {"row": row, "seed": seed, "train_last": train_last, "agents": agents}
    stage[name] = "evaluating"
    if env == "game":
        result["game"] = game_exact(args, row, seed, final)
    else:  # Table 5 tests against chi*, and both tables against fresh adversaries
        if args.table == "5":
            result |= table5_test(args, env, row, seed, final)
        result |= attack(args, env, row, seed, final)
        result |= gradient_attack(args, env, row, seed, final)
    done.write_text(json.dumps({**result, "settings": settings(args)}, indent=1) + "\n")
    stage[name] = "done"
    return result


def fmt(values):
    if not values:
        return "-"
    mean, ci = mean_ci95(values)
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {ci:.1f}"


def game_report(args, results):
    best = game_optimum()
    lines = ["### The two-state game (He et al., App. A-C), exact values at gamma 0.99", "",
             "| row | seed | policy | clean V(s1), V(s2) | worst case V(s1), V(s2) | "
             "worst-case expected value, uniform s0 | ... s0 = s2 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(results, key=lambda r: (r["row"], r["seed"])):
        for mode, t in r["game"].items():
            lines.append(
                f"| {ROWS[r['row']][0]} | {r['seed']} | {mode} | {t['clean'][0]:.1f}, "
                f"{t['clean'][1]:.1f} | {t['worst'][0]:.1f}, {t['worst'][1]:.1f} | "
                f"{t['worst_uniform_s0']:.1f} | {t['worst_s2']:.1f} |"
            )
    lines += ["", "Summary over seeds (sampled policies; mean ± 95 % CI):", "",
              "| row | seeds | clean value, uniform s0 | worst-case expected value, uniform s0 | "
              "seeds within 1 of the optimum 50 |", "|---|---|---|---|---|"]  # fmt: skip
    for row in args.rows:
        mine = [r["game"]["sampled"] for r in results if r["row"] == row]
        if not mine:
            continue
        worst = [t["worst_uniform_s0"] for t in mine]
        robust = sum(w >= best["uniform_s0"] - 1.0 for w in worst)
        lines.append(
            f"| {ROWS[row][0]} | {len(mine)} | {fmt([float(np.mean(t['clean'])) for t in mine])} "
            f"| {fmt(worst)} | {robust} of {len(mine)} |"
        )
    lines += [
        "",
        "The paper (App. B-C): the cooperative policy is worth 100 clean and 0 against the "
        "worst case; the uniform, always-equal and always-different policies keep a "
        "worst-case expected value of 50 (uniform s0); from s2, always-different keeps 100. "
        f"Best over an 11-point grid of stochastic tables: {best['uniform_s0']:.2f} (uniform "
        f"s0), {best['s2']:.2f} (s0 = s2).",
        "",
    ]
    return "\n".join(lines)


def report(args, results):
    if args.table == "game":
        return game_report(args, results)
    lines = []
    for env in args.envs:
        rows = [r for r in results if r["env"] == env]
        if args.table == "4":
            lines += [f"### {env}: Table 4 (mean episode reward, summed over agents)", "",
                      "| row | paper: last 1000 training episodes | ours: last 1000 training "
                      "episodes | ours: clean | ours: fresh PPO chi | ours: fresh gradient chi "
                      "| seeds |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        else:
            lines += [f"### {env}: Table 5 (test episodes against the RMA3C run's chi*)", "",
                      "| row | paper | ours: against chi* | ours: last 1000 training episodes "
                      "| ours: clean | ours: fresh PPO chi | ours: fresh gradient chi | seeds |",
                      "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in args.rows:
            mine = [r for r in rows if r["row"] == row]
            if not mine:
                continue
            label = ROWS[row][0]
            train = fmt([r["train_last"] for r in mine])
            seeds = ", ".join(str(r["seed"]) for r in sorted(mine, key=lambda r: r["seed"]))
            clean = fmt([r["clean"] for r in mine if "clean" in r])
            fresh = fmt([r["fresh_chi"] for r in mine if "fresh_chi" in r])
            grad = fmt([r["gradient_chi"] for r in mine if "gradient_chi" in r])
            if args.table == "4":
                paper = PAPER_TABLE4.get(env, {}).get(row, "-")
                lines.append(
                    f"| {label} | {paper} | {train} | {clean} | {fresh} | {grad} | {seeds} |"
                )
            else:
                paper = PAPER_TABLE5.get(row)
                paper_s = f"{paper[0]} ± {paper[1]}" if paper else "-"
                test = fmt([r["chi_star"] for r in mine if "chi_star" in r])
                lines.append(
                    f"| {label} | {paper_s} | {test} | {train} | {clean} | {fresh} | {grad} "
                    f"| {seeds} |"
                )
        lines += [
            "",
            "mean ± 95 % CI (Student's t) over the seeds of each row; one seed: its value",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    args = tyro.cli(Args)
    default_rows = {
        "4": tuple(r for r in ROWS if r not in ABLATIONS),
        "5": ("rma3c", "maddpg_chi", "m3ddpg_chi", "mappo_chi"),
        "game": ("rma3c", "maddpg", "maddpg_n"),
    }
    args.rows = args.rows or default_rows[args.table]
    args.results = args.results or str(Path(args.workdir, "results"))
    Path(args.results).mkdir(parents=True, exist_ok=True)
    if args.table == "5":
        args.envs = ("cn6",)
    elif args.table == "game":
        args.envs = ("game",)
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
    if args.report_only:
        plan = [(e, r, s) for e, r, s in plan if finished(args, e, r, s)]
    per_run = args.train_timesteps + (
        args.attack_timesteps + args.gradient_attack_timesteps if args.table != "game" else 0
    )
    names = [f"{e}/{r}/seed{s}" for e, r, s in plan]
    folders = [folder(args, e, r, s) for e, r, s in plan]
    with Monitor(folders, per_run * len(plan), names) as stage, \
            ThreadPoolExecutor(args.jobs) as pool:  # fmt: skip
        futures = [pool.submit(run_row, args, e, r, s, stage) for e, r, s in plan]
        results = [f.result() | {"env": e} for f, (e, _, _) in zip(futures, plan, strict=True)]
    text = report(args, results)
    print(text)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    Path(args.workdir, "samg_report.md").write_text(text + "\n")
    Path(args.workdir, "samg_report.json").write_text(json.dumps(results, indent=2))
