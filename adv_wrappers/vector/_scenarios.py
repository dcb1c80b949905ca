"""Private: :class:`ScenarioStack`, several scenarios of one threat model side by side in one
vector env, each with its own agents, so that one trainer run learns all of them.

An attack protocol (Nika et al. (TMLR 2024), Table 1; Li et al. (ICLR 2024)'s evaluation)
trains one fresh attacker per scenario: every victim with every subset K, or every agent as
the Byzantine one. Run one after the other, each run pays its own learner, and at the small
networks of these papers a gradient step costs about the same for one network as for a
stack of several (docs/batched.md). This layer lets one run train them all at once:

* Scenario ``s`` pins the threat wrapper's reset options (``k_corruption_v0``: ``victim`` and
  ``attacked``; ``byzantine_v0``: ``theta``) in its copies through the vector env's
  ``episode_schedule``, so the threat's semantics stay those of its wrapper.
* Its outside agents are renamed ``"<scenario name>/<agent>"``: a trainer that gives every
  agent of the agent axis its own network (``ippo.py``) then gives every scenario its own.
* It is *dense*: ``C`` copies per scenario, and copy ``c`` of this layer holds copy
  ``c * S + s`` of the vector env below for every scenario ``s``. Every agent slot is alive
  in every copy, so a stacked network computes no samples of other scenarios' copies.

The sub-copies of a copy must end their episodes at the same steps (fixed-horizon envs such
as the particle envs and the XNOR/XOR game; they all start at ``reset``): a copy's
``infos["reset"]`` is one flag. A step where they do not raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adv_wrappers.errors import InvalidArgumentError, UnknownAgentError
from adv_wrappers.vector._batched_threat import LazyCopies
from adv_wrappers.vector._layout import (
    SCHEDULE_KEY,
    Layout,
    LayoutAttributes,
    actions_below,
    check_action_shape,
    flat_size,
)

SEPARATOR = "/"
"""Between a scenario's name and its agent's ID in the renamed agent IDs."""


def stacked_agent_id(scenario: str, agent: Any) -> str:
    """The ID of ``agent`` of scenario ``scenario`` in a :class:`ScenarioStack`
    (``"<scenario>/<agent>"``): the name of its policy in a checkpoint of the stack."""
    return f"{scenario}{SEPARATOR}{agent}"


_MASKS = ("alive", "acted", "has_obs", "has_reward", "final_alive")


def _check_scenarios(
    scenarios: Any, agents: Sequence[Any]
) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """``[(name, agents, options)]`` from ``scenarios`` (typed errors naming the entry)."""
    if isinstance(scenarios, (str, bytes, Mapping)) or not isinstance(scenarios, Sequence):
        raise InvalidArgumentError(
            "scenarios must be a list of {'name': str, 'agents': [agent IDs], 'options': "
            f"dict}}; got {type(scenarios).__name__}"
        )
    if not scenarios:
        raise InvalidArgumentError("scenarios must not be empty")
    out = []
    for i, spec in enumerate(scenarios):
        if not isinstance(spec, Mapping) or set(spec) - {"name", "agents", "options"}:
            raise InvalidArgumentError(
                f"scenarios[{i}] must be a dict with the keys 'name', 'agents' and 'options'; "
                f"got {spec!r}"
            )
        name = spec.get("name")
        if not isinstance(name, str) or not name or SEPARATOR in name:
            raise InvalidArgumentError(
                f"scenarios[{i}]['name'] must be a non-empty string without {SEPARATOR!r}; "
                f"got {name!r}"
            )
        own = spec.get("agents")
        if isinstance(own, (str, bytes)) or not isinstance(own, Sequence) or not own:
            raise InvalidArgumentError(
                f"scenarios[{i}]['agents'] must be a non-empty list of agent IDs; got {own!r}"
            )
        unknown = [a for a in own if a not in agents]
        if unknown:
            raise UnknownAgentError(
                f"scenarios[{i}]['agents'] has unknown agent IDs {unknown}; the vector env's "
                f"agents are {list(agents)}"
            )
        if len(set(own)) != len(own):
            raise InvalidArgumentError(f"scenarios[{i}]['agents'] has duplicates: {list(own)}")
        options = spec.get("options", {})
        if not isinstance(options, Mapping) or SCHEDULE_KEY in options:
            raise InvalidArgumentError(
                f"scenarios[{i}]['options'] must be a dict of reset options (without "
                f"{SCHEDULE_KEY!r}); got {options!r}"
            )
        out.append((name, tuple(own), dict(options)))
    names = [name for name, _, _ in out]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"scenario names must be unique; got {names}")
    keys = {tuple(sorted(options)) for _, _, options in out}
    if len(keys) > 1:
        raise InvalidArgumentError(
            f"every scenario must set the same reset options; got the keys {sorted(keys)}"
        )
    return out


class ScenarioStack(LayoutAttributes):
    """``S`` scenarios side by side over a vector env with ``C * S`` copies (module doc).

    Args:
        envs: the vector env below (any backend, e.g. frozen defenders over a threat model
            with exposed adversaries); ``envs.num_envs`` must be a multiple of
            ``len(scenarios)``.
        scenarios: ``[{"name": str, "agents": [agent IDs of envs], "options": dict}]``:
            the agents outside in the scenario's copies and the reset options pinned there.
            Every scenario sets the same option keys.

    The interface is the vector env's (:mod:`adv_wrappers.vector`) with ``num_envs = C``
    and the renamed agents: ``agents`` lists scenario 0's agents, then scenario 1's, and so
    on; ``scenario_agents[s]`` maps scenario ``s``'s original agent IDs to the new ones. The
    per-copy ``agent_infos`` and ``reset_infos`` merge the sub-copies' dicts under the new
    IDs. ``reset(seed, options)`` passes an int ``seed`` below (sub-copy ``c * S + s`` gets
    ``seed + c * S + s`` on the sync and subproc backends) and adds the scenarios' options to
    ``options`` (which must not set them too).

    Raises:
        InvalidArgumentError: bad ``scenarios`` (see above), ``envs.num_envs`` not a multiple
            of their number, a vector env with a global state (one copy of this layer holds
            several); at a step: an agent alive in a sub-copy whose scenario does not list
            it, or sub-copies of one copy ending their episodes at different steps;
            ``reset`` options that set a scenario's key, a seed that is not an int.
        UnknownAgentError: a scenario lists an agent the vector env does not have.
    """

    def __init__(self, envs: Any, scenarios: Sequence[Mapping[str, Any]]) -> None:
        checked = _check_scenarios(scenarios, envs.agents)
        num_scenarios = len(checked)
        if envs.num_envs % num_scenarios:
            raise InvalidArgumentError(
                f"the vector env's {envs.num_envs} copies must be a multiple of the "
                f"{num_scenarios} scenarios"
            )
        if getattr(envs, "state_space", None) is not None:
            raise InvalidArgumentError(
                "scenarios cannot stack a vector env with a global state (state=True): one "
                "copy of the stack holds several copies, each with its own state"
            )
        self.envs = envs
        self.num_scenarios = num_scenarios
        self.num_envs = envs.num_envs // num_scenarios
        self.scenario_names = [name for name, _, _ in checked]
        self.scenario_options = [options for _, _, options in checked]
        index = {a: i for i, a in enumerate(envs.agents)}
        agents: list[str] = []
        sources: list[int] = []
        owners: list[int] = []
        self.scenario_agents: list[dict[Any, str]] = []
        for s, (name, own, _) in enumerate(checked):
            renamed = {a: stacked_agent_id(name, a) for a in own}
            self.scenario_agents.append(renamed)
            agents += renamed.values()
            sources += [index[a] for a in own]
            owners += [s] * len(own)
        # out[c, m] = below[rows[c, m], cols[c, m]]
        copies = np.arange(self.num_envs)[:, None]
        self._rows = copies * num_scenarios + np.array(owners, dtype=np.int64)[None, :]
        self._cols = np.broadcast_to(np.array(sources, dtype=np.int64), self._rows.shape)
        allowed = np.zeros((envs.num_envs, len(envs.agents)), dtype=np.bool_)
        allowed[self._rows, self._cols] = True
        self._foreign = ~allowed
        self.observation_spaces = {
            new: envs.observation_spaces[a]
            for renamed in self.scenario_agents
            for a, new in renamed.items()
        }
        self.action_spaces = {
            new: envs.action_spaces[a]
            for renamed in self.scenario_agents
            for a, new in renamed.items()
        }
        self._expose(Layout(agents, self.observation_spaces, self.action_spaces))
        self.state_space = None
        # fewer agents may need less padding (or none): below, rows are flat and padded
        shape = self._layout.obs_shape
        self._obs_shape = None if shape == envs._layout.obs_shape else shape

    @property
    def alive(self) -> np.ndarray:
        """``[C, A]`` bool: agents that must act at the next :meth:`step` (a copy)."""
        return self._gather(self.envs.alive)

    def _gather(self, x: np.ndarray) -> np.ndarray:
        return x[self._rows, self._cols]

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        out = self._gather(obs)
        if self._obs_shape is None:
            return out
        size = flat_size(self._obs_shape)
        return np.ascontiguousarray(out[..., :size]).reshape(*out.shape[:2], *self._obs_shape)

    def _check_below(self, alive: np.ndarray, reset: np.ndarray | None = None) -> None:
        foreign = alive & self._foreign
        if foreign.any():
            e, i = (int(x[0]) for x in np.nonzero(foreign))
            s = e % self.num_scenarios
            raise InvalidArgumentError(
                f"agent {self.envs.agents[i]!r} is alive in a copy of scenario "
                f"{self.scenario_names[s]!r}, which lists only "
                f"{list(self.scenario_agents[s])}; list every agent that acts in its copies"
            )
        if reset is not None:
            grouped = reset.reshape(self.num_envs, self.num_scenarios)
            split = grouped.any(axis=1) & ~grouped.all(axis=1)
            if split.any():
                c = int(np.flatnonzero(split)[0])
                ended = [self.scenario_names[s] for s in np.flatnonzero(grouped[c])]
                raise InvalidArgumentError(
                    f"copy {c}: the episodes of scenarios {ended} ended at this step and the "
                    "others did not; stacked scenarios need episodes that end together "
                    "(fixed-horizon envs): train the scenarios one at a time"
                )

    def _infos(self, below: Sequence) -> LazyCopies:
        def build(c: int) -> dict[str, Any] | None:
            merged: dict[str, Any] = {}
            found = False
            for s, renamed in enumerate(self.scenario_agents):
                inner = below[c * self.num_scenarios + s]
                if inner is None:
                    continue
                found = True
                for a, new in renamed.items():
                    if a in inner:
                        merged[new] = inner[a]
            return merged if found else None

        return LazyCopies(self.num_envs, build)

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy, each sub-copy with its scenario's options (see the class)."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise InvalidArgumentError(
                f"seed must be an int or None for stacked scenarios; got {seed!r}"
            )
        if options is not None and not isinstance(options, Mapping):
            raise InvalidArgumentError(f"options must be a dict or None, got {options!r}")
        options = dict(options or {})
        schedule = dict(options.pop(SCHEDULE_KEY, None) or {})
        keys = self.scenario_options[0].keys()
        clash = sorted(k for k in keys if k in options or k in schedule)
        if clash:
            raise InvalidArgumentError(
                f"reset options {clash} are set by the stacked scenarios; do not pass them"
            )
        for key in keys:
            schedule[key] = [
                [self.scenario_options[e % self.num_scenarios][key]]
                for e in range(self.envs.num_envs)
            ]
        if schedule:
            options[SCHEDULE_KEY] = schedule
        obs, infos = self.envs.reset(seed=seed, options=options or None)
        self._check_below(infos["alive"])
        out = {
            "alive": self._gather(infos["alive"]),
            "has_obs": self._gather(infos["has_obs"]),
            "agent_infos": self._infos(infos["agent_infos"]),
        }
        return self._obs(obs), out

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-copy with its agents' entries of ``actions`` (``[C, A, ...]``)."""
        actions = check_action_shape(actions, self.num_envs, self._layout)
        below = actions_below(self.envs, actions, (self._rows, self._cols))
        obs, rewards, terms, truncs, infos = self.envs.step(below)
        reset = np.asarray(infos["reset"])
        self._check_below(infos["alive"], reset)
        out: dict[str, Any] = {key: self._gather(infos[key]) for key in _MASKS}
        out["reset"] = reset.reshape(self.num_envs, self.num_scenarios)[:, 0].copy()
        out["final_obs"] = self._obs(infos["final_obs"])
        out["agent_infos"] = self._infos(infos["agent_infos"])
        out["reset_infos"] = self._infos(infos["reset_infos"])
        return (
            self._obs(obs),
            self._gather(rewards),
            self._gather(terms),
            self._gather(truncs),
            out,
        )

    def close(self) -> None:
        """Close the vector env below (idempotent)."""
        self.envs.close()

    def __enter__(self) -> ScenarioStack:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ScenarioStack({self.envs!r}, scenarios={self.scenario_names})"
