# docs and experiment results can be found at docs/rma3c.md
"""RMA3C: robust multi-agent adversarial actor-critic, trained against learned state adversaries.

He et al. (TMLR 2023), "Robust Multi-Agent Reinforcement Learning with State Uncertainty",
App. D, Algorithm 1 (settings: App. E, Table 3). Every agent i has a centralized critic
Q_i(x, a_1..a_n) on the *true* observations, an actor pi_i, and a state adversary chi_i that
sees agent i's true observation s and replaces it by a perturbed one rho_i in the radius-d
ball; agent i acts on rho_i in the same step (Algorithm 1, lines 7-9). The critics learn from
the true transitions (line 13; the buffer stores true observations) with target networks,
the next actions a'_i = pi'_i(rho'_i) acting on the target adversaries' perturbation of s'
(line 15). Then the actors and the adversaries take `gda_steps` simultaneous gradient steps
on the same minibatch (line 17, App. E.4): with a_i = pi_i(clip(s_i + d * chi_i(s_i))),

    f = -mean Q_i(x, a_1..a_n)   (the others' actions from the buffer)
    actor:     theta <- theta - lr_pi * grad_theta f      (descent: maximize Q_i)
    adversary: phi   <- phi   + lr_chi * grad_phi f       (ascent: minimize Q_i)

The threat is `state_perturbation_v0(timing="same_step")`, driven through the vector env's
`perturb()`: the wrapper maps chi's action in [-1, 1]^d onto the admissible set and keeps the
ground truth; the update trains through the same map (adv_wrappers.train.offpolicy.
perturbed_observation, tested equal to the wrapper's). The actors' actions and everything
else are MADDPG's (adv_wrappers.train.offpolicy); checkpoints export the actors (one per
agent) and the adversaries (as `<agent>_obs_adversary`, tanh policies that plug into
`state_perturbation_v0(attack={agent: policy})`: the paper's chi* for the "w/ chi*"
baselines).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.optim as optim

from adv_wrappers.errors import InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.state_perturbation import perturber_id
from adv_wrappers.train import load_policy
from adv_wrappers.train.checkpoint import Checkpointer, export_policies
from adv_wrappers.train.config import parse_args, start_run
from adv_wrappers.train.envs import make_env
from adv_wrappers.train.networks import ActorSpec, MLPActor, clip_grad_norm_per_member_
from adv_wrappers.train.offpolicy import (
    MADDPGModel,
    check_args,
    finish,
    perturbed_observation,
    relaxed_action_space,
    train,
)
from adv_wrappers.vector import make_vector_env


@dataclass
class Args:
    exp_name: str = Path(__file__).stem
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
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
    capture_video: bool = False
    """whether to record a greedy evaluation episode at the end (`runs/{run_name}/videos/`)"""
    checkpoint_every: int = 1000
    """write `checkpoints/last.safetensors` (with the replay buffer) every this many vector
    steps (and at the end); the envs are re-seeded after each one, so `--resume` continues
    exactly"""
    resume: str | None = None
    """a checkpoint to resume from; every other flag is then taken from the checkpoint"""
    eval_episodes: int = 10
    """greedy evaluation episodes with the final checkpoint, every agent perturbed by its own
    final adversary (0: none)"""

    # Environment
    env_id: str = "adv/cooperative_navigation-v0"
    """the id of the environment (PettingZoo registry)"""
    env_kwargs: str = "{}"
    """keyword arguments of the environment, as a JSON dict"""
    num_envs: int = 1
    """the number of parallel game environments (the reference steps one)"""
    vector_backend: str = "sync"
    """`sync` (one process) or `subproc` (one worker per env copy)"""

    # Algorithm specific arguments (He et al. (TMLR 2023), Table 3, RMA3C column)
    radius: float = 1.0
    """radius d of the admissible set of perturbed observations (l-inf ball)"""
    norm: str = "linf"
    """the ball's norm: `linf` or `l2`"""
    total_timesteps: int = 250_000
    """environment steps (summed over copies): 10k episodes of 25 steps"""
    learning_rate: float = 0.01
    """Adam's learning rate of the critics (and of the actors, unless `actor_learning_rate`)"""
    actor_learning_rate: float | None = None
    """Adam's learning rate of the actors (default: `learning_rate`); 0 with `init_actors`
    trains only the critics and the adversaries against a frozen policy"""
    init_actors: str | None = None
    """a checkpoint (of `maddpg.py`, `m3ddpg.py` or `rma3c.py`, same env) whose policies
    initialize the actors"""
    adversary_learning_rate: float = 0.001
    """Adam's learning rate of the state adversaries"""
    gda_steps: int = 20
    """descent (actors) / ascent (adversaries) steps per update"""
    gda: str = "simultaneous"
    """`simultaneous` (App. E.4's GDA: both step on the same gradient evaluation) or
    `alternating` (the actors step, then the adversaries against the updated actors, as the
    GDA code of the authors' group does)"""
    gamma: float = 0.95
    """the discount factor"""
    buffer_size: int = 1_000_000
    """replay buffer capacity (transitions)"""
    minibatch_size: int = 1024
    """transitions per minibatch"""
    tau: float = 0.01
    """target networks: target <- (1 - tau) target + tau online, at every update"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layers of actors, critics and adversaries (ReLU)"""
    learning_starts: int = 25_600
    """transitions collected before the first update (the reference: batch x episode length)"""
    train_every: int = 100
    """one update (critics, then the GDA steps) per this many transitions"""
    max_grad_norm: float = 0.5
    """gradient clipping, per agent and network"""
    logit_reg: float = 1e-3
    """weight of the actor's regularizer mean(logits^2)"""
    gumbel_temperature: float = 1.0
    """temperature of the Gumbel-softmax relaxation"""

    num_steps: int = 1
    """vector steps per iteration (checkpoints and logs count iterations)"""

    # to be filled in runtime
    batch_size: int = 0
    """transitions per iteration (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# He et al. (TMLR 2023), App. E, Table 3 (RMA3C column) is the default for every env
PRESETS: dict[str, dict] = {}
GDA_MODES = ("simultaneous", "alternating")


class RMA3C(MADDPGModel):
    """MADDPG's actors, critics, targets and buffer, plus a state adversary chi_i per agent
    (a deterministic tanh actor on agent i's true observation) and its target.

    Observations are zero-padded to the largest size (the vector env's layout); ``sizes[i]``
    is agent i's own, and chi_i perturbs only those coordinates (``mask``) within agent i's
    bounds ``low[i]``, ``high[i]`` (``None``: unbounded observations)."""

    def __init__(self, obs_dim, action_dim, num_agents, args, relaxed, sizes, low, high):
        super().__init__(
            obs_dim, action_dim, num_agents, args.hidden_sizes, args.buffer_size, relaxed
        )
        spec = ActorSpec(
            input_dim=obs_dim, action_dim=obs_dim, head="tanh",
            hidden_sizes=tuple(args.hidden_sizes), activation="relu", pad_to=obs_dim,
        )  # fmt: skip
        self.adversaries = MLPActor(spec, num_agents)
        self.target_adversaries = MLPActor(spec, num_agents)
        self.target_adversaries.load_state_dict(self.adversaries.state_dict())
        self.radius, self.norm, self.sizes = args.radius, args.norm, list(sizes)
        mask = (torch.arange(obs_dim)[None, :] < torch.tensor(sizes)[:, None]).float()
        self.register_buffer("mask", mask, persistent=False)  # [A, D]
        self.register_buffer("low", low, persistent=False)  # [A, D] or None
        self.register_buffer("high", high, persistent=False)

    def perturb(self, adversaries, obs):
        """rho_i = the wrapper's perturbation of ``obs [B, A, D]`` by chi_i: ``[B, A, D]``,
        and chi's actions u (zero on the padding)."""
        u = torch.tanh(adversaries.net(obs.transpose(0, 1))).transpose(0, 1) * self.mask
        return perturbed_observation(obs, u, self.radius, self.norm, self.low, self.high), u

    def target_pairs(self):
        return [*super().target_pairs(), (self.target_adversaries, self.adversaries)]

    def policies(self, agents):
        """The actors (as the agents) and the adversaries (as ``<agent>_obs_adversary``),
        each adversary's output cut to its agent's observation size."""
        n = self.num_agents  # the vector env's slots: the agents, then their adversaries
        return {
            **export_policies(self.actors, agents[:n]),
            **export_policies(self.adversaries, agents[n:], action_sizes=self.sizes),
        }


def load_actors(model, path, agents):
    """Copy each agent's policy from checkpoint ``path`` into its member of the actor stack
    (and the target), after checking it has the same architecture."""
    for m, agent in enumerate(agents):
        policy = load_policy(path, agent=agent)
        if policy.spec != model.actors.spec:
            raise InvalidArgumentError(
                f"--init-actors {path}: policy {agent!r} is {policy.spec}; rma3c.py's actors "
                f"are {model.actors.spec}"
            )
        with torch.no_grad():
            for actors in (model.actors, model.target_actors):
                for name, tensor in actors.state_dict().items():
                    tensor[m].copy_(policy.actor.state_dict()[name][0])


def update(model, optimizer, args, device):
    """One RMA3C update: the critics (Algorithm 1, line 15), then `gda_steps` GDA steps of the
    actors and the adversaries on the same minibatch (line 17)."""
    b = model.replay.sample(args.minibatch_size, device)
    with torch.no_grad():  # a'_i = pi'_i(rho'_i), rho'_i from the target adversaries
        next_rho, _ = model.perturb(model.target_adversaries, b["next_obs"])
        next_actions, _ = model.policy_actions(
            model.target_actors, next_rho, args.gumbel_temperature
        )
        target_q = model.q_values(model.target_critics, b["next_obs"], next_actions)
        y = b["rewards"] + args.gamma * (1.0 - b["dones"]) * target_q
    q = model.q_values(model.critics, b["obs"], b["actions"])
    critic_loss = F.mse_loss(q, y)
    optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()  # the actors' and adversaries' gradients stay None
    clip_grad_norm_per_member_(model.critics.parameters(), args.max_grad_norm, model.num_agents)
    optimizer.step()

    def gda_loss(actors_learn, adversaries_learn):
        """-mean Q_i with a_i = pi_i(rho_i) (the others' actions from the buffer), and the
        actors' logit regularizer; only the given networks receive gradients."""
        model.actors.requires_grad_(actors_learn)
        model.adversaries.requires_grad_(adversaries_learn)
        rho, u = model.perturb(model.adversaries, b["obs"])
        own, logits = model.policy_actions(model.actors, rho, args.gumbel_temperature)
        worst_q = model.q_values(model.critics, b["obs"], model.with_own(b["actions"], own))
        loss = -worst_q.mean()
        # MADDPG's regularizer on the logits (weight 1e-3) is the actors'; in simultaneous
        # GDA its gradient also reaches the adversaries through rho (the reference keeps it
        # from them; at this weight, next to Q values of order 100, it is negligible)
        reg = args.logit_reg * logits.pow(2).mean() if actors_learn else 0.0
        optimizer.zero_grad(set_to_none=True)
        (loss + reg).backward()
        for net, learns in ((model.actors, actors_learn), (model.adversaries, adversaries_learn)):
            if learns:
                clip_grad_norm_per_member_(net.parameters(), args.max_grad_norm, model.num_agents)
        optimizer.step()  # descent for the actors, ascent for the adversaries (maximize=True)
        return loss, rho, u

    model.critics.requires_grad_(False)  # GDA moves the actors and the adversaries only
    for _ in range(args.gda_steps):
        if args.gda == "simultaneous":
            loss, rho, u = gda_loss(True, True)
        else:  # the actors, then the adversaries against the updated actors
            gda_loss(True, False)
            loss, rho, u = gda_loss(False, True)
    for net in (model.critics, model.actors, model.adversaries):
        net.requires_grad_(True)
    model.soft_update(args.tau)
    return {
        "losses/critic_loss": critic_loss.detach(),
        "losses/gda_loss": loss.detach(),
        "losses/q_values": q.detach().mean(),
        "charts/perturbation_linf": (rho - b["obs"]).abs().amax(-1).mean().detach(),
        "charts/adversary_action_abs": u.abs().mean().detach(),
    }


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    check_args(args)
    if args.actor_learning_rate is not None and not args.actor_learning_rate >= 0.0:
        raise InvalidArgumentError(
            f"actor_learning_rate must be >= 0; got {args.actor_learning_rate}"
        )
    if args.gda_steps < 1 or not args.radius > 0.0 or args.gda not in GDA_MODES:
        raise InvalidArgumentError(
            f"need gda_steps >= 1, radius > 0 and gda in {GDA_MODES}; got {args.gda_steps}, "
            f"{args.radius}, {args.gda!r}"
        )
    run, resume, device = start_run(args)  # iterations, run folder, seeding, device

    # env setup: registry env -> every agent's state adversary, exposed with Algorithm 1's
    # timing (perturb, then act) -> vector env
    env_kwargs = json.loads(args.env_kwargs)
    threat = {
        "name": "state_perturbation_v0",
        "kwargs": {"epsilon": args.radius, "norm": args.norm, "timing": "same_step"},
    }
    env_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(env_fn, args.num_envs, backend=args.vector_backend)
    agents = [a for a in envs.agents if perturber_id(a) in envs.agents]
    adversaries = [perturber_id(a) for a in agents]
    if list(envs.agents) != agents + adversaries:
        raise UnsupportedSpaceError(
            f"rma3c.py needs every agent attacked; the vector env has {list(envs.agents)}"
        )
    n = len(agents)
    agent_slots, adversary_slots = list(range(n)), list(range(n, 2 * n))
    spaces_ = [envs.observation_spaces[a] for a in agents]
    if any(len(space.shape) != 1 for space in spaces_):
        raise UnsupportedSpaceError(f"rma3c.py needs flat (1-D Box) observations; got {spaces_}")
    action_space = envs.action_spaces[agents[0]]
    if any(envs.action_spaces[a] != action_space for a in agents):
        raise UnsupportedSpaceError("rma3c.py needs one action space for every agent")
    action_dim, relaxed = relaxed_action_space(action_space, "rma3c.py")
    sizes = [space.shape[0] for space in spaces_]
    obs_dim = max(sizes)  # the vector env pads every observation to the largest
    low, high = torch.zeros(n, obs_dim), torch.zeros(n, obs_dim)  # the padding stays 0
    for i, space in enumerate(spaces_):
        low[i, : sizes[i]] = torch.as_tensor(space.low, dtype=torch.float32)
        high[i, : sizes[i]] = torch.as_tensor(space.high, dtype=torch.float32)
    if not (torch.isfinite(low).any() or torch.isfinite(high).any()):
        low = high = None  # unbounded (the particle envs): no clip

    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm="rma3c", args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip
    model = RMA3C(obs_dim, action_dim, n, args, relaxed, sizes, low, high).to(device)
    if args.init_actors and not resume:
        load_actors(model, args.init_actors, agents)
    actor_lr = args.learning_rate if args.actor_learning_rate is None else args.actor_learning_rate
    optimizer = optim.Adam(
        [
            {"params": list(model.actors.parameters()), "lr": actor_lr},
            {"params": list(model.critics.parameters())},
            {"params": list(model.adversaries.parameters()),
             "lr": args.adversary_learning_rate, "maximize": True},
        ],
        lr=args.learning_rate,
    )  # fmt: skip
    width = int(envs.single_action_space.shape[0])  # actions padded to the widest (chi's d)

    def act(obs_np):
        """Algorithm 1, lines 7-9: chi_i sees agent i's true observation (its adversary's
        row), the wrapper perturbs it, pi_i acts on the result."""
        true_obs = torch.as_tensor(obs_np[:, adversary_slots], dtype=torch.float32)
        actions = np.zeros((args.num_envs, 2 * n, width), dtype=np.float32)
        with torch.no_grad():
            actions[:, adversary_slots, :obs_dim] = (
                torch.tanh(model.adversaries.net(true_obs.to(device).transpose(0, 1)))
                .transpose(0, 1)
                .cpu()
                .numpy()
            )
            perturbed, _ = envs.perturb(actions)
            rho = torch.as_tensor(perturbed[:, agent_slots], dtype=torch.float32, device=device)
            sample, _ = model.policy_actions(model.actors, rho, args.gumbel_temperature)
        if relaxed:  # the soft samples, or (Discrete) the sampled index in column 0
            actions[:, agent_slots, :action_dim] = sample.cpu().numpy()
        else:
            actions[:, agent_slots, 0] = sample.argmax(-1).cpu().numpy() + action_space.start
        return actions, true_obs, sample.cpu()

    # ALGO LOGIC: the critics, then GDA on the actors and the adversaries
    global_step = train(
        args, model=model, optimizer=optimizer,
        update=lambda: update(model, optimizer, args, device), envs=envs, run=run,
        resume=resume, checkpointer=checkpointer, device=device, act=act, slots=agent_slots,
        observed=lambda o: o[:, adversary_slots],  # the true observations
    )  # fmt: skip
    envs.close()

    # evaluation: each agent perturbed by its own final adversary (embedded in the wrapper)
    final = run.checkpoint_dir / "final.safetensors"
    eval_threat = {
        "name": "state_perturbation_v0",
        "kwargs": {
            "epsilon": args.radius, "norm": args.norm,
            "attack": {a: {"checkpoint": str(final), "agent": perturber_id(a)} for a in agents},
        },
    }  # fmt: skip
    finish(args, make_env(args.env_id, env_kwargs, eval_threat), agents, run, global_step,
           make_env(args.env_id, env_kwargs, eval_threat, render_mode="rgb_array"))  # fmt: skip
