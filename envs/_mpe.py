"""What the MPE-based bundled environments share: mpe2's AEC wrapping, their entry points and
the check of their ``rewards`` argument (mpe2's reward scale or the original MPE code's)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pettingzoo.utils import aec_to_parallel, wrappers

from adv_envs._errors import InvalidArgumentError

REWARD_SCALES = ("mpe2", "original")
"""The values of the ``rewards`` argument: mpe2's rewards, or those of the original MPE code
(Lowe et al. (2017), github.com/openai/multiagent-particle-envs) that He et al. (TMLR 2023) ran."""


def check_rewards(value: Any) -> str:
    """One of :data:`REWARD_SCALES`."""
    if not isinstance(value, str) or value not in REWARD_SCALES:
        raise InvalidArgumentError(f"rewards must be one of {REWARD_SCALES}, got {value!r}")
    return value


PYGAME_LOCK = threading.RLock()
"""Held while an MPE env is built or closed. mpe2's envs set up pygame's fonts in their
constructor and call ``pygame.quit()`` in ``close()``; pygame is not thread-safe, and two
threads doing either at once crash the process (``malloc(): ... corrupted``, or pygame's
segfault handler). Threads that build envs (a report's job threads, a thread pool of
evaluations) are serialised here; rendering from several threads is still unsafe."""


class PygameLocked:
    """The first base of every MPE raw env: its construction and ``close()`` hold
    :data:`PYGAME_LOCK`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with PYGAME_LOCK:
            super().__init__(*args, **kwargs)

    def close(self) -> None:
        with PYGAME_LOCK:
            super().close()  # type: ignore[misc]


def mpe_aec(raw: Any):
    """The AEC env of an MPE raw env, wrapped as mpe2 does: out-of-bounds actions are an error
    (discrete) or clipped with a warning (continuous), and the call order is enforced."""
    if raw.continuous_actions:
        inner = wrappers.ClipOutOfBoundsWrapper(raw)
    else:
        inner = wrappers.AssertOutOfBoundsWrapper(raw)
    return wrappers.OrderEnforcingWrapper(inner)


def entry_points(raw_env: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(env, parallel_env)`` of an MPE raw env class, as PettingZoo's modules define them."""

    def env(**kwargs: Any):
        """The AEC env (``OrderEnforcingWrapper`` around ``raw_env``, bounds checked as mpe2)."""
        return mpe_aec(raw_env(**kwargs))

    def parallel_env(**kwargs: Any):
        """The parallel env; keyword arguments as in the module docs."""
        return aec_to_parallel(env(**kwargs))

    return env, parallel_env
