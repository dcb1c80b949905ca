# docs and experiment results can be found at docs/eir_mappo.md
"""EIR-MAPPO: ex interim robust MAPPO against Byzantine allies (Algorithm 1 of Li et al.).

Li et al. (ICLR 2024), "Byzantine Robust Cooperative MARL as a Bayesian Game" (see
docs/references.md), Sec. 3.2 and App. B. At the start of every episode nature draws a type
vector theta from the prior p(theta = 0) = 0.5, p(theta = e_i) = 0.5 / N (``byzantine_v0``);
an agent with theta_i = 1 is Byzantine: its actions come from an adversary pi_hat_i that
minimizes the team's return. The robust agents learn, in the same run:

* a belief b^i = p_xi(theta | H^i): a GRU over agent i's own observations, trained by binary
  cross-entropy on the true theta (Eq. 11), which ``byzantine_v0`` reports in its infos
  during training only (the deployed policy never reads it);
* a shared actor pi_phi(a^i | o^i, b^i) and a centralized critic V_psi(s, b^i) (MAPPO with
  parameter sharing, the agent's one-hot appended), trained by PPO on the benign steps only:
  theta^i = 1 cuts agent i's gradient (Eq. 8), which is the wrapper's alive mask;
* the adversaries pi_hat_i (one network per agent), trained by PPO on the reward the wrapper
  pays them, minus the team's reward (Eq. 9).

Two timescales by rollout counts (App. B): the adversaries update after every rollout, the
robust agents, their critic and their belief only every ``adversary_interval``-th one
(Algorithm 1, lines 7-15). Switches on this file:

* ``--belief none``: EAR-MAPPO, the ex ante ablation without a belief;
* ``--true-type``: the "True Type" oracle: ``byzantine_v0(reveal_types=True)`` appends the
  true theta to every observation (and the critic reads it in place of the belief).

The PPO update, storage, GAE and checkpoints come from the training kit
(``adv_wrappers.train``); the belief's sequence training from ``adv_wrappers.train.recurrent``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.checkpoint import Checkpointer, export_policies
from adv_wrappers.train.config import env_seed, parse_args, start_run
from adv_wrappers.train.envs import (
    check_trainable,
    evaluate,
    make_env,
    make_vector_env,
    victims_return,
)
from adv_wrappers.train.networks import ActorSpec, MLPActor, stack_agents, stacked_mlp
from adv_wrappers.train.policy import load_policy
from adv_wrappers.train.ppo import ppo_update
from adv_wrappers.train.recurrent import belief_metrics, belief_update, episode_starts
from adv_wrappers.train.rollout import EpisodeStats, Rollout, env_action, gae, trajectory_ends


@dataclass
class Args:
    exp_name: str = Path(__file__).stem
    """the name of this experiment (`ear_mappo` with `--belief none`, `true_type` with
    `--true-type`, unless given)"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=False`"""
    cuda: bool = True
    """if toggled, cuda will be enabled by default (when available)"""
    torch_threads: int = 1
    """CPU threads of torch (`torch.set_num_threads`); 1 is fastest for these small networks"""
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
    """evaluation episodes with the final checkpoint: clean (theta = 0) and, for every agent i,
    with theta = e_i in every episode against the co-trained adversary (0: none). Every
    policy samples its actions (seeded): the robust equilibrium is mixed (in the toy game a
    deterministic defender is exploited to 0 by an ally that predicts it)"""
    debug_nan_at_iteration: int = 0
    """testing only: make the loss NaN at this iteration to exercise the divergence guard"""

    # Environment
    env_id: str = "adv/xnor_xor-v0"
    """the id of the environment (PettingZoo registry)"""
    env_kwargs: str = "{}"
    """keyword arguments of the environment, as a JSON dict"""
    num_envs: int = 10
    """the number of parallel game environments (the paper's rollout threads)"""
    vector_backend: str = "sync"
    """`sync` (one process), `subproc` (one worker per env copy) or `batched` (the env's
    batched torch version, Byzantine types drawn per copy by the wrapper's own code; not with
    `--true-type`: docs/batched.md)"""

    # Threat model (Li et al.): Byzantine types drawn by nature every episode
    prior: str = ""
    """the prior over types as JSON, types written as 0/1 strings in `possible_agents` order
    (e.g. `{"00": 0.5, "10": 0.25, "01": 0.25}`); empty: the paper's p(0) = 0.5,
    p(e_i) = 0.5 / N"""
    belief: Literal["gru", "none"] = "gru"
    """`gru`: EIR-MAPPO's belief network; `none`: EAR-MAPPO (no belief)"""
    true_type: bool = False
    """the True Type oracle: the true theta is appended to every observation (no belief)"""
    belief_hidden: int = 64
    """the belief GRU's hidden size"""
    belief_lr: float = 5e-4
    """the belief network's learning rate"""
    adversary_lr: float = 5e-4
    """the adversaries' learning rate"""
    adversary_interval: int = 5
    """the robust agents (actor, critic, belief) update every this many rollouts; the
    adversaries after every rollout (Algorithm 1)"""

    # Algorithm specific arguments
    total_timesteps: int = 2_000_000
    """total timesteps of the experiments (environment steps, summed over env copies)"""
    learning_rate: float = 5e-4
    """the robust agents' (actor and critic) learning rate"""
    num_steps: int = 200
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = False
    """Toggle learning rate annealing (the paper uses fixed learning rates)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    minibatch_size: int = 2000
    """the number of (step, env) samples per minibatch, per agent; the belief's minibatches
    are `minibatch_size // num_steps` whole env sequences"""
    update_epochs: int = 5
    """the K epochs to update the policy (and the belief)"""
    norm_adv: bool = True
    """Toggles advantages normalization (per agent, per minibatch)"""
    clip_coef: float = 0.05
    """the surrogate clipping coefficient"""
    clip_vloss: bool = False
    """Toggles whether or not to use a clipped loss for the value function"""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 10.0
    """the maximum norm for the gradient clipping (per network)"""
    target_kl: float | None = None
    """the target KL divergence threshold"""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """widths of the hidden layers of the actors and the critics"""
    activation: str = "tanh"
    """activation of the hidden layers (`tanh` or `relu`)"""
    huber_delta: float | None = 10.0
    """use the Huber value loss with this delta (MAPPO's code: 10) instead of the squared error"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# Li et al. (ICLR 2024), App. C.2: Table 1 (toy = XNOR/XOR), Table 7 (LBF) and Table 4 (SMAC):
# rollout threads x 200 steps, one minibatch, 5 epochs, clip 0.05, gradient norm 10, entropy
# 0.01, 128 hidden units, Huber loss (delta 10), fixed learning rates, adversary interval 10
# (toy) or 5. The paper gives no step budget: ours are in docs/eir_mappo.md. PopArt value
# normalization (the tables' "use PopArt") is not implemented.
PRESETS = {
    "adv/xnor_xor-v0": dict(
        env_kwargs='{"observe_history": true}', num_envs=10, num_steps=200, minibatch_size=2000, learning_rate=5e-5, belief_lr=5e-5,
        adversary_lr=5e-5, adversary_interval=10, gamma=0.99, total_timesteps=4_000_000,
    ),
    "adv/lbf-v0": dict(
        env_kwargs='{"n_food": 3}', num_envs=20, num_steps=200, minibatch_size=4000, learning_rate=5e-4, belief_lr=5e-4,
        adversary_lr=5e-4, adversary_interval=5, gamma=0.99, total_timesteps=10_000_000,
    ),
    "adv/smax_4m_vs_3m-v0": dict(
        env_kwargs='{"reward": "smac", "max_cycles": 60}', num_envs=20, num_steps=200, minibatch_size=4000, learning_rate=5e-4, belief_lr=5e-4,
        adversary_lr=5e-4, adversary_interval=5, gamma=0.95, total_timesteps=10_000_000,
    ),
}  # fmt: skip


class RobustAgents(nn.Module):
    """The robust agents: one shared actor (with the belief GRU in EIR-MAPPO) and one shared
    critic on the global state, the agent's one-hot and its belief (or the true theta)."""

    def __init__(self, obs_dim, state_dim, action_space, num_agents, type_dim, args):
        super().__init__()
        self.num_agents = num_agents
        self.type_dim = type_dim  # what the critic reads besides the state: belief or theta
        belief = (args.belief_hidden, num_agents) if args.belief == "gru" else None
        spec = ActorSpec(
            input_dim=obs_dim + num_agents, action_dim=int(action_space.n),
            head="categorical", hidden_sizes=tuple(args.hidden_sizes),
            activation=args.activation, pad_to=obs_dim, agent_one_hot=(0, num_agents),
            belief=belief,
        )  # fmt: skip
        self.actor = MLPActor(spec, members=1)
        sizes = (state_dim + num_agents + type_dim, *args.hidden_sizes, 1)
        self.critic = stacked_mlp(1, sizes, 1.0, args.activation)

    def get_value(self, state, types):
        """state [B, *state_shape], types [B, A, type_dim] -> every agent's value, [B, A]."""
        state = state.reshape(state.shape[0], 1, -1).expand(-1, self.num_agents, -1)
        x = torch.cat([stack_agents(state, one_hot=True), types.transpose(0, 1)], dim=-1)
        return self.critic(x).squeeze(-1).T

    def actor_input(self, x, beliefs):
        """x [B, A, *obs_shape], beliefs [B, A, K] (K = 0 without a belief) -> [A, B, D]."""
        return torch.cat([stack_agents(x, one_hot=True), beliefs.transpose(0, 1)], dim=-1)

    def get_action_and_value(self, x, state, beliefs, types, action=None):
        probs = self.actor.distribution(self.actor_input(x, beliefs))
        action = probs.sample() if action is None else action.T
        return action.T, probs.log_prob(action).T, probs.entropy().T, self.get_value(state, types)


class Adversaries(nn.Module):
    """pi_hat_i and its critic, one network per agent i (stacked): member i plays agent i when
    theta_i = 1, on agent i's observation (theta is the member itself; with `--true-type` the
    observation also carries it)."""

    def __init__(self, obs_dim, state_dim, action_space, num_agents, args):
        super().__init__()
        spec = ActorSpec(
            input_dim=obs_dim, action_dim=int(action_space.n), head="categorical",
            hidden_sizes=tuple(args.hidden_sizes), activation=args.activation, pad_to=obs_dim,
        )  # fmt: skip
        self.actor = MLPActor(spec, members=num_agents)
        self.critic = stacked_mlp(
            num_agents, (state_dim, *args.hidden_sizes, 1), 1.0, args.activation
        )
        self.num_agents = num_agents

    def get_value(self, state):
        state = state.reshape(state.shape[0], 1, -1).expand(-1, self.num_agents, -1)
        return self.critic(stack_agents(state)).squeeze(-1).T

    def get_action_and_value(self, x, state, action=None):
        probs = self.actor.distribution(stack_agents(x))
        action = probs.sample() if action is None else action.T
        return action.T, probs.log_prob(action).T, probs.entropy().T, self.get_value(state)


class EIRMAPPO(nn.Module):
    """Everything the run trains (one module, one optimizer with a group per learning rate)."""

    def __init__(self, robust, adversaries):
        super().__init__()
        self.robust, self.adversaries = robust, adversaries


def episode_types(agent_infos, num_agents):
    """theta of each copy's current episode from ``byzantine_v0``'s infos -> [E, N]."""
    out = np.zeros((len(agent_infos), num_agents), np.float32)
    for e, infos in enumerate(agent_infos):
        out[e] = next(iter(infos.values()))["byzantine"]["theta"]
    return out


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    if args.true_type and args.belief != "none":
        raise InvalidArgumentError("--true-type replaces the belief: pass --belief none with it")
    if args.exp_name == Path(__file__).stem and (args.true_type or args.belief == "none"):
        args.exp_name = "true_type" if args.true_type else "ear_mappo"
    if args.adversary_interval < 1:
        raise InvalidArgumentError(
            f"--adversary-interval must be >= 1; got {args.adversary_interval}"
        )
    if args.minibatch_size % args.num_steps:
        raise InvalidArgumentError(
            f"--minibatch-size {args.minibatch_size} must be a multiple of --num-steps "
            f"{args.num_steps}: the belief trains on whole env sequences"
        )
    run, resume, device = start_run(args)  # batch sizes, run folder, seeding, device

    # env setup: byzantine_v0 with its adversary slots exposed; the vector env's global state
    # feeds the critics
    env_kwargs = json.loads(args.env_kwargs)
    threat_kwargs = {"reveal_types": True} if args.true_type else {}
    if args.prior:
        threat_kwargs["prior"] = json.loads(args.prior)
    threat = {"name": "byzantine_v0", "kwargs": threat_kwargs}
    env_fn = make_env(args.env_id, env_kwargs, threat)
    envs = make_vector_env(env_fn, args.num_envs, args.vector_backend, device=device, state=True)
    obs_dim, action_space = check_trainable(envs)
    if not isinstance(action_space, gym.spaces.Discrete):
        raise InvalidArgumentError(
            f"eir_mappo.py needs Discrete actions; {args.env_id} has {action_space}"
        )
    n = len(envs.agents) // 2  # slots: the N agents, then their N adversaries
    robust_slots, adversary_slots = slice(0, n), slice(n, 2 * n)
    state_dim = int(np.prod(envs.state_space.shape))
    type_dim = n if (args.belief == "gru" or args.true_type) else 0

    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm=args.exp_name, args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, run_name=run.name, wandb_id=run.wandb_id,
        spaces={a: (envs.observation_spaces[a], envs.action_spaces[a]) for a in envs.agents},
    )  # fmt: skip
    robust = RobustAgents(obs_dim, state_dim, action_space, n, type_dim, args)
    model = EIRMAPPO(robust, Adversaries(obs_dim, state_dim, action_space, n, args)).to(device)
    belief_net = getattr(robust.actor, "belief", None)
    optimizer = optim.Adam(
        [
            {"params": [*robust.actor.net.parameters(), *robust.critic.parameters()],
             "lr": args.learning_rate},
            {"params": list(model.adversaries.parameters()), "lr": args.adversary_lr},
            {"params": [] if belief_net is None else list(belief_net.parameters()),
             "lr": args.belief_lr},
        ],
        eps=1e-5,
    )  # fmt: skip

    # ALGO Logic: Storage setup. All 2N slots share one rollout; the robust agents also keep
    # the beliefs they acted on, the true types (the belief's labels) and the episode starts.
    rollout = Rollout(
        args.num_steps, args.num_envs, 2 * n, envs.single_observation_space.shape,
        action_space, device, state_shape=envs.state_space.shape,
    )  # fmt: skip
    beliefs = torch.zeros((args.num_steps, args.num_envs, n, n if belief_net else 0)).to(device)
    types = torch.zeros((args.num_steps, args.num_envs, n)).to(device)
    starts = torch.zeros((args.num_steps, args.num_envs)).to(device)

    # TRY NOT TO MODIFY: start the game
    global_step, start_iteration = 0, 1
    if resume:
        resume.restore(model, optimizer)  # weights, Adam moments, RNG states
        global_step, start_iteration = resume.global_step, resume.iteration + 1
    next_obs_np, infos = envs.reset(seed=env_seed(args.seed, start_iteration - 1))
    next_types = torch.tensor(episode_types(infos["agent_infos"], n)).to(device)
    next_start = episode_starts(infos, device)
    hidden = None  # the belief GRU's state, [N, E, hidden] (EIR-MAPPO only)
    if belief_net is not None:
        hidden = belief_net.gru.initial_state(n, args.num_envs, device=device)
    stats = EpisodeStats(args.num_envs, n)  # the robust agents' returns
    adversary_stats = EpisodeStats(args.num_envs, n)
    by_type = {"clean": [], "attacked": []}  # the team's returns by the episode's theta

    def belief_step(obs, h, start):
        """b_t = p_xi(theta | H_t): one GRU step on o_t (the state reset where an episode
        starts) -> (beliefs [E, N, K], next state); no belief -> an empty [E, N, 0]."""
        if belief_net is None:
            return torch.zeros((obs.shape[0], n, 0), device=device), h
        x = stack_agents(obs[:, robust_slots], one_hot=True)
        logits, h = belief_net(x, h * (1.0 - start)[None, :, None])
        return torch.sigmoid(logits).transpose(0, 1), h

    def critic_types(b, theta):
        """What the robust critic reads besides the state: belief, true theta or nothing."""
        if args.true_type:
            return theta[:, None, :].expand(-1, n, -1)
        return b

    def all_values(state, b, theta):
        return torch.cat(
            [robust.get_value(state, critic_types(b, theta)), model.adversaries.get_value(state)],
            dim=1,
        )

    for iteration in range(start_iteration, args.num_iterations + 1):
        update_robust = iteration % args.adversary_interval == 0  # Algorithm 1, line 7
        rollout_hidden = hidden  # the belief's state before the rollout (its sequences' start)

        # Algorithm 1, lines 2-5: rollouts under b_t = p_xi(theta | H_t), a ~ pi, a_hat ~ pi_hat
        for step in range(0, args.num_steps):
            global_step += args.num_envs
            next_obs = rollout.obs[step] = torch.Tensor(next_obs_np).to(device)
            next_state = rollout.states[step] = torch.Tensor(infos["state"]).to(device)
            rollout.masks[step] = torch.tensor(infos["alive"]).to(device)
            types[step], starts[step] = next_types, next_start

            # ALGO LOGIC: belief, robust actors and adversaries
            with torch.no_grad():
                b, hidden = belief_step(next_obs, hidden, next_start)
                beliefs[step] = b
                action_r, logprob_r, _, value_r = robust.get_action_and_value(
                    next_obs[:, robust_slots], next_state, b, critic_types(b, next_types)
                )
                action_a, logprob_a, _, value_a = model.adversaries.get_action_and_value(
                    next_obs[:, adversary_slots], next_state
                )
            action = torch.cat([action_r, action_a], dim=1)
            rollout.actions[step] = action
            rollout.logprobs[step] = torch.cat([logprob_r, logprob_a], dim=1)
            rollout.values[step] = torch.cat([value_r, value_a], dim=1)

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_np, reward, terminations, truncations, infos = envs.step(
                env_action(action, action_space)
            )
            rollout.rewards[step] = torch.Tensor(reward).to(device)
            finished, _ = stats.step(
                reward[:, robust_slots], infos["acted"][:, robust_slots], infos["reset"]
            )
            for returns, theta in zip(
                finished, next_types[torch.as_tensor(infos["reset"])].cpu(), strict=True
            ):
                by_type["attacked" if theta.any() else "clean"].append(np.nanmean(returns))
            adversary_stats.step(
                reward[:, adversary_slots], infos["acted"][:, adversary_slots], infos["reset"]
            )

            # a truncated trajectory bootstraps from V(last state, belief after the last
            # observation); the episode's theta is still the finished one's
            def bootstrap(last_state, obs_np=next_obs_np, infos=infos, h=hidden, theta=next_types):
                reset = infos["reset"].reshape(-1, 1, *([1] * (obs_np.ndim - 2)))
                last_obs = torch.Tensor(np.where(reset, infos["final_obs"], obs_np)).to(device)
                b_last, _ = belief_step(last_obs, h, torch.zeros(args.num_envs, device=device))
                return all_values(last_state, b_last, theta)

            rollout.ends[step], rollout.end_values[step] = trajectory_ends(
                terminations, truncations, infos, next_obs_np, bootstrap, device,
                bootstrap_from="state",
            )  # fmt: skip
            next_start = episode_starts(infos, device)
            for e in np.flatnonzero(infos["reset"]):  # the new episodes' theta
                next_types[e] = torch.tensor(episode_types([infos["reset_infos"][e]], n)[0])

        # bootstrap value if not done
        with torch.no_grad():
            next_obs = torch.Tensor(next_obs_np).to(device)
            b_next, _ = belief_step(next_obs, hidden, next_start)
            next_value = all_values(torch.Tensor(infos["state"]).to(device), b_next, next_types)
            advantages, returns = gae(
                rollout.rewards, rollout.values, next_value, rollout.ends, rollout.end_values,
                rollout.masks.float(), args.gamma, args.gae_lambda,
            )  # fmt: skip
        b = rollout.flatten(advantages, returns)

        def slots(batch, s):
            return {k: v if k == "states" else v[:, s] for k, v in batch.items()}

        # Algorithm 1, lines 10 and 14: the adversaries ascend -V after every rollout (their
        # reward is minus the team's; theta^i = 0 cuts their gradient: the alive mask)
        losses = ppo_update(
            args, slots(b, adversary_slots),
            lambda mb: model.adversaries.get_action_and_value(mb["obs"], mb["states"], mb["actions"])[1:],
            model.adversaries, optimizer, members=n, shared=False, run=run,
            iteration=iteration, global_step=global_step,
        )  # fmt: skip
        scalars = {k.replace("losses/", "adversary/"): v for k, v in losses.items()}
        mask_r = rollout.masks[:, :, robust_slots]
        if update_robust:
            # line 9: the robust actor and critic on the benign steps (theta^i = 1 cuts agent
            # i's gradient, Eq. 8: the mask), on the beliefs they acted on
            rb = {**slots(b, robust_slots), "beliefs": beliefs.flatten(0, 1),
                  "types": types.reshape(-1, n)}  # fmt: skip
            losses = ppo_update(
                args, rb,
                lambda mb: robust.get_action_and_value(
                    mb["obs"], mb["states"], mb["beliefs"], critic_types(mb["beliefs"], mb["types"]),
                    mb["actions"],
                )[1:],
                robust, optimizer, members=1, shared=True, run=run, iteration=iteration,
                global_step=global_step,
            )  # fmt: skip
            scalars.update(losses)
            # line 12: the belief by binary cross-entropy on the true theta, over whole sequences
            if belief_net is not None:
                inputs = stack_agents(
                    rollout.obs[:, :, robust_slots].reshape(-1, n, *rollout.obs_shape), one_hot=True
                ).reshape(n, args.num_steps, args.num_envs, -1)
                labels = types[None].expand(n, -1, -1, -1)
                scalars.update(belief_update(
                    belief_net, optimizer, inputs, rollout_hidden, starts, labels,
                    mask_r.permute(2, 0, 1), epochs=args.update_epochs,
                    envs_per_minibatch=args.minibatch_size // args.num_steps,
                    max_grad_norm=args.max_grad_norm,
                ))  # fmt: skip
                # the belief's state continues from the updated network's view of the rollout
                with torch.no_grad():
                    _, hidden = belief_net.sequence(inputs, rollout_hidden, starts)
        if belief_net is not None:
            scalars.update(belief_metrics(beliefs, types[:, :, None, :].expand_as(beliefs), mask_r))

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        run.log(
            {"charts/learning_rate": optimizer.param_groups[0]["lr"],
             "charts/adversary_learning_rate": optimizer.param_groups[1]["lr"],
             "charts/robust_update": float(update_robust), **scalars,
             "charts/SPS": run.sps(global_step), **stats.scalars(envs.agents[robust_slots]),
             **adversary_stats.scalars(envs.agents[adversary_slots], prefix="adversary"),
             **{f"charts/episodic_return_{k}": float(np.mean(v)) for k, v in by_type.items() if v}},
            global_step,
        )  # fmt: skip
        run.update_progress(global_step, stats.recent_return)
        by_type = {"clean": [], "attacked": []}

        # checkpoint every checkpoint_every iterations and at the end; then re-seed, so that a
        # run resumed from this checkpoint sees the same episodes
        last = iteration == args.num_iterations
        if iteration % args.checkpoint_every == 0 or last:
            policies = {
                **export_policies(robust.actor, envs.agents[robust_slots]),
                **export_policies(model.adversaries.actor, envs.agents[adversary_slots]),
            }
            checkpointer.save(global_step=global_step, iteration=iteration, policies=policies,
                              model=model, optimizer=optimizer, complete=last)  # fmt: skip
            next_obs_np, infos = envs.reset(seed=env_seed(args.seed, iteration))
            next_types = torch.tensor(episode_types(infos["agent_infos"], n)).to(device)
            next_start = episode_starts(infos, device)
            stats.clear()
            adversary_stats.clear()
    envs.close()

    # Evaluation: clean (theta = 0) and theta = e_i in every episode against the co-trained
    # adversary of agent i; all actions sampled (seeded), the robust policies as deployed
    agents = list(envs.agents[robust_slots])
    final = run.checkpoint_dir / "final.safetensors"
    if args.eval_episodes:
        base = {"reveal_types": True} if args.true_type else {}

        def typed(theta):
            return {"name": "byzantine_v0", "kwargs": {**base, "prior": {theta: 1.0}}}

        policies = {
            a: load_policy(final, agent=a, deterministic=False, seed=args.seed + 100 + i)
            for i, a in enumerate(agents)
        }
        results = {}
        clean = evaluate(make_env(args.env_id, env_kwargs, typed("0" * n)), policies,
                         args.eval_episodes, args.seed)  # fmt: skip
        results["clean"] = float(np.mean(victims_return(clean, None, agents)))
        for i, a in enumerate(agents):
            theta = "".join("1" if j == i else "0" for j in range(n))
            attack = {**typed(theta), "kwargs": {**typed(theta)["kwargs"], "adversary": {
                a: {"checkpoint": str(final), "agent": envs.agents[n + i], "deterministic": False,
                    "seed": args.seed + i}}}}  # fmt: skip
            returns = evaluate(make_env(args.env_id, env_kwargs, attack), policies,
                               args.eval_episodes, args.seed)  # fmt: skip
            results[f"theta=e_{i}"] = float(np.mean(victims_return(returns, None, agents)))
        run.log({f"eval/episodic_return/{k}": v for k, v in results.items()}, global_step)
        print(f"evaluation ({args.eval_episodes} episodes, team return): " + ", ".join(
            f"{k} {v:.2f}" for k, v in results.items()))  # fmt: skip
        (run.dir / "eval.json").write_text(json.dumps(results, indent=2))
    run.close()
