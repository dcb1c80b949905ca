"""XNOR/XOR: the two-agent two-state game of Li et al. and He et al., with exact values.

Two agents, two states. In state s1 the agents are paid 1 for *equal* actions (XNOR), in s2
for *different* actions (XOR); equal actions switch the state, different actions keep it.
It is the iterated toy game of Li et al. (ICLR 2024), App. C.1 (taken from Han et al. 2022:
100 steps, one agent may be a Byzantine adversary) and the two-agent two-state game of
He et al. (TMLR 2023), App. A-B (Eqs. 12-14: discount 0.99, every state may be perturbed into
every state). Small enough for exact answers: `adv_envs.xnor_xor_exact` computes the values
of any tabular joint policy with or without a state-perturbation adversary, the worst-case
perturbation (He et al., Prop. 4.1), episodic returns and the worst-case Byzantine ally
(Li et al.); see its module docstring for the math and the paper's numbers.

| | |
|---|---|
| Agents | `agent_0`, `agent_1` (the papers' agents 1 and 2) |
| Actions | `Discrete(2)`: 0 = a1, 1 = a2 |
| Observations | `Box(0, 1, (2,), float32)`: the one-hot true state, `[1, 0]` = s1, `[0, 1]` = s2 (both agents see the same); with `observe_history=True`, `Box(0, 1, (8,), float32)`: the state, then the previous step's state and both agents' previous actions, each one-hot (zeros at an episode's first step) |
| State | the same one-hot vector (`state_space` equals an observation space) |
| Rewards | shared: both agents get `1.0` if (s1 and equal actions) or (s2 and different actions), else `0.0` |
| Transitions | deterministic: equal actions switch s1 <-> s2, different actions keep the state |
| Episode | truncated after `max_cycles` steps (default 100, as in Li et al.); with `discount=gamma` also terminated after each step with probability `1 - gamma` |
| Start | s1 or s2 with probabilities `initial_state_probs` (default 1/2 each) |

The initial state. Li et al.'s text does not state it; its public code
(`DIG-Beihang/EIR-MAPPO`, `eir_mappo/env/toy_example/toy_example.py`) draws s1 or s2 with
probability 1/2 each and runs 100 steps: that is the default. He et al. keep the initial
distribution `Pr(s_0)` general and quotes values per state; its robust policy pi_1 (App. C.4)
is robust only for episodes that always start in s2: use `initial_state_probs=(0, 1)`, or
`reset(options={"initial_state": "s2"})` for one episode. (Li et al.'s code also appends the
agent index, the previous state and the previous actions to the observation; here the
observation is the state, as in He et al., unless `observe_history=True`.)

Observing the history. An agent that sees only the state cannot tell a Byzantine ally from
a benign one: the next state says whether the two actions were equal, but not which action
the ally took unless the agent knows its own. EIR-MAPPO's belief (Li et al. (ICLR 2024),
App. B) is a GRU over the agent's observations, so it can learn the ally's type only from
what the observation carries: with `observe_history=True` the observation is
`[state (2), previous state (2), agent_0's previous action (2), agent_1's previous action
(2)]`, one-hot, with zeros in the last six entries at the first step (Li et al.'s public code
appends the same previous state and actions, encoded as scalars, plus the agent's index,
which our shared-parameter trainers append as a one-hot). `baselines/eir_mappo.py`'s preset
for this env sets it.

Discount. He et al.'s values are discounted (gamma = 0.99, infinite horizon). With
`discount=gamma` every step ends the episode (termination, not truncation) with probability
`1 - gamma` after its reward, so the expected *undiscounted* return of an episode from s is
the discounted value `V(s)` of He et al. (with `max_cycles=None`; with a finite `max_cycles`
it is the discounted value truncated after `max_cycles` steps, which
`xnor_xor_exact.episodic_value(..., horizon=max_cycles, gamma=gamma)` gives exactly). Without
`discount` (default) episodes last exactly `max_cycles` steps.

Threat models. `state_perturbation_v0` perturbs the one-hot observation inside an epsilon
ball (intersected with the bounds `[0, 1]^2`, which the wrapper enforces). He et al.'s
perturbation set is P_s = {s1, s2}: the adversary shows the agent the *other state*. Moving
s1 = `[1, 0]` to s2 = `[0, 1]` changes each coordinate by 1, so the exact one-hot flip needs
`epsilon >= 1` in l-inf (`>= sqrt(2)` in l2); with `epsilon=1, norm="linf"` the ball is the
whole square and contains P_s. It also contains points that are no state (e.g.
`[0.4, 0.6]`), and an agent that reads the state as the argmax of its observation is
already fooled by `epsilon > 1/2` in l-inf (`> sqrt(2)/2` in l2), not by smaller ones:
Li et al.'s l-inf noise with epsilon = 1.0 can flip the state, epsilon = 0.2 cannot. To apply
a perturbation `chi_i(o | s)` exactly, embed an attack policy that returns
`u = onehot(o) - obs` (in `[-1, 1]^2`) with `epsilon=1`; the tests of this env do that, one
wrapper per agent. `byzantine_v0` replaces one agent's actions: the worst-case ally of
`xnor_xor_exact.byzantine_best_response` is stationary in this game (proved there), so an
embedded policy of the observation alone is a worst case.

Arguments:
    max_cycles (int | None): episode length, >= 1 (default 100); `None`: no truncation
        (needs `discount < 1`).
    discount (float | None): gamma in [0, 1]: terminate after each step with probability
        `1 - gamma` (default `None`: never terminate).
    initial_state_probs (tuple[float, float]): `(Pr(s1), Pr(s2))` at reset, non-negative,
        summing to 1 (default `(0.5, 0.5)`).
    observe_history (bool): append the previous state and both agents' previous actions to
        the observation (default `False`; see "Observing the history").
    render_mode (str | None): `None` or `"rgb_array"` (a 60 x 180 image: the state's
        colour, each agent's last action, the last reward).

Reset options: `reset(options={"initial_state": s})` with s in `0, 1, "s1", "s2"` starts this
episode in that state (other keys are ignored).

Infos: every agent's info has `"state"`, the index (0 = s1, 1 = s2) of the state the step's
reward was paid in (at reset: the initial state), so `info["state"]` and the step's reward
identify the transition.

Raises:
    InvalidArgumentError: a bad argument or reset option (from `adv_wrappers.errors`, a
        `ValueError`).
    MissingActionError: `step` without exactly one action per agent in `agents`.
    InvalidActionError: an action that is not 0 or 1.

Example:
    >>> from adv_envs import xnor_xor
    >>> env = xnor_xor.parallel_env(max_cycles=3)
    >>> obs, infos = env.reset(seed=0, options={"initial_state": "s1"})
    >>> obs["agent_0"]
    array([1., 0.], dtype=float32)
    >>> obs, rewards, terms, truncs, infos = env.step({"agent_0": 0, "agent_1": 0})
    >>> obs["agent_1"], rewards
    (array([0., 1.], dtype=float32), {'agent_0': 1.0, 'agent_1': 1.0})
    >>> obs, rewards, terms, truncs, infos = env.step({"agent_0": 0, "agent_1": 0})
    >>> obs["agent_0"], rewards["agent_0"], infos["agent_0"]["state"]
    (array([1., 0.], dtype=float32), 0.0, 1)
    >>> from adv_envs.xnor_xor_exact import COOPERATIVE, evaluate, worst_case_perturbation
    >>> evaluate(*COOPERATIVE, gamma=0.99)
    array([100., 100.])
    >>> chi, values = worst_case_perturbation(*COOPERATIVE, gamma=0.99)
    >>> values
    array([0., 0.])

Version History:
    v0: initial release (`observe_history` added later; its default keeps the original
        observation).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from adv_envs._errors import InvalidActionError, InvalidArgumentError, MissingActionError

S1, S2 = 0, 1
STATE_NAMES = ("s1", "s2")
ONE_HOT = np.eye(2, dtype=np.float32)

# rendering: state colours (s1 XNOR, s2 XOR), action shades (a1 light, a2 dark, none grey)
_STATE_RGB = ((70, 170, 90), (230, 140, 40))
_ACTION_RGB = ((235, 235, 235), (40, 40, 40))
_NONE_RGB = (128, 128, 128)
_REWARD_RGB = ((200, 60, 60), (60, 200, 60))  # reward 0, reward 1


def _check_probs(probs: Any) -> tuple[float, float]:
    try:
        arr = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if (
        arr is None
        or arr.shape != (2,)
        or not np.isfinite(arr).all()
        or (arr < 0).any()
        or abs(arr.sum() - 1.0) > 1e-9
    ):
        raise InvalidArgumentError(
            f"initial_state_probs must be (Pr(s1), Pr(s2)): two non-negative numbers summing "
            f"to 1, got {probs!r}"
        )
    return float(arr[0]), float(arr[1])


def _check_state(value: Any) -> int:
    if isinstance(value, str) and value in STATE_NAMES:
        return STATE_NAMES.index(value)
    if not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value in (0, 1):
        return int(value)
    raise InvalidArgumentError(
        f"options['initial_state']={value!r} is not a state; use 0, 1, 's1' or 's2'"
    )


class XnorXorParallelEnv(ParallelEnv):
    metadata = {
        "name": "xnor_xor_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": True,
        "render_fps": 4,
    }

    def __init__(
        self,
        max_cycles: int | None = 100,
        discount: float | None = None,
        initial_state_probs: Sequence[float] = (0.5, 0.5),
        observe_history: bool = False,
        render_mode: str | None = None,
    ):
        if max_cycles is not None and (
            isinstance(max_cycles, bool)
            or not isinstance(max_cycles, (int, np.integer))
            or max_cycles < 1
        ):
            raise InvalidArgumentError(
                f"max_cycles must be an int >= 1 or None, got {max_cycles!r}"
            )
        if discount is not None:
            try:
                g = float(discount)
            except (TypeError, ValueError):
                g = float("nan")
            if isinstance(discount, bool) or not 0.0 <= g <= 1.0:
                raise InvalidArgumentError(f"discount must be in [0, 1] or None, got {discount!r}")
            discount = g
        if max_cycles is None and (discount is None or discount >= 1.0):
            raise InvalidArgumentError(
                "max_cycles=None needs discount < 1, otherwise episodes never end"
            )
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise InvalidArgumentError(
                f"render_mode={render_mode!r} is not supported; use None or 'rgb_array'"
            )
        self.max_cycles = None if max_cycles is None else int(max_cycles)
        self.discount = discount
        self.initial_state_probs = _check_probs(initial_state_probs)
        self.render_mode = render_mode
        if not isinstance(observe_history, (bool, np.bool_)):
            raise InvalidArgumentError(f"observe_history must be a bool, got {observe_history!r}")
        self.observe_history = bool(observe_history)
        self.possible_agents = ["agent_0", "agent_1"]
        obs_size = 8 if self.observe_history else 2
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (obs_size,), np.float32)
        self._act_space = gymnasium.spaces.Discrete(2)
        self.state_space = gymnasium.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.agents: list[str] = []
        self.np_random: np.random.Generator | None = None
        self._state = S1
        self._previous_state = S1
        self._t = 0
        self._last_actions: tuple[int, int] | None = None
        self._last_reward: float | None = None

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._act_space

    def state(self) -> np.ndarray:
        return ONE_HOT[self._state].copy()

    def _observations(self) -> dict[str, np.ndarray]:
        if not self.observe_history:
            return {a: ONE_HOT[self._state].copy() for a in self.agents}
        obs = np.zeros(8, np.float32)
        obs[:2] = ONE_HOT[self._state]
        if self._last_actions is not None:  # zeros at the first step of an episode
            obs[2:4] = ONE_HOT[self._previous_state]
            obs[4:6] = ONE_HOT[self._last_actions[0]]
            obs[6:8] = ONE_HOT[self._last_actions[1]]
        return {a: obs.copy() for a in self.agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)
        if options is not None and not isinstance(options, dict):
            raise InvalidArgumentError(f"options must be a dict or None, got {options!r}")
        options = options or {}
        if "initial_state" in options:  # other keys are ignored (PettingZoo's convention)
            self._state = _check_state(options["initial_state"])
        else:  # inverse CDF: Pr(s1) = initial_state_probs[0]
            self._state = S1 if self.np_random.random() < self.initial_state_probs[0] else S2
        self._t = 0
        self._last_actions = None
        self._last_reward = None
        self.agents = list(self.possible_agents)
        infos = {a: {"state": self._state} for a in self.agents}
        return self._observations(), infos

    def step(self, actions: dict[str, Any]):
        if actions.keys() != set(self.agents) or not self.agents:
            raise MissingActionError(
                f"step() needs exactly one action per agent in env.agents={self.agents}; "
                f"got actions for {list(actions)}"
            )
        a0, a1 = actions["agent_0"], actions["agent_1"]
        for agent, a in (("agent_0", a0), ("agent_1", a1)):
            if not self._act_space.contains(a):
                raise InvalidActionError(f"action {a!r} of {agent!r} is not 0 or 1")
        s = self._previous_state = self._state
        equal = int(a0) == int(a1)
        reward = float(equal if s == S1 else not equal)
        self._state = (S2 if s == S1 else S1) if equal else s
        self._t += 1
        self._last_actions = (int(a0), int(a1))
        self._last_reward = reward
        terminated = self.discount is not None and self.np_random.random() >= self.discount
        truncated = self.max_cycles is not None and self._t >= self.max_cycles
        obs = self._observations()
        rewards = {a: reward for a in self.agents}
        terminations = {a: terminated for a in self.agents}
        truncations = {a: truncated for a in self.agents}
        infos = {a: {"state": s} for a in self.agents}
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        """rgb_array: three 60 x 60 blocks (state colour, agent_0's and agent_1's last action:
        light a1, dark a2, grey before the first step) over a 10-pixel bar (last reward:
        green 1, red 0, grey none)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; returning None")
            return None
        frame = np.zeros((60, 180, 3), np.uint8)
        frame[:, :60] = _STATE_RGB[self._state]
        for i in range(2):
            colour = _NONE_RGB if self._last_actions is None else _ACTION_RGB[self._last_actions[i]]
            frame[4:46, 60 * (i + 1) + 4 : 60 * (i + 2) - 4] = colour
        frame[50:, 60:] = (
            _NONE_RGB if self._last_reward is None else _REWARD_RGB[int(self._last_reward)]
        )
        return frame

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> XnorXorParallelEnv:
    return XnorXorParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
