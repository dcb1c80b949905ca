"""Off-policy multi-agent actor-critic: MADDPG's networks and update, and the training loop of
``baselines/maddpg.py``, ``baselines/m3ddpg.py`` and ``baselines/rma3c.py``.

* :class:`MADDPGModel` - per-agent deterministic actors mu_i(o_i) and centralized critics
  Q_i(x, a_1..a_n), their target networks and the replay buffer, stacked over the agents
  (Lowe et al. 2017, as He et al. (TMLR 2023) use it: App. E.3, Eqs. 61-62).
* :func:`maddpg_update` - one update of every agent's critic and actor, with a hook that moves
  the other agents' actions (M3DDPG's minimax step, Li et al. 2019).
* :func:`perturbed_observation` - ``state_perturbation_v0``'s map from an adversary action
  ``u`` in [-1, 1]^d to a perturbed observation, as a differentiable torch function (RMA3C
  trains its state adversaries through it); tested equal to the wrapper's.
* :func:`train` - the loop: act, store, update every ``train_every`` transitions, log,
  checkpoint (with the buffer), re-seed; hooks let a trainer act through a two-phase
  (perturb, then act) vector env.
* :func:`check_args`, :func:`setup`, :func:`finish` - the preamble and the end of a run
  (arguments, run folder, env, checkpointer, model and Adam; final evaluation).

Actions. Discrete actions use the Gumbel-softmax relaxation, as the MADDPG reference does:
the env executes argmax(logits + g) (a sample of softmax(logits)), the buffer stores its
one-hot, and the actor learns through the straight-through estimator. A Box(0, 1, (n,))
action (the multi-agent particle envs with ``continuous_actions=True``) is read as a relaxed
one-hot, which is what the reference sends to the original particle envs: the env executes
the soft sample softmax((logits + g) / temperature) itself, the buffer stores it, and the
actor learns through it.

Example:
    >>> import torch
    >>> from adv_wrappers.train.offpolicy import MADDPGModel
    >>> model = MADDPGModel(obs_dim=4, action_dim=5, num_agents=3, hidden_sizes=(8,),
    ...                     buffer_size=10, relaxed=True)
    >>> sample, logits = model.policy_actions(model.actors, torch.zeros(2, 3, 4), 1.0)
    >>> tuple(sample.shape), tuple(model.q_values(model.critics, torch.zeros(2, 3, 4), sample).shape)
    ((2, 3, 5), (2, 3))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adv_wrappers.errors import InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.train.checkpoint import export_policies
from adv_wrappers.train.config import env_seed
from adv_wrappers.train.networks import (
    ActorSpec,
    MLPActor,
    box_heads,
    clip_grad_norm_per_member_,
    stacked_mlp,
)
from adv_wrappers.train.replay import ReplayBuffer
from adv_wrappers.train.rollout import EpisodeStats

__all__ = [
    "MADDPGModel",
    "OffPolicyRun",
    "check_args",
    "finish",
    "maddpg_update",
    "perturbed_observation",
    "relaxed_action_space",
    "setup",
    "train",
]


def relaxed_action_space(space: gymnasium.Space, where: str) -> tuple[int, bool]:
    """``(n, relaxed)`` for a Discrete(n) space (``relaxed=False``) or a Box(0, 1, (n,))
    relaxed one-hot (``relaxed=True``).

    Raises:
        UnsupportedSpaceError: any other space, naming ``where``.
    """
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(space.n), False
    if isinstance(space, gymnasium.spaces.Box) and "relaxed_categorical" in box_heads(space):
        return int(space.shape[0]), True
    raise UnsupportedSpaceError(
        f"{where} trains Discrete actions or Box(0, 1, (n,)) relaxed one-hots (the particle "
        f"envs' continuous_actions=True); got {space}"
    )


class MADDPGModel(nn.Module):
    """Actors mu_i(o_i) and critics Q_i(x, a) with their targets, stacked over the agents,
    and the replay buffer (all saved in checkpoints).

    Args:
        obs_dim: the (padded) flat observation size.
        action_dim: the number of logits (Discrete ``n``, or the Box's ``n``).
        num_agents: the agents, each with its own actor and critic.
        hidden_sizes: hidden ReLU layers of actors and critics.
        buffer_size: replay capacity (transitions).
        relaxed: Box relaxed one-hots (soft samples) instead of Discrete (hard samples).

    Attributes:
        actors, target_actors: :class:`MLPActor` stacks (``num_agents`` members).
        critics, target_critics: stacked MLPs on ``[x, a_1..a_n]`` (``num_agents`` members).
        replay: fields ``obs [A, D]``, ``actions [A, n]`` (one-hots or soft samples),
            ``rewards [A]``, ``next_obs [A, D]``, ``dones [A]``.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        num_agents: int,
        hidden_sizes: Sequence[int],
        buffer_size: int,
        relaxed: bool,
    ) -> None:
        super().__init__()
        self.num_agents, self.action_dim, self.relaxed = num_agents, action_dim, relaxed
        spec = ActorSpec(
            input_dim=obs_dim, action_dim=action_dim,
            head="relaxed_categorical" if relaxed else "categorical",
            hidden_sizes=tuple(hidden_sizes), activation="relu", pad_to=obs_dim,
        )  # fmt: skip
        sizes = (num_agents * (obs_dim + action_dim), *hidden_sizes, 1)  # x = (o_1..o_n), a
        self.actors = MLPActor(spec, num_agents)
        self.critics = stacked_mlp(num_agents, sizes, 1.0, "relu")
        self.target_actors = MLPActor(spec, num_agents)
        self.target_critics = stacked_mlp(num_agents, sizes, 1.0, "relu")
        self.target_actors.load_state_dict(self.actors.state_dict())
        self.target_critics.load_state_dict(self.critics.state_dict())
        self.replay = ReplayBuffer(
            buffer_size,
            {
                "obs": ((num_agents, obs_dim), torch.float32),
                "actions": ((num_agents, action_dim), torch.float32),
                "rewards": ((num_agents,), torch.float32),
                "next_obs": ((num_agents, obs_dim), torch.float32),
                "dones": ((num_agents,), torch.float32),
            },
        )

    def policy_actions(
        self, actors: MLPActor, obs: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gumbel-softmax samples ``[B, A, n]`` of ``actors`` on ``obs [B, A, D]`` (one-hots
        through the straight-through estimator, or soft samples with ``relaxed``) and the
        logits ``[A, B, n]``."""
        logits = actors.net(obs.transpose(0, 1))
        sample = F.gumbel_softmax(logits, tau=temperature, hard=not self.relaxed)
        return sample.transpose(0, 1), logits

    def q_values(self, critics: nn.Module, obs: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """Every agent's Q_i(x, a) ``[B, A]`` on ``obs [B, A, D]`` and a joint action: one
        for every critic (``[B, A, n]``) or one per critic (``[A, B, A, n]``)."""
        a, batch = self.num_agents, obs.shape[0]
        x = obs.flatten(1).unsqueeze(0).expand(a, -1, -1)
        joint = joint.unsqueeze(0).expand(a, -1, -1, -1) if joint.dim() == 3 else joint
        return critics(torch.cat([x, joint.reshape(a, batch, -1)], dim=2)).squeeze(-1).T

    def with_own(self, joint: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """Per critic i, ``joint [B, A, n]`` with agent i's slot replaced by ``own[:, i]``:
        ``[A, B, A, n]``."""
        a = self.num_agents
        eye = torch.eye(a, device=joint.device).view(a, 1, a, 1)
        return joint.unsqueeze(0) * (1 - eye) + own.unsqueeze(0) * eye

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(target, online)`` networks that :meth:`soft_update` moves."""
        return [(self.target_actors, self.actors), (self.target_critics, self.critics)]

    @torch.no_grad()
    def soft_update(self, tau: float) -> None:
        """target <- (1 - tau) target + tau online, for every pair of :meth:`target_pairs`."""
        for target, online in self.target_pairs():
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.lerp_(o, tau)

    def policies(self, agents: Sequence[str]) -> dict[str, Any]:
        """The policies a checkpoint exports (one actor per agent)."""
        return export_policies(self.actors, agents)


# (critics, obs [B, A, D], joint [A, B, A, n], which: "critic" | "actor") -> joint
AdversarialJoint = Callable[[nn.Module, torch.Tensor, torch.Tensor, str], torch.Tensor]


def maddpg_update(
    model: MADDPGModel,
    optimizer: torch.optim.Optimizer,
    args: Any,
    device: torch.device,
    adversarial: AdversarialJoint | None = None,
) -> dict[str, torch.Tensor]:
    """One update of every agent's critic (Eq. 62) and actor (Eq. 61) on a fresh minibatch.

    Critic i regresses Q_i(x, a) on y = r_i + gamma (1 - done_i) Q'_i(x', a'), a'_j from the
    target actors; actor i ascends Q_i(x, a) with a_i = mu_i(o_i) and the others' actions from
    the buffer. ``adversarial`` (M3DDPG) replaces, per critic, the joint action fed to the
    target critic (``which="critic"``) and to the actor loss (``which="actor"``), e.g. by
    moving the other agents' actions against Q_i. Uses ``args.minibatch_size``, ``gamma``,
    ``gumbel_temperature``, ``max_grad_norm``, ``logit_reg`` and ``tau``.

    Returns:
        ``losses/critic_loss``, ``losses/actor_loss`` (with the logit regularizer),
        ``losses/q_values`` (detached scalars).
    """
    b = model.replay.sample(args.minibatch_size, device)
    with torch.no_grad():
        next_actions, _ = model.policy_actions(
            model.target_actors, b["next_obs"], args.gumbel_temperature
        )
    joint_next: torch.Tensor = next_actions
    if adversarial is not None:
        joint_next = adversarial(
            model.target_critics, b["next_obs"],
            next_actions.unsqueeze(0).expand(model.num_agents, -1, -1, -1), "critic",
        )  # fmt: skip
    with torch.no_grad():
        target_q = model.q_values(model.target_critics, b["next_obs"], joint_next)
        y = b["rewards"] + args.gamma * (1.0 - b["dones"]) * target_q
    q = model.q_values(model.critics, b["obs"], b["actions"])
    critic_loss = F.mse_loss(q, y)
    optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()  # the actors' gradients stay None: Adam leaves them alone
    clip_grad_norm_per_member_(model.critics.parameters(), args.max_grad_norm, model.num_agents)
    optimizer.step()

    own, logits = model.policy_actions(model.actors, b["obs"], args.gumbel_temperature)
    joint = model.with_own(b["actions"], own)
    if adversarial is not None:
        joint = adversarial(model.critics, b["obs"], joint, "actor")
    model.critics.requires_grad_(False)  # the actor loss moves only the actors
    actor_loss = -model.q_values(model.critics, b["obs"], joint).mean()
    actor_loss = actor_loss + args.logit_reg * logits.pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    actor_loss.backward()
    model.critics.requires_grad_(True)
    clip_grad_norm_per_member_(model.actors.parameters(), args.max_grad_norm, model.num_agents)
    optimizer.step()
    model.soft_update(args.tau)
    return {
        "losses/critic_loss": critic_loss.detach(),
        "losses/actor_loss": actor_loss.detach(),
        "losses/q_values": q.detach().mean(),
    }


def perturbed_observation(
    obs: torch.Tensor,
    u: torch.Tensor,
    epsilon: float,
    norm: str,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    """``state_perturbation_v0``'s perturbed observation for adversary actions ``u`` in
    [-1, 1]^d, differentiable in ``u``: ``clip(obs + to_ball(u), low, high)``.

    ``to_ball`` is the wrapper's (:func:`adv_wrappers.state_perturbation.to_ball`): l-inf
    ``epsilon * u``; l2 ``epsilon * u / max(1, ||u||_2)``. ``low``/``high`` are the
    observation space's bounds (``None``: unbounded). ``obs`` and ``u`` are ``[..., d]``.

    Raises:
        InvalidArgumentError: an unknown ``norm``.
    """
    if norm == "linf":
        delta = epsilon * u
    elif norm == "l2":
        delta = epsilon * u / torch.clamp(u.norm(dim=-1, keepdim=True), min=1.0)
    else:
        raise InvalidArgumentError(f"norm must be 'linf' or 'l2'; got {norm!r}")
    out = obs + delta
    if low is not None and high is not None:
        out = torch.maximum(torch.minimum(out, high), low)
    return out


Act = Callable[[np.ndarray], tuple[np.ndarray, torch.Tensor, torch.Tensor]]


def train(
    args: Any,
    *,
    model: MADDPGModel,
    optimizer: torch.optim.Optimizer,
    update: Callable[[], dict[str, torch.Tensor]],
    envs: Any,
    run: Any,
    resume: Any,
    checkpointer: Any,
    device: torch.device,
    act: Act | None = None,
    slots: Sequence[int] | None = None,
    observed: Callable[[np.ndarray], np.ndarray] | None = None,
) -> int:
    """The off-policy loop; returns the last global step.

    Every vector step: ``act(obs)`` gives the env's actions and the ``[E, A, D]``
    observations and ``[E, A, n]`` actions to store; the transition goes into
    ``model.replay`` (a finished copy's next observation is its last one: a truncation
    bootstraps from it, a termination does not); once ``args.learning_starts`` transitions
    are stored, ``update()`` runs every ``args.train_every`` transitions. Logs every 100
    iterations; checkpoints (policies from ``model.policies``, the model with its buffer,
    Adam, ``since_update``) every ``args.checkpoint_every`` iterations and at the end, then
    re-seeds the envs so a resumed run continues exactly.

    Args:
        act: default: the actors' Gumbel-softmax samples on the observations (the env gets
            their argmax for Discrete actions, the soft samples for Box).
        slots: the vector env's agent slots that the model trains (default: all); their
            rewards, terminations and episode returns are kept.
        observed: maps a batch of the env's observations to the ``[E, A, D]`` ones stored
            as next observations (default: ``obs[:, slots]``).

    Raises:
        InvalidArgumentError: an agent absent at some step.
    """
    agents = list(envs.agents)
    slots = list(range(len(agents))) if slots is None else list(slots)
    names = [agents[i] for i in slots]
    observed = observed or (lambda o: o[:, slots])
    if act is None:
        space = envs.action_spaces[agents[0]]

        def act(obs_np: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
            obs = torch.as_tensor(obs_np, dtype=torch.float32, device=device)
            with torch.no_grad():  # explore: a sample of softmax(logits) (Gumbel-max trick)
                sample, _ = model.policy_actions(model.actors, obs, args.gumbel_temperature)
            if model.relaxed:
                env_actions = sample.cpu().numpy()
            else:
                env_actions = sample.argmax(-1).cpu().numpy() + int(space.start)
            return env_actions, obs.cpu(), sample.cpu()

    global_step, start_iteration = 0, 1
    if resume:
        resume.restore(model, optimizer)  # weights, targets, replay buffer, Adam, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
    next_obs_np, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
    stats = EpisodeStats(args.num_envs, len(slots))
    losses: dict[str, torch.Tensor] = {}
    since_update = int(resume.record["extra"]["since_update"]) if resume else 0

    for iteration in range(start_iteration, args.num_iterations + 1):
        for _ in range(args.num_steps):
            global_step += args.num_envs
            if not infos["alive"].all():
                raise InvalidArgumentError(
                    f"{args.exp_name} needs every agent to act at every step; {args.env_id} "
                    "has agents that are absent at some steps"
                )
            env_actions, obs, actions = act(next_obs_np)
            next_obs_np, reward, terminations, _, infos = envs.step(env_actions)
            stats.step(reward[:, slots], infos["acted"][:, slots], infos["reset"])
            reset = infos["reset"].reshape(-1, 1, 1)
            real_next = np.where(reset, observed(infos["final_obs"]), observed(next_obs_np))
            model.replay.add(
                obs=obs, actions=actions, rewards=torch.as_tensor(reward[:, slots]),
                next_obs=torch.as_tensor(real_next, dtype=torch.float32),
                dones=torch.as_tensor(terminations[:, slots], dtype=torch.float32),
            )  # fmt: skip

            since_update += args.num_envs
            if len(model.replay) >= args.learning_starts and since_update >= args.train_every:
                since_update = 0
                losses = update()
                run.check_finite(losses, iteration=iteration, global_step=global_step)

        if iteration % 100 == 0 or iteration == args.num_iterations:
            run.log({**{k: v.item() for k, v in losses.items()}, "charts/SPS": run.sps(global_step),
                     "charts/buffer_size": len(model.replay), **stats.scalars(names)},
                    global_step)  # fmt: skip
            run.update_progress(global_step, stats.recent_return)

        last = iteration == args.num_iterations
        if iteration % args.checkpoint_every == 0 or last:
            checkpointer.save(global_step=global_step, iteration=iteration,
                              policies=model.policies(agents), model=model, optimizer=optimizer,
                              complete=last, extra={"since_update": since_update})  # fmt: skip
            next_obs_np, infos = envs.reset(seed=env_seed(args.seed, iteration))
            stats.clear()
    return global_step


def check_args(args: Any) -> None:
    """The checks every off-policy trainer makes on its shared arguments.

    Raises:
        InvalidArgumentError: ``train_every`` or ``minibatch_size`` below 1, ``tau`` outside
            (0, 1].
    """
    if args.train_every < 1 or args.minibatch_size < 1 or not 0.0 < args.tau <= 1.0:
        raise InvalidArgumentError(
            f"need train_every >= 1, minibatch_size >= 1 and tau in (0, 1]; got "
            f"{args.train_every}, {args.minibatch_size}, {args.tau}"
        )


@dataclass
class OffPolicyRun:
    """What :func:`setup` builds for ``maddpg.py`` and ``m3ddpg.py``."""

    run: Any
    resume: Any
    device: torch.device
    env_kwargs: dict[str, Any]
    threat: dict[str, Any] | None
    env_fn: Any
    envs: Any
    checkpointer: Any
    model: MADDPGModel
    optimizer: torch.optim.Optimizer


def setup(args: Any, algorithm: str) -> OffPolicyRun:
    """CleanRL's preamble for a MADDPG-family trainer: the run (folder, seeding, device),
    the env (registry env -> ``args.threat`` wrapper -> vector env), the checkpointer, the
    :class:`MADDPGModel` and one Adam over its actors and critics (``args.learning_rate``).

    Raises:
        UnsupportedSpaceError: actions that are neither Discrete nor relaxed one-hots.
    """
    from adv_wrappers.train.checkpoint import Checkpointer
    from adv_wrappers.train.config import start_run
    from adv_wrappers.train.envs import check_trainable, make_env
    from adv_wrappers.vector import make_vector_env

    check_args(args)
    run, resume, device = start_run(args)  # iterations, run folder, seeding, device
    env_kwargs = json.loads(args.env_kwargs)
    threat = (
        {"name": args.threat, "kwargs": json.loads(args.threat_kwargs)} if args.threat else None
    )
    env_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(env_fn, args.num_envs, backend=args.vector_backend)
    obs_dim, action_space = check_trainable(envs)
    action_dim, relaxed = relaxed_action_space(action_space, f"{algorithm}.py")
    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm=algorithm, args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip
    model = MADDPGModel(
        obs_dim, action_dim, envs.num_agents, args.hidden_sizes, args.buffer_size, relaxed
    ).to(device)
    optimizer = torch.optim.Adam(
        [*model.actors.parameters(), *model.critics.parameters()], lr=args.learning_rate
    )
    return OffPolicyRun(
        run, resume, device, env_kwargs, threat, env_fn, envs, checkpointer, model, optimizer
    )


def finish(args: Any, env_fn: Any, agents: Sequence[str], run: Any, global_step: int,
           video_env_fn: Any = None) -> None:  # fmt: skip
    """The end of a run: the final checkpoint's greedy policies (``agents``) played in
    ``env_fn``'s env for ``args.eval_episodes`` episodes (a video with ``video_env_fn``),
    then the run closed."""
    run.final_evaluation(
        run.checkpoint_dir / "final.safetensors", env_fn, agents,
        episodes=args.eval_episodes, seed=args.seed, global_step=global_step,
        video_env_fn=video_env_fn if args.capture_video else None,
    )  # fmt: skip
    run.close()
