# docs and experiment results can be found at docs/ippo.md
"""Independent PPO (IPPO): Naive training of every agent of a PettingZoo env, no adversary.

Each agent has its own actor-critic trained with PPO on its own reward (de Witt et al. 2020,
"Is Independent Learning All You Need in the StarCraft Multi-Agent Challenge?"); with
``--share-parameters`` one network serves every agent, which sees its one-hot ID. This is the
"Naive Training" baseline of Nika et al. (TMLR 2024), Sec. 5.1, trained with the App. D
hyperparameters when ``--env-id`` has a preset. The networks of all agents are stacked and
run in one batched matrix product (``adv_wrappers.train.networks``); losses are summed over
agents, so every agent's network gets exactly the gradient of its own PPO loss
(``adv_wrappers.train.ppo.ppo_update``). With ``--frozen`` some agents act inside the env
with fixed policies (``freeze_v0``) and only the others are trained: ``attack.py`` trains its
attackers this way, against frozen defenders. ``--init-policies`` starts agents from trained
policies (``convergence_check.py`` continues a defender's training this way).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.checkpoint import Checkpointer, export_policies
from adv_wrappers.train.config import PAPER_000_PRESETS, env_seed, parse_args, start_run
from adv_wrappers.train.envs import (
    action_mask,
    check_trainable,
    executed_actions,
    make_env,
    make_vector_env,
)
from adv_wrappers.train.networks import ActorSpec, MLPActor, stack_agents, stacked_mlp
from adv_wrappers.train.policy import load_actor_members
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
    and keeps runs that share a machine from slowing each other down; 0: one per CPU core
    (large minibatches, e.g. the throughput preset)"""
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
    batched torch version, every copy stepped as one tensor operation, on the training
    device; k-corruption, Byzantine, partial control, state perturbation and frozen
    checkpoint policies run on it: docs/batched.md)"""

    # Threat model: none for Naive training (kept for training under a fixed threat)
    threat: str | None = None
    """a threat model of `adv_wrappers.registry.THREAT_MODELS` (e.g. `k_corruption_v0`); every
    agent it exposes is trained too"""
    threat_kwargs: str = "{}"
    """its keyword arguments, as a JSON dict (e.g. `{"k": 1, "adversary": "random"}`)"""
    frozen: str = "{}"
    """agents that act inside the env with fixed policies (`freeze_v0`, after the threat), as
    a JSON dict agent -> policy reference `{"checkpoint": PATH}` (or `"random"`); the others
    are trained. `attack.py` trains attackers this way, against frozen defenders"""
    scenarios: str = "[]"
    """several scenarios of the threat side by side in one run, each with its own networks, as
    a JSON list of `{"name", "agents", "options"}` (`adv_wrappers.vector.ScenarioStack`, e.g.
    one per victim and subset K, pinned by the threat's reset options; fixed-horizon envs):
    `--num-envs` copies and `--total-timesteps` steps per scenario, the agents renamed
    `<name>/<agent>`; needs `--eval-episodes 0`. `attack.py --stack-scenarios` uses it"""
    executed_only: bool = False
    """partial control: an exposed adversary's policy loss counts only the steps at which the
    wrapper executed its action (`info["partial_control"]["adversary_acted"]`); its value
    loss uses every step. `attack.py` sets it for `partial_control_v0`"""
    init_policies: str = "{}"
    """start trained agents' actors from checkpoint policies, as a JSON dict agent -> policy
    reference `{"checkpoint": PATH, "agent": ID}` (the architecture must match; critics and
    the optimizer start fresh; ignored by `--resume`). `convergence_check.py` continues a
    defender's training this way"""
    critic_warmup_iterations: int = 0
    """the first this many iterations update only the critics (the actors are held), so that a
    run started from `--init-policies` improves its policies against a fitted baseline (all
    of them: the actors stay as they started)"""

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
    share_parameters: bool = False
    """one actor-critic for every agent, with the agent's one-hot appended to its input"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the actor and the critic"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# Per-env presets (applied unless a flag overrides them): Nika et al. (TMLR 2024), App. D,
# shared with art.py.
PRESETS = PAPER_000_PRESETS


class Agent(nn.Module):
    """The actor-critics of all agents, stacked: member m is agent m (one member if shared)."""

    def __init__(
        self, obs_dim, action_space, num_agents, share_parameters, hidden_sizes, action_mask=None
    ):
        super().__init__()
        # Box actions of different sizes (action_mask [A, dim]: each agent's own columns of
        # the padded action): the log-prob and entropy count those columns only
        mask = None if action_mask is None else torch.as_tensor(action_mask).float()[:, None]
        self.register_buffer("action_mask", mask, persistent=False)
        self.share = share_parameters
        self.members = 1 if share_parameters else num_agents
        input_dim = obs_dim + (num_agents if share_parameters else 0)
        discrete = isinstance(action_space, gym.spaces.Discrete)
        self.critic = stacked_mlp(self.members, (input_dim, *hidden_sizes, 1), out_std=1.0)
        spec = ActorSpec(
            input_dim=input_dim,
            action_dim=int(action_space.n) if discrete else int(np.prod(action_space.shape)),
            head="categorical" if discrete else "gaussian",
            hidden_sizes=tuple(hidden_sizes),
            pad_to=obs_dim,
            agent_one_hot=(0, num_agents) if share_parameters else None,
        )
        self.actor = MLPActor(spec, self.members)

    def get_value(self, x):
        """x: [B, A, *obs_shape] -> values [B, A]."""
        return self.critic(stack_agents(x, self.share)).squeeze(-1).T

    def get_action_and_value(self, x, action=None):
        """x: [B, A, *obs_shape] -> action, log-prob, entropy, value, each [B, A, ...]."""
        x = stack_agents(x, self.share)
        probs = self.actor.distribution(x)
        if action is None:
            action = probs.sample()
        else:
            action = action.transpose(0, 1)
        value = self.critic(x).squeeze(-1)
        if self.action_mask is None:
            logprob, entropy = probs.log_prob(action), probs.entropy()
        else:  # (the padding columns are sampled, never sent to the env, and not counted)
            logprob = (probs.base_dist.log_prob(action) * self.action_mask).sum(-1)
            entropy = (probs.base_dist.entropy() * self.action_mask).sum(-1)
        return action.transpose(0, 1), logprob.T, entropy.T, value.T


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    run, resume, device = start_run(args)  # batch sizes, run folder, seeding, device

    # env setup: registry env -> threat wrapper -> frozen agents -> vector env
    env_kwargs = json.loads(args.env_kwargs)
    threat = (
        {"name": args.threat, "kwargs": json.loads(args.threat_kwargs)} if args.threat else None
    )
    env_fn = make_env(args.env_id, env_kwargs, threat, frozen=json.loads(args.frozen) or None)
    scenarios = json.loads(args.scenarios) or None
    if scenarios and args.eval_episodes:
        raise InvalidArgumentError(
            "--scenarios needs --eval-episodes 0: the final evaluation plays one env, and the "
            "renamed agents exist only in the stack (attack.py evaluates each scenario)"
        )
    envs = make_vector_env(
        env_fn, args.num_envs, args.vector_backend, device=device, scenarios=scenarios
    )
    obs_dim, action_space = check_trainable(envs, box_sizes=True)
    own_columns = action_mask(envs)  # None unless Box actions differ in size
    action_sizes = None if own_columns is None else envs.action_sizes

    agent = Agent(
        obs_dim, action_space, envs.num_agents, args.share_parameters, args.hidden_sizes,
        own_columns,
    )  # fmt: skip
    if not 0 <= args.critic_warmup_iterations <= args.num_iterations:
        raise InvalidArgumentError(
            f"--critic-warmup-iterations must be in [0, {args.num_iterations}] (the run's "
            f"iterations); got {args.critic_warmup_iterations}"
        )
    init_policies = json.loads(args.init_policies)
    if init_policies and not resume:  # (a resumed run restores its own weights)
        init_env = env_fn()  # the policies must fit the trained agents' spaces there
        load_actor_members(agent.actor, envs.agents, init_policies, init_env)
        init_env.close()
    agent = agent.to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)
    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm="ippo", args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip

    # ALGO Logic: Storage setup
    rollout = Rollout(
        args.num_steps, args.num_envs, envs.num_agents, envs.single_observation_space.shape,
        action_space, device,
    )  # fmt: skip

    # TRY NOT TO MODIFY: start the game
    global_step, start_iteration = 0, 1
    if resume:
        resume.restore(agent, optimizer)  # weights, Adam moments, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
    next_obs, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
    next_obs = torch.Tensor(next_obs).to(device)
    next_alive = torch.tensor(infos["alive"]).to(device)
    stats = EpisodeStats(args.num_envs, envs.num_agents)

    for iteration in range(start_iteration, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            rollout.obs[step] = next_obs
            rollout.masks[step] = next_alive  # the agent acts at this step

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            rollout.values[step] = value
            rollout.actions[step] = action
            rollout.logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_np, reward, terminations, truncations, infos = envs.step(
                env_action(action, action_space)
            )
            rollout.rewards[step] = torch.Tensor(reward).to(device)
            if args.executed_only:  # the wrapper's ground truth: whose action was executed
                executed = executed_actions(infos["agent_infos"], envs.agents)
                rollout.policy_masks[step] = torch.as_tensor(executed, device=device)
            stats.step(reward, infos["acted"], infos["reset"])
            # where each agent's trajectory ends, and the value a truncation bootstraps from
            rollout.ends[step], rollout.end_values[step] = trajectory_ends(
                terminations, truncations, infos, next_obs_np, agent.get_value, device
            )
            next_obs = torch.Tensor(next_obs_np).to(device)
            next_alive = torch.tensor(infos["alive"]).to(device)

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(next_obs)
            advantages, returns = gae(
                rollout.rewards, rollout.values, next_value, rollout.ends, rollout.end_values,
                rollout.masks.float(), args.gamma, args.gae_lambda,
            )  # fmt: skip

        # flatten the batch (the agent axis stays: every agent learns from its own samples)
        b = rollout.flatten(advantages, returns)
        agent.actor.requires_grad_(iteration > args.critic_warmup_iterations)

        # Optimizing the policy and value network (adv_wrappers.train.ppo: CleanRL's epochs
        # and minibatches, per-agent masked losses, per-agent gradient clipping)
        losses = ppo_update(
            args, b,
            lambda mb: agent.get_action_and_value(mb["obs"], mb["actions"])[1:],
            agent, optimizer, members=agent.members, shared=args.share_parameters, run=run,
            iteration=iteration, global_step=global_step,
        )  # fmt: skip

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        run.log(
            {
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                **losses,
                "charts/SPS": run.sps(global_step),
                **stats.scalars(envs.agents),  # charts/episodic_return (mean, per agent)
                **(
                    {
                        "charts/policy_sample_fraction": float(
                            b["policy_masks"].sum() / b["masks"].sum()
                        )
                    }
                    if args.executed_only
                    else {}
                ),
            },
            global_step,
        )
        run.update_progress(global_step, stats.recent_return, scenarios=len(scenarios or [1]))

        if iteration % args.checkpoint_every == 0 or iteration == args.num_iterations:
            checkpointer.save(
                global_step=global_step, iteration=iteration,
                policies=export_policies(agent.actor, envs.agents, action_sizes), model=agent,
                optimizer=optimizer, complete=iteration == args.num_iterations,
            )  # fmt: skip
            # re-seed, so that a run resumed from this checkpoint sees the same episodes
            next_obs, infos = envs.reset(seed=env_seed(args.seed, iteration))
            next_obs = torch.Tensor(next_obs).to(device)
            next_alive = torch.tensor(infos["alive"]).to(device)
            stats.clear()
    envs.close()

    run.final_evaluation(
        run.checkpoint_dir / "final.safetensors", env_fn, envs.agents,
        episodes=args.eval_episodes, seed=args.seed, global_step=global_step,
        video_env_fn=make_env(args.env_id, env_kwargs, threat, frozen=json.loads(args.frozen) or None,
                              render_mode="rgb_array") if args.capture_video else None,
    )  # fmt: skip
    run.close()
