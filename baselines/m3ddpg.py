# docs and experiment results can be found at docs/m3ddpg.md
"""M3DDPG: MADDPG whose agents train against the worst case of the other agents' actions.

Li et al. 2019, "Robust Multi-Agent Reinforcement Learning via Minimax Deep Deterministic
Policy Gradient" (AAAI), the baseline of He et al. (TMLR 2023) (App. E.3, Table 3). Agent i
assumes every other agent j picks a_j = argmin Q_i(x, a_1..a_n). Multi-agent adversarial
learning approximates the argmin by one gradient step, linearizing Q_i around the actions:

    a_j <- a_j - eps_ij * grad_{a_j} Q_i / ||grad_{a_j} Q_i||_2   (per sample, j != i)

in the critic's target (target critic, target actors' next actions) and in the actor's loss
(critic, the buffer's actions), the step itself carrying no gradient. eps_ij is `adv_eps`
for an agent of another team and `adv_eps_s` for a teammate (a team: agents whose names
share the prefix before the last `_`, e.g. `adversary_0`, `adversary_1`). Everything else is
MADDPG (adv_wrappers.train.offpolicy: networks, update, loop, replay buffer in checkpoints).
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.config import parse_args
from adv_wrappers.train.envs import make_env
from adv_wrappers.train.offpolicy import finish, maddpg_update, setup, train


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

    # Algorithm specific arguments (He et al. (TMLR 2023), Table 3, M3DDPG column)
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
    adv_eps: float = 1e-3
    """size of the minimax step on the actions of another team's agents (the reference's
    `--adv-eps`)"""
    adv_eps_s: float = 1e-5
    """size of the minimax step on the actions of the agent's own teammates (the reference's
    `--adv-eps-s`)"""

    num_steps: int = 1
    """vector steps per iteration (checkpoints and logs count iterations)"""

    # to be filled in runtime
    batch_size: int = 0
    """transitions per iteration (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# He et al. (TMLR 2023), App. E, Table 3 (M3DDPG column) is the default for every env
PRESETS: dict[str, dict] = {}


def step_sizes(agents, adv_eps, adv_eps_s):
    """eps_ij ``[A (critic i), 1, A (agent j), 1]``: 0 for j = i, ``adv_eps_s`` for a
    teammate (same name prefix before the last ``_``), ``adv_eps`` for another team."""
    team = [str(a).rsplit("_", 1)[0] for a in agents]
    eps = torch.tensor(
        [[0.0 if i == j else adv_eps_s if team[i] == team[j] else adv_eps
          for j in range(len(agents))] for i in range(len(agents))]
    )  # fmt: skip
    return eps.view(len(agents), 1, len(agents), 1)


def minimax_joint(model, eps):
    """The hook of `maddpg_update`: per critic i, every other agent's action moved one
    normalized gradient step against Q_i (the step is a constant: no gradient through it)."""

    def adversarial(critics, obs, joint, which):
        with torch.enable_grad():
            j = joint.detach().requires_grad_(True)
            q = model.q_values(critics, obs, j)  # Q_i depends on its own copy j[i] only
            (grad,) = torch.autograd.grad(q.sum(), j)
        return joint - eps * F.normalize(grad, dim=-1)

    return adversarial


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    if not (args.adv_eps >= 0.0 and args.adv_eps_s >= 0.0):
        raise InvalidArgumentError(
            f"adv_eps and adv_eps_s must be >= 0; got {args.adv_eps}, {args.adv_eps_s}"
        )
    # MADDPG's run, env, checkpointer, networks, buffer and Adam (adv_wrappers.train.offpolicy)
    r = setup(args, "m3ddpg")
    eps = step_sizes(r.envs.agents, args.adv_eps, args.adv_eps_s).to(r.device)

    # ALGO LOGIC: MADDPG's update with the others' actions at their one-step worst case
    global_step = train(
        args, model=r.model, optimizer=r.optimizer,
        update=lambda: maddpg_update(
            r.model, r.optimizer, args, r.device, minimax_joint(r.model, eps)
        ),
        envs=r.envs, run=r.run, resume=r.resume, checkpointer=r.checkpointer, device=r.device,
    )  # fmt: skip
    r.envs.close()
    video_fn = make_env(args.env_id, r.env_kwargs, r.threat, render_mode="rgb_array")
    finish(args, r.env_fn, r.envs.agents, r.run, global_step, video_fn)
