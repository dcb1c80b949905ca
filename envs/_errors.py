"""The error classes the bundled environments raise (private: import them from
``adv_wrappers.errors``, which re-exports these very classes).

They live here, in the lower layer, so that ``adv_envs`` never imports ``adv_wrappers``:
``adv_wrappers.errors.InvalidArgumentError is adv_envs._errors.InvalidArgumentError``, so every
``except`` clause written against ``adv_wrappers.errors`` catches what an env raises.
"""

from __future__ import annotations


class AdvWrappersError(Exception):
    """Base class of every error raised by ``adv_wrappers`` and the bundled environments."""


class InvalidArgumentError(AdvWrappersError, ValueError):
    """An argument has a value outside the documented range or set of allowed values."""


class InvalidActionError(AdvWrappersError, ValueError):
    """A policy (adversary, benign or frozen) returned an action outside the agent's space."""


class MissingActionError(AdvWrappersError, KeyError):
    """``step`` was not given an action for an agent that must act, or got one for an agent
    that is not acting."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
