"""Kuhn poker: the two-player, three-card zero-sum poker game of Liu et al. (ICLR 2024).

Kuhn (1950) poker as used by Liu et al. (ICLR 2024), "Rethinking Adversarial Policies",
Sec. 7 and App. E.1/E.3, where the victim's exploitability under the partial-control
attack (Sec. 3, Def. 4.1) is computed exactly by game-tree search: the deck is J < Q < K,
each player antes 1 chip and gets one private card, ``player_0`` acts first, and a
player can pass (check, or fold when facing a bet) or bet (bet 1 chip, or call a bet).
Pure Python/numpy, no OpenSpiel needed; the exact tools (tabular policies, expected
payoffs, best responses, exploitability) are in `adv_envs.kuhn_poker_exact`.

| | |
|---|---|
| Agents | `player_0` (acts first), `player_1` |
| API | AEC only (turn-based): `env()`, `raw_env()`; no `parallel_env` |
| Actions | `Discrete(2)`: `0` = pass (check, or fold when facing a bet), `1` = bet (bet, or call when facing a bet); both are legal at every turn |
| Observations | `Dict("observation": Box(0, 1, (11,), float32), "action_mask": Box(0, 1, (2,), int8))` |
| State | `Box(0, 1, (12,), float32)`: both cards and the betting history |
| Rewards | `0` until the hand ends, then `player_0` gets `+1`/`-1` (fold, or check-check showdown) or `+2`/`-2` (called bet), `player_1` the opposite |
| Episode | one hand: 2 or 3 actions, then both agents are terminated (never truncated) |
| Kind | zero-sum |

## Rules

Betting sequences (`p` = pass, `b` = bet) and `player_0`'s payoff; "showdown" means the
higher card wins.

| history | how it ends | `player_0`'s payoff |
|---|---|---|
| `pp` | both check: showdown | `+1` if `player_0` holds the higher card, else `-1` |
| `bp` | `player_1` folds to the bet | `+1` |
| `bb` | `player_1` calls: showdown | `+2` or `-2` |
| `pbp` | `player_0` folds to the bet | `-1` |
| `pbb` | `player_0` calls: showdown | `+2` or `-2` |

The deal is uniform over the 6 ordered pairs of distinct cards, drawn from the env's
`np_random` (seeded by `reset(seed=...)`; `reset()` without a seed continues it).

## Observation

`observation` has the layout of OpenSpiel's `kuhn_poker` information-state tensor, so the
two are interchangeable:

| index | meaning |
|---|---|
| 0-1 | own seat, one-hot (`player_0`, `player_1`) |
| 2-4 | own card, one-hot (J, Q, K) |
| 5-6, 7-8, 9-10 | actions of betting rounds 1, 2 and 3, each one-hot (pass, bet), zeros for rounds not played |

The opponent's card is never observed (also not at the end of the hand). `action_mask` is
`[1, 1]` for the agent to move and `[0, 0]` for the other agent and after the hand.

## State

`state()` is the global state: `player_0`'s card one-hot (indices 0-2), `player_1`'s card
one-hot (3-5) and the betting history (6-11, encoded as in the observation).

## Arguments

| argument | default | allowed values |
|---|---|---|
| `render_mode` | `None` | `None` or `"rgb_array"` (a `(240, 360, 3)` uint8 picture of both cards face up, each player's chips in the pot, the betting history and, after the hand, the payoffs) |

`reset(seed=None, options=None)` takes one option, `{"cards": (c0, c1)}`, which deals card
`c0` to `player_0` and `c1` to `player_1` (ints in `{0, 1, 2}` = J, Q, K, distinct)
instead of a random deal (the RNG is then not used); bad cards raise
`InvalidArgumentError`, as does a bad `render_mode`. Other option keys are left alone
(PettingZoo's `api_test` requires `reset` to accept options it does not know, and the
threat wrappers remove their own keys before they reset the env). `step` raises
`adv_wrappers.errors.InvalidActionError` for an action other than `0`/`1` and
`MissingActionError` for `None` at a live turn or an action for a finished agent.

Read-only attributes of the raw env: `cards` (the deal, a tuple of two ints, `None`
before the first reset), `history` (the betting history as a string of `p`/`b`),
`info_state(agent)` (the pair `(card, history)` that `adv_envs.kuhn_poker_exact` policies
are indexed by).

## Differences from the paper

None in the rules. The paper runs the game in OpenSpiel; this env reproduces OpenSpiel's
`kuhn_poker` (same rules, same action numbering, observation = its information-state
tensor), which the tests check against `pyspiel`: observations and payoffs for every deal
and betting sequence, and the exact tools' payoffs, best responses and exploitability. The paper's policies are MLPs (App. E.3); that is the trainers' business.

## Version History

- v0: initial release.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from pettingzoo import AECEnv
from pettingzoo.utils import wrappers

from adv_envs._errors import InvalidActionError, InvalidArgumentError, MissingActionError

CARD_NAMES = ("J", "Q", "K")
"""Card ``c`` (an int) is ``CARD_NAMES[c]``; a higher int is a higher card."""

PASS, BET = 0, 1
ACTION_CHARS = "pb"
"""Action ``a`` is written ``ACTION_CHARS[a]`` in a betting history."""

DEALS = tuple((c0, c1) for c0 in range(3) for c1 in range(3) if c0 != c1)
"""The 6 equally likely deals ``(card of player_0, card of player_1)``."""

TERMINAL_HISTORIES = ("pp", "pbp", "pbb", "bp", "bb")
NONTERMINAL_HISTORIES = ("", "p", "b", "pb")

OBS_SIZE = 11
STATE_SIZE = 12


def is_terminal(history: str) -> bool:
    """Whether the betting history ``history`` (a string of ``p``/``b``) ends the hand."""
    return history in TERMINAL_HISTORIES


def payoff(cards: tuple[int, int], history: str) -> float:
    """``player_0``'s payoff of a finished hand (``player_1`` gets the opposite)."""
    if history == "bp":
        return 1.0
    if history == "pbp":
        return -1.0
    if history not in TERMINAL_HISTORIES:
        raise InvalidArgumentError(
            f"history={history!r} is not a finished hand; allowed: {TERMINAL_HISTORIES}"
        )
    stake = 1.0 if history == "pp" else 2.0
    return stake if cards[0] > cards[1] else -stake


def _history_vector(history: str) -> np.ndarray:
    out = np.zeros(6, np.float32)
    for r, char in enumerate(history):
        out[2 * r + ACTION_CHARS.index(char)] = 1.0
    return out


# ------------------------------------------------------------------ rendering
_GLYPHS = {
    "J": ["00111", "00010", "00010", "00010", "00010", "10010", "01100"],
    "Q": ["01110", "10001", "10001", "10001", "10101", "10010", "01101"],
    "K": ["10001", "10010", "10100", "11000", "10100", "10010", "10001"],
    "P": ["11110", "10001", "10001", "11110", "10000", "10000", "10000"],
    "B": ["11110", "10001", "10001", "11110", "10001", "10001", "11110"],
    "+": ["00000", "00100", "00100", "11111", "00100", "00100", "00000"],
    "-": ["00000", "00000", "00000", "11111", "00000", "00000", "00000"],
    "0": ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    "1": ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    "2": ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    "3": ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    "4": ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
}
_FELT = (20, 110, 50)
_PLAYER_COLORS = ((90, 170, 255), (255, 150, 60))
_CHIP = (240, 200, 40)


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: int, color) -> None:
    """Draw ``text`` with its top-left corner at pixel ``(x, y)``."""
    for char in text:
        glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[char]])
        big = np.kron(glyph, np.ones((scale, scale), bool))
        h, w = big.shape
        canvas[y : y + h, x : x + w][big] = color
        x += 6 * scale


def _rect(canvas: np.ndarray, x: int, y: int, w: int, h: int, color, border=None, width=0):
    if border is not None:
        canvas[y - width : y + h + width, x - width : x + w + width] = border
    canvas[y : y + h, x : x + w] = color


class raw_env(AECEnv):
    """Two-player Kuhn poker as a PettingZoo AEC env (see the module docstring)."""

    metadata = {
        "name": "kuhn_poker_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": False,
        "render_fps": 1,
    }

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        if render_mode not in (None, "rgb_array"):
            raise InvalidArgumentError(
                f"render_mode={render_mode!r} is not allowed; use None or 'rgb_array'"
            )
        self.render_mode = render_mode
        self.possible_agents = ["player_0", "player_1"]
        self.agents = []
        self._obs_space = gymnasium.spaces.Dict(
            {
                "observation": gymnasium.spaces.Box(0.0, 1.0, (OBS_SIZE,), np.float32),
                "action_mask": gymnasium.spaces.Box(0, 1, (2,), np.int8),
            }
        )
        self._act_space = gymnasium.spaces.Discrete(2)
        self.observation_spaces = dict.fromkeys(self.possible_agents, self._obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self._act_space)
        self.state_space = gymnasium.spaces.Box(0.0, 1.0, (STATE_SIZE,), np.float32)
        self.np_random: np.random.Generator | None = None
        self._cards: tuple[int, int] | None = None
        self._history = ""

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.observation_spaces[agent]

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.action_spaces[agent]

    # ------------------------------------------------------------------ read-only views
    @property
    def cards(self) -> tuple[int, int] | None:
        """The deal ``(card of player_0, card of player_1)``; None before the first reset."""
        return self._cards

    @property
    def history(self) -> str:
        """The betting history of the current hand, e.g. ``"pb"``."""
        return self._history

    def info_state(self, agent: str) -> tuple[int, str]:
        """``(own card, betting history)``: what ``agent`` knows (its information state)."""
        if agent not in self.possible_agents:
            raise InvalidArgumentError(
                f"agent={agent!r} is unknown; allowed: {self.possible_agents}"
            )
        if self._cards is None:
            raise InvalidArgumentError("info_state() needs a dealt hand: call reset() first")
        return self._cards[self.possible_agents.index(agent)], self._history

    # ------------------------------------------------------------------ API
    def observe(self, agent: str) -> dict[str, np.ndarray]:
        seat = self.possible_agents.index(agent)
        obs = np.zeros(OBS_SIZE, np.float32)
        obs[seat] = 1.0
        if self._cards is not None:
            obs[2 + self._cards[seat]] = 1.0
        obs[5:] = _history_vector(self._history)
        live = bool(self.agents) and not self.terminations.get(agent, True)
        mask = np.full(2, int(live and agent == self.agent_selection), np.int8)
        return {"observation": obs, "action_mask": mask}

    def state(self) -> np.ndarray:
        out = np.zeros(STATE_SIZE, np.float32)
        if self._cards is not None:
            out[self._cards[0]] = 1.0
            out[3 + self._cards[1]] = 1.0
        out[6:] = _history_vector(self._history)
        return out

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)
        if options is not None and not isinstance(options, dict):
            raise InvalidArgumentError(f"options must be a dict or None, got {options!r}")
        options = options or {}  # keys other than "cards" are not ours (see the docstring)
        if "cards" in options:
            self._cards = self._check_cards(options["cards"])
        else:
            self._cards = DEALS[int(self.np_random.integers(len(DEALS)))]
        self._history = ""
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        self.agent_selection = self.possible_agents[0]

    @staticmethod
    def _check_cards(cards: Any) -> tuple[int, int]:
        try:
            pair = tuple(cards)
        except TypeError:
            pair = ()
        if (
            len(pair) != 2
            or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in pair)
            or tuple(int(c) for c in pair) not in DEALS
        ):
            raise InvalidArgumentError(
                f"options['cards']={cards!r} is not allowed: give two distinct cards "
                "(c0, c1), ints in {0, 1, 2} (J, Q, K)"
            )
        return int(pair[0]), int(pair[1])

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise MissingActionError(
                    f"agent {agent!r} is terminated: step it with None, got {action!r}"
                )
            self._was_dead_step(action)
            return
        if action is None:
            raise MissingActionError(f"agent {agent!r} must act: give 0 (pass) or 1 (bet)")
        if not self._act_space.contains(action):
            raise InvalidActionError(
                f"agent {agent!r} got action {action!r}; allowed: 0 (pass) or 1 (bet)"
            )
        self._cumulative_rewards[agent] = 0.0
        self._history += ACTION_CHARS[int(action)]
        self._clear_rewards()
        if is_terminal(self._history):
            value = payoff(self._cards, self._history)
            self.rewards = {"player_0": value, "player_1": -value}
            self.terminations = dict.fromkeys(self.agents, True)
            self._accumulate_rewards()
        seat = self.possible_agents.index(agent)
        self.agent_selection = self.possible_agents[1 - seat]

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; returning None")
            return None
        canvas = np.empty((240, 360, 3), np.uint8)
        canvas[:] = _FELT
        if self._cards is None:
            return canvas
        stakes = [1, 1]
        for r, char in enumerate(self._history):
            stakes[r % 2] += char == "b"  # a bet or a call puts one more chip in
        done = is_terminal(self._history)
        to_move = -1 if done else len(self._history) % 2
        for seat, x in ((0, 40), (1, 260)):
            color = _PLAYER_COLORS[seat]
            border = (255, 255, 0) if seat == to_move else (0, 0, 0)
            _rect(canvas, x, 50, 60, 90, (250, 250, 250), border, 4 if seat == to_move else 2)
            _text(canvas, CARD_NAMES[self._cards[seat]], x + 15, 74, 6, (0, 0, 0))
            _rect(canvas, x, 40, 60, 6, color)  # seat colour strip above the card
            for chip in range(stakes[seat]):
                _rect(canvas, x + 16 * chip, 154, 12, 12, _CHIP, (120, 90, 0), 1)
            if done:
                value = payoff(self._cards, self._history) * (1 if seat == 0 else -1)
                _text(canvas, f"{value:+.0f}", x + 8, 10, 4, (255, 255, 255))
        _text(canvas, str(sum(stakes)), 168, 80, 4, _CHIP)  # the pot
        for r, char in enumerate(self._history):
            _text(canvas, char.upper(), 110 + 50 * r, 200, 4, _PLAYER_COLORS[r % 2])
        return canvas

    def close(self) -> None:
        pass


def env(**kwargs: Any) -> AECEnv:
    """The AEC env: :class:`raw_env` inside PettingZoo's ``OrderEnforcingWrapper``."""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
