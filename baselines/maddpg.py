# docs and experiment results can be found at docs/maddpg.md
"""MADDPG: deterministic actors with centralized critics Q_i(x, a_1, ..., a_n), off-policy.

Lowe et al. 2017, "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments",
as He et al. (TMLR 2023) use it (App. E.3, Eqs. 61-62; Table 3): every agent i has an actor
mu_i(o_i) and a critic Q_i(x, a_1..a_n) on all observations x = (o_1..o_n) and all actions,
with target networks updated by Polyak averaging; transitions come from a replay buffer.
Discrete actions use the Gumbel-softmax relaxation, as the MADDPG reference does: the env
executes argmax(logits + Gumbel noise) (a sample of softmax(logits)), the buffer stores its
one-hot, and the actor is trained through the straight-through estimator (the one-hot
forward, the gradient of softmax((logits + g) / temperature)). The reference's regularizer
on the logits (1e-3 * mean(logits^2)) is kept.

The replay buffer is part of the checkpoint (adv_wrappers.train.replay), so `--resume`
continues with the same transitions and the same minibatches.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.checkpoint import Checkpointer, export_policies
from adv_wrappers.train.config import env_seed, parse_args, start_run
from adv_wrappers.train.envs import check_trainable, make_env
from adv_wrappers.train.networks import (
    ActorSpec,
    MLPActor,
    clip_grad_norm_per_member_,
    stacked_mlp,
)
from adv_wrappers.train.replay import ReplayBuffer
from adv_wrappers.train.rollout import EpisodeStats
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
    """greedy evaluation episodes played with the final checkpoint (0: none)"""

    # Environment
    env_id: str = "adv/cooperative_navigation-v0"
    """the id of the environment (PettingZoo registry)"""
    env_kwargs: str = "{}"
    """keyword arguments of the environment, as a JSON dict"""
    num_envs: int = 1
    """the number of parallel game environments (the reference steps one)"""
    vector_backend: str = "sync"
    """`sync` (one process) or `subproc` (one worker per env copy)"""
    threat: str | None = None
    """a threat model of `adv_wrappers.registry.THREAT_MODELS` with an embedded attack (e.g.
    `state_perturbation_v0` with random noise: He et al.'s "w/ N")"""
    threat_kwargs: str = "{}"
    """its keyword arguments, as a JSON dict"""

    # Algorithm specific arguments (He et al. (TMLR 2023), Table 3, MADDPG column)
    total_timesteps: int = 250_000
    """environment steps (summed over copies): 10k episodes of 25 steps"""
    learning_rate: float = 0.01
    """Adam's learning rate of the actors and the critics"""
    gamma: float = 0.95
    """the discount factor"""
    buffer_size: int = 1_000_000
    """replay buffer capacity (transitions)"""
    minibatch_size: int = 1024
    """transitions per minibatch (the reference's `--batch-size`)"""
    tau: float = 0.01
    """target networks: target <- (1 - tau) target + tau online, at every update"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layers of actors and critics (ReLU)"""
    learning_starts: int = 25_600
    """transitions collected before the first update (the reference: batch x episode length)"""
    train_every: int = 100
    """one update (every agent's critic and actor) per this many transitions"""
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


# He et al. (TMLR 2023), App. E, Table 3 (MADDPG column) is the default for every env
PRESETS: dict[str, dict] = {}


class MADDPG(nn.Module):
    """Actors mu_i(o_i) and critics Q_i(x, a) with their targets, stacked over the agents,
    and the replay buffer (all saved in checkpoints)."""

    def __init__(self, obs_dim, num_actions, num_agents, args):
        super().__init__()
        self.num_agents, self.num_actions = num_agents, num_actions
        spec = ActorSpec(
            input_dim=obs_dim, action_dim=num_actions, head="categorical",
            hidden_sizes=tuple(args.hidden_sizes), activation="relu", pad_to=obs_dim,
        )  # fmt: skip
        joint = num_agents * (obs_dim + num_actions)  # x = (o_1..o_n), a = (a_1..a_n)
        sizes = (joint, *args.hidden_sizes, 1)
        self.actors = MLPActor(spec, num_agents)
        self.critics = stacked_mlp(num_agents, sizes, 1.0, "relu")
        self.target_actors = MLPActor(spec, num_agents)
        self.target_critics = stacked_mlp(num_agents, sizes, 1.0, "relu")
        self.target_actors.load_state_dict(self.actors.state_dict())
        self.target_critics.load_state_dict(self.critics.state_dict())
        self.replay = ReplayBuffer(
            args.buffer_size,
            {
                "obs": ((num_agents, obs_dim), torch.float32),
                "actions": ((num_agents,), torch.int64),
                "rewards": ((num_agents,), torch.float32),
                "next_obs": ((num_agents, obs_dim), torch.float32),
                "dones": ((num_agents,), torch.float32),
            },
        )

    def gumbel_actions(self, actors, obs, temperature, hard=True):
        """Straight-through Gumbel-softmax samples ([B, A, n]) and the logits ([A, B, n])."""
        logits = actors.net(obs.transpose(0, 1))
        sample = F.gumbel_softmax(logits, tau=temperature, hard=hard)
        return sample.transpose(0, 1), logits

    def q_values(self, critics, obs, actions):
        """obs [B, A, D], one-hot actions [B, A, n] -> every agent's Q_i(x, a), [B, A]."""
        x = torch.cat([obs.flatten(1), actions.flatten(1)], dim=1)
        return critics(x.unsqueeze(0).expand(self.num_agents, -1, -1)).squeeze(-1).T

    def q_with_own(self, obs, buffer_actions, own):
        """Q_i(x, a_1..a_n) with a_i replaced by ``own[:, i]`` for every agent i: [B, A]."""
        a, batch = self.num_agents, obs.shape[0]
        joint = buffer_actions.unsqueeze(0).repeat(a, 1, 1, 1)  # [A(critic i), B, A, n]
        eye = torch.eye(a, device=obs.device).view(a, 1, a, 1)
        joint = joint * (1 - eye) + own.unsqueeze(0) * eye  # slot i of critic i: a_i = mu_i
        x = torch.cat(
            [obs.flatten(1).unsqueeze(0).expand(a, -1, -1), joint.reshape(a, batch, -1)], dim=2
        )
        return self.critics(x).squeeze(-1).T

    @torch.no_grad()
    def soft_update(self, tau):
        for target, online in ((self.target_actors, self.actors),
                               (self.target_critics, self.critics)):  # fmt: skip
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.lerp_(o, tau)


def update(model, optimizer, args, device):
    """One MADDPG update of every agent's critic (Eq. 62) and actor (Eq. 61)."""
    b = model.replay.sample(args.minibatch_size, device)
    n = model.num_actions
    actions = F.one_hot(b["actions"], n).float()
    with torch.no_grad():
        next_actions, _ = model.gumbel_actions(
            model.target_actors, b["next_obs"], args.gumbel_temperature
        )
        target_q = model.q_values(model.target_critics, b["next_obs"], next_actions)
        y = b["rewards"] + args.gamma * (1.0 - b["dones"]) * target_q
    q = model.q_values(model.critics, b["obs"], actions)
    critic_loss = F.mse_loss(q, y)
    optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()  # the actors' gradients stay None: Adam leaves them alone
    clip_grad_norm_per_member_(model.critics.parameters(), args.max_grad_norm, model.num_agents)
    optimizer.step()

    own, logits = model.gumbel_actions(model.actors, b["obs"], args.gumbel_temperature)
    model.critics.requires_grad_(False)  # the actor loss moves only the actors
    actor_loss = -model.q_with_own(b["obs"], actions, own).mean()
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


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    if args.train_every < 1 or args.minibatch_size < 1 or not 0.0 < args.tau <= 1.0:
        raise InvalidArgumentError(
            f"need train_every >= 1, minibatch_size >= 1 and tau in (0, 1]; got "
            f"{args.train_every}, {args.minibatch_size}, {args.tau}"
        )
    run, resume, device = start_run(args)  # iterations, run folder, seeding, device

    env_kwargs = json.loads(args.env_kwargs)
    threat = (
        {"name": args.threat, "kwargs": json.loads(args.threat_kwargs)} if args.threat else None
    )
    env_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(env_fn, args.num_envs, backend=args.vector_backend)
    obs_dim, action_space = check_trainable(envs)
    if not isinstance(action_space, gym.spaces.Discrete):
        raise InvalidArgumentError(
            f"maddpg.py trains Discrete actions (Gumbel-softmax); {args.env_id} has {action_space}"
        )
    num_agents, num_actions = envs.num_agents, int(action_space.n)

    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm="maddpg", args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip
    model = MADDPG(obs_dim, num_actions, num_agents, args).to(device)
    optimizer = optim.Adam(
        [*model.actors.parameters(), *model.critics.parameters()], lr=args.learning_rate
    )

    global_step, start_iteration = 0, 1
    if resume:
        resume.restore(model, optimizer)  # weights, targets, replay buffer, Adam, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
    next_obs_np, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
    stats = EpisodeStats(args.num_envs, num_agents)
    losses: dict[str, torch.Tensor] = {}
    since_update = int(resume.record["extra"]["since_update"]) if resume else 0

    for iteration in range(start_iteration, args.num_iterations + 1):
        for _ in range(args.num_steps):
            global_step += args.num_envs
            if not infos["alive"].all():
                raise InvalidArgumentError(
                    f"maddpg.py needs every agent to act at every step; {args.env_id} has "
                    "agents that are absent at some steps"
                )
            obs = torch.Tensor(next_obs_np).to(device)
            with torch.no_grad():  # explore: a sample of softmax(logits) (Gumbel-max trick)
                sample, _ = model.gumbel_actions(model.actors, obs, args.gumbel_temperature)
            action = sample.argmax(-1)
            next_obs_np, reward, terminations, truncations, infos = envs.step(
                action.cpu().numpy() + int(action_space.start)
            )
            stats.step(reward, infos["acted"], infos["reset"])
            # a finished copy's next observation is its last one (a truncation bootstraps
            # from it, a termination does not)
            reset = infos["reset"].reshape(-1, 1, 1)
            real_next = np.where(reset, infos["final_obs"], next_obs_np)
            model.replay.add(
                obs=obs.cpu(), actions=action.cpu(), rewards=torch.as_tensor(reward),
                next_obs=torch.as_tensor(real_next, dtype=torch.float32),
                dones=torch.as_tensor(terminations, dtype=torch.float32),
            )  # fmt: skip

            since_update += args.num_envs
            if len(model.replay) >= args.learning_starts and since_update >= args.train_every:
                since_update = 0
                losses = update(model, optimizer, args, device)
                run.check_finite(losses, iteration=iteration, global_step=global_step)

        if iteration % 100 == 0 or iteration == args.num_iterations:
            run.log({**{k: v.item() for k, v in losses.items()}, "charts/SPS": run.sps(global_step),
                     "charts/buffer_size": len(model.replay), **stats.scalars(envs.agents)},
                    global_step)  # fmt: skip
            run.update_progress(global_step, stats.recent_return)

        last = iteration == args.num_iterations
        if iteration % args.checkpoint_every == 0 or last:
            policies = export_policies(model.actors, envs.agents)
            checkpointer.save(global_step=global_step, iteration=iteration, policies=policies,
                              model=model, optimizer=optimizer, complete=last,
                              extra={"since_update": since_update})  # fmt: skip
            next_obs_np, infos = envs.reset(seed=env_seed(args.seed, iteration))
            stats.clear()
    envs.close()

    run.final_evaluation(
        run.checkpoint_dir / "final.safetensors", env_fn, envs.agents,
        episodes=args.eval_episodes, seed=args.seed, global_step=global_step,
        video_env_fn=make_env(args.env_id, env_kwargs, threat, render_mode="rgb_array")
        if args.capture_video else None,
    )  # fmt: skip
    run.close()
