# docs and experiment results can be found at docs/mappo.md
"""MAPPO: PPO with decentralized actors and a centralized critic on the env's global state.

Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games": each
agent acts on its own observation; its value V_i(s) is learned from the global ``state()``
(the vector env's ``state=True`` infos), which is available in training only. As in MAPPO,
one actor and one critic serve every agent by default (parameter sharing, the agent's one-hot
appended to the inputs; ``--no-share-parameters`` gives every agent its own networks). Each
agent has its own value V_i(s) and advantage, so general-sum envs work too. This is the
clean baseline of Li et al. (ICLR 2024; EIR-MAPPO, App. C) and He et al. (TMLR 2023; SAMG,
App. E), trained with their hyperparameter tables when ``--env-id`` has a preset.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from adv_wrappers.train.checkpoint import Checkpointer, export_policies
from adv_wrappers.train.config import env_seed, parse_args, start_run
from adv_wrappers.train.envs import check_trainable, make_env, make_vector_env
from adv_wrappers.train.networks import ActorSpec, MLPActor, stack_agents, stacked_mlp
from adv_wrappers.train.ppo import ppo_update
from adv_wrappers.train.rollout import EpisodeStats, Rollout, env_action, gae, trajectory_ends


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
    """CPU threads of torch (`torch.set_num_threads`); 1 is fastest for these small networks
    and keeps runs that share a machine from slowing each other down"""
    compile: bool = False
    """`torch.compile` the networks and the PPO loss of every minibatch, forward and backward:
    a faster learner once compiled, after a compile of about half a minute (docs/performance.md)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "adv-wrappers"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to record a greedy evaluation episode at the end (`runs/{run_name}/videos/`)"""
    checkpoint_every: int = 10
    """write `checkpoints/last.safetensors` every this many iterations (and at the end); the
    envs are re-seeded after each one, so `--resume` continues exactly"""
    resume: str | None = None
    """a checkpoint to resume from; every other flag is then taken from the checkpoint"""
    eval_episodes: int = 10
    """greedy evaluation episodes played with the final checkpoint (0: none)"""
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
    batched torch version on the training device; k-corruption, Byzantine, partial control,
    state perturbation and frozen checkpoint policies run on it: docs/batched.md)"""

    # Threat model: none for the clean baseline (kept for training under a fixed threat)
    threat: str | None = None
    """a threat model of `adv_wrappers.registry.THREAT_MODELS` (e.g. `k_corruption_v0`); every
    agent it exposes is trained too"""
    threat_kwargs: str = "{}"
    """its keyword arguments, as a JSON dict (e.g. `{"k": 1, "adversary": "random"}`)"""

    # Algorithm specific arguments
    total_timesteps: int = 500000
    """total timesteps of the experiments (environment steps, summed over env copies)"""
    learning_rate: float = 2.5e-4
    """the learning rate of the optimizer"""
    num_steps: int = 128
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    minibatch_size: int = 128
    """the number of (step, env) samples per minibatch, per agent"""
    update_epochs: int = 4
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """Toggles advantages normalization (per agent, per minibatch)"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function, as per the paper."""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping (per agent)"""
    target_kl: float | None = None
    """the target KL divergence threshold"""
    share_parameters: bool = True
    """one actor and one critic for every agent, with the agent's one-hot appended to their
    inputs (MAPPO's default)"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the actor and the critic"""
    activation: str = "tanh"
    """activation of the hidden layers (`tanh` or `relu`)"""
    huber_delta: float | None = None
    """use the Huber value loss with this delta (MAPPO's code: 10) instead of the squared error"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# Per-env presets, applied unless a flag overrides them (one minibatch per epoch: minibatch
# size = num_envs * num_steps). Li et al. (ICLR 2024), App. C, Table 1 (toy = XNOR/XOR) and
# Table 7 (LBF): 10/20 rollout threads of 200 steps, 5 epochs, clip 0.05, gradient norm 10,
# entropy 0.01, 128 hidden units, Huber loss (delta 10), fixed learning rate; the paper gives
# no step budget. He et al. (TMLR 2023), App. E, Table 3 (MAPPO column, cooperative navigation):
# learning rate 7e-4, gamma 0.99, one ReLU hidden layer of 64, 10k episodes of 25 steps.
# Both use PopArt value normalization, which this file does not implement.
PRESETS = {
    "adv/xnor_xor-v0": dict(
        num_envs=10, num_steps=200, minibatch_size=2000, update_epochs=5, learning_rate=5e-5,
        gamma=0.99, gae_lambda=0.95, clip_coef=0.05, clip_vloss=False, ent_coef=0.01,
        max_grad_norm=10.0, hidden_sizes=(128, 128), huber_delta=10.0, anneal_lr=False,
    ),
    "adv/lbf-v0": dict(
        num_envs=20, num_steps=200, minibatch_size=4000, update_epochs=5, learning_rate=5e-4,
        gamma=0.99, gae_lambda=0.95, clip_coef=0.05, clip_vloss=False, ent_coef=0.01,
        max_grad_norm=10.0, hidden_sizes=(128, 128), huber_delta=10.0, anneal_lr=False,
    ),
    "adv/cooperative_navigation-v0": dict(
        total_timesteps=250_000, learning_rate=7e-4, gamma=0.99, hidden_sizes=(64,),
        activation="relu", num_envs=8, num_steps=125, minibatch_size=1000, anneal_lr=False,
    ),
}  # fmt: skip


class Agent(nn.Module):
    """Actors on the agents' observations, critics on the global state; stacked: member m is
    agent m (one member when shared, the agent's one-hot appended to the inputs)."""

    def __init__(self, obs_dim, state_dim, action_space, num_agents, args):
        super().__init__()
        self.share = args.share_parameters
        self.members = 1 if self.share else num_agents
        self.num_agents = num_agents
        one_hot = num_agents if self.share else 0
        discrete = isinstance(action_space, gym.spaces.Discrete)
        self.critic = stacked_mlp(
            self.members, (state_dim + one_hot, *args.hidden_sizes, 1), 1.0, args.activation
        )
        spec = ActorSpec(
            input_dim=obs_dim + one_hot,
            action_dim=int(action_space.n) if discrete else int(np.prod(action_space.shape)),
            head="categorical" if discrete else "gaussian",
            hidden_sizes=tuple(args.hidden_sizes),
            activation=args.activation,
            pad_to=obs_dim,
            agent_one_hot=(0, num_agents) if self.share else None,
        )
        self.actor = MLPActor(spec, self.members)

    def get_value(self, state):
        """state: [B, *state_shape] -> every agent's value of it, [B, A]."""
        state = state.reshape(state.shape[0], 1, -1).expand(-1, self.num_agents, -1)
        return self.critic(stack_agents(state, self.share)).squeeze(-1).T

    def get_action_and_value(self, x, state, action=None):
        """x: [B, A, *obs_shape], state: [B, *state_shape] -> action, log-prob, entropy,
        value, each [B, A, ...]."""
        probs = self.actor.distribution(stack_agents(x, self.share))
        if action is None:
            action = probs.sample()
        else:
            action = action.transpose(0, 1)
        logprob, entropy = probs.log_prob(action).T, probs.entropy().T
        return action.transpose(0, 1), logprob, entropy, self.get_value(state)


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    run, resume, device = start_run(args)  # batch sizes, run folder, seeding, device

    # env setup: the vector env also returns the global state (infos["state"])
    env_kwargs = json.loads(args.env_kwargs)
    threat = (
        {"name": args.threat, "kwargs": json.loads(args.threat_kwargs)} if args.threat else None
    )
    env_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(env_fn, args.num_envs, args.vector_backend, device=device, state=True)
    obs_dim, action_space = check_trainable(envs)
    state_shape = envs.state_space.shape

    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm="mappo", args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip
    agent = Agent(obs_dim, int(np.prod(state_shape)), action_space, envs.num_agents, args)
    agent = agent.to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)

    # ALGO Logic: Storage setup (observations for the actors, states for the critics)
    rollout = Rollout(
        args.num_steps, args.num_envs, envs.num_agents, envs.single_observation_space.shape,
        action_space, device, state_shape=state_shape,
    )  # fmt: skip

    # TRY NOT TO MODIFY: start the game
    global_step, start_iteration = 0, 1
    if resume:
        resume.restore(agent, optimizer)  # weights, Adam moments, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
    next_obs_np, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
    stats = EpisodeStats(args.num_envs, envs.num_agents)

    for iteration in range(start_iteration, args.num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (
                1.0 - (iteration - 1.0) / args.num_iterations
            ) * args.learning_rate

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            # the agents observe o_t (and act if alive); the critics see the state s_t
            next_obs = rollout.obs[step] = torch.Tensor(next_obs_np).to(device)
            next_state = rollout.states[step] = torch.Tensor(infos["state"]).to(device)
            rollout.masks[step] = torch.tensor(infos["alive"]).to(device)

            # ALGO LOGIC: decentralized actors, centralized critics
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs, next_state)
            rollout.actions[step], rollout.logprobs[step], rollout.values[step] = (
                action, logprob, value,
            )  # fmt: skip

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_np, reward, terminations, truncations, infos = envs.step(
                env_action(action, action_space)
            )
            rollout.rewards[step] = torch.Tensor(reward).to(device)
            stats.step(reward, infos["acted"], infos["reset"])
            # a truncated trajectory bootstraps from the critic's value of the last state
            rollout.ends[step], rollout.end_values[step] = trajectory_ends(
                terminations, truncations, infos, next_obs_np, agent.get_value, device,
                bootstrap_from="state",
            )  # fmt: skip

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(torch.Tensor(infos["state"]).to(device))
            advantages, returns = gae(
                rollout.rewards, rollout.values, next_value, rollout.ends, rollout.end_values,
                rollout.masks.float(), args.gamma, args.gae_lambda,
            )  # fmt: skip

        # PPO on the flattened batch (the agent axis stays); the critic reads the states
        b = rollout.flatten(advantages, returns)
        losses = ppo_update(
            args, b,
            lambda mb: agent.get_action_and_value(mb["obs"], mb["states"], mb["actions"])[1:],
            agent, optimizer, members=agent.members, shared=args.share_parameters, run=run,
            iteration=iteration, global_step=global_step,
        )  # fmt: skip

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        run.log(
            {"charts/learning_rate": optimizer.param_groups[0]["lr"], **losses,
             "charts/SPS": run.sps(global_step), **stats.scalars(envs.agents)},
            global_step,
        )  # fmt: skip
        run.update_progress(global_step, stats.recent_return)

        # checkpoint every checkpoint_every iterations and at the end; then re-seed, so that a
        # run resumed from this checkpoint sees the same episodes
        last = iteration == args.num_iterations
        if iteration % args.checkpoint_every == 0 or last:
            policies = export_policies(agent.actor, envs.agents)
            checkpointer.save(global_step=global_step, iteration=iteration, policies=policies,
                              model=agent, optimizer=optimizer, complete=last)  # fmt: skip
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
