# docs and experiment results can be found at docs/attack.md
"""The non-oblivious attacker: a fresh PPO adversary trained against frozen defenders.

Nika et al. (TMLR 2024), Sec. 5.3: "we fixed the benign policies and trained new adversaries
from scratch that use the same hyperparameters". The defenders come from a checkpoint of any
trainer here (``ippo.py``, ``mappo.py``, ``art.py``); they act greedily, inside the env,
through ``freeze_v0`` (and the threat's benign slots). The threat model comes from its
wrapper with its adversary slot *exposed*, so the only agents left outside are the
adversaries, and ``ippo.py`` (run as a subprocess, the defenders given with ``--frozen``)
trains them with PPO on the reward the wrapper pays them: minus the victims' reward. This
file has no PPO of its own. One run attacks one or several *scenarios*, trained one after
the other from the same seed (each is exactly what a run of that scenario alone would give),
or, with ``--stack-scenarios``, side by side in one ``ippo.py`` run (``ippo.py --scenarios``:
each scenario its own networks and copies; k-corruption and Byzantine scenarios):

* ``k_corruption_v0`` (Nika et al. (TMLR 2024)): a victim and a subset K of at most k other
  agents; ``--victim all`` and no ``--attacked`` give every victim and every K of size
  exactly k in turn (the worst case over victims and adversaries of Table 1).
  ``--victim team``: the benign agents are the victims together (cooperative envs).
* ``byzantine_v0`` (Li et al. (ICLR 2024), Sec. 4, "Evaluation protocol"): every agent i in
  turn (or ``--attacked``) is Byzantine in *every* episode (theta = e_i, a point-mass
  prior); its adversary network replaces its actions and the victims are the benign team.
  ``--prior`` instead draws theta from that prior every episode (one scenario, one adversary
  network per agent; the episodes where nature draws theta = 0 are then clean ones). True
  Type defenders (``eir_mappo.py --true-type``) see theta in their observations, so their
  clean episodes run with theta = 0 revealed.
* ``partial_control_v0`` (Liu et al. (ICLR 2024), Eq. 3.1): the attacker's action is
  executed for agent alpha (``--attacked``; every agent in turn by default) with probability
  ``--epsilon``, the defender's own policy otherwise; the victims are the other agents (or
  ``--victim``).
* ``state_perturbation_v0`` (He et al. (TMLR 2023)): a learned chi_j per attacked agent j
  (``--attacked``, default every agent) picks the observation j sees inside the
  ``--epsilon`` ball, after seeing the true one (the wrapper's ``victim_policies`` timing);
  the victims are the perturbed agents.

Every scenario ends with an evaluation: the trained attacker, loaded from its checkpoint,
is embedded in the same wrapper and the victims' returns are read from the env directly
(``eval_episodes`` episodes, also without attack, on the same seeds). Scenario ``s`` lives in
``runs/<run_name>/<s>/`` (its ``ippo.py`` run under ``runs/``, its ``result.json``); a scenario
whose result exists is skipped, so ``--resume runs/<run_name>`` (or re-running a killed
report) continues where it stopped, a killed scenario from its last checkpoint. The results
are logged (``attack/*``, TensorBoard in ``runs/<run_name>``), printed as a table and written
to ``runs/<run_name>/attack_results.json``. To stop an attack, kill its process group: a
signal to this process alone leaves its ``ippo.py`` child running.
"""

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from adv_wrappers import adversary_id, all_subsets
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.state_perturbation import perturber_id
from adv_wrappers.stealth import state_shift
from adv_wrappers.train import load_policy, read_record
from adv_wrappers.train.config import PAPER_000_PRESETS, args_from_dict, cli_flags, parse_args
from adv_wrappers.train.envs import evaluate, make_env, victims_return
from adv_wrappers.train.jobs import mean_se
from adv_wrappers.train.tracking import run_name
from adv_wrappers.vector import stacked_agent_id

IPPO = Path(__file__).resolve().parent / "ippo.py"


@dataclass
class Args:
    exp_name: str = Path(__file__).stem
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment (every scenario starts from it)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=False`"""
    cuda: bool = True
    """if toggled, cuda will be enabled by default (when available)"""
    torch_threads: int = 1
    """CPU threads of torch (`torch.set_num_threads`)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "adv-wrappers"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    checkpoint_every: int = 10
    """every scenario's `ippo.py` run writes `checkpoints/last.safetensors` every this many
    iterations (and `final.safetensors` at its end)"""
    resume: str | None = None
    """an attack's run folder `runs/<run_name>` (or any file in it) to continue: finished
    scenarios are skipped, a killed one resumes from its last checkpoint; every other flag is
    then taken from the folder's `attack_args.json`"""
    eval_episodes: int = 100
    """episodes of the final evaluation of every scenario, with and without the attacker"""
    debug_nan_at_iteration: int = 0
    """testing only: make the loss NaN at this iteration to exercise the divergence guard"""

    # The defenders (frozen) and their environment
    defender: str = ""
    """checkpoint of the defenders (any trainer's `final.safetensors`); required"""
    env_id: str = ""
    """the id of the environment (default: the defender's; another one is an error)"""
    env_kwargs: str = ""
    """keyword arguments of the environment as a JSON dict (default: the defender's)"""
    num_envs: int = 8
    """the number of parallel game environments"""
    vector_backend: str = "sync"
    """`sync` (one process), `subproc` (one worker per env copy) or `batched` (the batched
    torch env, the defenders' checkpoint policies evaluated on the whole batch:
    docs/batched.md)"""

    # Threat model
    threat: Literal[
        "k_corruption_v0", "byzantine_v0", "partial_control_v0", "state_perturbation_v0"
    ] = "k_corruption_v0"
    """the threat model (`adv_wrappers.registry.THREAT_MODELS`)"""
    k: int = 1
    """k_corruption: the number of corrupted agents of every scenario (1 <= k < n)"""
    victim: str = "all"
    """k_corruption: an agent ID, `all` (every agent in turn) or `team` (the benign agents);
    partial_control: an agent ID or `all` (every agent but alpha, together)"""
    attacked: tuple[str, ...] = ()
    """k_corruption: the subset K (default: every K of size k in turn); partial_control: alpha
    (default: every agent in turn); state_perturbation: the perturbed agents (default: all)"""
    epsilon: float | None = None
    """partial_control: the attack budget epsilon_pi in [0, 1]; state_perturbation: the
    radius of the perturbation ball (required by both)"""
    norm: Literal["linf", "l2"] = "linf"
    """state_perturbation: the norm of the ball"""
    prior: str = ""
    """byzantine: nature's prior over types as JSON, types written as 0/1 strings, e.g.
    `{"000": 0.5, "100": 0.5}`, drawn every episode (default: none; every agent i in turn is
    Byzantine in every episode, theta = e_i, Li et al.'s evaluation protocol)"""
    train_on_all_steps: bool = False
    """partial_control: the attacker's policy loss counts every step, also those where the
    wrapper executed alpha's benign action instead of the attacker's (default: only the
    executed steps, `ippo.py --executed-only`; the value loss always uses every step)"""
    eval_epsilons: tuple[float, ...] = ()
    """partial_control: also evaluate every trained attacker at these budgets (the mismatch
    between training and test budgets, Liu et al. (ICLR 2024), App. E.4)"""
    stealth_features: int = 10
    """stealth: how many observation features (the largest variances on clean rollouts) the
    distribution shift compares (adv_wrappers.stealth.state_shift)"""
    stack_scenarios: bool = False
    """train the attackers of every scenario in one `ippo.py` run, side by side, each with its
    own networks and `--num-envs` copies (`ippo.py --scenarios`); k_corruption_v0 and
    byzantine_v0 (theta = e_i) on fixed-horizon envs. Faster than one run per scenario; the
    random draws differ from those runs (docs/attack.md)"""
    stochastic_defenders: bool = False
    """the defenders sample their actions (seeded) instead of acting greedily; Li et al.'s
    robust policies are mixed (in the XNOR/XOR game a greedy defender is exploited to 0)"""

    # Algorithm specific arguments
    total_timesteps: int = 500000
    """environment steps per scenario (summed over env copies)"""
    learning_rate: float = 2.5e-4
    """the learning rate of the attacker"""
    num_steps: int = 128
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    minibatch_size: int = 128
    """the number of (step, env) samples per minibatch, per adversary"""
    update_epochs: int = 4
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """Toggles advantages normalization (per adversary, per minibatch)"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function, as per the paper."""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping (per adversary)"""
    target_kl: float | None = None
    """the target KL divergence threshold"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the actor and the critic"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations per scenario (computed in runtime)"""


# Per-env presets: Nika et al.'s App. D, at the adversaries' learning rate of ART (twice the
# benign one, Sec. 5.2): "new adversaries from scratch that use the same hyperparameters".
PRESETS = {
    env_id: {**p, "learning_rate": 2 * p["learning_rate"]}
    for env_id, p in PAPER_000_PRESETS.items()
}


@dataclass
class Scenario:
    """One attack: the training env's threat (adversaries exposed) and frozen defenders."""

    name: str
    threat: dict
    frozen: dict = field(default_factory=dict)  # every defender (used whenever it is outside)
    controlled: dict = field(default_factory=dict)  # attacked agent -> exposed adversary ID
    slot: str = "adversary"  # the threat's argument for embedded attackers
    victims: list | None = None  # whose return is scored (None: every benign agent)


def defender_ref(args, agent, index=0):
    """A policy reference to the defender of ``agent`` (greedy, as deployed, unless
    ``--stochastic-defenders``: then sampled with its own seed)."""
    if args.stochastic_defenders:
        return {"checkpoint": args.defender, "agent": agent, "deterministic": False,
                "seed": args.seed + 1000 + index}  # fmt: skip
    return {"checkpoint": args.defender, "agent": agent}


def revealed_types(record):
    """``{"reveal_types": True}`` for True Type defenders (they observe theta), else ``{}``."""
    threat = record.get("threat") or {}
    kwargs = threat.get("kwargs") or {}
    return (
        {"reveal_types": True}
        if threat.get("name") == "byzantine_v0" and kwargs.get("reveal_types")
        else {}
    )


def clean_threat(record, n):
    """The defenders' env without attack: none, or theta = 0 revealed for True Type."""
    if revealed_types(record):
        return {"name": "byzantine_v0", "kwargs": {"reveal_types": True, "prior": {"0" * n: 1.0}}}
    return None


def parse_prior(text, n):
    """``--prior`` JSON -> ``{"010": p}`` (``None`` when empty: the wrapper's default); the
    wrapper checks the types and probabilities (``InvalidPriorError``)."""
    if not text:
        return None
    try:
        prior = {str(key): float(p) for key, p in json.loads(text).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidArgumentError(
            f"--prior must be a JSON object mapping types written as {n} 0/1 characters to "
            f'probabilities, e.g. {{"{"0" * n}": 0.5, "{"1" + "0" * (n - 1)}": 0.5}}; '
            f"got {text!r} ({exc})"
        ) from None
    return prior


def scenarios(args, agents, defender_record=None):
    """The scenarios of this run, from the threat flags (``InvalidArgumentError`` if bad);
    ``defender_record``: the defender checkpoint's record (True Type defenders see theta)."""
    for a in (*args.attacked, *([args.victim] if args.victim not in ("all", "team") else [])):
        if a not in agents:
            raise InvalidArgumentError(f"unknown agent {a!r}: the defender's agents are {agents}")
    needs_epsilon = args.threat in ("partial_control_v0", "state_perturbation_v0")
    if needs_epsilon and args.epsilon is None:
        raise InvalidArgumentError(f"--epsilon is required with --threat {args.threat}")
    if not needs_epsilon and args.epsilon is not None:
        raise InvalidArgumentError(f"--epsilon is not used by --threat {args.threat}")
    if args.eval_epsilons and args.threat != "partial_control_v0":
        raise InvalidArgumentError(f"--eval-epsilons is for partial_control_v0, not {args.threat}")
    for e in args.eval_epsilons:
        if not (np.isfinite(e) and 0.0 <= e <= 1.0):
            raise InvalidArgumentError(f"--eval-epsilons must be in [0, 1]; got {e}")
    if args.stealth_features < 1:
        raise InvalidArgumentError(f"--stealth-features must be >= 1; got {args.stealth_features}")
    out = []
    if args.threat == "k_corruption_v0":
        if not 1 <= args.k < len(agents):
            raise InvalidArgumentError(f"--k must be in [1, {len(agents) - 1}]; got {args.k}")
        victims = agents if args.victim == "all" else [args.victim]
        for v in victims:
            others = [a for a in agents if a != v]
            if args.attacked:
                if v in args.attacked or len(args.attacked) > args.k:
                    raise InvalidArgumentError(
                        f"--attacked {list(args.attacked)}: at most k={args.k} agents, "
                        f"without the victim {v!r}"
                    )
                subsets = [tuple(args.attacked)]
            else:
                subsets = [K for K in all_subsets(others, args.k) if len(K) == args.k]
            for K in subsets:
                victim = None if v == "team" else v
                kwargs = {"k": args.k, "victim": victim, "subset": list(K)}
                out.append(Scenario(
                    name=f"victim={v},attacked={'+'.join(K)}",
                    threat={"name": args.threat, "kwargs": kwargs},
                    frozen={a: defender_ref(args, a) for a in agents},
                    controlled={j: adversary_id(j) for j in K},
                    victims=None if victim is None else [victim],
                ))  # fmt: skip
    elif args.threat == "byzantine_v0":
        if args.victim not in ("all", "team") or (args.attacked and args.prior):
            raise InvalidArgumentError(
                "byzantine_v0: the victims are the benign team (--victim is not used); "
                "--attacked (theta = e_i for each) and --prior (nature's prior) exclude each other"
            )
        reveal = revealed_types(defender_record or {})
        frozen = {a: defender_ref(args, a, i) for i, a in enumerate(agents)}
        prior = parse_prior(args.prior, len(agents))
        if prior is not None:
            out.append(Scenario(
                name="byzantine", threat={"name": args.threat, "kwargs": {**reveal, "prior": prior}},
                frozen=frozen, controlled={j: adversary_id(j) for j in agents},
            ))  # fmt: skip
        byzantine = [] if prior is not None else list(args.attacked or agents)
        for j in byzantine:  # theta = e_j in every episode
            theta = "".join("1" if a == j else "0" for a in agents)
            out.append(Scenario(
                name=f"theta=e_{agents.index(j)},byzantine={j}",
                threat={"name": args.threat, "kwargs": {**reveal, "prior": {theta: 1.0}}},
                frozen=frozen, controlled={j: adversary_id(j)},
                victims=[a for a in agents if a != j],
            ))  # fmt: skip
    elif args.threat == "partial_control_v0":
        if len(args.attacked) > 1:
            raise InvalidArgumentError(f"--attacked: one alpha at most; got {list(args.attacked)}")
        for alpha in args.attacked or agents:
            if args.victim == alpha:
                raise InvalidArgumentError(f"--victim {alpha!r} is alpha itself")
            victim = None if args.victim in ("all", "team") else args.victim
            kwargs = {"agent": alpha, "epsilon": args.epsilon, "victim": victim,
                      "benign_policy": defender_ref(args, alpha)}  # fmt: skip
            out.append(Scenario(
                name=f"alpha={alpha},epsilon={args.epsilon:g}",
                threat={"name": args.threat, "kwargs": kwargs},
                frozen={a: defender_ref(args, a) for a in agents},
                controlled={alpha: adversary_id(alpha)},
                victims=[a for a in agents if a != alpha] if victim is None else [victim],
            ))  # fmt: skip
    else:  # state_perturbation_v0
        perturbed = list(args.attacked or agents)
        kwargs = {"epsilon": args.epsilon, "agents": perturbed, "norm": args.norm,
                  "victim_policies": {j: defender_ref(args, j) for j in perturbed}}  # fmt: skip
        out.append(Scenario(
            name=f"perturbed={'+'.join(perturbed)},epsilon={args.epsilon:g}",
            threat={"name": args.threat, "kwargs": kwargs},
            controlled={j: perturber_id(j) for j in perturbed},
            # the perturbed agents act inside the wrapper (victim_policies): not frozen
            frozen={a: defender_ref(args, a) for a in agents if a not in perturbed},
            slot="attack",
            victims=perturbed,
        ))  # fmt: skip
    return out


def stealth(clean_obs, attacked_obs, top_k):
    """How far the attack shifts the victims' observation distribution (Liu et al. (ICLR
    2024), Figs. 3 and 7): ``state_shift`` per victim, and its mean over the victims."""
    per_victim = {}
    for a, rows in clean_obs.items():
        if len(rows) < 2 or len(attacked_obs.get(a, ())) < 2:
            continue
        try:
            per_victim[a] = state_shift(np.stack(rows), np.stack(attacked_obs[a]), top_k)
        except InvalidArgumentError:  # no feature varies on clean rollouts
            continue
    if not per_victim:
        return None
    keys = ("w2", "w2_marginal", "kl", "hellinger")
    mean = {k: float(np.mean([s[k] for s in per_victim.values()])) for k in keys}
    return {**mean, "per_victim": per_victim}


def evaluate_scenario(args, env_kwargs, scenario, attacker_path, agents, names=None):
    """Victims' per-episode returns, clean and with the trained attacker embedded, the shift
    of their observation distribution, and (partial control, ``--eval-epsilons``) the same
    at other budgets. ``names``: adversary ID -> its policy's name in the checkpoint (default:
    the same; a stacked run's are renamed)."""
    names = names or {}
    policies = {
        a: load_policy(args.defender, agent=a, deterministic=not args.stochastic_defenders,
                       seed=args.seed + 1000 + i)
        for i, a in enumerate(agents)
    }  # fmt: skip
    clean_env = make_env(
        args.env_id, env_kwargs, clean_threat(read_record(args.defender), len(agents))
    )
    clean_victims = scenario.victims if scenario.victims is not None else agents
    clean_obs = {a: [] for a in clean_victims}
    clean = evaluate(clean_env, policies, args.eval_episodes, args.seed, clean_obs)
    kwargs = dict(scenario.threat["kwargs"])
    kwargs.pop("victim_policies", None)  # the victims act outside, on the perturbed obs
    kwargs[scenario.slot] = {  # sampled actions, each attacker network its own seed
        j: {"checkpoint": str(attacker_path), "agent": names.get(adv, adv), "deterministic": False,
            "seed": args.seed + m}
        for m, (j, adv) in enumerate(scenario.controlled.items())
    }  # fmt: skip
    budgets = [kwargs.get("epsilon")]
    if scenario.threat["name"] == "partial_control_v0":
        budgets += [e for e in args.eval_epsilons if e != kwargs["epsilon"]]
    out = {"clean": mean_se(victims_return(clean, clean_victims, agents)), "by_epsilon": {}}
    for e in budgets:
        threat_kwargs = kwargs if e is None else {**kwargs, "epsilon": e}
        threat = {"name": scenario.threat["name"], "kwargs": threat_kwargs}
        attacked_obs = {a: [] for a in clean_victims}
        attacked = evaluate(
            make_env(args.env_id, env_kwargs, threat), policies, args.eval_episodes, args.seed,
            attacked_obs,
        )  # fmt: skip
        result = {
            "attacked": mean_se(victims_return(attacked, scenario.victims, agents)),
            "stealth": stealth(clean_obs, attacked_obs, args.stealth_features),
        }
        if e == budgets[0]:
            out.update(result)
        else:
            out["by_epsilon"][f"{e:g}"] = result
    return out


# The attacker's PPO: ippo.py with these flags of this file (the threat's flags excepted).
IPPO_FLAGS = (
    "seed", "torch_deterministic", "cuda", "torch_threads", "track", "wandb_project_name",
    "wandb_entity", "checkpoint_every", "debug_nan_at_iteration", "env_id", "num_envs",
    "vector_backend", "total_timesteps", "learning_rate", "num_steps", "anneal_lr", "gamma",
    "gae_lambda", "minibatch_size", "update_epochs", "norm_adv", "clip_coef", "clip_vloss",
    "ent_coef", "vf_coef", "max_grad_norm", "target_kl", "hidden_sizes",
)  # fmt: skip


def stacked(args, plan):
    """One training of every scenario of ``plan`` side by side (``--stack-scenarios``): the
    threat that covers them all, and ``ippo.py --scenarios``'s list, each scenario pinned by
    the wrapper's reset options (``InvalidArgumentError`` for the other threat models)."""
    threat = args.threat
    if threat == "k_corruption_v0":
        kwargs = {"k": args.k}
        options = [{"victim": s.threat["kwargs"]["victim"], "attacked": s.threat["kwargs"]["subset"]}
                   for s in plan]  # fmt: skip
    elif threat == "byzantine_v0" and not args.prior:
        reveal = {k: v for k, v in plan[0].threat["kwargs"].items() if k == "reveal_types"}
        thetas = [next(iter(s.threat["kwargs"]["prior"])) for s in plan]
        kwargs = {**reveal, "prior": {theta: 1.0 / len(thetas) for theta in thetas}}
        options = [{"theta": [int(ch) for ch in theta]} for theta in thetas]
    else:
        raise InvalidArgumentError(
            "--stack-scenarios stacks k_corruption_v0 scenarios and byzantine_v0 without "
            f"--prior (one scenario per Byzantine agent); got --threat {threat}"
            + (" with --prior" if args.prior else "")
        )
    scenario = Scenario(name="stacked", threat={"name": threat, "kwargs": kwargs},
                        frozen=plan[0].frozen)  # fmt: skip
    specs = [{"name": s.name, "agents": list(s.controlled.values()), "options": o}
             for s, o in zip(plan, options, strict=True)]  # fmt: skip
    return scenario, specs


def train_attacker(args, env_kwargs, scenario, folder, stack=None):
    """Train the scenario's adversaries with ``ippo.py`` in ``folder`` (continuing a killed
    run from its last checkpoint); return the final checkpoint. ``stack``: the scenarios that
    ``scenario`` trains side by side (:func:`stacked`)."""
    finals = sorted(folder.glob("runs/*/checkpoints/final.safetensors"))
    if finals and read_record(finals[-1])["complete"]:
        return finals[-1]
    lasts = sorted(folder.glob("runs/*/checkpoints/last.safetensors"))
    if lasts:
        flags = ["--resume", str(lasts[-1].resolve())]
    else:  # (a run killed before its first checkpoint left nothing to continue from)
        shutil.rmtree(folder / "runs", ignore_errors=True)
        flags = cli_flags({name: getattr(args, name) for name in IPPO_FLAGS}) + cli_flags({
            "exp_name": args.exp_name, "env_kwargs": json.dumps(env_kwargs),
            "threat": scenario.threat["name"], "threat_kwargs": json.dumps(scenario.threat["kwargs"]),
            "frozen": json.dumps(scenario.frozen), "eval_episodes": 0,
            "executed_only": scenario.threat["name"] == "partial_control_v0"
            and not args.train_on_all_steps,
        }) + (cli_flags({"scenarios": json.dumps(stack)}) if stack else [])  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, str(IPPO), *flags], cwd=folder)
    # a SIGTERM of this script stops the training too (SIGKILL cannot be forwarded: kill the
    # process group, docs/attack.md)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.terminate())
    try:
        code = process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        raise SystemExit(f"attack.py: training the attacker of {scenario.name} failed ({code})")
    return sorted(folder.glob("runs/*/checkpoints/final.safetensors"))[-1]


def parse(argv):
    """The arguments, the defender's env and preset applied (or those of ``--resume``'s
    attack), and the run folder."""
    args = tyro.cli(Args, args=argv)
    if args.resume:
        folder = Path(args.resume).resolve()
        folder = next((p for p in (folder, *folder.parents) if (p / "attack_args.json").exists()),
                      None)  # fmt: skip
        if folder is None:
            raise SystemExit(f"--resume {args.resume}: no attack_args.json in it or above it")
        saved = json.loads((folder / "attack_args.json").read_text())
        return args_from_dict(Args, saved, str(folder)), folder
    if not args.defender:
        raise SystemExit("attack.py: --defender CHECKPOINT is required")
    record = read_record(args.defender)  # CheckpointError if missing or corrupt
    if args.env_id and args.env_id != record["env_id"]:
        raise InvalidArgumentError(
            f"--env-id {args.env_id!r}: the defender was trained on {record['env_id']!r}"
        )
    # again, with the defender's env (and its preset)
    args = parse_args(Args, PRESETS, [*argv, "--env-id", record["env_id"]])
    args.defender = str(Path(args.defender).resolve())
    if not args.env_kwargs:
        args.env_kwargs = json.dumps(record["env_kwargs"])
    return args, Path("runs") / run_name(args.env_id, args.exp_name, args.seed)


if __name__ == "__main__":
    args, folder = parse(sys.argv[1:])
    env_kwargs = json.loads(args.env_kwargs)
    # the defenders: every agent of the clean env (loading checks their spaces)
    record = read_record(args.defender)
    clean_env_fn = make_env(args.env_id, env_kwargs)
    defender_agents = list(clean_env_fn().possible_agents)
    if revealed_types(record) and args.threat != "byzantine_v0":
        raise InvalidArgumentError(
            f"the defender {args.defender} is a True Type policy (it observes the types): "
            f"attack it with --threat byzantine_v0, not {args.threat}"
        )
    clean_env_fn = make_env(args.env_id, env_kwargs, clean_threat(record, len(defender_agents)))
    for a in defender_agents:
        load_policy(args.defender, agent=a, env=clean_env_fn())
    plan = scenarios(args, defender_agents, record)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attack_args.json").write_text(json.dumps(asdict(args) | {"resume": None}))
    print(f"attacking {args.defender} ({args.threat}): {len(plan)} scenario(s) in {folder}")

    results = []
    stack = stacked(args, plan) if args.stack_scenarios else None
    for index, scenario in enumerate(plan):
        scenario_dir = folder / scenario.name
        done = scenario_dir / "result.json"
        if done.exists():  # finished before this run was resumed
            results.append(json.loads(done.read_text()))
            continue
        # the adversaries are the only agents outside: the defenders are frozen inside
        exposed = make_env(args.env_id, env_kwargs, scenario.threat, frozen=scenario.frozen)()
        exposed.close()
        if sorted(exposed.possible_agents) != sorted(scenario.controlled.values()):
            raise InvalidArgumentError(
                f"scenario {scenario.name}: the env exposes {list(exposed.possible_agents)}, "
                f"expected the adversaries {sorted(scenario.controlled.values())}"
            )
        names = None
        if stack is None:
            print(f"scenario {index + 1}/{len(plan)}: {scenario.name}", flush=True)
            attacker = train_attacker(args, env_kwargs, scenario, scenario_dir)
        else:  # every scenario's attackers, trained once, side by side
            print(f"scenario {index + 1}/{len(plan)}: {scenario.name} (stacked)", flush=True)
            attacker = train_attacker(args, env_kwargs, stack[0], folder / "stacked", stack[1])
            names = {
                adv: stacked_agent_id(scenario.name, adv) for adv in scenario.controlled.values()
            }

        # the scenario's evaluation (the attacker loaded as the wrappers load it)
        evaluation = evaluate_scenario(args, env_kwargs, scenario, attacker, defender_agents, names)
        result = {
            "scenario": scenario.name, "threat": scenario.threat, "attacker": str(attacker.resolve()),
            "victims": scenario.victims, "episodes": args.eval_episodes, **evaluation,
        }  # fmt: skip
        scenario_dir.mkdir(parents=True, exist_ok=True)  # (a stacked run trains elsewhere)
        done.with_suffix(".tmp").write_text(json.dumps(result, indent=2))
        done.with_suffix(".tmp").replace(done)  # atomic: a result exists whole or not at all
        results.append(result)
        print(
            f"{scenario.name}: victims' return {result['clean'][0]:.2f} clean, "
            f"{result['attacked'][0]:.2f} under attack ({args.eval_episodes} episodes)"
        )
        for e, r in result["by_epsilon"].items():
            print(f"  evaluated at epsilon={e}: {r['attacked'][0]:.2f} under attack")

    worst = min(results, key=lambda r: r["attacked"][0])
    summary = {"defender": args.defender, "args": asdict(args), "scenarios": results,
               "worst": worst["scenario"], "worst_attacked": worst["attacked"]}  # fmt: skip
    (folder / "attack_results.json").write_text(json.dumps(summary, indent=2))
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for index, r in enumerate(results):
            writer.add_scalar(f"attack/clean_return/{r['scenario']}", r["clean"][0], index)
            writer.add_scalar(f"attack/attacked_return/{r['scenario']}", r["attacked"][0], index)
        writer.add_scalar("attack/worst_attacked_return", worst["attacked"][0], 0)
    print(f"\n{'scenario':<40} {'clean':>16} {'under attack':>16}   state shift (W2^2, KL, H)")
    for r in results:
        rows = [(r["scenario"], r["attacked"], r.get("stealth"))]
        rows += [(f"  at epsilon={e}", v["attacked"], v["stealth"])
                 for e, v in r.get("by_epsilon", {}).items()]  # fmt: skip
        for i, (name, a, shift) in enumerate(rows):
            c = f"{r['clean'][0]:>9.2f} ± {r['clean'][1]:<5.2f}" if i == 0 else " " * 17
            s = (
                "-"
                if not shift
                else (f"{shift['w2']:.4g}, {shift['kl']:.4g}, {shift['hellinger']:.3f}")
            )
            print(f"{name:<40} {c} {a[0]:>9.2f} ± {a[1]:<5.2f}   {s}")
    print(f"worst case: {worst['scenario']} ({worst['attacked'][0]:.2f})")
    print(f"results: {folder / 'attack_results.json'}")
