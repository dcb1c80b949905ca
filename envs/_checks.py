"""Argument checks shared by the bundled environments.

Each returns the normalized value or raises :class:`~adv_wrappers.errors.InvalidArgumentError`
naming the argument and what is allowed (nothing is clipped or coerced silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adv_envs._errors import InvalidArgumentError


def check_int(value: Any, argument: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An int (not a bool) in ``[minimum, maximum]`` (``maximum=None``: no upper bound)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):
        allowed = f"an int >= {minimum}" if maximum is None else f"an int in {minimum}..{maximum}"
        raise InvalidArgumentError(f"{argument} must be {allowed}, got {value!r}")
    return int(value)


def check_bool(value: Any, argument: str) -> bool:
    """A bool (``True``/``False``, numpy bools too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{argument} must be True or False, got {value!r}")
    return bool(value)


def check_float(
    value: Any, argument: str, low: float | None = None, high: float | None = None
) -> float:
    """A finite real number in ``[low, high]`` (either bound may be None)."""
    allowed = (
        f"a finite number in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{argument} must be {allowed}, got {value!r}")
    number = float(value)
    if (
        not np.isfinite(number)
        or (low is not None and number < low)
        or (high is not None and number > high)
    ):
        raise InvalidArgumentError(f"{argument} must be {allowed}, got {value!r}")
    return number


def check_render_mode(value: Any, allowed: Sequence[str | None] = (None, "rgb_array", "human")):
    """One of ``allowed``."""
    if value not in allowed or (value is not None and not isinstance(value, str)):
        raise InvalidArgumentError(f"render_mode must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_choice(value: Any, argument: str, allowed: Sequence[Any]) -> Any:
    """One of ``allowed`` (compared by equality; a bool never matches a number)."""
    try:
        ok = not isinstance(value, (bool, np.bool_)) and value in allowed
    except (TypeError, ValueError):  # e.g. an array, whose == is elementwise
        ok = False
    if not ok:
        raise InvalidArgumentError(f"{argument} must be one of {tuple(allowed)}, got {value!r}")
    return value
