# docs and experiment results can be found at docs/mappo.md
"""MAPPO: PPO with decentralized actors and a centralized critic on the env's global state.

Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games": each
agent acts on its own observation; its value V_i(s) is learned from the global ``state()``
(the vector env's ``state=True`` infos), which is available in training only. As in MAPPO,
one actor and one critic serve every agent by default (parameter sharing, the agent's one-hot
appended to the inputs; ``--no-share-parameters`` gives every agent its own networks). Each
agent has its own value V_i(s) and advantage, so general-sum envs work too. This is the
clean baseline of papers 002 (EIR-MAPPO, App. C) and 004 (SAMG, App. E), trained with their
hyperparameter tables when ``--env-id`` has a preset.
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

from adv_wrappers.train.checkpoint import Checkpointer, export_policies, load_training_state
from adv_wrappers.train.envs import (
    EpisodeStats,
    check_trainable,
    env_seed,
    gae,
    make_env,
    parse_args,
    seed_everything,
)
from adv_wrappers.train.networks import (
    ActorSpec,
    MLPActor,
    clip_grad_norm_per_member_,
    stack_agents,
    stacked_mlp,
)
from adv_wrappers.train.tracking import Run
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
    """CPU threads of torch (`torch.set_num_threads`); 1 is fastest for these small networks
    and keeps runs that share a machine from slowing each other down"""
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
    """`sync` (one process) or `subproc` (one worker per env copy)"""

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
# size = num_envs * num_steps). Paper 002 (EIR-MAPPO), App. C, Table 1 (toy = XNOR/XOR) and
# Table 7 (LBF): 10/20 rollout threads of 200 steps, 5 epochs, clip 0.05, gradient norm 10,
# entropy 0.01, 128 hidden units, Huber loss (delta 10), fixed learning rate; the paper gives
# no step budget. Paper 004 (SAMG), App. E, Table 3 (MAPPO column, cooperative navigation):
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


def value_error(value, target, huber_delta):
    """0.5 * squared error, or MAPPO's Huber loss (the same below ``huber_delta``)."""
    if huber_delta is None:
        return 0.5 * (value - target) ** 2
    return F.huber_loss(value, target, reduction="none", delta=huber_delta)


def masked_mean(x, mask, count):
    """Per-agent mean of x [B, A] over the samples where the agent acted -> [A]."""
    return torch.where(mask, x, 0.0).sum(0) / count


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.num_iterations < 1:
        raise SystemExit(f"total_timesteps must be >= num_envs * num_steps = {args.batch_size}")
    resume = load_training_state(args.resume) if args.resume else None
    run = Run(args, resume)

    # TRY NOT TO MODIFY: seeding
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup
    env_kwargs = json.loads(args.env_kwargs)
    threat = (
        {"name": args.threat, "kwargs": json.loads(args.threat_kwargs)} if args.threat else None
    )
    env_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(env_fn, args.num_envs, backend=args.vector_backend, state=True)
    obs_dim, action_space = check_trainable(envs)
    discrete = isinstance(action_space, gym.spaces.Discrete)
    state_shape = envs.state_space.shape

    agent = Agent(obs_dim, int(np.prod(state_shape)), action_space, envs.num_agents, args)
    agent = agent.to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm="mappo", args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip

    # ALGO Logic: Storage setup
    shape = (args.num_steps, args.num_envs, envs.num_agents)
    obs_shape = envs.single_observation_space.shape
    action_shape = () if discrete else (int(np.prod(action_space.shape)),)
    obs = torch.zeros(shape + obs_shape).to(device)
    states = torch.zeros(shape[:2] + state_shape).to(device)
    actions = torch.zeros(shape + action_shape, dtype=torch.long if discrete else torch.float)
    actions = actions.to(device)
    logprobs = torch.zeros(shape).to(device)
    rewards = torch.zeros(shape).to(device)
    values = torch.zeros(shape).to(device)
    masks = torch.zeros(shape, dtype=torch.bool).to(device)  # the agent acted at this step
    ends = torch.zeros(shape).to(device)  # its trajectory stops after this step
    end_values = torch.zeros(shape).to(device)  # the value to bootstrap from there

    # TRY NOT TO MODIFY: start the game
    global_step, start_iteration = 0, 1
    if resume:
        resume.restore(agent, optimizer)  # weights, Adam moments, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
    next_obs, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
    next_obs = torch.Tensor(next_obs).to(device)
    next_state = torch.Tensor(infos["state"]).to(device)
    next_alive = torch.tensor(infos["alive"]).to(device)
    stats = EpisodeStats(args.num_envs, envs.num_agents)

    for iteration in range(start_iteration, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            states[step] = next_state
            masks[step] = next_alive

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs, next_state)
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

            # ALGO LOGIC: where each agent's trajectory ends, and what it bootstraps from
            reset = infos["reset"][:, None]
            ends[step] = torch.Tensor(terminations | truncations | reset | ~infos["alive"])
            has_last_obs = np.where(reset, infos["final_alive"], infos["has_obs"])
            truncated = truncations & ~terminations & has_last_obs
            end_values[step] = 0.0
            if truncated.any():  # bootstrap from the value of the last state
                reset_e = infos["reset"].reshape((-1,) + (1,) * len(state_shape))
                last_state = torch.Tensor(np.where(reset_e, infos["final_state"], infos["state"]))
                with torch.no_grad():
                    last_value = agent.get_value(last_state.to(device))
                end_values[step] = last_value * torch.Tensor(truncated).to(device)
            next_obs = torch.Tensor(next_obs_np).to(device)
            next_state = torch.Tensor(infos["state"]).to(device)
            next_alive = torch.tensor(infos["alive"]).to(device)

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(next_state)
            advantages, returns = gae(
                rewards, values, next_value, ends, end_values, masks.float(),
                args.gamma, args.gae_lambda,
            )  # fmt: skip

        # flatten the batch (the agent axis stays: every agent learns from its own samples)
        A = envs.num_agents
        b_obs = obs.reshape((-1, A) + obs_shape)
        b_states = states.reshape((-1,) + state_shape)
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
                end = start + args.minibatch_size
                mb_inds = b_inds[start:end]
                mb_masks = b_masks[mb_inds]
                mb_count = mb_masks.sum(0).clamp(min=1)  # samples per agent

                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_states[mb_inds], b_actions[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = masked_mean(-logratio, mb_masks, mb_count)
                    approx_kl = masked_mean((ratio - 1) - logratio, mb_masks, mb_count)
                    clipped = ((ratio - 1.0).abs() > args.clip_coef).float()
                    clipfracs += [masked_mean(clipped, mb_masks, mb_count).mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:  # per agent, over its own samples
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
                v_loss_unclipped = value_error(newvalue, b_returns[mb_inds], args.huber_delta)
                if args.clip_vloss:
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds],
                        -args.clip_coef,
                        args.clip_coef,
                    )
                    v_loss_clipped = value_error(v_clipped, b_returns[mb_inds], args.huber_delta)
                    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                    v_loss = masked_mean(v_loss_max, mb_masks, mb_count)
                else:
                    v_loss = masked_mean(v_loss_unclipped, mb_masks, mb_count)

                entropy_loss = masked_mean(entropy, mb_masks, mb_count)
                agent_loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef  # [A]
                # independent networks: the sum gives each exactly the gradient of its own loss
                loss = agent_loss.mean() if args.share_parameters else agent_loss.sum()
                if iteration == args.debug_nan_at_iteration:
                    loss = loss * float("nan")
                run.check_finite(
                    {"losses/loss": loss}, iteration=iteration, global_step=global_step
                )

                optimizer.zero_grad()
                loss.backward()
                clip_grad_norm_per_member_(agent.parameters(), args.max_grad_norm, agent.members)
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
                "losses/value_loss": v_loss.mean().item(),
                "losses/policy_loss": pg_loss.mean().item(),
                "losses/entropy": entropy_loss.mean().item(),
                "losses/old_approx_kl": old_approx_kl.mean().item(),
                "losses/approx_kl": approx_kl.mean().item(),
                "losses/clipfrac": np.mean(clipfracs),
                "losses/explained_variance": explained_var,
                "charts/SPS": run.sps(global_step),
                **stats.scalars(envs.agents),  # charts/episodic_return (mean, per agent)
            },
            global_step,
        )
        run.update_progress(global_step, stats.recent_return)

        if iteration % args.checkpoint_every == 0 or iteration == args.num_iterations:
            checkpointer.save(
                global_step=global_step, iteration=iteration,
                policies=export_policies(agent.actor, envs.agents), model=agent,
                optimizer=optimizer, complete=iteration == args.num_iterations,
            )  # fmt: skip
            # re-seed, so that a run resumed from this checkpoint sees the same episodes
            next_obs, infos = envs.reset(seed=env_seed(args.seed, iteration))
            next_obs = torch.Tensor(next_obs).to(device)
            next_state = torch.Tensor(infos["state"]).to(device)
            next_alive = torch.tensor(infos["alive"]).to(device)
            stats.clear()
    envs.close()

    run.final_evaluation(
        run.checkpoint_dir / "final.safetensors", env_fn, envs.agents,
        episodes=args.eval_episodes, seed=args.seed, global_step=global_step,
        video_env_fn=make_env(args.env_id, env_kwargs, threat, render_mode="rgb_array")
        if args.capture_video else None,
    )  # fmt: skip
    run.close()
