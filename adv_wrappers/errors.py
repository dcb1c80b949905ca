"""Typed errors raised by the threat-model wrappers.

Every error names the offending argument (or agent) and what is allowed, so that a
misconfigured experiment fails at construction or at the exact step where it went wrong,
never by silently clipping, dropping or ignoring input.

``AdvWrappersError``, ``InvalidArgumentError``, ``InvalidActionError`` and
``MissingActionError`` are defined in the bundled environments' package (``adv_envs``, the
lower layer, which raises them too and never imports ``adv_wrappers``) and re-exported here:
they are the same classes, so one ``except`` catches an error from a wrapper or from an env.
"""

from __future__ import annotations

from adv_envs._errors import (
    AdvWrappersError,
    InvalidActionError,
    InvalidArgumentError,
    MissingActionError,
)

__all__ = [
    "AdvWrappersError",
    "AgentIDCollisionError",
    "CallOrderError",
    "CheckpointError",
    "EnvKindError",
    "InvalidActionError",
    "InvalidArgumentError",
    "InvalidPriorError",
    "MissingActionError",
    "PlayOutLimitError",
    "UnknownAgentError",
    "UnsupportedSpaceError",
    "VectorEnvStateError",
]


class EnvKindError(InvalidArgumentError, TypeError):
    """A factory was given the wrong kind of env: an ``AECEnv`` where it takes a
    ``ParallelEnv`` or the reverse, or something that is not a PettingZoo env at all. The
    message names the factory or conversion that fits."""


class UnknownAgentError(InvalidArgumentError, KeyError):
    """An agent ID is not one of the wrapped environment's ``possible_agents``."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""


class InvalidPriorError(InvalidArgumentError):
    """A type prior is not a probability distribution over admissible type vectors."""


class UnsupportedSpaceError(AdvWrappersError, TypeError):
    """A wrapper was asked to act on a space it cannot handle (e.g. perturbing a Discrete obs)."""


class PlayOutLimitError(AdvWrappersError, RuntimeError):
    """``freeze_v0`` played an episode out for its frozen agents for more steps than allowed
    (an env whose episodes never end once the outside agents are done)."""


class AgentIDCollisionError(AdvWrappersError, ValueError):
    """An adversary agent ID the wrapper would create already exists in the wrapped env."""


class VectorEnvStateError(AdvWrappersError, RuntimeError):
    """A vector env was used out of order: stepped before ``reset()`` (or after a ``step``
    that raised, which leaves the copies out of step), used after ``close()``, or one of its
    worker processes died."""


class CallOrderError(AdvWrappersError, RuntimeError):
    """A wrapper's methods were called out of order: ``state_perturbation_v0(timing=
    "same_step")``'s ``step()`` before ``perturb()`` for an observation that awaits its
    perturbation, ``perturb()`` twice for one observation, or ``perturb()`` when nothing
    awaits one."""


class CheckpointError(AdvWrappersError):
    """A checkpoint cannot be used: the file is missing, truncated or corrupt, it is not an
    ``adv_wrappers`` checkpoint, it has no policy for the requested agent, or it was trained
    on an env whose spaces differ from the env it is loaded against (the message names the
    agent and both spaces)."""
