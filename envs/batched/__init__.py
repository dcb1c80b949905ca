"""Batched torch versions of the MPE envs and XNOR/XOR: ``B`` copies stepped as tensor ops.

``adv_envs.batched`` steps ``num_envs`` copies of one bundled env at once, on CPU or CUDA,
with the observations, rewards and episode ends of the PettingZoo env (to float tolerance,
see below). Importing it imports torch; ``import adv_envs`` does not.

    >>> import torch
    >>> from adv_envs import batched
    >>> env = batched.make("adv/cooperative_navigation-v0", num_envs=4, seed=0)
    >>> obs, infos = env.reset()
    >>> obs.shape, obs.dtype
    (torch.Size([4, 3, 18]), torch.float32)
    >>> actions = torch.zeros((4, 3), dtype=torch.long)
    >>> obs, rewards, terms, truncs, infos = env.step(actions)
    >>> rewards.shape, terms.dtype, infos["reset"].tolist()
    (torch.Size([4, 3]), torch.bool, [False, False, False, False])

Envs (the registry ID or the module name; the keyword arguments are those of the PettingZoo
env, validated by it, except ``render_mode``, which must be ``None``):

=================================  ======================================================
ID                                 arguments
=================================  ======================================================
``adv/independent_spread-v0``      ``N``, ``collision_penalty``, ``collision_count``,
                                   ``max_cycles``, ``continuous_actions``
``adv/cooperative_navigation-v0``  ``N``, ``local_ratio``, ``rewards``, ``max_cycles``,
                                   ``continuous_actions``
``adv/exchange_target-v0``         ``local_ratio``, ``rewards``, ``max_cycles``,
                                   ``continuous_actions``
``adv/keep_away-v0``               ``rewards``, ``max_cycles``, ``continuous_actions``
``adv/physical_deception-v0``      ``N``, ``rewards``, ``max_cycles``,
                                   ``continuous_actions``
``adv/xnor_xor-v0``                ``max_cycles``, ``discount``, ``initial_state_probs``,
                                   ``observe_history``
=================================  ======================================================

The contract (shapes as :mod:`adv_wrappers.vector`'s, ``B = num_envs``, ``A`` agents in
``possible_agents`` order, ``D = max(obs_sizes)``):

* ``make(env_id, num_envs, device="cpu", seed=None, **env_kwargs)`` builds one; ``seed``
  seeds its own ``torch.Generator`` (``env.generator``, on ``device``), from which all reset
  randomness (and XNOR/XOR's termination coins) is drawn; ``None`` seeds it from the OS.
* Attributes: ``possible_agents``, ``num_agents``, ``num_envs``, ``device``,
  ``observation_space(agent)`` / ``action_space(agent)`` (the PettingZoo env's own space
  objects), ``obs_sizes`` (agent ``i``'s true observation size), ``obs_dim`` (``D``),
  ``action_discrete``, ``action_nvec`` (Discrete ``n`` per agent, or ``None``),
  ``action_dim`` (Box size, or 1), ``state_space`` (the PettingZoo env's).
* ``reset(seed=None, options=None) -> (obs, infos)``: ``obs`` ``[B, A, D]`` float32,
  agent ``i``'s data in ``obs[:, i, :obs_sizes[i]]``, zeros after it; ``infos`` is ``{}``.
  An int ``seed`` reseeds the generator (the whole batch; there is no per-copy seed).
* ``step(actions) -> (obs, rewards, terminations, truncations, infos)``. ``actions``:
  ``[B, A]`` integer for Discrete agents, ``[B, A, action_dim]`` real for Box agents (cast to
  float32, the Box's dtype), a tensor on any device or an array. ``rewards`` ``[B, A]``
  float32; ``terminations``, ``truncations`` ``[B, A]`` bool. Same-step auto-reset: a copy
  whose episode ended is reset inside ``step``; ``infos["reset"]`` ``[B]`` bool marks it,
  ``infos["final_obs"]`` ``[B, A, D]`` holds its last observations (zeros elsewhere), its
  rewards and flags are those of the terminal step and its ``obs`` the new episode's first.
  Every agent acts at every step (no agent leaves before the others in these envs).
* ``state() -> [B, state_dim]`` float32: the PettingZoo env's ``state()`` of every copy.
* ``get_state() -> dict[str, Tensor]`` / ``set_state(dict)``: the whole batch's world (the
  env class's docstring lists the keys), e.g. to branch rollouts.
* ``load_from_pettingzoo(index, env)``: copy the world of a PettingZoo env (built with the
  same arguments) into row ``index``, step counter included; with it a test runs both from
  the same state and compares them step for step.

Errors (from :mod:`adv_wrappers.errors`): bad ``make`` arguments raise
``InvalidArgumentError`` naming the argument; ``step`` raises ``InvalidArgumentError`` for
actions of the wrong shape or dtype, ``InvalidActionError`` for a Discrete action out of
range or a Box action outside ``[0, 1]`` and ``MissingActionError`` for a NaN (as the vector
env does). The PettingZoo MPE envs assert Discrete actions in range and *clip* Box actions
with a warning; the batched env raises instead, so nothing is changed silently.
``BatchedEnvStateError`` is raised by ``step``/``state`` before the first ``reset``.

Exactness. The MPE envs compute in float64 as mpe2 does, operation by operation in mpe2's
order (see :mod:`adv_envs.batched.mpe`), and cast observations and rewards to float32 at the
end; XNOR/XOR is integer logic. ``tests/test_batched_envs.py`` loads ``B`` PettingZoo envs
(reset with different seeds) into the rows of a batch, steps both with the same random
actions for whole episodes and checks observations, rewards, terminations and truncations
step for step (tolerance ``1e-5`` absolute plus ``1e-6`` relative on float32 values; the
measured maximum is in ``docs/batched.md``). Reset distributions match (uniform positions in
``[-1, 1]^2``, uniform goals), not the random streams: numpy's and torch's generators differ.
"""

from __future__ import annotations

from typing import Any

from adv_envs._errors import InvalidArgumentError
from adv_envs.batched._base import BatchedEnv, BatchedEnvStateError
from adv_envs.batched.mpe import (
    BatchedMPE,
    CooperativeNavigation,
    ExchangeTarget,
    IndependentSpread,
    KeepAway,
    PhysicalDeception,
)
from adv_envs.batched.xnor_xor import XnorXor

ENVS: dict[str, type[BatchedEnv]] = {
    "adv/independent_spread-v0": IndependentSpread,
    "adv/cooperative_navigation-v0": CooperativeNavigation,
    "adv/exchange_target-v0": ExchangeTarget,
    "adv/keep_away-v0": KeepAway,
    "adv/physical_deception-v0": PhysicalDeception,
    "adv/xnor_xor-v0": XnorXor,
}
"""The batched envs by registry ID."""

ARGUMENTS: dict[str, tuple[str, ...]] = {
    "adv/independent_spread-v0": (
        "N",
        "collision_penalty",
        "collision_count",
        "max_cycles",
        "continuous_actions",
        "render_mode",
    ),
    "adv/cooperative_navigation-v0": (
        "N",
        "local_ratio",
        "max_cycles",
        "continuous_actions",
        "render_mode",
        "rewards",
    ),
    "adv/exchange_target-v0": (
        "local_ratio",
        "max_cycles",
        "continuous_actions",
        "render_mode",
        "rewards",
    ),
    "adv/keep_away-v0": ("max_cycles", "continuous_actions", "render_mode", "rewards"),
    "adv/physical_deception-v0": (
        "N",
        "max_cycles",
        "continuous_actions",
        "render_mode",
        "rewards",
    ),
    "adv/xnor_xor-v0": (
        "max_cycles",
        "discount",
        "initial_state_probs",
        "observe_history",
        "render_mode",
    ),
}
"""The keyword arguments each batched env accepts (its PettingZoo env's)."""


def env_id_of(name: str) -> str:
    """The registry ID of ``name`` (an ID of :data:`ENVS` or its module name)."""
    if isinstance(name, str):
        if name in ENVS:
            return name
        candidate = f"adv/{name}-v0"
        if candidate in ENVS:
            return candidate
    raise InvalidArgumentError(
        f"env_id must be one of {sorted(ENVS)} (or the name between 'adv/' and '-v0'), got {name!r}"
    )


def make(
    env_id: str, num_envs: int, device: Any = "cpu", seed: int | None = None, **env_kwargs: Any
) -> BatchedEnv:
    """``num_envs`` copies of ``env_id`` as one batched env on ``device``.

    Args:
        env_id: a registry ID of :data:`ENVS` (``"adv/cooperative_navigation-v0"``) or its
            name (``"cooperative_navigation"``).
        num_envs: the number of copies ``B`` (int >= 1).
        device: a torch device (``"cpu"``, ``"cuda"``, ``torch.device(...)``).
        seed: seeds the env's generator (int >= 0); ``None`` seeds it from the OS.
        **env_kwargs: the PettingZoo env's arguments (see the table above).

    Raises:
        InvalidArgumentError: an unknown ``env_id`` or argument, or a bad value.
    """
    env_id = env_id_of(env_id)
    allowed = ARGUMENTS[env_id]
    for key in env_kwargs:
        if key not in allowed:
            raise InvalidArgumentError(
                f"{env_id} takes the arguments {allowed}; got the unknown argument {key!r}"
            )
    return ENVS[env_id](num_envs, device=device, seed=seed, **env_kwargs)


__all__ = [
    "ARGUMENTS",
    "ENVS",
    "BatchedEnv",
    "BatchedEnvStateError",
    "BatchedMPE",
    "CooperativeNavigation",
    "ExchangeTarget",
    "IndependentSpread",
    "KeepAway",
    "PhysicalDeception",
    "XnorXor",
    "env_id_of",
    "make",
]
