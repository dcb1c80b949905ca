# docs and experiment results can be found at docs/art.md
"""ART: Adversarially Robust Training against k corrupted agents (Algorithm 1 of Nika et al.).

Nika et al. (TMLR 2024), "Defending Against Unknown Corrupted Agents: Reinforcement Learning
of Adversarially Robust Nash Equilibria" (docs/references.md), Sec. 4 and 5.2. For every
victim i (every agent; or the benign team in cooperative envs) ART learns three things by
two-timescale gradient descent-ascent on L_i = E_{K~omega_i} V_i:

* omega_i, a categorical over the subsets K of size <= k of N\\{i} (logits theta_i, zero at
  the start: uniform), by REINFORCE, descending V_i (Algorithm 1, line 3);
* the benign policy of i, by PPO on its own reward, ascending V_i (line 4);
* the adversaries pi^i_j of the agents j != i, by PPO on the reward -r_i that the
  ``k_corruption_v0`` wrapper pays them, descending V_i (lines 5-7).

Each iteration is one round t: the episodes of the vector env are assigned round-robin to
victims, each draws its K from omega_victim^{t-1} (line 2) and receives both through the
wrapper's ``reset(options={"victim": ..., "attacked": ...})``, planned per copy and episode by
the vector env's ``episode_schedule``. Extra episodes, played only to estimate omega's
gradient ("additionally generated trajectories", Sec. 5.2), are counted in
``charts/omega_steps``, not in the global step. Adversaries and omega learn at
``adversary_lr_multiplier`` (2) times the benign learning rate (Sec. 5.2). ``--fixed-subset``
turns this file into the Fixed-K baseline (Sec. 5.1): omega is a point mass on one subset and
is not learned. All networks of a role are stacked (``adv_wrappers.train.networks``) and run
in one batched matrix product; rollout storage, trajectory ends, GAE and the per-member PPO
loss come from the training kit (``adv_wrappers.train.rollout``, ``adv_wrappers.train.ppo``).
"""

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.distributions import Categorical

import adv_envs
from adv_wrappers import adversary_id, all_subsets
from adv_wrappers.train import load_policy
from adv_wrappers.train.checkpoint import Checkpointer, ExportedPolicy, export_policies
from adv_wrappers.train.config import PAPER_000_PRESETS, env_seed, parse_args, start_run
from adv_wrappers.train.envs import check_trainable, evaluate, make_env, make_vector_env
from adv_wrappers.train.networks import (
    ActorSpec,
    MLPActor,
    clip_grad_norm_per_member_,
    stack_agents,
    stacked_mlp,
)
from adv_wrappers.train.ppo import (
    LOSS_FIELDS,
    explained_variance,
    hold_idle_members_,
    member_minibatches,
    ppo_loss,
    summarize,
)
from adv_wrappers.train.rollout import Rollout, env_action, gae, trajectory_ends


@dataclass
class Args:
    exp_name: str = Path(__file__).stem
    """the name of this experiment (`fixed_k` by default with `--fixed-subset`)"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=False`"""
    cuda: bool = True
    """if toggled, cuda will be enabled by default (when available)"""
    torch_threads: int = 1
    """CPU threads of torch (`torch.set_num_threads`); the networks are small, and more threads
    than idle cores make every matrix product spin (10-30x slower on a busy 2-core machine)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "adv-wrappers"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to record a greedy clean evaluation episode at the end (`runs/{run_name}/videos/`)"""
    checkpoint_every: int = 10
    """write `checkpoints/last.safetensors` every this many iterations (and at the end)"""
    resume: str | None = None
    """a checkpoint to resume from; every other flag is then taken from the checkpoint"""
    eval_episodes: int = 10
    """greedy evaluation episodes per victim with the final checkpoint, clean and under the
    trained adversaries on omega's most likely subset (0: none)"""
    debug_nan_at_iteration: int = 0
    """testing only: make the loss NaN at this iteration to exercise the divergence guard"""

    # Environment
    env_id: str = "adv/independent_spread-v0"
    """the id of the environment (PettingZoo registry)"""
    env_kwargs: str = "{}"
    """keyword arguments of the environment, as a JSON dict"""
    num_envs: int = 8
    """the number of parallel game environments"""
    vector_backend: str = "sync"
    """`sync` (one process), `subproc` (one worker per env copy) or `batched` (the env's
    batched torch version; docs/batched.md)"""

    # Threat model (Nika et al.): at most k of the n agents corrupted, adversaries target a victim
    k: int = 1
    """the attacker's budget: omega_i is over the non-empty subsets of size <= k (1 <= k < n)"""
    victim_mode: Literal["auto", "agent", "team"] = "auto"
    """`agent`: every agent i is a victim with its own omega_i and adversaries (general-sum,
    Algorithm 1); `team`: the benign team is the one victim (cooperative envs); `auto`: `team`
    for the envs listed as cooperative in `adv_envs.ENVS`, else `agent`"""
    fixed_subset: tuple[str, ...] = ()
    """Fixed-K baseline: the corrupted agents, fixed for the whole training (omega not
    learned). Team victim: exactly this K. Per-agent victims: the K used against the first
    agent, shifted cyclically along `possible_agents` for the others (docs/art.md)"""
    omega_support: Literal["at_most_k", "exactly_k"] = "at_most_k"
    """omega_i's subsets: of size <= k (Sec. 2.1, N_i) or exactly k (Table 1 calls Fixed-K(k=2)
    on Spread "equivalent to ART(k=2)", which holds exactly only with this)"""
    adversary_lr_multiplier: float = 2.0
    """adversaries and omega learn at this multiple of the benign learning rate (Sec. 5.2)"""
    omega_episodes: int = 8
    """extra episodes per victim and iteration, played only for omega's REINFORCE gradient
    (Sec. 5.2); their steps are logged as `charts/omega_steps`, not in the global step"""
    bystander_data: bool = False
    """also train a benign agent on the episodes where it is neither the victim nor corrupted
    (not in Algorithm 1, where agent i's benign policy learns from i's own victim episodes)"""

    # Algorithm specific arguments
    total_timesteps: int = 500000
    """total timesteps of the experiments (PPO rollout steps summed over env copies)"""
    learning_rate: float = 2.5e-4
    """the learning rate of the benign policies (eta_B)"""
    num_steps: int = 128
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    minibatch_size: int = 128
    """the number of samples per minibatch, per policy"""
    update_epochs: int = 4
    """the K epochs to update the policies (and the number of omega updates per iteration)"""
    norm_adv: bool = True
    """Toggles advantages normalization (per policy, per minibatch)"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function, as per the paper."""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping (per policy)"""
    target_kl: float | None = None
    """the target KL divergence threshold"""
    share_parameters: bool = False
    """one benign actor-critic for every agent, with the agent's one-hot appended to its input"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the actors and the critics"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# Per-env presets: Nika et al.'s App. D (adv_wrappers.train.config.PAPER_000_PRESETS, the same
# as ippo.py's, so that Naive, Fixed-K and ART share their hyperparameters, Sec. 5.1), plus the
# extra omega episodes, which keep the omega steps near 15% / 6% / 20% (spread / ant / pursuit).
OMEGA_EPISODES = {"adv/independent_spread-v0": 8, "adv/multi_ant-v0": 4, "adv/pursuit-v0": 2}
PRESETS = {
    env_id: {**p, "omega_episodes": OMEGA_EPISODES[env_id]}
    for env_id, p in PAPER_000_PRESETS.items()
}


class ActorCritic(nn.Module):
    """``members`` stacked actor-critics: input ``[M, B, D]``, outputs ``[M, B, ...]``."""

    def __init__(self, spec, members):
        super().__init__()
        self.members = members
        self.actor = MLPActor(spec, members)
        self.critic = stacked_mlp(members, (spec.input_dim, *spec.hidden_sizes, 1), out_std=1.0)

    def get_value(self, x):
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x, action=None):
        probs = self.actor.distribution(x)
        if action is None:  # acting: no entropy needed
            action = probs.sample()
            return action, probs.log_prob(action), None, self.critic(x).squeeze(-1)
        return action, probs.log_prob(action), probs.entropy(), self.critic(x).squeeze(-1)


class Agent(nn.Module):
    """Everything ART learns: benign actor-critics (member i: agent i, or one shared), the
    adversaries (member v * n + j: agent j's adversary against victim v) and omega's logits."""

    def __init__(
        self, obs_dim, action_space, num_agents, num_victims, num_subsets, share, hidden_sizes
    ):
        super().__init__()
        self.n, self.share = num_agents, share
        discrete = isinstance(action_space, gym.spaces.Discrete)
        spec = ActorSpec(
            input_dim=obs_dim,
            action_dim=int(action_space.n) if discrete else int(np.prod(action_space.shape)),
            head="categorical" if discrete else "gaussian",
            hidden_sizes=tuple(hidden_sizes),
            pad_to=obs_dim,
        )
        benign_spec = ActorSpec(
            **{**spec.__dict__, "input_dim": obs_dim + num_agents, "agent_one_hot": (0, num_agents)}
        )
        self.benign = ActorCritic(benign_spec if share else spec, 1 if share else num_agents)
        self.adversary = ActorCritic(spec, num_victims * num_agents)
        # Algorithm 1: theta_i^0 = 0, omega_i uniform over its subsets
        self.omega = nn.Parameter(torch.zeros(num_victims, num_subsets))

    def adversary_input(self, obs, adversary_slots):
        """Agent j's adversary slot [E, n, ...] -> member input [V * n, E, D]: member v * n + j
        sees j's adversary slot (every victim's adversary of j, one of them is in play)."""
        return stack_agents(obs[:, adversary_slots]).repeat(len(self.omega), 1, 1)

    def in_play(self, x, victim):
        """Per-member outputs x [V * n, E, ...] -> [E, n, ...]: for copy e, the adversaries
        against its victim ``victim[e]``."""
        n, copies = self.n, torch.arange(x.shape[1], device=x.device)
        member = victim[None, :] * n + torch.arange(n, device=x.device)[:, None]  # [n, E]
        return x[member, copies[None, :]].transpose(0, 1)

    def act(self, obs, victim, benign_slots, adversary_slots):
        """obs [E, A, ...], victim [E] -> action, log-prob, value of every slot, [E, A, ...]."""
        xb = stack_agents(obs[:, benign_slots], self.share)
        benign = self.benign.get_action_and_value(xb)
        xa = self.adversary_input(obs, adversary_slots)
        adversary = self.adversary.get_action_and_value(xa)
        out = []
        for b, a in zip(benign, adversary, strict=True):
            if b is None:  # no entropy when acting
                continue
            slots = torch.zeros((*obs.shape[:2], *b.shape[2:]), dtype=b.dtype, device=obs.device)
            slots[:, benign_slots] = b.transpose(0, 1)
            slots[:, adversary_slots] = self.in_play(a, victim)
            out.append(slots)
        return tuple(out)

    def get_value(self, obs, victim, benign_slots, adversary_slots):
        """obs [E, A, ...], victim [E] -> values [E, A]."""
        value = torch.zeros(obs.shape[:2], device=obs.device)
        xb = stack_agents(obs[:, benign_slots], self.share)
        value[:, benign_slots] = self.benign.get_value(xb).T
        xa = self.adversary_input(obs, adversary_slots)
        value[:, adversary_slots] = self.in_play(self.adversary.get_value(xa), victim)
        return value


def art_record(args, agent, agents, victims, subsets, adversary_members, omega_steps):
    """What a checkpoint records of ART: victims, subsets, omega and which policy is whose."""
    names = [v or "team" for v in victims]
    probs = torch.softmax(agent.omega.detach(), -1).cpu().tolist()
    return {
        "art": {
            "victim_mode": "team" if victims == [None] else "agent",
            "k": args.k,
            "fixed_subset": list(args.fixed_subset),
            "omega_support": args.omega_support,
            "victims": victims,
            "subsets": {name: [list(s) for s in subsets[v]] for v, name in enumerate(names)},
            "omega": {name: probs[v] for v, name in enumerate(names)},
            "benign_policies": agents,
            "adversary_policies": {
                name: {"agent": agents[m % len(agents)], "victim": victims[m // len(agents)]}
                for name, (m, _) in adversary_members.items()
            },
            "omega_steps": omega_steps,
        }
    }


def export_all(agent, agents, adversary_members):
    """Every policy of the checkpoint: the benign ones (one per agent) and the adversaries."""
    # (clone: with --share-parameters export_policies gives every agent the same tensors,
    # which safetensors refuses to save)
    policies = {
        name: ExportedPolicy(p.agent, p.spec, {k: v.clone() for k, v in p.state_dict.items()})
        for name, p in export_policies(agent.benign.actor, agents).items()
    }
    for name, (member, slot) in adversary_members.items():
        policies[name] = ExportedPolicy(
            slot, agent.adversary.actor.spec, agent.adversary.actor.member_state_dict(member)
        )
    return policies


def candidate_subsets(args, agents, victims, team):
    """N_i, omega_i's support, per victim: the subsets of size <= k (or exactly k) of the
    other agents; Fixed-K: its one subset (``SystemExit`` for bad --k or --fixed-subset)."""
    if not 1 <= args.k < len(agents):
        raise SystemExit(
            f"--k {args.k}: ART needs 1 <= k < n = {len(agents)} (k = 0 is Naive training: ippo.py)"
        )
    fixed = args.fixed_subset
    if any(a not in agents for a in fixed) or len(fixed) > args.k or len(set(fixed)) != len(fixed):
        raise SystemExit(
            f"--fixed-subset {' '.join(fixed)}: needs 1 to k={args.k} distinct agents of {agents}"
        )
    if fixed:
        return fixed_subsets(agents, fixed, team)
    subsets = [all_subsets([a for a in agents if a != v], args.k) for v in victims]
    if args.omega_support == "exactly_k":
        subsets = [[s for s in row if len(s) == args.k] for row in subsets]
    return subsets


def fixed_subsets(agents, fixed, team):
    """Fixed-K: the one subset of each victim (the given K for a team victim; for per-agent
    victims the K against ``agents[0]``, shifted cyclically to each victim)."""
    if team:
        return [[tuple(a for a in agents if a in fixed)]]
    if agents[0] in fixed:
        raise SystemExit(
            f"--fixed-subset {' '.join(fixed)}: with per-agent victims the subset is the one used "
            f"against {agents[0]!r} (shifted cyclically for the others) and cannot contain it"
        )
    n, position = len(agents), {a: i for i, a in enumerate(agents)}
    return [
        [tuple(sorted((agents[(position[a] + v) % n] for a in fixed), key=position.get))]
        for v in range(n)
    ]


def attack_threat(checkpoint, k, victim, victim_name, attacked):
    """The threat configuration of ``k_corruption_v0`` with the checkpoint's adversaries against
    ``victim`` embedded on the agents ``attacked`` (policy references: ``load_policy``)."""
    refs = {
        j: {
            "checkpoint": str(checkpoint),
            "agent": j,
            "name": f"{adversary_id(j)}_vs_{victim_name}",
        }
        for j in attacked
    }
    kwargs = {"k": k, "victim": victim, "subset": list(attacked), "adversary": refs}
    return {"name": "k_corruption_v0", "kwargs": kwargs}


class VictimEpisodes:
    """Each copy's current (victim, subset), read from ``k_corruption_v0``'s ground truth in
    the infos, and the victim's return: the negated reward that the wrapper pays the
    adversaries (minus the victim's reward, or minus the benign team's mean reward)."""

    def __init__(self, infos, index, adversary_columns, gamma):
        self.index, self.columns, self.gamma = index, adversary_columns, gamma
        pairs = np.array([self.assignment(i) for i in infos["agent_infos"]])
        self.victim, self.subset = pairs[:, 0], pairs[:, 1]
        self.discounted, self.undiscounted = np.zeros(len(pairs)), np.zeros(len(pairs))
        self.discount, self.length = np.ones(len(pairs)), np.zeros(len(pairs), dtype=np.int64)

    def assignment(self, agent_infos):
        truth = next(iter(agent_infos.values()))["k_corruption"]
        return self.index[(truth["victim"], tuple(truth["attacked"]))]

    def step(self, reward, infos):
        """Add one vector step; return the finished episodes as tuples
        ``(copy, victim, subset, discounted return, return, length)``."""
        paid = infos["has_reward"][:, self.columns]
        r = -(reward[:, self.columns] * paid).sum(1) / np.maximum(paid.sum(1), 1)
        self.discounted += self.discount * r
        self.undiscounted += r
        self.discount *= self.gamma
        self.length += 1
        finished = []
        for e in np.flatnonzero(infos["reset"]):
            returns = self.discounted[e], self.undiscounted[e], self.length[e]
            finished.append((e, self.victim[e], self.subset[e], *returns))
            self.victim[e], self.subset[e] = self.assignment(infos["reset_infos"][e])
            self.discounted[e] = self.undiscounted[e] = self.length[e] = 0
            self.discount[e] = 1.0
        return finished


def omega_scalars(agent, victim_names, subset_names, finished):
    """omega's probabilities and entropy per victim, and the victims' returns per subset."""
    scalars = {}
    probs = torch.softmax(agent.omega.detach(), -1).cpu().numpy()
    for v, name in enumerate(victim_names):
        for s, subset in enumerate(subset_names[v]):
            scalars[f"adversary/omega/{name}/{subset}"] = float(probs[v, s])
        scalars[f"adversary/omega_entropy/{name}"] = float(
            -(probs[v] * np.log(probs[v] + 1e-12)).sum()
        )
    if finished:  # columns: victim, subset, discounted return, return, length
        ep = np.array([f[1:] for f in finished], dtype=np.float64)
        for v, name in enumerate(victim_names):
            for s, subset in enumerate(subset_names[v]):
                chosen = (ep[:, 0] == v) & (ep[:, 1] == s)
                if chosen.any():
                    scalars[f"adversary/victim_return/{name}/{subset}"] = float(
                        ep[chosen, 3].mean()
                    )
        scalars["adversary/omega_episodes"] = len(finished)
    return scalars


def ppo_scalars(roles, stats, last_active, clipfracs):
    """PPO's statistics per role (benign: ``losses/*``, adversaries: ``losses/adversary_*``)."""
    scalars = {}
    for role, (_, rows, _) in roles.items():
        prefix = "losses/" if role == "benign" else "losses/adversary_"
        scalars[f"{prefix}explained_variance"] = explained_variance(rows["values"], rows["returns"])
        last = summarize(stats[role], last_active[role]) if role in stats else {}
        last["clipfrac"] = torch.cat(clipfracs[role]).mean().item() if clipfracs[role] else None
        for key, value in last.items():
            scalars[f"{prefix}{key}"] = value
    return scalars


def evaluate_under_attack(args, env_kwargs, run, final, agents, victims, subsets, omega, step):
    """Each victim's greedy return against its trained adversaries on omega's most likely
    subset (the final checkpoint, loaded as the wrappers load it)."""
    policies = {a: load_policy(final, agent=a) for a in agents}
    probs = torch.softmax(omega.detach(), -1).cpu().numpy()
    scalars, line = {}, []
    for v, victim in enumerate(victims):
        attacked, name = subsets[v][int(probs[v].argmax())], victim or "team"
        threat = attack_threat(final, args.k, victim, name, attacked)
        results = evaluate(
            make_env(args.env_id, env_kwargs, threat), policies, args.eval_episodes, args.seed
        )
        scored = [victim] if victim else [a for a in agents if a not in attacked]
        under_attack = float(np.mean([np.nanmean(results[a]) for a in scored]))
        scalars[f"eval/attacked_return/{name}"] = under_attack
        line.append(f"{name} vs {'+'.join(attacked)}: {under_attack:.2f}")
    run.log(scalars, step)
    print(f"eval under attack: {'; '.join(line)} ({args.eval_episodes} greedy episodes each)")


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    if args.fixed_subset and args.exp_name == Path(__file__).stem:
        args.exp_name = "fixed_k"
    # ALGO LOGIC: the victims, their candidate subsets N_i (omega_i's support) and the env
    env_kwargs = json.loads(args.env_kwargs)
    kinds = {info.id: info.kind for info in adv_envs.ENVS}
    team = args.victim_mode == "team" or (
        args.victim_mode == "auto" and kinds.get(args.env_id) == "cooperative"
    )
    clean_env = make_env(args.env_id, env_kwargs)()
    agents = list(clean_env.possible_agents)
    clean_env.close()
    n = len(agents)
    victims = [None] if team else agents  # None: the benign team (k_corruption_v0's victim=None)
    subsets = candidate_subsets(args, agents, victims, team)
    num_victims, num_subsets = len(victims), len(subsets[0])
    learn_omega = num_subsets > 1  # Fixed-K (or a single candidate subset): omega is a point mass
    victim_names = ["team"] if team else agents
    subset_names = [["+".join(s) for s in row] for row in subsets]
    # (victim, K) of the wrapper's ground truth -> (victim, subset) indices
    index = {(victims[v], s): (v, i) for v in range(num_victims) for i, s in enumerate(subsets[v])}

    run, resume, device = start_run(args)  # batch sizes, run folder, seeding, device

    # env setup: k_corruption_v0 with exposed adversaries, each copy told its (victim, K)
    threat = {"name": "k_corruption_v0", "kwargs": {"k": args.k}}
    base_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(base_fn, args.num_envs, args.vector_backend, device=device)
    obs_dim, action_space = check_trainable(envs)
    discrete = isinstance(action_space, gym.spaces.Discrete)
    benign_slots = torch.tensor([envs.agents.index(a) for a in agents], device=device)
    adversary_slots = torch.tensor(
        [envs.agents.index(adversary_id(a)) for a in agents], device=device
    )
    adversary_columns = adversary_slots.cpu().numpy()
    new_episodes = functools.partial(
        VictimEpisodes, index=index, adversary_columns=adversary_columns, gamma=args.gamma
    )

    agent = Agent(
        obs_dim, action_space, n, num_victims, num_subsets, args.share_parameters, args.hidden_sizes
    )
    agent = agent.to(device)
    # two timescales (Sec. 5.2): adversaries and omega learn at twice the benign rate
    adversary_lr = args.learning_rate * args.adversary_lr_multiplier
    optimizer = optim.Adam(
        [
            {"params": agent.benign.parameters(), "lr": args.learning_rate},
            {"params": agent.adversary.parameters(), "lr": adversary_lr},
            {"params": [agent.omega], "lr": adversary_lr},
        ],
        eps=1e-5,
        fused=True,  # one kernel for every parameter (measured faster: docs/performance.md)
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    checkpointer = Checkpointer(
        run.checkpoint_dir,
        algorithm="fixed_k" if args.fixed_subset else "art",
        args=args,
        env_id=args.env_id,
        env_kwargs=env_kwargs,
        threat=threat,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
        run_name=run.name,
        wandb_id=run.wandb_id,
    )
    # the adversaries that can ever play: agent j against victim v when j is in one of v's subsets
    adversary_members = {
        f"{adversary_id(j)}_vs_{victim_names[v]}": (v * n + agents.index(j), adversary_id(j))
        for v in range(num_victims)
        for j in agents
        if any(j in s for s in subsets[v])
    }

    # ALGO Logic: Storage setup (plus each step's victim, per copy)
    rollout = Rollout(
        args.num_steps, args.num_envs, envs.num_agents, envs.single_observation_space.shape,
        action_space, device,
    )  # fmt: skip
    victim_of = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long, device=device)

    def plan_options(first_victim, length):
        """Episode l of copy e: victim (first_victim + l * E + e) mod V (round-robin), K ~ omega_v;
        the vector env's episode schedule hands them to k_corruption_v0's reset options."""
        slot = np.arange(length)[None, :] * args.num_envs + np.arange(args.num_envs)[:, None]
        victim = (first_victim + slot) % num_victims
        with torch.no_grad():
            subset = Categorical(
                logits=agent.omega[torch.as_tensor(victim, device=device)]
            ).sample()
        subset = subset.cpu().numpy()
        return {"episode_schedule": {
            "victim": [[victims[v] for v in row] for row in victim.tolist()],
            "attacked": [[list(subsets[v][k]) for v, k in zip(vs, ks, strict=True)]
                         for vs, ks in zip(victim.tolist(), subset.tolist(), strict=True)],
        }}  # fmt: skip

    # TRY NOT TO MODIFY: start the game
    global_step, omega_steps, start_iteration = 0, 0, 1
    if resume:
        resume.restore(agent, optimizer)  # weights, Adam moments, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
        omega_steps = int(resume.record["extra"]["art"]["omega_steps"])
    recent_return = float("nan")

    # ALGO LOGIC: Algorithm 1, line 1: for t = 1, ..., T (one iteration is one round t)
    for iteration in range(start_iteration, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = frac * lr

        # ALGO LOGIC: Algorithm 1, line 2: sample the subsets from omega^{t-1}; fresh episodes
        options = plan_options((iteration - 1) * args.num_envs, args.num_steps + 1)
        next_obs, infos = envs.reset(seed=env_seed(args.seed, iteration - 1), options=options)
        episodes = new_episodes(infos)
        next_obs = torch.as_tensor(next_obs, dtype=torch.float).to(device)
        next_alive = torch.as_tensor(infos["alive"]).to(device)
        finished = []  # (copy, victim, subset, discounted return, return, length)
        for step in range(0, args.num_steps):
            global_step += args.num_envs
            rollout.obs[step], rollout.masks[step] = next_obs, next_alive
            victim_now = victim_of[step] = torch.as_tensor(episodes.victim, device=device)

            # ALGO LOGIC: action logic: benign policies and the adversaries against each victim
            with torch.no_grad():
                action, logprob, value = agent.act(
                    next_obs, victim_now, benign_slots, adversary_slots
                )
            rollout.values[step], rollout.actions[step], rollout.logprobs[step] = (
                value, action, logprob,
            )  # fmt: skip

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_np, reward, terminations, truncations, infos = envs.step(
                env_action(action, action_space)
            )
            rollout.rewards[step] = torch.as_tensor(reward).to(device)
            rollout.ends[step], rollout.end_values[step] = trajectory_ends(
                terminations, truncations, infos, next_obs_np,
                functools.partial(agent.get_value, victim=victim_now, benign_slots=benign_slots,
                                  adversary_slots=adversary_slots),
                device,
            )  # fmt: skip
            finished += episodes.step(reward, infos)
            next_obs = torch.as_tensor(next_obs_np, dtype=torch.float).to(device)
            next_alive = torch.as_tensor(infos["alive"]).to(device)

        # bootstrap value if not done
        with torch.no_grad():
            victim_now = torch.as_tensor(episodes.victim, device=device)
            next_value = agent.get_value(next_obs, victim_now, benign_slots, adversary_slots)
            advantages, returns = gae(
                rollout.rewards, rollout.values, next_value, rollout.ends, rollout.end_values,
                rollout.masks.float(), args.gamma, args.gae_lambda,
            )  # fmt: skip
        rollout_episodes = len(finished)

        # ALGO LOGIC: extra episodes for omega ("additionally generated trajectories", Sec. 5.2):
        # omega_episodes per victim with K ~ omega^{t-1}, spread over the copies; each copy's
        # first `quota` episodes count (no bias towards short episodes)
        if learn_omega and args.omega_episodes > 0:
            total = args.omega_episodes * num_victims
            quota = np.array(
                [total // args.num_envs + (e < total % args.num_envs) for e in range(args.num_envs)]
            )
            options = plan_options(0, int(quota.max()) + 1)
            next_obs_np, infos = envs.reset(options=options)
            extra = new_episodes(infos)
            played = np.zeros(args.num_envs, dtype=np.int64)
            while (played < quota).any():
                with torch.no_grad():
                    victim_now = torch.as_tensor(extra.victim, device=device)
                    action, _, _ = agent.act(
                        torch.as_tensor(next_obs_np, dtype=torch.float).to(device),
                        victim_now,
                        benign_slots,
                        adversary_slots,
                    )
                next_obs_np, reward, _, _, infos = envs.step(env_action(action, action_space))
                omega_steps += args.num_envs
                for episode in extra.step(reward, infos):
                    if played[episode[0]] < quota[episode[0]]:
                        finished.append(episode)
                    played[episode[0]] += 1

        # ALGO LOGIC: Algorithm 1, line 3: theta_i <- theta_i - eta_A * grad L_i, the REINFORCE
        # gradient of E_{K~omega_i}[V_i] with a leave-one-out baseline per victim; update_epochs
        # Adam steps, importance-weighted by omega_theta(K) / omega^{t-1}(K) (exact: 1 at the first)
        omega_loss = torch.zeros(())
        if learn_omega and finished:
            ep_victim = torch.as_tensor([f[1] for f in finished], device=device)
            ep_subset = torch.as_tensor([f[2] for f in finished], device=device)
            ep_return = torch.as_tensor([f[3] for f in finished], dtype=torch.float, device=device)
            count = torch.bincount(ep_victim, minlength=num_victims).float()
            total_return = torch.zeros(num_victims, device=device).index_add_(
                0, ep_victim, ep_return
            )
            usable = count[ep_victim] >= 2
            baseline = (total_return[ep_victim] - ep_return) / (count[ep_victim] - 1).clamp(min=1)
            weight = torch.where(usable, 1.0 / count[ep_victim], 0.0)
            old_logprob = torch.log_softmax(agent.omega.detach(), -1)[ep_victim, ep_subset]
            for _ in range(args.update_epochs):
                logprob = torch.log_softmax(agent.omega, -1)[ep_victim, ep_subset]
                omega_loss = (weight * (logprob - old_logprob).exp() * (ep_return - baseline)).sum()
                run.check_finite(
                    {"losses/omega_loss": omega_loss}, iteration=iteration, global_step=global_step
                )
                optimizer.zero_grad()
                omega_loss.backward()
                optimizer.step()

        # ALGO LOGIC: Algorithm 1, line 4 (the benign policies ascend V_i: PPO on their own
        # rewards) and lines 5-7 (for every j in N_i, the adversary of j descends V_i: PPO on
        # the reward -r_i), both by PPO from the same rollout, in one update. Each policy learns from its own rows: benign agent i from the steps it
        # acted in episodes where it is the victim (every episode for a team victim), adversary
        # (v, j) from the steps j's adversary acted against victim v.
        b = rollout.flatten(advantages, returns)
        b_victim = victim_of.reshape(-1)
        agent_ids = torch.arange(n, device=device)
        benign_valid = b["masks"][:, benign_slots]
        if not (team or args.bystander_data):
            benign_valid = benign_valid & (b_victim[:, None] == agent_ids[None, :])
        roles = {}
        for role, net, slots, valid in (
            ("benign", agent.benign, benign_slots, benign_valid),
            ("adversary", agent.adversary, adversary_slots, b["masks"][:, adversary_slots]),
        ):
            row_b, row_agent = valid.nonzero(as_tuple=True)
            row_slot = slots[row_agent]
            x = b["obs"][row_b, row_slot].reshape(len(row_b), -1)
            if role == "benign":
                member = torch.zeros_like(row_agent) if args.share_parameters else row_agent
                if args.share_parameters:
                    x = torch.cat([x, nn.functional.one_hot(row_agent, n).float()], dim=1)
            else:
                member = b_victim[row_b] * n + row_agent
            rows = {"obs": x} | {k: b[k][row_b, row_slot] for k in ("actions", *LOSS_FIELDS)}
            roles[role] = (net, rows, member)

        clipfracs = {role: [] for role in roles}
        stats, last_active = {}, {}
        for _epoch in range(args.update_epochs):
            batches = {
                role: member_minibatches(member, net.members, args.minibatch_size)
                for role, (net, _, member) in roles.items()
            }
            for start in range(max(len(b) for b in batches.values())):
                loss, active = torch.zeros((), device=device), {}
                for role, (net, rows, _) in roles.items():
                    if start < len(batches[role]):
                        idx = batches[role][start]  # [members, minibatch_size], -1: no row
                        mask, idx = idx >= 0, idx.clamp(min=0)
                        _, newlogprob, entropy, newvalue = net.get_action_and_value(
                            rows["obs"][idx], rows["actions"][idx]
                        )
                        member_loss, stats[role] = ppo_loss(
                            newlogprob, entropy, newvalue, {k: rows[k][idx] for k in LOSS_FIELDS},
                            mask, args, dim=1,
                        )  # fmt: skip
                        active[role] = mask.any(1)
                        # independent policies: each gets the gradient of its own loss
                        loss = loss + member_loss.sum()
                        clipfracs[role].append(stats[role]["clipfrac"][active[role]])
                        last_active[role] = active[role]
                if iteration == args.debug_nan_at_iteration:
                    loss = loss * float("nan")
                run.check_finite(
                    {"losses/loss": loss}, iteration=iteration, global_step=global_step
                )

                optimizer.zero_grad()
                loss.backward()
                for role, is_active in active.items():
                    net = roles[role][0]
                    clip_grad_norm_per_member_(net.parameters(), args.max_grad_norm, net.members)
                    hold_idle_members_(optimizer, net, is_active)
                optimizer.step()

            if args.target_kl is not None:
                approx_kl = max(
                    summarize(stats[r], last_active[r]).get("approx_kl", 0.0) for r in stats
                )
                if approx_kl > args.target_kl:
                    break
        run.check_finite(agent.named_parameters(), iteration=iteration, global_step=global_step)

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        scalars = {
            "charts/learning_rate": optimizer.param_groups[0]["lr"],
            "charts/adversary_learning_rate": optimizer.param_groups[1]["lr"],
            "charts/omega_steps": omega_steps,
            "charts/SPS": run.sps(global_step),
            "losses/omega_loss": omega_loss.item(),
        }
        scalars |= ppo_scalars(roles, stats, last_active, clipfracs)
        scalars |= omega_scalars(agent, victim_names, subset_names, finished)
        if rollout_episodes:
            ep = np.array([f[1:] for f in finished[:rollout_episodes]], dtype=np.float64)
            recent_return = float(ep[:, 3].mean())  # the victim's return under attack
            scalars["charts/episodic_return"] = recent_return
            scalars["charts/episodic_length"] = float(ep[:, 4].mean())
            scalars["adversary/episodic_return"] = -recent_return
            for v in range(num_victims):
                if (ep[:, 0] == v).any():
                    scalars[f"charts/episodic_return/{victim_names[v]}"] = float(
                        ep[ep[:, 0] == v, 3].mean()
                    )
        run.log(scalars, global_step)
        run.update_progress(global_step, recent_return)

        if iteration % args.checkpoint_every == 0 or iteration == args.num_iterations:
            checkpointer.save(
                global_step=global_step,
                iteration=iteration,
                policies=export_all(agent, agents, adversary_members),
                model=agent,
                optimizer=optimizer,
                complete=iteration == args.num_iterations,
                extra=art_record(
                    args, agent, agents, victims, subsets, adversary_members, omega_steps
                ),
            )
    envs.close()

    # greedy evaluation (and video) of the final checkpoint: clean, then under attack
    final = run.checkpoint_dir / "final.safetensors"
    run.final_evaluation(
        final, make_env(args.env_id, env_kwargs), agents, episodes=args.eval_episodes,
        seed=args.seed, global_step=global_step,
        video_env_fn=make_env(args.env_id, env_kwargs, render_mode="rgb_array")
        if args.capture_video else None,
    )  # fmt: skip
    if args.eval_episodes > 0:
        evaluate_under_attack(
            args, env_kwargs, run, final, agents, victims, subsets, agent.omega, global_step
        )
    run.close()
