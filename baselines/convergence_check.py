# docs and experiment results can be found at docs/convergence_check.md
"""The convergence check of Nika et al. (TMLR 2024), Fig. 5: can one agent still gain?

If trained policies are an ARNEQ (Definition 3), no agent gains by changing its policy while
the others, and the worst-case adversary, keep theirs. Fig. 5 checks this empirically:

1. fix every policy of a trained defender (e.g. ``art.py``'s);
2. train a fresh adversary against one agent, the victim (``attack.py``, k-corruption);
3. continue training the victim alone for 5 % of the defender's training steps, against the
   fixed other agents and the fixed adversary;
4. report the victim's return after, minus before.

This file does steps 3 and 4 on an ``attack.py`` run of step 2. The continued training is
``ippo.py`` (no PPO here): the victim starts from its trained actor (``--init-policies``),
the other defenders act greedily inside the env (``--frozen``, as ``attack.py`` froze them),
and the attacker is embedded in ``k_corruption_v0``'s adversary slot (sampling, with its own
seed, as ``attack.py`` evaluated it; on the sync backend, as the batched one refuses embedded
adversaries). A checkpoint exports actors only, so the victim's
critic starts fresh: the first ``--critic-warmup-iterations`` iterations fit only the critic
(the actor is held) and are not counted in the 5 %. The continued run uses the defender's
PPO hyperparameters (the env's App. D preset) at a constant learning rate.

Both policies are then evaluated greedily in the same env on the same seeded episodes, so
the gain's standard error is over paired episodes. The result goes to
``<attack run>/convergence/<victim>/result.json``; a finished check is skipped and a killed
one resumes its ``ippo.py`` run from its last checkpoint.

The gain is measured against the attacker the victim trained against. ``--reattack`` also
trains a fresh attacker of the same scenario against the continued policy (``attack.py``, the
attack run's budget and backend, on a checkpoint that combines the defender's policies with
the victim's continued one), and one the same way against the original defender, and reports
the victim's return under each: whether the gain survives an attacker that knows the new
policy, against a baseline of the same protocol (two attackers of one scenario can differ).
"""

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import tyro

from adv_wrappers import adversary_id
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.checkpoint import read_policies, save_policies
from adv_wrappers.train.config import cli_flags
from adv_wrappers.train.envs import evaluate, make_env, victims_return
from adv_wrappers.train.jobs import attack_or_resume, mean_se, train_or_resume
from adv_wrappers.vector import stacked_agent_id

IPPO = Path(__file__).resolve().parent / "ippo.py"
ATTACK = Path(__file__).resolve().parent / "attack.py"
# the defender's PPO hyperparameters that the continued ippo.py run takes over
PPO_FLAGS = (
    "num_envs", "num_steps", "learning_rate", "gamma", "gae_lambda", "minibatch_size",
    "update_epochs", "norm_adv", "clip_coef", "clip_vloss", "ent_coef", "vf_coef",
    "max_grad_norm", "target_kl", "hidden_sizes",
)  # fmt: skip
# the continued run embeds the attacker in the threat wrapper, which the batched path refuses
# (adv_wrappers.vector): it runs on the sync backend whatever the defender's was (40K steps
# at Table 1's preset)


@dataclass
class Args:
    attack: str = ""
    """an `attack.py` run folder with k_corruption_v0 scenarios (its `attack_results.json`,
    or any file in the folder); its defender is the one checked. Required"""
    victim: str = ""
    """the agent whose training continues (default: the defender's first agent)"""
    scenario: str = ""
    """which of the victim's scenarios (the attacked subset K) to use (default: the one with
    the victim's lowest return under attack)"""
    fraction: float = 0.05
    """the continued training's steps, as a fraction of the defender's training steps (its
    checkpoint's `global_step`); Fig. 5: 5 %"""
    critic_warmup_iterations: int = 2
    """iterations before those, in which only the fresh critic learns (the actor is held)"""
    eval_episodes: int = 100
    """greedy evaluation episodes of the victim's policy before and after (same seeds)"""
    seed: int = 1
    """seed of the continued training and of the evaluation episodes"""
    train_flags: str = ""
    """extra flags of the continued `ippo.py` run, as one string (e.g. `"--num-steps 50"`)"""
    reattack: bool = False
    """also train a fresh attacker of the same scenario against the continued policy (the
    attack run's steps and vector backend) and report the victim's return under it"""
    attack_flags: str = ""
    """extra flags of that `attack.py` run, as one string (tests use tiny batches)"""


def attack_summary(path):
    """``attack_results.json`` of the attack run at (or above) ``path``."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if (folder / "attack_results.json").is_file():
            return folder, json.loads((folder / "attack_results.json").read_text())
    raise InvalidArgumentError(f"--attack {str(path)!r}: no attack_results.json in it or above it")


def pick_scenario(results, victim, name):
    """The victim's k-corruption scenario: ``name``, or its worst (lowest attacked return)."""
    mine = [
        r for r in results["scenarios"]
        if r["threat"]["name"] == "k_corruption_v0" and r["victims"] == [victim]
    ]  # fmt: skip
    if name:
        mine = [r for r in mine if r["scenario"] == name]
    if not mine:
        raise InvalidArgumentError(
            f"the attack has no k_corruption_v0 scenario with victim {victim!r}"
            + (f" named {name!r}" if name else "")
            + f"; its scenarios: {[r['scenario'] for r in results['scenarios']]}"
        )
    return min(mine, key=lambda r: r["attacked"][0])


def attacker_refs(scenario, seed):
    """The scenario's trained attacker as the wrapper's adversary slot (sampled actions, each
    network its own seed, as ``attack.py`` evaluated it; a stacked run's names renamed)."""
    attacker = scenario["attacker"]
    stored = read_record(attacker)["policies"]
    refs = {}
    for m, j in enumerate(scenario["threat"]["kwargs"]["subset"]):
        name = stacked_agent_id(scenario["scenario"], adversary_id(j))
        name = name if name in stored else adversary_id(j)
        refs[j] = {"checkpoint": attacker, "agent": name, "deterministic": False, "seed": seed + m}
    return refs


if __name__ == "__main__":
    args = tyro.cli(Args)
    if not args.attack:
        raise SystemExit("convergence_check.py: --attack ATTACK_RUN is required")
    if not 0.0 < args.fraction <= 1.0:
        raise InvalidArgumentError(f"--fraction must be in (0, 1]; got {args.fraction}")
    if args.critic_warmup_iterations < 0:
        raise InvalidArgumentError(
            f"--critic-warmup-iterations must be >= 0; got {args.critic_warmup_iterations}"
        )
    folder, results = attack_summary(args.attack)
    defender = results["defender"]
    record = read_record(defender)
    env_id, env_kwargs = record["env_id"], record["env_kwargs"]
    agents = list(make_env(env_id, env_kwargs)().possible_agents)
    victim = args.victim or agents[0]
    if victim not in agents:
        raise InvalidArgumentError(f"--victim {victim!r}: the defender's agents are {agents}")
    scenario = pick_scenario(results, victim, args.scenario)
    out = folder / "convergence" / victim
    done = out / "result.json"
    if done.exists() and (
        not args.reattack or "original" in json.loads(done.read_text()).get("reattack", {})
    ):
        print(done.read_text())
        raise SystemExit(0)  # (a check without its re-attack: only that runs, below)

    # the continued training: the defender's own PPO hyperparameters, at a constant rate
    trained = record.get("args") or {}
    missing = [k for k in PPO_FLAGS if k not in trained]
    if missing:
        raise InvalidArgumentError(
            f"the defender {defender} records no {missing}: it was not trained with PPO"
        )
    iteration_steps = int(trained["num_envs"]) * int(trained["num_steps"])
    defender_steps = int(record["global_step"])
    steps = max(1, round(args.fraction * defender_steps / iteration_steps)) * iteration_steps
    warmup = args.critic_warmup_iterations * iteration_steps
    kwargs = {**scenario["threat"]["kwargs"], "adversary": attacker_refs(scenario, args.seed)}
    threat = {"name": "k_corruption_v0", "kwargs": kwargs}
    frozen = {a: {"checkpoint": defender, "agent": a} for a in agents if a != victim}
    flags = cli_flags({k: trained[k] for k in PPO_FLAGS}) + cli_flags({
        "env_id": env_id, "env_kwargs": json.dumps(env_kwargs), "seed": args.seed,
        "exp_name": f"convergence_{victim}", "threat": "k_corruption_v0",
        "threat_kwargs": json.dumps(kwargs), "frozen": json.dumps(frozen),
        "init_policies": json.dumps({victim: {"checkpoint": defender, "agent": victim}}),
        "critic_warmup_iterations": args.critic_warmup_iterations,
        "total_timesteps": warmup + steps, "anneal_lr": False, "eval_episodes": 0,
        "vector_backend": "sync",
    }) + shlex.split(args.train_flags)  # fmt: skip
    print(
        f"convergence check of {defender}: victim {victim}, scenario {scenario['scenario']}; "
        f"continuing for {steps:,} steps ({args.fraction:g} of {defender_steps:,}) after "
        f"{warmup:,} critic warm-up steps, in {out}",
        flush=True,
    )
    continued = train_or_resume(IPPO, out, flags)

    # both policies, greedy, on the same seeded episodes against the same attacker
    env_fn = make_env(env_id, env_kwargs, threat)
    policies = {a: load_policy(defender, agent=a) for a in agents}
    before = victims_return(
        evaluate(env_fn, policies, args.eval_episodes, args.seed), [victim], agents
    )
    policies[victim] = load_policy(continued, agent=victim)
    after = victims_return(
        evaluate(env_fn, policies, args.eval_episodes, args.seed), [victim], agents
    )
    gain = mean_se(after - before)  # the standard error over paired episodes
    reattack = None
    if args.reattack:  # a fresh attacker of the same scenario against the continued policy
        policies, spaces = read_policies(defender)
        policies[victim] = read_policies(continued, [victim])[0][victim]
        combined = save_policies(
            out / "defender_continued.safetensors", policies, env_id=env_id, spaces=spaces,
            env_kwargs=env_kwargs, threat=record.get("threat"), algorithm=record.get("algorithm"),
            extra={"convergence_check": {"defender": defender, "continued": str(continued),
                                         "victim": victim}},
        )  # fmt: skip
        attack_args = results["args"]  # the attack compared with: its budget and backend
        subset = scenario["threat"]["kwargs"]["subset"]

        def fresh_attack(defender_path, where):
            """A fresh attacker of the scenario against ``defender_path`` (in ``out/where``)."""
            (fresh,) = attack_or_resume(ATTACK, out, [
                "--defender", str(Path(defender_path).resolve()), "--k", str(len(subset)),
                "--victim", victim, "--attacked", *subset, "--seed", str(args.seed),
                "--total-timesteps", str(attack_args["total_timesteps"]),
                "--vector-backend", attack_args.get("vector_backend", "sync"),
                "--eval-episodes", str(args.eval_episodes),
                *shlex.split(args.attack_flags),
            ], folder=where)["scenarios"]  # fmt: skip
            return {key: fresh[key] for key in ("attacker", "attacked", "clean")}

        # the same protocol on the original defender too: a paired baseline, since two
        # attackers of one scenario can differ by more than the gain
        reattack = {"timesteps": attack_args["total_timesteps"],
                    "continued": fresh_attack(combined, "reattack"),
                    "original": fresh_attack(defender, "reattack_original")}  # fmt: skip

    result = {
        "defender": defender, "victim": victim, "scenario": scenario["scenario"],
        "attacker": scenario["attacker"], "continued": str(continued.resolve()),
        "defender_steps": defender_steps, "steps": steps, "warmup_steps": warmup,
        "episodes": args.eval_episodes, "before": list(mean_se(before)),
        "after": list(mean_se(after)), "gain": list(gain),
        **({"reattack": reattack} if reattack else {}), "args": asdict(args),
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    done.with_suffix(".tmp").write_text(json.dumps(result, indent=2))
    done.with_suffix(".tmp").replace(done)
    print(
        f"victim {victim}: {result['before'][0]:.2f} before, {result['after'][0]:.2f} after "
        f"{steps:,} more steps; gain {gain[0]:+.2f} ± {gain[1]:.2f} (paired SE, "
        f"{args.eval_episodes} episodes)"
        + (f"; fresh attackers of {reattack['timesteps']:,} steps: "
           f"{reattack['continued']['attacked'][0]:.2f} against the continued policy, "
           f"{reattack['original']['attacked'][0]:.2f} against the original" if reattack else "")
        + f"\nresult: {done}"
    )  # fmt: skip
