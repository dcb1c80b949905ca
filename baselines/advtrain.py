# docs and experiment results can be found at docs/advtrain.md
"""Adversarial training of a victim against eps-partial control of its opponent.

Liu et al. (ICLR 2024), "Rethinking Adversarial Policies: A Generalized Attack Formulation
and Provable Defense in RL", Sec. 4 and 7. The victim nu plays a two-player turn-based game
against agent alpha; an attacker controls alpha with probability eps at each of alpha's
turns, and alpha otherwise follows its benign policy pi_hat_alpha (Eq. 3.2). The victim
trains to maximize its worst case, min_{pi_alpha} V(pi_nu, (1 - eps) pi_hat_alpha +
eps pi_alpha), i.e. to minimize its exploitability (Def. 4.1). `--method` picks how the
attacker is found:

* `min_oracle` (Algorithm 1): before each victim update the attacker is a best response to
  the current victim. On Kuhn poker it is the exact one, by game-tree search
  (adv_envs.kuhn_poker_exact.best_response); elsewhere (or with `--oracle rl`) it is an RL
  best response: `--oracle-iterations` attacker-only iterations against the frozen victim,
  warm-started from the previous attacker, which approximates the oracle.
* `two_timescale` (Algorithm 2): victim and attacker both take gradient steps on the same
  episodes, the attacker's policy learning rate `--timescale-ratio` times the victim's.
* `single_timescale`: the same with equal learning rates (ratio 1).
* `self_play`: one network plays both seats (it reads its seat from the observation); at
  alpha's turns it is the attacker's action that eps-partial control executes, and it learns
  from both seats' executed decisions.
* `fictitious_play`: each side learns against the other's average policy: the victim's
  episodes face an attacker snapshot drawn per episode from all past snapshots, and the
  attacker's face a victim snapshot drawn the same way (twice the episodes per iteration).

Every gradient step is an episodic policy-gradient step (adv_wrappers.train.episodic: batch
A2C, QPG or RPG with SGD, as OpenSpiel's agent runs them and the paper uses them on Kuhn).
One iteration is `num_critic_before_pi` batches of `batch_episodes` episodes: each batch
updates the critics, the last one also the policies (OpenSpiel's schedule). The episodes go
through `partial_control_aec_v0`: the wrapper flips the coin and says in its infos whose
action was executed; the attacker learns only from its executed turns.

On Kuhn poker every iteration logs exact quantities of the victim's current policy:
`exact/exploitability` (Def. 4.1 at the training budget), `exact/exploitability_gap` (its
distance to the most robust policy's, computed by a linear program), `exact/score` (the
victim's expected payoff against the current attacker under partial control, Fig. 4a) and
`exact/exploitability_eps_<e>` at the budgets of `--eval-epsilons`; the sampled gradient
norm of the victim's policy loss is `losses/victim_grad_norm` (Fig. 4b).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pettingzoo
import torch
import torch.nn as nn
import torch.optim as optim

from adv_wrappers import adversary_id
from adv_wrappers.aec import partial_control_aec_v0
from adv_wrappers.errors import InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.train.checkpoint import Checkpointer, export_policies, load_training_state
from adv_wrappers.train.config import env_seed, parse_args, seed_everything
from adv_wrappers.train.episodic import PGLearner, play_aec_episodes, sample_action
from adv_wrappers.train.tracking import Run

KUHN = "adv/kuhn_poker-v0"


@dataclass
class Args:
    exp_name: str = Path(__file__).stem
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=False`"""
    cuda: bool = False
    """use CUDA when available (the networks are tiny and the game is stepped one decision at
    a time: the CPU is faster)"""
    torch_threads: int = 1
    """CPU threads of torch (`torch.set_num_threads`)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "adv-wrappers"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    checkpoint_every: int = 100
    """write `checkpoints/last.safetensors` every this many iterations (and at the end); the
    env is re-seeded after each one, so `--resume` continues exactly"""
    resume: str | None = None
    """a checkpoint to resume from; every other flag is then taken from the checkpoint"""

    # Game and threat
    env_id: str = KUHN
    """a two-player turn-based game (PettingZoo AEC registry ID) with Discrete actions"""
    env_kwargs: str = "{}"
    """keyword arguments of the environment, as a JSON dict"""
    victim: str = "player_0"
    """the victim nu, the agent being trained"""
    epsilon: float = 1.0
    """the attack (defense) budget eps_pi in [0, 1]: the probability that the attacker's action
    is executed at a turn of the other agent alpha"""
    benign: Literal["uniform", "nash"] = "uniform"
    """alpha's benign policy pi_hat_alpha: uniform over the legal actions, or (Kuhn poker only)
    Kuhn's equilibrium strategy of alpha's seat (alpha = 0 in Kuhn's family)"""

    # Algorithm specific arguments
    method: Literal[
        "min_oracle", "two_timescale", "single_timescale", "self_play", "fictitious_play"
    ] = "two_timescale"
    """how the attacker is found (module docstring)"""
    oracle: Literal["auto", "exact", "rl"] = "auto"
    """min_oracle's best response: `exact` (Kuhn poker), `rl`, or `auto` (exact where it
    exists)"""
    oracle_iterations: int = 20
    """rl oracle: attacker-only iterations against the frozen victim per victim iteration"""
    pg: Literal["a2c", "qpg", "rpg"] = "rpg"
    """the policy-gradient loss of both learners"""
    num_iterations: int = 1000
    """victim policy updates"""
    batch_episodes: int = 16
    """episodes per batch (App. E.3: 16)"""
    num_critic_before_pi: int = 8
    """batches per iteration: the critics learn from every batch, the policies from the last
    (OpenSpiel's schedule)"""
    learning_rate: float = 0.03
    """eta_nu: the victim's policy learning rate (SGD)"""
    timescale_ratio: float = 10.0
    """eta_alpha / eta_nu for two_timescale (single_timescale and fictitious_play use 1)"""
    critic_learning_rate: float = 0.05
    """the critics' learning rate (SGD)"""
    entropy_coef: float = 0.01
    """entropy bonus of the policy losses (OpenSpiel's default `entropy_cost`)"""
    hidden_sizes: tuple[int, ...] = (128,)
    """hidden layers of policies and critics (ReLU; App. E.3: one layer of 128)"""
    snapshot_every: int = 1
    """fictitious_play: add both current policies to the histories every this many iterations"""
    eval_epsilons: tuple[float, ...] = ()
    """Kuhn poker: also log the exact exploitability at these attack budgets"""

    # to be filled in runtime
    total_timesteps: int = 0
    """episodes the run plays (computed in runtime; the progress bar counts episodes)"""


# Liu et al. (ICLR 2024), App. E.3 (Kuhn poker): MLP 128, batch 16, SGD; the rest is ours
PRESETS: dict[str, dict] = {}

METHODS = ("min_oracle", "two_timescale", "single_timescale", "self_play", "fictitious_play")


class KuhnExact:
    """The exact quantities of Kuhn poker that the run logs (adv_envs.kuhn_poker_exact)."""

    def __init__(self, victim_seat: int, epsilon: float, benign_name: str) -> None:
        from adv_envs import kuhn_poker_exact as kx

        self.kx = kx
        self.seat = victim_seat
        self.epsilon = epsilon
        other = 1 - victim_seat
        self.benign = (
            kx.nash_equilibrium()[other]
            if benign_name == "nash"
            else kx.TabularPolicy.uniform(other)
        )
        self.optimum = kx.robust_optimum(victim_seat, epsilon=epsilon, benign=self.benign)
        self.obs = {
            p: torch.as_tensor(
                np.stack([kx.observation_vector(p, c, h) for c, h in kx.INFO_STATES[p]])
            )
            for p in (0, 1)
        }
        self.average = kx.AveragePolicy(victim_seat)  # the victim's average so far

    def tabular(self, learner: PGLearner, seat: int):
        """The learner's policy at ``seat``'s 6 information states, as a TabularPolicy."""
        with torch.no_grad():
            probs = learner.probs(self.obs[seat], torch.ones(6, 2, dtype=torch.bool))
        return self.kx.TabularPolicy(seat, probs.double().numpy())

    def best_response(self, victim_policy):
        return self.kx.best_response(victim_policy, epsilon=self.epsilon, benign=self.benign)

    def metrics(self, victim_policy, attacker_policy, eval_epsilons) -> dict[str, float]:
        kx = self.kx
        expl = kx.one_sided_exploitability(victim_policy, epsilon=self.epsilon, benign=self.benign)
        executed = kx.mix(self.benign, attacker_policy, self.epsilon)
        pair = (victim_policy, executed) if self.seat == 0 else (executed, victim_policy)
        score = kx.expected_payoff(*pair) * (1.0 if self.seat == 0 else -1.0)
        self.average.add(victim_policy)
        out = {
            "exact/exploitability": expl,
            "exact/exploitability_gap": expl - self.optimum.exploitability,
            "exact/exploitability_average": kx.one_sided_exploitability(
                self.average.policy(), epsilon=self.epsilon, benign=self.benign
            ),
            "exact/score": score,
        }
        for e in eval_epsilons:
            out[f"exact/exploitability_eps_{e:g}"] = kx.one_sided_exploitability(
                victim_policy, epsilon=e, benign=self.benign
            )
        return out


def check_args(args: Args) -> None:
    """Reject bad flag values by name (nothing is silently clipped)."""
    positive = ("num_iterations", "batch_episodes", "num_critic_before_pi", "checkpoint_every",
                "snapshot_every", "oracle_iterations")  # fmt: skip
    for name in positive:
        if getattr(args, name) < 1:
            raise InvalidArgumentError(
                f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}"
            )
    for name in ("learning_rate", "critic_learning_rate", "timescale_ratio"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise InvalidArgumentError(f"--{name.replace('_', '-')} must be > 0; got {value}")
    if not (math.isfinite(args.entropy_coef) and args.entropy_coef >= 0):
        raise InvalidArgumentError(f"--entropy-coef must be >= 0; got {args.entropy_coef}")
    for e in (args.epsilon, *args.eval_epsilons):
        if not (math.isfinite(e) and 0.0 <= e <= 1.0):
            raise InvalidArgumentError(
                f"budgets (--epsilon, --eval-epsilons) must be in [0, 1]; got {e}"
            )
    kuhn = args.env_id == KUHN
    if args.benign == "nash" and not kuhn:
        raise InvalidArgumentError(
            f"--benign nash exists for {KUHN} only; got --env-id {args.env_id}"
        )
    if args.oracle == "exact" and not kuhn:
        raise InvalidArgumentError(f"--oracle exact exists for {KUHN} only; use --oracle rl")
    if args.eval_epsilons and not kuhn:
        raise InvalidArgumentError(f"--eval-epsilons are exact values of {KUHN} only")


def mean(stats: dict[str, list[float]], key: str) -> float | None:
    """The mean of a logged statistic (``None`` when it has no values)."""
    return float(np.mean(stats[key])) if stats.get(key) else None


def uniform_action(mask: np.ndarray) -> int:
    """Uniform over the legal actions (numpy's global RNG, captured by checkpoints)."""
    legal = np.flatnonzero(mask)
    return int(legal[np.random.randint(len(legal))])  # noqa: NPY002


class Model(nn.Module):
    """Everything a checkpoint restores: the learners and fictitious play's histories."""

    def __init__(self, config: dict, method: str, snapshots: tuple[int, int] = (0, 0)) -> None:
        super().__init__()
        self.config = config
        self.victim = PGLearner(**config)
        self.attacker = PGLearner(**config) if method != "self_play" else None
        self.victim_history = nn.ModuleList(PGLearner(**config).actor for _ in range(snapshots[0]))
        self.attacker_history = nn.ModuleList(
            PGLearner(**config).actor for _ in range(snapshots[1])
        )

    def snapshot(self) -> None:
        """Append frozen copies of both current policies to the histories."""
        for learner, history in ((self.victim, self.victim_history),
                                 (self.attacker, self.attacker_history)):  # fmt: skip
            copy = PGLearner(**self.config).actor.to(next(learner.parameters()).device)
            copy.load_state_dict(learner.actor.state_dict())
            copy.requires_grad_(False)
            history.append(copy)


if __name__ == "__main__":
    args = parse_args(Args, PRESETS)
    check_args(args)
    # CleanRL's preamble: resume state, run folder, seeding, device (adv_wrappers.train)
    resume = load_training_state(args.resume) if args.resume else None
    n_batches = args.num_critic_before_pi
    batches = n_batches * (2 if args.method == "fictitious_play" else 1)
    if args.method == "min_oracle" and (args.oracle == "rl" or args.env_id != KUHN):
        batches += n_batches * args.oracle_iterations
    args.total_timesteps = args.num_iterations * batches * args.batch_episodes
    run = Run(args, resume)
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env -> eps-partial control of the other agent; benign and attacker both act from here
    env_kwargs = json.loads(args.env_kwargs)
    base = pettingzoo.make("aec", args.env_id, **env_kwargs)
    agents = list(base.possible_agents)
    if len(agents) != 2 or args.victim not in agents:
        raise InvalidArgumentError(
            f"advtrain.py needs a two-player game and --victim among its agents; "
            f"{args.env_id} has {agents}, got --victim {args.victim!r}"
        )
    alpha = agents[1 - agents.index(args.victim)]
    adversary = adversary_id(alpha)  # the exposed attacker of partial_control_aec_v0
    env = partial_control_aec_v0(base, alpha, args.epsilon, victim=args.victim)
    spaces = {a: (env.observation_space(a), env.action_space(a)) for a in env.possible_agents}
    num_actions, obs_dims = {}, {}
    for a, (obs_space, act_space) in spaces.items():
        if not hasattr(act_space, "n"):
            raise UnsupportedSpaceError(f"advtrain.py needs Discrete actions; {a} has {act_space}")
        num_actions[a] = int(act_space.n)
        inner = obs_space["observation"] if hasattr(obs_space, "spaces") else obs_space
        obs_dims[a] = int(np.prod(inner.shape))
    if (obs_dims[args.victim], num_actions[args.victim]) != (obs_dims[alpha], num_actions[alpha]):
        raise UnsupportedSpaceError("advtrain.py needs both seats to have the same spaces")
    exact = None
    if args.env_id == KUHN:
        exact = KuhnExact(agents.index(args.victim), args.epsilon, args.benign)
    exact_oracle = args.method == "min_oracle" and args.oracle != "rl" and exact is not None

    # the learners (OpenSpiel's PG agent: policy + critic), fictitious play's histories, SGD
    config = dict(obs_dim=obs_dims[args.victim], num_actions=num_actions[args.victim],
                  hidden_sizes=tuple(args.hidden_sizes), loss=args.pg)  # fmt: skip
    snapshots = (0, 0)
    if resume:
        snapshots = tuple(int(s) for s in resume.record.get("extra", {}).get("snapshots", (0, 0)))
        if len(snapshots) != 2 or not all(0 <= s <= args.num_iterations + 1 for s in snapshots):
            raise InvalidArgumentError(f"the checkpoint records bad history sizes {snapshots}")
    model = Model(config, args.method, snapshots).to(device)  # type: ignore[arg-type]
    victim, attacker = model.victim, model.attacker
    ratio = args.timescale_ratio if args.method == "two_timescale" else 1.0
    groups = [{"params": victim.actor.parameters(), "lr": args.learning_rate},
              {"params": victim.critic.parameters(), "lr": args.critic_learning_rate}]  # fmt: skip
    if attacker is not None:
        groups += [{"params": attacker.actor.parameters(), "lr": args.learning_rate * ratio},
                   {"params": attacker.critic.parameters(), "lr": args.critic_learning_rate}]  # fmt: skip
    optimizer = optim.SGD(groups)  # a group without gradients is left alone by a step
    threat = {"name": "partial_control_aec_v0",
              "kwargs": {"agent": alpha, "epsilon": args.epsilon, "victim": args.victim}}  # fmt: skip
    checkpointer = Checkpointer(
        run.checkpoint_dir, algorithm=f"advtrain.{args.method}", args=args, env_id=args.env_id,
        env_kwargs=env_kwargs, threat=threat, spaces=spaces, run_name=run.name,
        wandb_id=run.wandb_id,
    )  # fmt: skip
    if resume:
        resume.restore(model, optimizer)
        if exact is not None:  # the victim's running average (Kuhn poker's exact logging)
            state = resume.record.get("extra", {}).get("average")
            if state is None:
                raise InvalidArgumentError("the checkpoint has no running average of the victim")
            exact.average = exact.kx.AveragePolicy.from_state_dict(state)
    elif args.method == "fictitious_play":
        model.snapshot()

    def executed(agent: str, wrapped) -> bool:
        """The wrapper's ground truth: was alpha's action at this turn the attacker's?"""
        if agent != adversary:
            return True
        return bool(wrapped.infos[agent]["partial_control"]["adversary_acted"].get(alpha))

    def benign_action(obs: np.ndarray, mask: np.ndarray) -> int:
        if args.benign == "nash":
            _, card, history = exact.kx.decode_observation(obs)
            return int(np.random.random() < exact.benign.action_probs(card, history)[1])  # noqa: NPY002
        return uniform_action(mask)

    def oracle_action(obs: np.ndarray, mask: np.ndarray) -> int:
        _, card, history = exact.kx.decode_observation(obs)
        return int(oracle.action_probs(card, history)[1] == 1.0)  # a deterministic policy

    def frozen(actor) -> object:
        return lambda obs, mask: sample_action(actor, obs, mask)

    def update(learner: PGLearner, data, which: str) -> tuple[float, float]:
        """One SGD step of ``learner``'s critic or policy on ``data``: (loss, grad norm)."""
        optimizer.zero_grad(set_to_none=True)
        batch = data.batch(device)
        if which == "critic":
            loss = learner.critic_loss(batch)
        else:
            loss = learner.policy_loss(batch, args.entropy_coef)
        loss.backward()
        run.check_finite({f"{which}_loss": loss})
        net = learner.critic if which == "critic" else learner.actor
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()]))
        optimizer.step()
        return float(loss.detach()), float(norm)

    global_step = resume.global_step if resume else 0
    reseed: int | None = env_seed(args.seed, resume.iteration if resume else 0)
    oracle = None  # the exact min oracle's attacker (a TabularPolicy)
    for iteration in range((resume.iteration if resume else 0) + 1, args.num_iterations + 1):
        stats: dict[str, list[float]] = {}
        if exact_oracle:  # Algorithm 1, line 3: the exact min oracle by game-tree search
            oracle = exact.best_response(exact.tabular(victim, exact.seat)).policy

        # what each batch plays: (victim's actor, attacker's actor, {agent: learner that learns})
        plan: list[tuple[object, object, dict]] = []
        if args.method == "min_oracle" and not exact_oracle:  # RL best response, frozen victim
            for _ in range(args.oracle_iterations):
                plan += [(victim.act, attacker.act, {adversary: attacker})] * (n_batches - 1)
                plan.append((victim.act, attacker.act, {adversary: attacker, "policy": attacker}))
        for b in range(n_batches):
            pi = {"policy": None} if b == n_batches - 1 else {}
            if args.method == "min_oracle":
                source = oracle_action if exact_oracle else attacker.act
                plan.append((victim.act, source, {args.victim: victim, **pi}))
            elif args.method in ("two_timescale", "single_timescale"):
                plan.append(
                    (victim.act, attacker.act, {args.victim: victim, adversary: attacker, **pi})
                )
            elif args.method == "self_play":
                plan.append(
                    (victim.act, victim.act, {args.victim: victim, adversary: victim, **pi})
                )
            else:  # fictitious play: each side against a policy drawn from the other's history
                history = model.attacker_history[np.random.randint(len(model.attacker_history))]  # noqa: NPY002
                plan.append((victim.act, frozen(history), {args.victim: victim, **pi}))
                history = model.victim_history[np.random.randint(len(model.victim_history))]  # noqa: NPY002
                plan.append((frozen(history), attacker.act, {adversary: attacker, **pi}))

        for victim_act, attacker_act, learns in plan:
            sources = {args.victim: victim_act, adversary: attacker_act}
            decisions, totals, _ = play_aec_episodes(
                env, args.batch_episodes,
                lambda agent, obs, mask, s=sources: s.get(agent, benign_action)(obs, mask),
                num_actions, seed=reseed, keep=executed,
            )  # fmt: skip
            reseed = None
            global_step += args.batch_episodes
            stats.setdefault("victim_return", []).extend(totals.get(args.victim, []))
            stats.setdefault("attacker_turns", []).append(len(decisions.get(adversary, [])))
            data: dict[int, tuple[PGLearner, object]] = {}  # one dataset per learner
            for agent, learner in learns.items():
                if agent == "policy" or not len(decisions.get(agent, ())):
                    continue  # (e.g. at eps = 0 the attacker is never executed)
                if id(learner) in data:
                    data[id(learner)][1].extend(decisions[agent])
                else:
                    data[id(learner)] = (learner, decisions[agent])
            for learner, d in data.values():
                stats.setdefault("critic_loss", []).append(update(learner, d, "critic")[0])
            if "policy" in learns:  # the policies learn from the batch that ends an iteration
                for learner, d in data.values():
                    if learns["policy"] is not None and learner is not learns["policy"]:
                        continue
                    loss, norm = update(learner, d, "policy")
                    name = "victim" if learner is victim else "attacker"
                    stats.setdefault(f"{name}_policy_loss", []).append(loss)
                    stats.setdefault(f"{name}_grad_norm", []).append(norm)
        if args.method == "fictitious_play" and iteration % args.snapshot_every == 0:
            model.snapshot()

        scalars = {
            "charts/victim_return": mean(stats, "victim_return"),
            "charts/attacker_executed_turns": float(np.sum(stats["attacker_turns"])),
            "charts/iteration": iteration,
            "losses/critic_loss": mean(stats, "critic_loss"),
            "losses/victim_policy_loss": mean(stats, "victim_policy_loss"),
            "losses/victim_grad_norm": mean(stats, "victim_grad_norm"),
            "losses/attacker_grad_norm": mean(stats, "attacker_grad_norm"),
        }
        if exact is not None:  # the exact quantities of the victim's current policy
            victim_policy = exact.tabular(victim, exact.seat)
            if exact_oracle:
                current = exact.best_response(victim_policy).policy
            else:
                current = exact.tabular(
                    attacker if attacker is not None else victim, 1 - exact.seat
                )
            scalars.update(exact.metrics(victim_policy, current, args.eval_epsilons))
        run.log(scalars, global_step)
        run.update_progress(global_step, scalars["charts/victim_return"])
        if iteration % args.checkpoint_every == 0 or iteration == args.num_iterations:
            policies = export_policies(victim.actor, [args.victim])
            if not exact_oracle:  # the learned attacker (self-play: the network in alpha's seat)
                policies.update(export_policies((attacker or victim).actor, [adversary]))
            checkpointer.save(
                global_step=global_step, iteration=iteration, policies=policies, model=model,
                optimizer=optimizer, complete=iteration == args.num_iterations,
                extra={"snapshots": [len(model.victim_history), len(model.attacker_history)],
                       "exact": {k: v for k, v in scalars.items() if k.startswith("exact/")},
                       "average": exact.average.state_dict() if exact is not None else None},
            )  # fmt: skip
            reseed = env_seed(args.seed, iteration)
    env.close()
    run.close()
