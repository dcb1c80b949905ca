# docs and experiment results can be found at docs/attack.md
"""The non-oblivious attacker: a fresh PPO adversary trained against frozen defenders.

Paper 000 (Nika et al., Sec. 5.3): "we fixed the benign policies and trained new adversaries
from scratch that use the same hyperparameters". The defenders come from a checkpoint of any
trainer here (``ippo.py``, ``mappo.py``, ``art.py``); they act greedily, inside the env,
through ``freeze_v0`` (and the threat's benign slots). The threat model comes from its
wrapper with its adversary slot *exposed*, so the only agents left outside are the
adversaries, and PPO trains them on the reward the wrapper pays them: minus the victims'
reward. One run attacks one or several *scenarios*, trained one after the other from the
same seed (each is exactly what a run of that scenario alone would give):

* ``k_corruption_v0`` (paper 000): a victim and a subset K of at most k other agents;
  ``--victim all`` and no ``--attacked`` give every victim and every K of size exactly k
  in turn (the worst case over victims and adversaries of Table 1). ``--victim team``: the
  benign agents are the victims together (cooperative envs).
* ``byzantine_v0`` (paper 002): nature draws the types from ``--prior`` every episode; one
  adversary network per agent acts whenever that agent is Byzantine; the victims are the
  benign team.
* ``partial_control_v0`` (paper 003, Eq. 3.1): the attacker's action is executed for agent
  alpha (``--attacked``; every agent in turn by default) with probability ``--epsilon``,
  the defender's own policy otherwise; the victims are the other agents (or ``--victim``).
* ``state_perturbation_v0`` (paper 004): a learned chi_j per attacked agent j (``--attacked``,
  default every agent) picks the observation j sees inside the ``--epsilon`` ball, after
  seeing the true one (the wrapper's ``victim_policies`` timing); the victims are the
  perturbed agents.

Every scenario ends with an evaluation: the trained attacker, loaded from its checkpoint,
is embedded in the same wrapper and the victims' returns are read from the env directly
(``eval_episodes`` episodes, also without attack, on the same seeds). The results are logged
(``attack/*``), printed as a table and written to ``runs/<run_name>/attack_results.json``.
"""

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from adv_wrappers import adversary_id, all_subsets
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.state_perturbation import perturber_id
from adv_wrappers.train.checkpoint import (
    Checkpointer,
    export_policies,
    load_policy,
    load_training_state,
    read_record,
)
from adv_wrappers.train.envs import (
    PAPER_000_PRESETS,
    EpisodeStats,
    check_trainable,
    env_seed,
    evaluate,
    gae,
    make_env,
    parse_args,
    seed_everything,
)
from adv_wrappers.train.networks import ActorSpec, MLPActor, clip_grad_norm_per_member_, stacked_mlp
from adv_wrappers.train.tracking import Run
from adv_wrappers.vector import make_vector_env


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
    """write `checkpoints/last.safetensors` every this many iterations (and at the end of
    every scenario, as `checkpoints/<scenario>.safetensors`)"""
    resume: str | None = None
    """a `last.safetensors` to resume from; every other flag is then taken from it"""
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
    """`sync` (one process) or `subproc` (one worker per env copy)"""

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
    """byzantine: the prior over types as JSON, types written as 0/1 strings, e.g.
    `{"000": 0.5, "100": 0.5}` (default: paper 002's, p(0) = 0.5, p(e_i) = 0.5 / n)"""

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


# Per-env presets: paper 000's App. D, at the adversaries' learning rate of ART (twice the
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


def defender_ref(args, agent):
    """A policy reference to the defender of ``agent`` (greedy, as deployed)."""
    return {"checkpoint": args.defender, "agent": agent}


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


def scenarios(args, agents):
    """The scenarios of this run, from the threat flags (``InvalidArgumentError`` if bad)."""
    for a in (*args.attacked, *([args.victim] if args.victim not in ("all", "team") else [])):
        if a not in agents:
            raise InvalidArgumentError(f"unknown agent {a!r}: the defender's agents are {agents}")
    needs_epsilon = args.threat in ("partial_control_v0", "state_perturbation_v0")
    if needs_epsilon and args.epsilon is None:
        raise InvalidArgumentError(f"--epsilon is required with --threat {args.threat}")
    if not needs_epsilon and args.epsilon is not None:
        raise InvalidArgumentError(f"--epsilon is not used by --threat {args.threat}")
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
        if args.attacked or args.victim not in ("all", "team"):
            raise InvalidArgumentError(
                "byzantine_v0: nature picks the Byzantine agents (--prior) and the victims are "
                "the benign team; --attacked and --victim are not used"
            )
        prior = parse_prior(args.prior, len(agents))
        kwargs = {} if prior is None else {"prior": prior}
        out.append(Scenario(
            name="byzantine",
            threat={"name": args.threat, "kwargs": kwargs},
            frozen={a: defender_ref(args, a) for a in agents},
            controlled={j: adversary_id(j) for j in agents},
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


def evaluate_scenario(args, env_kwargs, scenario, attacker_path, agents):
    """Victims' per-episode returns, clean and with the trained attacker embedded."""
    policies = {a: load_policy(args.defender, agent=a) for a in agents}
    clean = evaluate(make_env(args.env_id, env_kwargs), policies, args.eval_episodes, args.seed)
    kwargs = dict(scenario.threat["kwargs"])
    kwargs.pop("victim_policies", None)  # the victims act outside, on the perturbed obs
    kwargs[scenario.slot] = {  # sampled actions, each attacker network its own seed
        j: {
            "checkpoint": str(attacker_path),
            "agent": adv,
            "deterministic": False,
            "seed": args.seed + m,
        }  # fmt: skip
        for m, (j, adv) in enumerate(scenario.controlled.items())
    }
    threat = {"name": scenario.threat["name"], "kwargs": kwargs}
    attacked = evaluate(
        make_env(args.env_id, env_kwargs, threat), policies, args.eval_episodes, args.seed
    )

    def victims_return(results, victims):
        # per episode: the mean return of the victims present (benign agents, if None)
        names = victims if victims is not None else [a for a in agents if a in results]
        return np.nanmean(np.stack([results[a] for a in names]), axis=0)

    clean_victims = scenario.victims if scenario.victims is not None else agents
    return victims_return(clean, clean_victims), victims_return(attacked, scenario.victims)


class Agent(nn.Module):
    """The adversaries' actor-critics, stacked: member m is the m-th exposed adversary."""

    def __init__(self, obs_dim, action_space, num_agents, hidden_sizes):
        super().__init__()
        self.members = num_agents
        discrete = isinstance(action_space, gym.spaces.Discrete)
        self.critic = stacked_mlp(num_agents, (obs_dim, *hidden_sizes, 1), out_std=1.0)
        spec = ActorSpec(
            input_dim=obs_dim,
            action_dim=int(action_space.n) if discrete else int(np.prod(action_space.shape)),
            head="categorical" if discrete else "gaussian",
            hidden_sizes=tuple(hidden_sizes),
            pad_to=obs_dim,
        )
        self.actor = MLPActor(spec, num_agents)

    def get_value(self, x):
        """x: [B, A, *obs_shape] -> values [B, A]."""
        return self.critic(x.flatten(2).transpose(0, 1)).squeeze(-1).T

    def get_action_and_value(self, x, action=None):
        """x: [B, A, *obs_shape] -> action, log-prob, entropy, value, each [B, A, ...]."""
        x = x.flatten(2).transpose(0, 1)
        probs = self.actor.distribution(x)
        if action is None:
            action = probs.sample()
        else:
            action = action.transpose(0, 1)
        value = self.critic(x).squeeze(-1)
        return action.transpose(0, 1), probs.log_prob(action).T, probs.entropy().T, value.T


def save(checkpointer, agent, optimizer, envs, scenario, index, results, global_step, iteration,
         complete):  # fmt: skip
    """Write the attacker's checkpoint (and, at a scenario's end, ``<scenario>.safetensors``)."""
    return checkpointer.save(
        global_step=global_step, iteration=iteration,
        policies=export_policies(agent.actor, envs.agents), model=agent, optimizer=optimizer,
        complete=complete, final_name=f"{scenario.name}.safetensors",
        extra={"attack": {"scenario": index, "results": results}},
    )  # fmt: skip


def masked_mean(x, mask, count):
    """Per-adversary mean of x [B, A] over the samples where it acted -> [A]."""
    return torch.where(mask, x, 0.0).sum(0) / count


def mean_se(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    if not args.resume:
        if not args.defender:
            raise SystemExit("attack.py: --defender CHECKPOINT is required")
        record = read_record(args.defender)  # CheckpointError if missing or corrupt
        if args.env_id and args.env_id != record["env_id"]:
            raise InvalidArgumentError(
                f"--env-id {args.env_id!r}: the defender was trained on {record['env_id']!r}"
            )
        if not args.env_id:  # again, with the defender's env (and its preset)
            args = parse_args(Args, PRESETS, [*sys.argv[1:], "--env-id", record["env_id"]])
        if not args.env_kwargs:
            args.env_kwargs = json.dumps(record["env_kwargs"])
    args.batch_size = int(args.num_envs * args.num_steps)
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.num_iterations < 1:
        raise SystemExit(f"total_timesteps must be >= num_envs * num_steps = {args.batch_size}")
    resume = load_training_state(args.resume) if args.resume else None
    env_kwargs = json.loads(args.env_kwargs)
    # the defenders: every agent of the clean env (loading checks their spaces)
    defender_agents = list(make_env(args.env_id, env_kwargs)().possible_agents)
    for a in defender_agents:
        load_policy(args.defender, agent=a, env=make_env(args.env_id, env_kwargs)())
    plan = scenarios(args, defender_agents)
    run = Run(args, resume)
    run.progress.total = args.num_iterations * args.batch_size * len(plan)  # all scenarios
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    print(f"attacking {args.defender} ({args.threat}): {len(plan)} scenario(s)")

    global_step, first, results = 0, 0, []
    if resume:
        done = resume.record["extra"]["attack"]
        global_step, first, results = resume.global_step, done["scenario"], done["results"]
    for index in range(first, len(plan)):
        scenario = plan[index]
        resuming = resume is not None and index == first
        if resuming and len(results) > index:
            continue  # the checkpoint was written after this scenario's evaluation
        # TRY NOT TO MODIFY: seeding (every scenario from the same seed)
        seed_everything(args.seed, args.torch_deterministic)

        # env setup: defenders frozen inside, the adversaries are the only agents outside
        env_fn = make_env(args.env_id, env_kwargs, scenario.threat, frozen=scenario.frozen)
        envs = make_vector_env(env_fn, args.num_envs, backend=args.vector_backend)
        if sorted(envs.agents) != sorted(scenario.controlled.values()):
            raise InvalidArgumentError(
                f"scenario {scenario.name}: the env exposes {list(envs.agents)}, expected the "
                f"adversaries {sorted(scenario.controlled.values())}"
            )
        obs_dim, action_space = check_trainable(envs)
        discrete = isinstance(action_space, gym.spaces.Discrete)
        A = envs.num_agents

        agent = Agent(obs_dim, action_space, A, args.hidden_sizes).to(device)
        optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
        checkpointer = Checkpointer(
            run.checkpoint_dir, algorithm="attack", args=args, env_id=args.env_id,
            env_kwargs=env_kwargs, threat=scenario.threat, run_name=run.name,
            wandb_id=run.wandb_id,
            spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
        )  # fmt: skip

        # ALGO Logic: Storage setup
        shape = (args.num_steps, args.num_envs, A)
        obs_shape = envs.single_observation_space.shape
        action_shape = () if discrete else (int(np.prod(action_space.shape)),)
        obs = torch.zeros(shape + obs_shape).to(device)
        actions = torch.zeros(shape + action_shape, dtype=torch.long if discrete else torch.float)
        actions = actions.to(device)
        logprobs = torch.zeros(shape).to(device)
        rewards = torch.zeros(shape).to(device)
        values = torch.zeros(shape).to(device)
        masks = torch.zeros(shape, dtype=torch.bool).to(device)  # the adversary acted
        ends = torch.zeros(shape).to(device)  # its trajectory stops after this step
        end_values = torch.zeros(shape).to(device)  # the value to bootstrap from there

        # TRY NOT TO MODIFY: start the game
        start_iteration = 1
        if resuming:
            resume.restore(agent, optimizer)  # weights, Adam moments, RNG states
            start_iteration = resume.iteration + 1
        next_obs, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
        next_obs = torch.Tensor(next_obs).to(device)
        next_alive = torch.tensor(infos["alive"]).to(device)
        stats = EpisodeStats(args.num_envs, A)

        for iteration in range(start_iteration, args.num_iterations + 1):
            if args.anneal_lr:
                frac = 1.0 - (iteration - 1.0) / args.num_iterations
                optimizer.param_groups[0]["lr"] = frac * args.learning_rate

            for step in range(0, args.num_steps):
                global_step += args.num_envs
                obs[step] = next_obs
                masks[step] = next_alive

                # ALGO LOGIC: action logic
                with torch.no_grad():
                    action, logprob, _, value = agent.get_action_and_value(next_obs)
                    values[step] = value
                actions[step] = action
                logprobs[step] = logprob

                # TRY NOT TO MODIFY: execute the game and log data.
                if discrete:
                    env_action = action.cpu().numpy() + int(action_space.start)
                else:
                    low, high = action_space.low.ravel(), action_space.high.ravel()
                    env_action = np.clip(action.cpu().numpy(), low, high)
                next_obs_np, reward, terminations, truncations, infos = envs.step(env_action)
                rewards[step] = torch.Tensor(reward).to(device)
                stats.step(reward, infos["acted"], infos["reset"])

                # ALGO LOGIC: where each trajectory ends, and what it bootstraps from
                reset = infos["reset"][:, None]
                ends[step] = torch.Tensor(terminations | truncations | reset | ~infos["alive"])
                has_last_obs = np.where(reset, infos["final_alive"], infos["has_obs"])
                truncated = truncations & ~terminations & has_last_obs
                end_values[step] = 0.0
                if truncated.any():  # bootstrap from the value of the last observation
                    reset_e = infos["reset"].reshape((-1,) + (1,) * (next_obs_np.ndim - 1))
                    last_obs = torch.Tensor(np.where(reset_e, infos["final_obs"], next_obs_np))
                    with torch.no_grad():
                        last_value = agent.get_value(last_obs.to(device))
                    end_values[step] = last_value * torch.Tensor(truncated).to(device)
                next_obs = torch.Tensor(next_obs_np).to(device)
                next_alive = torch.tensor(infos["alive"]).to(device)

            # bootstrap value if not done
            with torch.no_grad():
                next_value = agent.get_value(next_obs)
                advantages, returns = gae(
                    rewards, values, next_value, ends, end_values, masks.float(),
                    args.gamma, args.gae_lambda,
                )  # fmt: skip

            # flatten the batch (the adversary axis stays: each learns from its own samples)
            b_obs = obs.reshape((-1, A) + obs_shape)
            b_logprobs = logprobs.reshape(-1, A)
            b_actions = actions.reshape((-1, A) + action_shape)
            b_advantages = advantages.reshape(-1, A)
            b_returns = returns.reshape(-1, A)
            b_values = values.reshape(-1, A)
            b_masks = masks.reshape(-1, A)

            # Optimizing the policy and value network
            b_inds = np.arange(args.batch_size)
            clipfracs = []
            for _epoch in range(args.update_epochs):
                np.random.shuffle(b_inds)  # noqa: NPY002 (global RNG: seeded, checkpointed)
                for start in range(0, args.batch_size, args.minibatch_size):
                    mb_inds = b_inds[start : start + args.minibatch_size]
                    mb_masks = b_masks[mb_inds]
                    mb_count = mb_masks.sum(0).clamp(min=1)

                    _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                        b_obs[mb_inds], b_actions[mb_inds]
                    )
                    logratio = newlogprob - b_logprobs[mb_inds]
                    ratio = logratio.exp()

                    with torch.no_grad():
                        old_approx_kl = masked_mean(-logratio, mb_masks, mb_count)
                        approx_kl = masked_mean((ratio - 1) - logratio, mb_masks, mb_count)
                        clipped = ((ratio - 1.0).abs() > args.clip_coef).float()
                        clipfracs += [masked_mean(clipped, mb_masks, mb_count).mean().item()]

                    mb_advantages = b_advantages[mb_inds]
                    if args.norm_adv:
                        adv_mean = masked_mean(mb_advantages, mb_masks, mb_count)
                        adv_var = masked_mean(
                            (mb_advantages - adv_mean) ** 2, mb_masks, (mb_count - 1).clamp(min=1)
                        )
                        mb_advantages = (mb_advantages - adv_mean) / (adv_var.sqrt() + 1e-8)

                    # Policy loss
                    pg_loss1 = -mb_advantages * ratio
                    pg_loss2 = -mb_advantages * torch.clamp(
                        ratio, 1 - args.clip_coef, 1 + args.clip_coef
                    )
                    pg_loss = masked_mean(torch.max(pg_loss1, pg_loss2), mb_masks, mb_count)

                    # Value loss
                    if args.clip_vloss:
                        v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                        v_clipped = b_values[mb_inds] + torch.clamp(
                            newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                        )
                        v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                        v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                        v_loss = 0.5 * masked_mean(v_loss_max, mb_masks, mb_count)
                    else:
                        v_loss = 0.5 * masked_mean(
                            (newvalue - b_returns[mb_inds]) ** 2, mb_masks, mb_count
                        )

                    entropy_loss = masked_mean(entropy, mb_masks, mb_count)
                    adv_loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                    loss = adv_loss.sum()  # independent networks: each gets its own gradient
                    if iteration == args.debug_nan_at_iteration:
                        loss = loss * float("nan")
                    run.check_finite(
                        {"losses/loss": loss}, iteration=iteration, global_step=global_step
                    )

                    optimizer.zero_grad()
                    loss.backward()
                    clip_grad_norm_per_member_(
                        agent.parameters(), args.max_grad_norm, agent.members
                    )
                    optimizer.step()

                if args.target_kl is not None and approx_kl.max() > args.target_kl:
                    break
            run.check_finite(agent.named_parameters(), iteration=iteration, global_step=global_step)

            y_pred, y_true = b_values[b_masks].cpu().numpy(), b_returns[b_masks].cpu().numpy()
            var_y = np.var(y_true)
            explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

            # TRY NOT TO MODIFY: record rewards for plotting purposes
            run.log(
                {
                    "charts/learning_rate": optimizer.param_groups[0]["lr"],
                    "charts/scenario": index,
                    "losses/value_loss": v_loss.mean().item(),
                    "losses/policy_loss": pg_loss.mean().item(),
                    "losses/entropy": entropy_loss.mean().item(),
                    "losses/old_approx_kl": old_approx_kl.mean().item(),
                    "losses/approx_kl": approx_kl.mean().item(),
                    "losses/clipfrac": np.mean(clipfracs),
                    "losses/explained_variance": explained_var,
                    "charts/SPS": run.sps(global_step),
                    **stats.scalars(envs.agents),  # the adversaries' returns: -victims'
                },
                global_step,
            )
            run.update_progress(global_step, stats.recent_return)

            if iteration % args.checkpoint_every == 0 and iteration < args.num_iterations:
                save(checkpointer, agent, optimizer, envs, scenario, index, results,
                     global_step, iteration, complete=False)  # fmt: skip
                next_obs, infos = envs.reset(seed=env_seed(args.seed, iteration))
                next_obs = torch.Tensor(next_obs).to(device)
                next_alive = torch.tensor(infos["alive"]).to(device)
                stats.clear()
        envs.close()

        # the scenario's attacker, then its evaluation (loaded as the wrappers load it)
        save(checkpointer, agent, optimizer, envs, scenario, index, results, global_step,
             args.num_iterations, complete=True)  # fmt: skip
        attacker = run.checkpoint_dir / f"{scenario.name}.safetensors"
        clean, attacked = evaluate_scenario(args, env_kwargs, scenario, attacker, defender_agents)
        result = {
            "scenario": scenario.name, "threat": scenario.threat, "attacker": str(attacker.resolve()),
            "victims": scenario.victims, "episodes": args.eval_episodes,
            "clean": mean_se(clean), "attacked": mean_se(attacked),
        }  # fmt: skip
        results.append(result)
        print(
            f"{scenario.name}: victims' return {result['clean'][0]:.2f} clean, "
            f"{result['attacked'][0]:.2f} under attack ({args.eval_episodes} episodes)"
        )
        run.log(
            {
                f"attack/clean_return/{scenario.name}": result["clean"][0],
                f"attack/attacked_return/{scenario.name}": result["attacked"][0],
            },
            global_step,
        )
        # again, with the results: a resume skips this scenario
        save(checkpointer, agent, optimizer, envs, scenario, index, results, global_step,
             args.num_iterations, complete=True)  # fmt: skip

    worst = min(results, key=lambda r: r["attacked"][0])
    summary = {"defender": args.defender, "args": asdict(args), "scenarios": results,
               "worst": worst["scenario"], "worst_attacked": worst["attacked"]}  # fmt: skip
    (run.dir / "attack_results.json").write_text(json.dumps(summary, indent=2))
    run.log({"attack/worst_attacked_return": worst["attacked"][0]}, global_step)
    print(f"\n{'scenario':<40} {'clean':>16} {'under attack':>16}")
    for r in results:
        c, a = r["clean"], r["attacked"]
        print(f"{r['scenario']:<40} {c[0]:>9.2f} ± {c[1]:<5.2f} {a[0]:>9.2f} ± {a[1]:<5.2f}")
    print(f"worst case: {worst['scenario']} ({worst['attacked'][0]:.2f})")
    print(f"results: {run.dir / 'attack_results.json'}")
    run.close()
