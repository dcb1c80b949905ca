"""Vectorized rollouts of PettingZoo ``ParallelEnv``\\ s as batched numpy arrays.

``num_envs`` copies of a (possibly wrapped) :class:`pettingzoo.ParallelEnv` are stepped
together; every output is a numpy array shaped ``[num_envs, num_agents, ...]`` whose agent
axis follows ``possible_agents`` of the first copy. This is the rollout shape CleanRL-style
trainers store (``obs[step] = next_obs``).

Backends:

* :class:`SyncParallelVectorEnv` steps the copies one after the other in this process.
* :class:`SubprocParallelVectorEnv` runs one worker process per copy (``multiprocessing``
  pipes; the ``env_fns`` are pickled with ``cloudpickle``). Each step sends one message to
  and receives one message from every worker; a worker ships its whole result as one packed
  byte row. An exception raised inside a worker is re-raised in the parent with the original
  type and message; the worker's traceback text is attached as ``__cause__``.
* :func:`make_vector_env` builds either from one ``env_fn``.
* :class:`BatchedVectorEnv` puts the same interface over a batched torch env
  (:mod:`adv_envs.batched`: all copies stepped as tensor operations), running k-corruption,
  Byzantine and partial control with exposed adversaries; :class:`BatchedFreeze` adds frozen
  agents (``freeze_v0``) evaluated on the whole batch. Trainers reach both with
  ``--vector-backend batched`` (:func:`adv_wrappers.train.envs.make_vector_env`).

Shapes (``E = num_envs``, ``A = num_agents``):

====================  ======================  ===============================================
output                shape                   dtype
====================  ======================  ===============================================
observations          ``[E, A, *obs_shape]``  see the heterogeneity rule below
actions (input)       ``[E, A]``              integer (all Discrete action spaces)
actions (input)       ``[E, A, max_dim]``     float/int (all Box action spaces; float for a mix)
rewards               ``[E, A]``              ``float32``
terminations          ``[E, A]``              ``bool``
truncations           ``[E, A]``              ``bool``
====================  ======================  ===============================================

Heterogeneity rule (observations):

* Every agent's space is a ``Box`` with the same shape and dtype: the batch keeps that shape
  (images stay ``[E, A, H, W, C]``); ``single_observation_space`` is a ``Box`` of that shape
  whose bounds are the element-wise min of the lows and max of the highs (the space itself
  when all agents share one).
* All ``Box`` but shapes or dtypes differ: each observation is flattened and zero-padded to
  the largest flat size, dtype ``np.result_type`` of all dtypes. ``single_observation_space``
  is a 1-D ``Box`` of the padded size whose bounds are the min of lows / max of highs over
  agents, each agent's bounds padded with 0 (so the padding itself is in bounds).
  ``obs_sizes[i]`` is agent ``i``'s true flat size: ``obs[e, i, :obs_sizes[i]]`` is its data.
* All ``Discrete``: int64 scalars, batch ``[E, A]``; ``single_observation_space`` is a
  ``Discrete`` covering every agent's values.
* Anything else (``Dict`` -- including classic games' ``{"observation", "action_mask"}`` --
  ``Tuple``, ``MultiDiscrete``, a mix of ``Box`` and ``Discrete``) raises
  :class:`~adv_wrappers.errors.UnsupportedSpaceError` naming the agents.

Heterogeneity rule (actions):

* All ``Discrete``: integer array ``[E, A]``; ``action_nvec[i]`` is agent ``i``'s ``n``
  (heterogeneous ``n`` is allowed; an out-of-range value for an agent that must act raises).
  Values are the space's own values (``start`` included) and reach the env as Python ints.
* All ``Box``: array ``[E, A, max_dim]`` where ``max_dim`` is the largest flat action size;
  agent ``i`` receives ``actions[e, i, :action_sizes[i]]`` reshaped to its space's shape and
  cast to its space's dtype (a fresh array each step). The padding columns are not read.
* A mix of ``Box`` and ``Discrete`` (e.g. Discrete agents beside the Box observation
  adversaries of ``state_perturbation_v0``): one float array ``[E, A, max_dim]``; a Discrete
  agent reads column 0, an integral value in its range (``start`` included), sent as a
  Python int; ``action_sizes[i] = 1``, ``action_nvec`` is ``None``.
* Anything else raises :class:`~adv_wrappers.errors.UnsupportedSpaceError`.

Masks. An agent slot is *alive* when the agent is in ``env.agents``, i.e. it must act next.
:meth:`step` sends ``actions[e, i]`` to copy ``e`` only where ``alive[e, i]`` was True after
the previous :meth:`reset`/:meth:`step` (the ``alive`` attribute); every other entry is
padding and is never read, so any value (``-1``, ``NaN``) may sit there. Agents missing from a
step's dicts get reward 0, ``False`` flags and an all-zero observation; the masks in ``infos``
say which entries are real. Agents of ``possible_agents`` that never appear stay masked, and
agents that vanish (die, are removed by a wrapper) or appear mid-episode (an adversary agent
added by a wrapper) just flip their slot's mask.

``reset(seed, options) -> (obs, infos)``. An ``int`` seed ``s`` seeds copy ``i`` with
``s + i``; a list gives one seed (or ``None``) per copy; ``None`` leaves every copy's RNG as
it is. ``options`` goes to every copy and is remembered for auto-resets; with
``options["episode_schedule"] = {key: table}`` copy ``e``'s ``l``-th episode since the reset
gets ``key = table[e][l]`` (repeating with the row's length), on every backend. ``infos`` holds
``"alive"`` ``[E, A]``, ``"has_obs"`` ``[E, A]`` (agents whose observation the env returned)
and ``"agent_infos"`` (list of the ``E`` per-agent info dicts the copies returned).

``step(actions) -> (obs, rewards, terminations, truncations, infos)``; ``infos`` keys:

================  ==========  ==========================================================
key               shape       meaning
================  ==========  ==========================================================
``alive``         ``[E, A]``  agents in ``env.agents`` after this step: the ones that must
                              act next (after an auto-reset: the new episode's agents)
``acted``         ``[E, A]``  agents whose actions were sent this step (previous ``alive``)
``has_obs``       ``[E, A]``  agents with an observation in ``obs`` (after an auto-reset:
                              the new episode's first observations)
``has_reward``    ``[E, A]``  agents that had an entry in the env's reward dict this step
``reset``         ``[E]``     this copy finished an episode this step and was auto-reset
``final_obs``     like obs    the finished episode's last observations where ``reset``
                              (zeros elsewhere)
``final_alive``   ``[E, A]``  agents with a row in ``final_obs`` (the terminal step's
                              ``has_obs``); False where not ``reset``
``agent_infos``   list ``E``  the per-agent info dicts each copy returned at this step (for
                              a reset copy: the terminal step's infos)
``reset_infos``   list ``E``  the infos of the auto-reset, ``None`` for other copies
================  ==========  ==========================================================

Rewards, terminations and truncations of a reset copy are those of its terminal step.

``perturb(actions) -> (obs, infos)``, for copies wrapped in
``state_perturbation_v0(timing="same_step")`` only: the first phase of a step. Each copy's
awaiting exposed adversaries get their entries of ``actions`` (nothing else is read), and the
returned batch has the attacked agents' perturbed observations; ``infos["perturbed"]``
``[E]`` and ``infos["agent_infos"]`` (each copy's ground truth, ``None`` where nothing awaited
a perturbation). :meth:`step` then takes the same array.

Global state (``state=True``, e.g. for a centralized critic): every copy must have a ``Box``
``state_space`` and ``state()``; the vector env's ``state_space`` is that space, and the infos
of ``reset`` and ``step`` gain ``"state"`` ``[E, *state_shape]`` (``env.state()`` after the
call; after an auto-reset, the new episode's first state), and those of ``step`` gain
``"final_state"`` (the finished episode's last state where ``reset``, zeros elsewhere).

Auto-reset ("same step", as CleanRL expects): when a copy has no agents left after a step
(``not env.agents``) it is reset at once with ``env.reset(seed=None, options=<options of the
last reset() call>)``, continuing its RNG; the returned observations of that copy are the new
episode's first ones and the true last observations are in ``infos["final_obs"]``.

Outputs are fresh arrays by default. With ``copy=False`` they are views of internal buffers
that the next :meth:`reset`/:meth:`step` overwrites (and are not C-contiguous).

Errors:
    InvalidArgumentError: bad ``env_fns``/``num_envs``/``backend``/``context``/``seed``; copies
        whose ``possible_agents`` or spaces (state spaces with ``state=True``) differ; an
        ``actions`` array with the wrong shape or dtype; ``state=True`` for an env without
        ``state_space``.
    UnsupportedSpaceError: an observation or action space outside the rules above; a
        ``state_space`` that is not a ``Box`` (``state=True``).
    InvalidActionError: a Discrete action out of its agent's range (or, in a mix, not an
        integral value) where the agent must act.
    MissingActionError: a ``NaN`` Box action where the agent must act (padding where a real
        action was due).
    UnknownAgentError: an env reports an agent that is not in its ``possible_agents``.
    VectorEnvStateError: ``step`` before ``reset`` or after a step that raised, use after
        ``close``, or a worker process that died.
    Any exception raised by an env (in a subprocess worker: same type and message, with the
    worker's traceback text as ``__cause__``).

Example:
    >>> from functools import partial
    >>> import numpy as np
    >>> from mpe2 import simple_tag_v3
    >>> from adv_wrappers.vector import make_vector_env
    >>> env_fn = partial(simple_tag_v3.parallel_env, max_cycles=25)
    >>> with make_vector_env(env_fn, num_envs=2) as envs:
    ...     obs, infos = envs.reset(seed=0)
    ...     print(envs.agents)
    ...     print(obs.shape, envs.obs_sizes.tolist(), envs.action_nvec.tolist())
    ...     rng = np.random.default_rng(0)
    ...     resets = 0
    ...     for _ in range(30):
    ...         actions = rng.integers(0, envs.action_nvec, size=(2, envs.num_agents))
    ...         obs, rewards, terms, truncs, infos = envs.step(actions)
    ...         resets += int(infos["reset"].sum())
    ...     print(rewards.dtype, rewards.shape, infos["final_obs"].shape, resets)
    ('adversary_0', 'adversary_1', 'adversary_2', 'agent_0')
    (2, 4, 16) [16, 16, 16, 14] [5, 5, 5, 5]
    float32 (2, 4) (2, 4, 16) 2

Change logs:
    * v0.1.0 - Initially added.
    * v0.1.0 - ``state=True``: the global state in the infos (for centralized critics).
    * v0.2.0 - A package: the public names above stay here, the machinery moved to private
      modules (``_layout``: spaces and buffers, ``_sync``: runner, base class and the sync
      backend, ``_subproc``: worker and the subprocess backend).
"""

from __future__ import annotations

from collections.abc import Callable

from pettingzoo import ParallelEnv

from adv_wrappers.errors import InvalidArgumentError, VectorEnvStateError
from adv_wrappers.vector._batched import BatchedVectorEnv
from adv_wrappers.vector._batched_frozen import BatchedFreeze
from adv_wrappers.vector._scenarios import ScenarioStack, stacked_agent_id
from adv_wrappers.vector._subproc import SubprocParallelVectorEnv
from adv_wrappers.vector._sync import SyncParallelVectorEnv, check_num_envs

__all__ = [
    "BACKENDS",
    "BatchedFreeze",
    "BatchedVectorEnv",
    "ScenarioStack",
    "SubprocParallelVectorEnv",
    "SyncParallelVectorEnv",
    "VectorEnvStateError",
    "make_vector_env",
    "stacked_agent_id",
]

BACKENDS = ("sync", "subproc")
"""Values accepted by ``make_vector_env(backend=...)``."""


# --------------------------------------------------------------------------- factory


def make_vector_env(
    env_fn: Callable[[], ParallelEnv],
    num_envs: int,
    *,
    backend: str = "sync",
    context: str | None = None,
    copy: bool = True,
    state: bool = False,
) -> SyncParallelVectorEnv | SubprocParallelVectorEnv:
    """Build ``num_envs`` copies of ``env_fn()`` as one vector env.

    Args:
        env_fn: callable returning a ``pettingzoo.ParallelEnv`` (called once per copy, in its
            worker for ``backend="subproc"``).
        num_envs: number of copies, ``>= 1``.
        backend: ``"sync"`` (:class:`SyncParallelVectorEnv`) or ``"subproc"``
            (:class:`SubprocParallelVectorEnv`).
        context: ``multiprocessing`` start method, ``"subproc"`` only.
        copy: see :class:`SyncParallelVectorEnv`.
        state: add the copies' global ``state()`` to the infos (module docstring).

    Raises:
        InvalidArgumentError: ``env_fn`` not callable, ``num_envs < 1``, unknown ``backend``,
            ``context`` given with ``backend="sync"``, and everything the backend raises.
        UnsupportedSpaceError: see the module docstring.
    """
    if not callable(env_fn):
        raise InvalidArgumentError(
            f"env_fn must be a callable returning a ParallelEnv; got {env_fn!r}"
        )
    num_envs = check_num_envs(num_envs)
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}; got {backend!r}")
    env_fns = [env_fn] * num_envs
    if backend == "sync":
        if context is not None:
            raise InvalidArgumentError(
                f"context is only used by backend='subproc'; got context={context!r} with "
                "backend='sync'"
            )
        return SyncParallelVectorEnv(env_fns, copy=copy, state=state)
    return SubprocParallelVectorEnv(env_fns, context=context, copy=copy, state=state)
