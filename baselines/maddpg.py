# docs and experiment results can be found at docs/maddpg.md
"""MADDPG: deterministic actors with centralized critics Q_i(x, a_1, ..., a_n), off-policy.

Lowe et al. 2017, "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments",
as He et al. (TMLR 2023) use it (App. E.3, Eqs. 61-62; Table 3): every agent i has an actor
mu_i(o_i) and a critic Q_i(x, a_1..a_n) on all observations x = (o_1..o_n) and all actions,
with target networks updated by Polyak averaging; transitions come from a replay buffer.
Discrete actions use the Gumbel-softmax relaxation, as the MADDPG reference does: the env
executes argmax(logits + Gumbel noise) (a sample of softmax(logits)), the buffer stores its
one-hot, and the actor is trained through the straight-through estimator (the one-hot
forward, the gradient of softmax((logits + g) / temperature)). A Box(0, 1, (n,)) action (the
particle envs with `continuous_actions=True`) is a relaxed one-hot: the env executes the soft
sample itself, which is what the reference sends to the original particle envs. The
reference's regularizer on the logits (1e-3 * mean(logits^2)) is kept.

The networks, the update and the loop are the kit's (adv_wrappers.train.offpolicy); the
replay buffer is part of the checkpoint, so `--resume` continues with the same transitions
and the same minibatches.
"""

from dataclasses import dataclass
from pathlib import Path

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


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    # run folder, seeding, device; env -> threat wrapper ("w/ N", "w/ chi*") -> vector env;
    # checkpointer; actors, critics, targets, replay buffer; Adam (adv_wrappers.train.offpolicy)
    r = setup(args, "maddpg")

    # ALGO LOGIC: MADDPG's update (Eqs. 61-62), every train_every transitions
    global_step = train(
        args, model=r.model, optimizer=r.optimizer,
        update=lambda: maddpg_update(r.model, r.optimizer, args, r.device),
        envs=r.envs, run=r.run, resume=r.resume, checkpointer=r.checkpointer, device=r.device,
    )  # fmt: skip
    r.envs.close()
    video_fn = make_env(args.env_id, r.env_kwargs, r.threat, render_mode="rgb_array")
    finish(args, r.env_fn, r.envs.agents, r.run, global_step, video_fn)
