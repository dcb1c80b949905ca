"""The registry of threat models: what the tests, the demo and the benchmark iterate over.

Registering a new threat model here is all it takes for the API, seed and property tests,
the demo table and the benchmark to cover it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
from pettingzoo.utils.env import ParallelEnv

from adv_wrappers.byzantine import byzantine_v0
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.k_corruption import k_corruption_v0
from adv_wrappers.partial_control import partial_control_v0
from adv_wrappers.state_perturbation import state_perturbation_v0

SLOTS = ("exposed", "embedded")


@dataclass(frozen=True)
class ThreatModel:
    """One registered threat model.

    Attributes:
        name: the versioned factory name, e.g. ``"k_corruption_v0"``.
        factory: the parallel factory.
        paper: the paper and section it implements, as a citation key of
            ``docs/references.md`` (e.g. ``"Nika et al. (TMLR 2024), Sec. 2.2"``).
        slot_argument: the argument choosing who attacks (``"adversary"`` or ``"attack"``).
        embedded_value: the value of ``slot_argument`` for a random embedded attacker.
        needs_box_observations: the attacked agents must have Box observation spaces.
        default_kwargs: the arguments of a typical configuration for a given env.
        aec_factory_name: name of the AEC factory in ``adv_wrappers`` (turn-based games), or None.
    """

    name: str
    factory: Callable[..., ParallelEnv]
    paper: str
    slot_argument: str
    embedded_value: Any
    needs_box_observations: bool
    default_kwargs: Callable[[Any], dict[str, Any]]
    aec_factory_name: str | None = None

    def applies_to(self, env: Any) -> bool:
        """Whether this threat model can wrap ``env`` (parallel or AEC) in its default config."""
        if not self.needs_box_observations:
            return True
        return all(
            isinstance(env.observation_space(a), gymnasium.spaces.Box) for a in env.possible_agents
        )

    def make(self, env: Any, slot: str = "exposed", **overrides: Any) -> Any:
        """Wrap ``env`` in the default configuration with the given slot (overrides win)."""
        if slot not in SLOTS:
            raise InvalidArgumentError(f"slot={slot!r} is not allowed; use one of {SLOTS}")
        kwargs = self.default_kwargs(env)
        kwargs[self.slot_argument] = None if slot == "exposed" else self.embedded_value
        kwargs.update(overrides)
        if isinstance(env, ParallelEnv):
            return self.factory(env, **kwargs)
        if self.aec_factory_name is None:
            raise InvalidArgumentError(f"{self.name} has no AEC version for turn-based env {env}")
        import adv_wrappers

        return getattr(adv_wrappers, self.aec_factory_name)(env, **kwargs)


THREAT_MODELS: dict[str, ThreatModel] = {
    tm.name: tm
    for tm in [
        ThreatModel(
            name="k_corruption_v0",
            factory=k_corruption_v0,
            paper="Nika et al. (TMLR 2024), Sec. 2.2",
            slot_argument="adversary",
            embedded_value="random",
            needs_box_observations=False,
            default_kwargs=lambda env: {"k": 1},
            aec_factory_name="k_corruption_aec_v0",
        ),
        ThreatModel(
            name="byzantine_v0",
            factory=byzantine_v0,
            paper="Li et al. (ICLR 2024), Sec. 2.2-2.3",
            slot_argument="adversary",
            embedded_value="random",
            needs_box_observations=False,
            default_kwargs=lambda env: {},
        ),
        ThreatModel(
            name="partial_control_v0",
            factory=partial_control_v0,
            paper="Liu et al. (ICLR 2024), Sec. 3",
            slot_argument="adversary",
            embedded_value="random",
            needs_box_observations=False,
            default_kwargs=lambda env: {"agent": env.possible_agents[0], "epsilon": 0.5},
            aec_factory_name="partial_control_aec_v0",
        ),
        ThreatModel(
            name="state_perturbation_v0",
            factory=state_perturbation_v0,
            paper="He et al. (TMLR 2023), App. A-D",
            slot_argument="attack",
            embedded_value="uniform",
            needs_box_observations=True,
            default_kwargs=lambda env: {"epsilon": 0.1},
        ),
    ]
}
