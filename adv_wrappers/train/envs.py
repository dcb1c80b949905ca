"""The env of a run, and playing trained policies in it.

* :func:`make_env` - the env of a run from its registry ID, keyword arguments, threat-model
  configuration and frozen policies, as the ``env_fn`` that
  :func:`adv_wrappers.vector.make_vector_env` takes.
* :func:`make_vector_env` - the vector env of a run, on one of :data:`VECTOR_BACKENDS`.
* :func:`check_trainable` - the spaces a trainer can handle; :func:`action_mask` - each
  agent's own columns of a padded Box action.
* :func:`evaluate`, :func:`record_video` - play policies (e.g. loaded with
  :func:`adv_wrappers.train.load_policy`) in a fresh env.
* :func:`victims_return` - the victims' per-episode return from :func:`evaluate`'s results.

Threat configurations are JSON dicts so they can be stored in checkpoints:
``{"name": "k_corruption_v0", "kwargs": {"k": 1, "adversary": "random"}}``. ``name`` is a key
of :data:`adv_wrappers.registry.THREAT_MODELS`. Wherever a policy is expected (a threat's
``adversary``, a frozen agent), a *policy reference* ``{"checkpoint": PATH, "agent": ID}``
(optional ``"name"``, ``"deterministic"``, ``"seed"``) is loaded with
:func:`~adv_wrappers.train.load_policy` when the env is built (in its worker process for
the subprocess backend).

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
    * v0.2.0 - Moved here from ``adv_wrappers.training`` (its argument, seeding and rollout
      parts are in :mod:`adv_wrappers.train.config` and :mod:`adv_wrappers.train.rollout`);
      :func:`victims_return` added.
    * v0.1.0 - Initially added.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pettingzoo
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

import adv_envs  # noqa: F401  (registers the bundled envs)
from adv_wrappers.core import adversary_id
from adv_wrappers.errors import InvalidArgumentError, UnsupportedSpaceError
from adv_wrappers.freeze import freeze_v0
from adv_wrappers.registry import THREAT_MODELS

__all__ = [
    "BATCHED_THREATS",
    "VECTOR_BACKENDS",
    "action_mask",
    "check_trainable",
    "evaluate",
    "executed_actions",
    "make_env",
    "make_vector_env",
    "record_video",
    "victims_return",
]


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
            from adv_wrappers.train import load_policy

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
        env = freeze_v0(env, _frozen_policies(frozen))
    return env


def _frozen_policies(frozen: Mapping[str, Any]) -> dict[str, Any]:
    """``frozen``'s policies, references loaded (``"agent"`` defaulting to the key)."""
    refs = {
        agent: ({"agent": agent, **p} if isinstance(p, Mapping) and "agent" not in p else p)
        for agent, p in frozen.items()
    }
    return _resolve_policy_refs(refs)


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


VECTOR_BACKENDS = ("sync", "subproc", "batched")
"""The trainers' ``--vector-backend`` values: PettingZoo copies in this process or one worker
each (:func:`adv_wrappers.vector.make_vector_env`), or a batched torch env
(:mod:`adv_envs.batched`, :class:`adv_wrappers.vector.BatchedVectorEnv`)."""
BATCHED_THREATS = ("k_corruption_v0", "byzantine_v0", "partial_control_v0", "state_perturbation_v0")
"""The threat models (:data:`THREAT_MODELS` keys) that the batched backend runs (the action
threats with exposed adversaries; state perturbation by noise, checkpoint policies or exposed
adversaries: :class:`adv_wrappers.vector.BatchedVectorEnv`)."""


def make_vector_env(
    env_fn: Callable[[], ParallelEnv],
    num_envs: int,
    backend: str = "sync",
    *,
    device: Any = "cpu",
    state: bool = False,
    scenarios: Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """The trainers' vector env for ``env_fn`` (from :func:`make_env`): ``backend`` is one of
    :data:`VECTOR_BACKENDS`, so a trainer switches to the batched path with one flag.

    ``scenarios`` (a list of ``{"name", "agents", "options"}``) stacks several scenarios of
    the threat model side by side (:class:`adv_wrappers.vector.ScenarioStack`): ``num_envs``
    copies *per scenario*, each scenario's outside agents renamed ``"<name>/<agent>"``, so
    that one run trains every scenario's own networks.

    ``"batched"`` builds the env's batched torch version (:func:`adv_envs.batched.make`) on
    ``device`` with the same registry ID and keyword arguments, behind the same interface
    (``state=True`` included). A threat of :data:`BATCHED_THREATS` runs on it (one PettingZoo
    copy of the wrapper is built for its configuration and episode code), and ``frozen``
    agents act inside through :class:`adv_wrappers.vector.BatchedFreeze` (checkpoint policies
    evaluated on the whole batch, or ``"random"``); the other threat models and embedded
    adversaries are not on that path yet.

    Raises:
        InvalidArgumentError: an unknown ``backend``; with ``"batched"``: an ``env_fn`` not made
            by :func:`make_env`, an env without a batched version, a threat model not in
            :data:`BATCHED_THREATS` (or with an embedded adversary), or frozen policies that
            do not act on batches (see :class:`adv_wrappers.vector.BatchedFreeze`); bad
            ``scenarios`` (see :class:`adv_wrappers.vector.ScenarioStack`).
    """
    from adv_wrappers.vector import ScenarioStack

    if scenarios is None:
        return _vector_env(env_fn, num_envs, backend, device, state)
    if isinstance(scenarios, (str, bytes, Mapping)) or not isinstance(scenarios, Sequence):
        raise InvalidArgumentError(
            f"scenarios must be a list of scenario dicts or None; got {scenarios!r}"
        )
    copies = num_envs * max(len(scenarios), 1)
    return ScenarioStack(_vector_env(env_fn, copies, backend, device, state), scenarios)


def _vector_env(
    env_fn: Callable[[], ParallelEnv], num_envs: int, backend: str, device: Any, state: bool
) -> Any:
    from adv_wrappers.vector import BatchedFreeze, BatchedVectorEnv
    from adv_wrappers.vector import make_vector_env as pettingzoo_vector_env

    if backend not in VECTOR_BACKENDS:
        raise InvalidArgumentError(
            f"vector backend must be one of {VECTOR_BACKENDS}; got {backend!r}"
        )
    if backend != "batched":
        return pettingzoo_vector_env(env_fn, num_envs, backend=backend, state=state)
    if not (isinstance(env_fn, functools.partial) and env_fn.func is _build_env):
        raise InvalidArgumentError(
            "the batched vector backend needs an env_fn made by make_env (it rebuilds the env "
            f"from its registry ID); got {env_fn!r}"
        )
    env_id, env_kwargs, threat, frozen, _ = env_fn.args
    from adv_envs import batched

    if env_id not in batched.ENVS:
        raise InvalidArgumentError(
            f"{env_id!r} has no batched version; the batched envs are {sorted(batched.ENVS)}"
        )
    template = None
    if threat is not None:
        if threat["name"] not in BATCHED_THREATS:
            raise InvalidArgumentError(
                f"the batched vector backend runs the threat models {BATCHED_THREATS}; "
                f"{threat['name']!r} runs on the sync and subproc backends"
            )
        # one PettingZoo copy of the wrapper: its spaces, configuration and episode code
        template = _build_env(env_id, env_kwargs, threat, None, None)
    envs = BatchedVectorEnv(
        batched.make(env_id, num_envs, device=device, **env_kwargs), state, threat=template
    )
    if frozen:
        return BatchedFreeze(envs, _frozen_policies(frozen))
    return envs


def check_trainable(envs: Any, box_sizes: bool = False) -> tuple[int, gymnasium.Space]:
    """Check that a vector env's spaces fit the MLP trainers; return what they need.

    The trainers flatten Box observations (zero-padded to a common size by the vector env)
    and need every agent to have the same action space, Discrete or Box. With
    ``box_sizes=True`` (``ippo.py``) Box action spaces may differ in size, e.g. the state
    adversaries of ``state_perturbation_v0`` on an env whose agents observe different sizes:
    the trainer acts in the vector env's padded space and masks each agent's padding
    (:func:`action_mask`); every agent's bounds must then be the padded space's on its own
    columns (the same bounds, e.g. ``[-1, 1]`` everywhere, cut to size).

    Args:
        envs: an :mod:`adv_wrappers.vector` env.
        box_sizes: allow Box action spaces of different sizes.

    Returns:
        ``(obs_dim, action_space)``: the flat (padded) observation size and the common
        action space (with ``box_sizes``: the vector env's padded ``single_action_space``).

    Raises:
        UnsupportedSpaceError: Discrete observations, or agents with different action spaces
            (with ``box_sizes``: not all Box, or bounds that the padded space does not
            repeat).
    """
    if not isinstance(envs.single_observation_space, spaces.Box):
        raise UnsupportedSpaceError(
            f"the trainers need Box observations; {envs.single_observation_space} is not one"
        )
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    first = envs.action_spaces[envs.agents[0]]
    differ = [a for a in envs.agents if envs.action_spaces[a] != first]
    if not differ:
        return obs_dim, first
    if box_sizes and all(isinstance(envs.action_spaces[a], spaces.Box) for a in envs.agents):
        padded = envs.single_action_space
        other = []
        for i, a in enumerate(envs.agents):
            own, size = envs.action_spaces[a], int(envs.action_sizes[i])
            if not (
                np.array_equal(own.low.ravel(), padded.low[:size])
                and np.array_equal(own.high.ravel(), padded.high[:size])
            ):
                other.append(a)
        if not other:
            return obs_dim, padded
        raise UnsupportedSpaceError(
            f"agents with Box actions of different sizes need the same bounds on their "
            f"columns; {other} differ from the padded {padded}"
        )
    raise UnsupportedSpaceError(
        f"the trainers need one action space for every agent; {envs.agents[0]!r} has "
        f"{first} but {differ} differ"
        + ("" if box_sizes else " (ippo.py takes Box actions of different sizes)")
    )


def action_mask(envs: Any) -> np.ndarray | None:
    """``[A, dim]`` bool: the columns of the padded Box action that are agent ``i``'s own
    (``None`` when every agent has the same action size, or the actions are Discrete)."""
    sizes = np.asarray(envs.action_sizes)
    if envs.action_nvec is not None or (sizes == sizes[0]).all():
        return None
    dim = int(np.prod(envs.single_action_space.shape))
    return np.arange(dim)[None, :] < sizes[:, None]


def executed_actions(
    agent_infos: Sequence[Mapping[str, Mapping[str, Any]]], agents: Sequence[str]
) -> np.ndarray:
    """Which agents' actions of a vector step reached the env: ``[E, A]`` bool.

    False exactly where an agent is the exposed adversary of ``partial_control_v0`` and the
    wrapper executed alpha's benign action instead of its own at this step (the wrapper's
    ground truth ``info["partial_control"]["adversary_acted"]``); True everywhere else.

    Args:
        agent_infos: the vector env's ``infos["agent_infos"]`` of one step (per copy, agent
            -> info dict).
        agents: the vector env's agent slots, in order.
    """
    out = np.ones((len(agent_infos), len(agents)), dtype=bool)
    for e, infos in enumerate(agent_infos):
        for i, agent in enumerate(agents):
            info = (infos or {}).get(agent) or {}
            acted = (info.get("partial_control") or {}).get("adversary_acted") or {}
            for alpha, flag in acted.items():
                if adversary_id(alpha) == agent:
                    out[e, i] = bool(flag)
    return out


# --------------------------------------------------------------------------- playing


def _play(
    env: ParallelEnv,
    policies: Mapping[str, Any],
    seed: int | None,
    frames: list | None,
    observations: Mapping[str, list] | None = None,
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
        if observations is not None:
            for a in env.agents:
                if a in observations:
                    observations[a].append(np.asarray(obs[a], np.float64).ravel())
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
    observations: Mapping[str, list] | None = None,
) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes with fixed policies; return each agent's returns.

    Episode ``i`` is reset with ``seed + i``.

    Args:
        env_fn: builds the env (e.g. :func:`make_env`'s result).
        policies: agent -> policy (``policy(observation) -> action``, optional ``reset()``);
            every agent that is ever in ``env.agents`` needs one.
        episodes: how many episodes, ``>= 1``.
        seed: seed of the first episode.
        observations: agent -> list; every observation the agent acts on is appended to
            its list (flattened, float64), e.g. for :func:`adv_wrappers.stealth.state_shift`.

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
            for a, r in _play(env, policies, seed + i, None, observations).items():
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


def victims_return(
    results: Mapping[str, np.ndarray], victims: Sequence[str] | None, agents: Sequence[str]
) -> np.ndarray:
    """Per episode, the mean return of the victims present, from :func:`evaluate`'s results.

    Args:
        results: agent -> ``[episodes]`` returns (``NaN`` where absent).
        victims: the victims, or ``None`` for every agent of ``agents`` found in ``results``
            (the benign team).
        agents: the benign agents.

    Returns:
        ``[episodes]`` float array.
    """
    names = list(victims) if victims is not None else [a for a in agents if a in results]
    with warnings.catch_warnings():  # an episode without any victim present: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack([results[a] for a in names]), axis=0)
