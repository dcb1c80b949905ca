"""What every trainer in ``baselines/`` shares, except the algorithm itself.

* :func:`make_env` - the env of a run from its registry ID, keyword arguments, threat-model
  configuration and frozen policies, as the ``env_fn`` that
  :func:`adv_wrappers.vector.make_vector_env` takes.
* :func:`parse_args` - ``tyro`` parsing with per-env presets and ``--resume``.
* :func:`seed_everything`, :func:`env_seed` - seeding (and re-seeding after a checkpoint).
* :func:`check_trainable` - the spaces a trainer can handle.
* :func:`gae` - generalized advantage estimation with termination, truncation and masks.
* :class:`EpisodeStats` - per-agent episodic returns of the vector env's copies.
* :func:`evaluate`, :func:`record_video` - play policies (e.g. loaded with
  :func:`adv_wrappers.train.checkpoint.load_policy`) in a fresh env.

Threat configurations are JSON dicts so they can be stored in checkpoints:
``{"name": "k_corruption_v0", "kwargs": {"k": 1, "adversary": "random"}}``. ``name`` is a key
of :data:`adv_wrappers.registry.THREAT_MODELS`. Wherever a policy is expected (a threat's
``adversary``, a frozen agent), a *policy reference* ``{"checkpoint": PATH, "agent": ID}``
(optional ``"name"``, ``"deterministic"``, ``"seed"``) is loaded with
:func:`~adv_wrappers.train.checkpoint.load_policy` when the env is built (in its worker process for
the subprocess backend).

Torch is imported by :func:`gae` and :func:`seed_everything` only when called.

Example:
    >>> from adv_wrappers.train.envs import make_env
    >>> from adv_wrappers.vector import make_vector_env
    >>> env_fn = make_env("adv/xnor_xor-v0", {"max_cycles": 4},
    ...                   threat={"name": "k_corruption_v0", "kwargs": {"k": 1, "adversary": "random"}})
    >>> with make_vector_env(env_fn, num_envs=2) as envs:
    ...     obs, infos = envs.reset(seed=0)
    ...     print(envs.agents, obs.shape, infos["alive"].sum())
    ('agent_0', 'agent_1') (2, 2, 2) 2

Change logs:
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gymnasium
import numpy as np
import pettingzoo
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

import adv_envs  # noqa: F401  (registers the bundled envs)
from adv_wrappers.errors import InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.freeze import freeze_v0
from adv_wrappers.registry import THREAT_MODELS

if TYPE_CHECKING:
    import torch

__all__ = [
    "EpisodeStats",
    "check_trainable",
    "env_seed",
    "evaluate",
    "gae",
    "make_env",
    "parse_args",
    "record_video",
    "seed_everything",
]

ArgsT = TypeVar("ArgsT")


# --------------------------------------------------------------------------- envs


def _check_policy_refs(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        if "checkpoint" in value:
            unknown = set(value) - {"checkpoint", "agent", "name", "deterministic", "seed"}
            if unknown or not isinstance(value.get("agent"), str):
                raise InvalidArgumentError(
                    f"{where}: a policy reference is {{'checkpoint': PATH, 'agent': ID}} with "
                    f"optional 'name', 'deterministic' and 'seed'; got {dict(value)!r}"
                )
            return
        for k, v in value.items():
            _check_policy_refs(v, f"{where}[{k!r}]")


def _resolve_policy_refs(value: Any) -> Any:
    if isinstance(value, Mapping):
        if "checkpoint" in value:
            from adv_wrappers.train.checkpoint import load_policy

            return load_policy(
                value["checkpoint"],
                agent=value["agent"],
                name=value.get("name"),
                deterministic=value.get("deterministic", True),
                seed=value.get("seed"),
            )
        return {k: _resolve_policy_refs(v) for k, v in value.items()}
    return value


def _build_env(
    env_id: str,
    env_kwargs: dict[str, Any],
    threat: dict[str, Any] | None,
    frozen: dict[str, Any] | None,
    render_mode: str | None,
) -> ParallelEnv:
    kwargs = dict(env_kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = pettingzoo.make("parallel", env_id, **kwargs)
    if threat is not None:
        factory = THREAT_MODELS[threat["name"]].factory
        env = factory(env, **_resolve_policy_refs(threat.get("kwargs") or {}))
    if frozen:
        refs = {
            agent: ({"agent": agent, **p} if isinstance(p, Mapping) and "agent" not in p else p)
            for agent, p in frozen.items()
        }
        env = freeze_v0(env, _resolve_policy_refs(refs))
    return env


def make_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    threat: Mapping[str, Any] | None = None,
    *,
    frozen: Mapping[str, Any] | None = None,
    render_mode: str | None = None,
) -> Callable[[], ParallelEnv]:
    """The ``env_fn`` of a run: registry env -> threat wrapper -> ``freeze_v0``.

    Args:
        env_id: a PettingZoo registry ID, e.g. ``"adv/independent_spread-v0"`` (bundled
            envs are registered by ``import adv_wrappers``).
        env_kwargs: keyword arguments of the env.
        threat: ``None`` (clean env) or ``{"name": <THREAT_MODELS key>, "kwargs": {...}}``;
            policies in ``kwargs`` may be policy references (module docstring).
        frozen: agent -> policy, ``"random"`` or policy reference (``"agent"`` defaults to
            the key), applied with :func:`~adv_wrappers.freeze.freeze_v0` after the threat.
        render_mode: passed to the env (``"rgb_array"`` for videos).

    Returns:
        A picklable zero-argument callable building a fresh env (for ``make_vector_env``
        with either backend).

    Raises:
        InvalidArgumentError: ``env_id`` not a string, an unknown threat name, a malformed
            threat configuration or policy reference. Errors of the env or the wrappers
            themselves are raised when the callable is called.
    """
    if not isinstance(env_id, str) or not env_id:
        raise InvalidArgumentError(f"env_id must be a registry ID string; got {env_id!r}")
    if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
        raise InvalidArgumentError(f"env_kwargs must be a dict; got {env_kwargs!r}")
    threat_copy = None
    if threat is not None:
        if not isinstance(threat, Mapping) or set(threat) - {"name", "kwargs"}:
            raise InvalidArgumentError(
                f"threat must be None or {{'name': ..., 'kwargs': {{...}}}}; got {threat!r}"
            )
        if threat.get("name") not in THREAT_MODELS:
            raise InvalidArgumentError(
                f"unknown threat model {threat.get('name')!r}; known: {sorted(THREAT_MODELS)}"
            )
        kwargs = threat.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise InvalidArgumentError(f"threat['kwargs'] must be a dict; got {kwargs!r}")
        _check_policy_refs(kwargs, "threat['kwargs']")
        threat_copy = {"name": threat["name"], "kwargs": dict(kwargs)}
    if frozen is not None:
        if not isinstance(frozen, Mapping):
            raise InvalidArgumentError(f"frozen must be a dict agent -> policy; got {frozen!r}")
        for agent, p in frozen.items():
            if isinstance(p, Mapping):
                _check_policy_refs({"agent": agent, **p}, f"frozen[{agent!r}]")
    return functools.partial(
        _build_env,
        env_id,
        dict(env_kwargs or {}),
        threat_copy,
        None if frozen is None else dict(frozen),
        render_mode,
    )


def check_trainable(envs: Any) -> tuple[int, gymnasium.Space]:
    """Check that a vector env's spaces fit the MLP trainers; return what they need.

    The trainers flatten Box observations (zero-padded to a common size by the vector env)
    and need every agent to have the same action space, Discrete or Box.

    Args:
        envs: an :mod:`adv_wrappers.vector` env.

    Returns:
        ``(obs_dim, action_space)``: the flat (padded) observation size and the common
        action space.

    Raises:
        UnsupportedSpaceError: Discrete observations, or agents with different action spaces.
    """
    if not isinstance(envs.single_observation_space, spaces.Box):
        raise UnsupportedSpaceError(
            f"the trainers need Box observations; {envs.single_observation_space} is not one"
        )
    first = envs.action_spaces[envs.agents[0]]
    differ = [a for a in envs.agents if envs.action_spaces[a] != first]
    if differ:
        raise UnsupportedSpaceError(
            f"the trainers need one action space for every agent; {envs.agents[0]!r} has "
            f"{first} but {differ} differ"
        )
    return int(np.prod(envs.single_observation_space.shape)), first


# --------------------------------------------------------------------------- arguments


def _args_from_record(args_cls: type[ArgsT], saved: Mapping[str, Any], resume: str) -> ArgsT:
    defaults = args_cls()
    names = {f.name for f in dataclasses.fields(args_cls)}  # type: ignore[arg-type]
    values = {}
    for name, value in saved.items():
        if name not in names:
            warnings.warn(f"--resume: ignoring unknown saved argument {name!r}", stacklevel=3)
            continue
        if isinstance(getattr(defaults, name), tuple) and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    values["resume"] = resume
    return args_cls(**values)


# Paper 000 (ART), App. D, Table 7 (RLlib PPO), per env: what Naive (ippo.py), Fixed-K and ART
# (art.py) all train with, so that they share their hyperparameters (Sec. 5.1). Batch size =
# num_envs * num_steps environment steps; num_steps is a multiple of the episode length (25,
# 500, 1000), so ant uses 16 x 4000 = 64000 steps per batch instead of 65536. RLlib clips the
# value loss at an absolute 10, not at clip_coef, and does not anneal the learning rate.
PAPER_000_PRESETS: dict[str, dict[str, Any]] = {
    "adv/independent_spread-v0": dict(
        total_timesteps=800_000, num_envs=8, num_steps=500, minibatch_size=128,
        update_epochs=30, learning_rate=3e-4, gamma=0.99, clip_coef=0.3, gae_lambda=1.0,
        ent_coef=0.0, vf_coef=1.0, clip_vloss=False, anneal_lr=False,
    ),
    "adv/multi_ant-v0": dict(
        total_timesteps=13_000_000, num_envs=16, num_steps=4000, minibatch_size=4096,
        update_epochs=30, learning_rate=5e-5, gamma=0.99, clip_coef=0.2, gae_lambda=0.95,
        ent_coef=0.0, vf_coef=0.5, clip_vloss=False, anneal_lr=False,
    ),
    "adv/pursuit-v0": dict(
        total_timesteps=10_000_000, num_envs=10, num_steps=500, minibatch_size=500,
        update_epochs=30, learning_rate=5e-5, gamma=0.99, clip_coef=0.3, gae_lambda=0.95,
        ent_coef=0.01, vf_coef=1.0, clip_vloss=False, anneal_lr=False,
    ),
}  # fmt: skip


def parse_args(
    args_cls: type[ArgsT],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    argv: Sequence[str] | None = None,
) -> ArgsT:
    """Parse a trainer's ``Args`` dataclass with ``tyro``, apply its env preset, or resume.

    ``presets[env_id]`` replaces the dataclass defaults for that env (the flags given on the
    command line still win). With ``--resume PATH`` the arguments are those saved in the
    checkpoint (with ``resume=PATH``); other flags are ignored.

    Args:
        args_cls: the ``Args`` dataclass; it must have ``env_id`` and ``resume`` fields.
        presets: env ID -> field values.
        argv: the command line (default ``sys.argv[1:]``).

    Raises:
        CheckpointError: ``--resume`` names a missing or unreadable checkpoint.
        SystemExit: bad flags (tyro prints the usage).
    """
    import tyro

    args = tyro.cli(args_cls, args=argv)
    resume = getattr(args, "resume", None)
    if resume:
        from adv_wrappers.train.checkpoint import read_record

        return _args_from_record(args_cls, read_record(resume).get("args") or {}, resume)
    env_id = getattr(args, "env_id")  # noqa: B009 (ArgsT is any dataclass with env_id)
    preset = (presets or {}).get(env_id)
    if preset:
        default = dataclasses.replace(args_cls(), env_id=env_id, **preset)  # type: ignore[type-var]
        args = tyro.cli(args_cls, args=argv, default=default)
    return args


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int, torch_deterministic: bool = True) -> None:
    """Seed ``random``, ``numpy.random`` and ``torch`` (CleanRL's preamble).

    Args:
        seed: the run's seed.
        torch_deterministic: set ``torch.backends.cudnn.deterministic``.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global generator, as in CleanRL)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic


def env_seed(seed: int, iteration: int) -> int:
    """The seed for ``envs.reset`` before ``iteration + 1``: ``seed`` at the start, then one
    derived from ``(seed, iteration)`` after each checkpoint.

    Trainers reset the vector env with it right after writing a periodic checkpoint, so a run
    resumed from that checkpoint sees exactly the episodes the uninterrupted run saw.
    """
    if iteration == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(iteration)]).generate_state(1)[0])


# --------------------------------------------------------------------------- GAE


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    ends: torch.Tensor,
    end_values: torch.Tensor,
    masks: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout.

    All inputs are ``[T, ...]`` (e.g. ``[num_steps, num_envs, num_agents]``) except
    ``next_value`` (``[...]``)::

        delta_t = r_t + gamma * ((1 - end_t) * V_{t+1} + end_t * end_value_t) - V_t
        A_t     = mask_t * (delta_t + gamma * lambda * (1 - end_t) * A_{t+1})

    with ``V_T = next_value``. ``end_t`` = 1 when the slot's trajectory stops after step
    ``t`` (terminated, truncated, the agent left, or the copy was reset); ``end_value_t`` is
    the value to bootstrap from there: 0 after a termination, ``V(final observation)``
    after a truncation. A slot with ``mask_t = 0`` (the agent did not act) gets advantage 0
    and passes nothing back; a slot that does not end at ``t`` must act at ``t + 1``.

    Args:
        rewards: ``r_t``.
        values: ``V(o_t)``.
        next_value: the value of the observation after the last step.
        ends: 1.0 where the trajectory ends after step ``t``.
        end_values: bootstrap values at the ends (ignored elsewhere).
        masks: 1.0 where the agent acted at step ``t``.
        gamma: discount.
        gae_lambda: the GAE lambda.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    import torch

    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        nextvalues = next_value if t == steps - 1 else values[t + 1]
        cont = 1.0 - ends[t]
        delta = rewards[t] + gamma * (cont * nextvalues + ends[t] * end_values[t]) - values[t]
        lastgaelam = (delta + gamma * gae_lambda * cont * lastgaelam) * masks[t]
        advantages[t] = lastgaelam
    return advantages, advantages + values


# --------------------------------------------------------------------------- episodes


class EpisodeStats:
    """Per-agent returns and lengths of the episodes of a vector env's copies.

    Args:
        num_envs: the number of copies.
        num_agents: the agent axis size.

    An agent's return is the sum of its rewards over the episode; agents that never acted
    in an episode get ``NaN`` for it. Finished episodes are kept until :meth:`scalars`
    summarizes them for logging.
    """

    def __init__(self, num_envs: int, num_agents: int) -> None:
        self.returns = np.zeros((num_envs, num_agents), dtype=np.float64)
        self.present = np.zeros((num_envs, num_agents), dtype=bool)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self._finished: list[tuple[np.ndarray, np.ndarray]] = []
        self.recent_return = float("nan")
        """Mean over agents of the mean return of the episodes last summarized."""

    def step(
        self, rewards: np.ndarray, acted: np.ndarray, reset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add one vector step; return the episodes that finished in it.

        Args:
            rewards: ``[E, A]`` rewards of the step.
            acted: ``[E, A]`` agents that acted (``infos["acted"]``).
            reset: ``[E]`` copies whose episode ended (``infos["reset"]``).

        Returns:
            ``(returns, lengths)``: ``[F, A]`` (NaN for absent agents) and ``[F]`` for the
            ``F`` finished episodes.
        """
        self.returns += rewards
        self.present |= acted
        self.lengths += 1
        done = np.flatnonzero(reset)
        returns = np.where(self.present[done], self.returns[done], np.nan)
        lengths = self.lengths[done].copy()
        self.returns[done] = 0.0
        self.present[done] = False
        self.lengths[done] = 0
        if done.size:
            self._finished.append((returns, lengths))
        return returns, lengths

    def scalars(self, agents: Sequence[str], prefix: str = "charts") -> dict[str, float]:
        """Summarize (and forget) the episodes finished since the last call, for logging.

        Args:
            agents: the names of the agent axis.
            prefix: the TensorBoard section.

        Returns:
            ``{prefix}/episodic_return`` (mean over agents of each agent's mean return),
            ``{prefix}/episodic_return/<agent>`` and ``{prefix}/episodic_length``; empty if
            no episode finished.
        """
        if not self._finished:
            return {}
        returns = np.concatenate([r for r, _ in self._finished])
        lengths = np.concatenate([n for _, n in self._finished])
        self._finished.clear()
        with warnings.catch_warnings():  # an agent absent from every episode: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            per_agent = np.nanmean(returns, axis=0)
        self.recent_return = float(np.nanmean(per_agent))
        scalars = {
            f"{prefix}/episodic_return": self.recent_return,
            f"{prefix}/episodic_length": float(lengths.mean()),
        }
        for agent, value in zip(agents, per_agent, strict=True):
            scalars[f"{prefix}/episodic_return/{agent}"] = float(value)
        return scalars

    def clear(self) -> None:
        """Forget the episodes in progress (after ``envs.reset``)."""
        self.returns.fill(0.0)
        self.present.fill(False)
        self.lengths.fill(0)


def _play(
    env: ParallelEnv, policies: Mapping[str, Any], seed: int | None, frames: list | None
) -> dict[str, float]:
    obs, _ = env.reset(seed=seed)
    for policy in policies.values():
        reset = getattr(policy, "reset", None)
        if callable(reset):
            reset()
    if frames is not None:
        frames.append(env.render())
    returns: dict[str, float] = {}
    while env.agents:
        missing = [a for a in env.agents if a not in policies]
        if missing:
            raise InvalidArgumentError(
                f"no policy for agents {missing}; policies has {sorted(policies)}"
            )
        actions = {a: policies[a](obs[a]) for a in env.agents}
        obs, rewards, _, _, _ = env.step(actions)
        for a, r in rewards.items():
            returns[a] = returns.get(a, 0.0) + float(r)
        if frames is not None:
            frames.append(env.render())
    return returns


def evaluate(
    env_fn: Callable[[], ParallelEnv],
    policies: Mapping[str, Any],
    episodes: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes with fixed policies; return each agent's returns.

    Episode ``i`` is reset with ``seed + i``.

    Args:
        env_fn: builds the env (e.g. :func:`make_env`'s result).
        policies: agent -> policy (``policy(observation) -> action``, optional ``reset()``);
            every agent that is ever in ``env.agents`` needs one.
        episodes: how many episodes, ``>= 1``.
        seed: seed of the first episode.

    Returns:
        agent -> ``[episodes]`` float array of returns, for every possible agent (``NaN``
        in episodes where the agent never got a reward).

    Raises:
        InvalidArgumentError: ``episodes < 1``; an agent without a policy.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise InvalidArgumentError(f"episodes must be an int >= 1; got {episodes!r}")
    env = env_fn()
    try:
        results = {a: np.full(episodes, np.nan) for a in env.possible_agents}
        for i in range(episodes):
            for a, r in _play(env, policies, seed + i, None).items():
                results[a][i] = r
    finally:
        env.close()
    return results


def record_video(
    env_fn: Callable[[], ParallelEnv],
    policies: Mapping[str, Any],
    path: str | os.PathLike[str],
    seed: int = 0,
    fps: int | None = None,
) -> Path | None:
    """Play one episode, rendering every frame, and write it with ``imageio``.

    ``env_fn`` must build the env with ``render_mode="rgb_array"``. The file is an MP4 when
    imageio has an FFmpeg backend (``imageio-ffmpeg``), otherwise a GIF (Pillow) with the
    same stem. Without ``imageio`` nothing is written and a warning says so.

    Args:
        env_fn: builds the env.
        policies: agent -> policy, as in :func:`evaluate`.
        path: the video file (``.mp4``); its folder is created.
        seed: the episode's seed.
        fps: frames per second (default: the env's ``metadata["render_fps"]`` or 10).

    Returns:
        The file written, or ``None`` without imageio.

    Raises:
        InvalidArgumentError: an agent without a policy.
    """
    try:
        import imageio.v3 as iio
    except ImportError:
        warnings.warn(
            "capture_video needs imageio (pip install imageio); no video written", stacklevel=2
        )
        return None
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renderers without a display
    env = env_fn()
    frames: list = []
    try:
        _play(env, policies, seed, frames)
        fps = fps or int(env.metadata.get("render_fps", 10))
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])
    try:
        iio.imwrite(path, stack, fps=fps)
        return path
    except Exception:  # no FFmpeg backend: fall back to a GIF
        if path.exists():
            path.unlink()
        gif = path.with_suffix(".gif")
        iio.imwrite(gif, stack, duration=1000 / fps, loop=0)
        return gif
