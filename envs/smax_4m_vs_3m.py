"""SMAX 4m vs 3m: four allied marines against three marines of SMAX's scripted enemy.

Li et al. (ICLR 2024), "Byzantine Robust Cooperative MARL as a Bayesian Game", evaluate on the
StarCraft Multi-Agent Challenge (SMAC, Samvelyan et al., 2019) map `4m_vs_3m` (Sec. 4,
App. C.1): four allied marines, any one of which may be Byzantine, against three marines of the
game's built-in AI. StarCraft II cannot be installed everywhere, so this env runs the same
battle in SMAX, the JAX re-implementation of SMAC-style micromanagement in JaxMARL (Rutherford
et al., 2024): its `HeuristicEnemySMAX` with a custom scenario of 4 vs 3 marines. Game rules, unit statistics,
observations, action masks and the default reward are SMAX's (jaxmarl 0.2); this module adds
the PettingZoo parallel API, seeding, the time limit, SMAC's normalized reward as an option and
a headless renderer. It is *not* SMAC: the differences are listed below, so that results on it
are not mistaken for SMAC numbers.

| | |
|---|---|
| Agents | `ally_0` ... `ally_3` (SMAX's names), all marines; every agent stays in `agents` until the episode ends, dead or alive (as in SMAC) |
| Enemies | `enemy_0` ... `enemy_2`, three marines played by SMAX's heuristic policy (see below), part of the env |
| Actions | `Discrete(8)`: 0 north (+y), 1 east (+x), 2 south, 3 west, 4 stop, 5 + j attack `enemy_j`. `infos[agent]["action_mask"]` (`int8`, 8 entries) marks the available ones: a living unit may always move and stop, and attack an enemy that is alive and within its attack range (5); a dead unit has only 4 (stop, SMAX's no-op) |
| Observations | SMAX's `unit_list` observation, `Box(-1, 1, (88,), float32)`: 13 features of each other unit, the three other allies (in index order) then the three enemies, and 10 own features (layout below) |
| State | `Box(float32, (84,))`: SMAX's world state, 10 features of each of the seven units (`ally_0..3`, `enemy_0..2`: health fraction, x, y in map units, weapon cooldown in seconds, six unit-type bits), then the seven teams (0 ally, 1 enemy) and the seven unit types (0 = marine); cooldowns are clipped at 0 from below (SMAX lets an idle unit's cooldown run negative) |
| Rewards | shared: every agent gets the team reward. `reward="smax"` (default): SMAX's, the enemies' summed health loss as a fraction of their total health (at most 1.0 per episode) plus 1.0 when the battle is won, so at most 2.0 per episode. `reward="smac"` / `"smac_signed"`: SMAC's shaped reward, normalized so that a won battle without losses is worth 20 (see Rewards) |
| Episode | terminates when one side has no unit left (won, lost, or a draw when both die in the same step); truncated after `max_cycles` steps (default 100, SMAX's time limit; Li et al.'s `4m_vs_3m` map has SMAC's limit of 60 steps) |
| Kind | cooperative (one team reward) |

## Observations and state

Each agent observes, for every other unit within its sight range (9 map units), in order
`[health / max health, dx / 9, dy / 9, last move x, last move y, last target, weapon cooldown /
max cooldown, six unit-type bits]` (13 features; the last move is the unit's last movement
direction as a unit vector; the last target is the index of its last action if that was an
attack, else 0, divided by its team's highest action index: 7 for allies, 8 for enemies, whose
action 5 + k attacks `ally_{3-k}`; enemies' moves and targets are visible too, SMAX's
`see_enemy_actions=True`). Units out
of sight or dead are all zeros, and so is everything a dead agent observes. The 10 own features
are `[health / max health, x / 32, y / 32, weapon cooldown / max cooldown, six unit-type bits]`.
The env clips observations to `[-1, 1]`, which only removes float rounding. Infos:
`infos[agent]` holds `"action_mask"`, `"alive"` (the agent's unit is alive after the step) and
`"battle_won"` (no enemy is left and an ally is).

Masked actions are accepted, not rejected, and are executed as SMAX executes them: an attack on
an enemy out of range or dead, and any action of a dead unit, does nothing (the same as stop,
4). Only the other units' observations differ: they see the attempted target in the "last
target" feature.

## The game (SMAX)

The map is an open 32 x 32 square without terrain. Allies start around (8, 16), enemies around
(24, 16), each unit uniformly within +-2 of its team's point. A step is 8 world steps of 1/16 s:
a moving marine covers 1.575 map units per step (3.15 per second). A unit that attacks a target
in range whose weapon is ready deals its damage at once (no projectile) and reloads for its
cooldown plus uniform noise in `[-1/16, 2/16]` s; all units act simultaneously, so a draw is
possible. Overlapping units are pushed apart. With `walls_cause_death=True` (SMAX's default) a
unit that touches the map's edge dies. Marines: 45 health, 9 damage per shot, attack range 5,
sight range 9, cooldown 0.61 s, speed 3.15, radius 0.375.

The enemy is SMAX's heuristic (`attack_mode="closest"`): an enemy that can shoot an ally in
range attacks its last target while that is in range, otherwise the closest one; an enemy that
cannot shoot moves towards an ally it sees, drawn at random each step, and, seeing none,
towards its position at the first step mirrored through the map's centre (the allies' side).

## Rewards

`reward="smax"` (default) is SMAX's team reward: after each step, the enemies' health lost in
the step divided by their total maximum health (3 x 45), plus `1.0` if the battle is won (no
enemy alive, at least one ally alive). A won battle therefore earns exactly 2.0 in total,
however long it takes and whatever the allies lose.

`reward="smac"` is SMAC's default shaped reward computed on the SMAX battle: per step the
health the enemies lost plus 10 per enemy killed, plus 200 on the step the battle is won,
all divided by `max_reward / 20` with `max_reward = 3 x (45 + 10) + 200 = 365`, so a won battle
earns exactly 20.0 (SMAC's `reward_scale_rate`) and nothing is ever negative. This is the
scale of the returns of about 20 that Li et al. report for SMAC. `reward="smac_signed"` is the
variant of the authors' released SMAC configuration (`reward_only_positive=False`,
`reward_negative_scale=1`, `reward_defeat=-200`): the same, minus the allies' health lost and 10
per ally killed, and -200 on a lost battle, with the same normalization (from -23.0, a loss
without a hit on the enemy, to 20.0). The terms count SMAX's health, so they are SMAC's formula
on a different battle (see below).

## How SMAX differs from SMAC (and from Li et al.'s setting)

- **Engine.** SMAC drives StarCraft II; SMAX is a simplified simulator in JAX: no terrain,
  pathing or high ground, no projectiles or attack delay, no armour, simultaneous actions (so
  draws exist, SC2 resolves them), unit collisions approximated by pushing overlapping units
  apart. Episodes are much faster and run without the game.
- **Unit statistics.** SMAX's marine deals 9 damage per shot; StarCraft II's deals 6 (45 health,
  range 5, sight 9, speed 3.15, cooldown 0.61 s are the game's). Battles are shorter than in
  SMAC for the same number of shots.
- **Enemy.** SMAC's enemies are StarCraft II's built-in AI (Li et al.'s released code uses
  difficulty 7, "very hard"); here they are SMAX's scripted heuristic described above. A policy trained here is
  not evaluated against the same opponent.
- **Time.** A SMAC step is 8 game loops; a SMAX step is 0.5 s of simulated time at SMAX's unit
  speeds. SMAX's default time limit is 100 steps; SMAC's `4m_vs_3m` (like `3m`) has 60. Neither
  step count converts exactly into the other; pass `max_cycles=60` to use SMAC's number.
- **Actions.** SMAC has 6 + n_enemies actions (0 no-op, only for dead units; 1 stop; 2-5 north,
  south, east, west; then attacks) and masks moves blocked by the map; SMAX has 5 + n_enemies
  (moves in the order north, east, south, west; 4 stop, which is also a dead unit's only
  action) and never masks a move, even into a wall that kills. SMAC refuses an unavailable
  action; SMAX (and this env) executes it as a no-op.
- **Observations and state.** SMAC observes, per visible unit, distance, relative position,
  health, unit type and (for allies) the last action one-hot, an attack-availability bit per
  enemy and move-availability bits; Li et al.'s code also appends the agent's ID. SMAX observes
  relative position, health, last move direction and target, weapon cooldown and unit type of
  every visible unit, and its own position on the map; no distance, no ID. SMAC's state uses
  positions relative to the map centre and the last actions; SMAX's (here) uses absolute
  positions and no actions. Sight works the same way in both: units beyond the sight range (9)
  are hidden, with no terrain to block it.
- **Reward.** See Rewards: SMAX's own reward has a different scale (2 per won battle, not 20);
  `reward="smac"` or `"smac_signed"` restores SMAC's scale and shaping.
- **Start.** SMAC's maps place the two groups at the map's spawn points; SMAX draws each
  unit's position within +-2 of its team's start.

## Arguments

| argument | default | allowed values |
|---|---|---|
| `max_cycles` | `100` | int >= 1: episode length in steps (SMAX's limit is 100; SMAC's `4m_vs_3m` map has 60) |
| `reward` | `"smax"` | `"smax"`, `"smac"` or `"smac_signed"` (see Rewards) |
| `walls_cause_death` | `True` | bool: SMAX kills a unit that touches the map's edge; `False` clips it to the map, as SC2's map edges do |
| `render_mode` | `None` | `None` or `"rgb_array"`: a 512 x 512 numpy drawing (16 pixels per map unit, north up): allies blue, enemies red, darker when their last action was an attack, a health bar over each living unit, the dead as grey crosses. SMAX's own renderer (matplotlib animations in `jaxmarl.viz`) is not used |

Any other value raises `adv_wrappers.errors.InvalidArgumentError` naming the argument.
`reset(seed=s)` derives the episode's JAX random key from `s` (any int >= 0, as Gymnasium
accepts), so the battle (start positions, enemy choices, cooldown noise) is reproducible;
later `reset()` calls continue the same key sequence. `reset(options=...)` is accepted for API
compatibility; no options are defined. The JAX objects are reachable for other uses: `game` is
the `HeuristicEnemySMAX`, `jax_state` the current SMAX state.

## Installation and performance

`pip install -c constraints.txt "adv-wrappers[smax]"` (Python >= 3.11, jaxmarl's minimum)
installs `jaxmarl`, which brings JAX (CPU), Flax and jaxmarl's other requirements (among them
gymnax, seaborn and pandas, which this env does not use: jaxmarl declares them, so pip installs
them; its MABrax environments' brax and MuJoCo are an extra of jaxmarl's and are not
installed). `import adv_envs` (or `adv_wrappers`) never imports JAX: the env module imports JAX
and jaxmarl's SMAX modules, without jaxmarl's other environments, when the first env is built
(about 2 s; a `jaxmarl` the user imported before is used as it is, and one imported after is
the whole package, unaffected). The first `reset()` and `step()` of a process compile the SMAX
functions (about 4 s on one core); every later env with the same `walls_cause_death` reuses
them, whatever its other arguments. A vector env with one worker process per copy (the
trainers' `--vector-backend subproc`) pays the import and the compilation in every worker.
Stepping: about 2,000 steps/s on one core (the table in the env index), of which the compiled
SMAX step alone is about half the time.

The simulation runs on JAX's CPU device, whatever JAX's default device is: one small battle per
call is faster on the CPU than on a GPU. The env sets no JAX option. A GPU build of JAX still
reserves most of the GPU's memory when it starts (JAX's default); to share the GPU with a torch
trainer, set `XLA_PYTHON_CLIENT_PREALLOCATE=false` (or `JAX_PLATFORMS=cpu`) before the first
env is built.

## Example

At the start no enemy is in range (the teams start 16 map units apart), so attacks are
masked:

```python
>>> from adv_envs import smax_4m_vs_3m
>>> env = smax_4m_vs_3m.parallel_env()
>>> obs, infos = env.reset(seed=0)
>>> obs["ally_0"].shape, env.state().shape
((88,), (84,))
>>> infos["ally_0"]
{'action_mask': array([1, 1, 1, 1, 1, 0, 0, 0], dtype=int8), 'alive': True, 'battle_won': False}
>>> obs, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, 1))  # all east
>>> rewards["ally_0"], terms["ally_0"], truncs["ally_0"]
(0.0, False, False)

```

## Version History

- v0: initial release (jaxmarl 0.2's SMAX).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from adv_envs._checks import check_bool, check_int, check_render_mode
from adv_envs._errors import InvalidActionError, InvalidArgumentError, MissingActionError

N_ALLIES, N_ENEMIES = 4, 3
N_UNITS = N_ALLIES + N_ENEMIES
STOP = 4  # SMAX's no-op: the only action of a dead unit
N_ACTIONS = 5 + N_ENEMIES
MAP_SIZE = 32
REWARDS = ("smax", "smac", "smac_signed")
RENDER_MODES = (None, "rgb_array")
# SMAC's shaped reward (reward_death_value, reward_win, reward_scale_rate) and its normalizer
# max_reward = n_enemies * reward_death_value + reward_win + the enemies' total health
_SMAC_DEATH, _SMAC_WIN, _SMAC_SCALE, _MARINE_HEALTH = 10.0, 200.0, 20.0, 45.0
_SMAC_MAX_REWARD = N_ENEMIES * (_SMAC_DEATH + _MARINE_HEALTH) + _SMAC_WIN
_PIXELS = 16  # per map unit in rgb_array frames
_ALLY_RGB, _ENEMY_RGB = np.array([31, 119, 180]), np.array([214, 39, 40])


@dataclass(frozen=True)
class _Simulator:
    """The SMAX game and its jitted reset/step, shared by every env of one configuration."""

    game: Any  # jaxmarl's HeuristicEnemySMAX
    jax: Any  # the jax module
    cpu: Any  # the device the simulation runs on
    reset: Any  # key -> (key, state, outputs)
    step: Any  # (key, state, actions) -> (key, state, outputs)


def _import_smax() -> tuple[Any, Any, Any]:
    """Import JAX and jaxmarl's SMAX (``HeuristicEnemySMAX``, ``Scenario``).

    Raises:
        ModuleNotFoundError: JAX or jaxmarl is not installed (the ``smax`` extra).
    """
    try:
        import jax

        if "jaxmarl" in sys.modules:  # already imported by the user: use it as it is
            from jaxmarl.environments.smax import HeuristicEnemySMAX, Scenario
        else:
            HeuristicEnemySMAX, Scenario = _import_smax_alone()
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"adv/smax_4m_vs_3m-v0 needs JAX and jaxmarl ({exc}): "
            'pip install -c constraints.txt "adv-wrappers[smax]"',
            name=exc.name,
        ) from exc
    return jax, HeuristicEnemySMAX, Scenario


def _import_smax_alone() -> tuple[Any, Any]:
    """Import ``jaxmarl.environments.smax`` without running jaxmarl's package ``__init__``s.

    Those import every jaxmarl environment (about 2.5 s of Overcooked, STORM, Hanabi, ...),
    print two lines, and reset ``sys.stdout``/``sys.stderr`` to ``sys.__stdout__``/
    ``sys.__stderr__`` (jaxmarl's MABrax module does, undoing any redirection). SMAX needs
    only its own modules and ``jaxmarl.environments.{multi_agent_env,spaces}``: they are
    imported under two empty stand-in packages, then every ``jaxmarl`` entry is removed from
    ``sys.modules`` again, so a later ``import jaxmarl`` imports the real package afresh. The
    classes returned keep working (JAX needs the objects, not the module names).
    """
    spec = importlib.util.find_spec("jaxmarl")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'jaxmarl'", name="jaxmarl")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, path in (("jaxmarl", root), ("jaxmarl.environments", root / "environments")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package
    try:
        smax = importlib.import_module("jaxmarl.environments.smax")
    finally:
        for name in [n for n in sys.modules if n == "jaxmarl" or n.startswith("jaxmarl.")]:
            del sys.modules[name]
    return smax.HeuristicEnemySMAX, smax.Scenario


@functools.cache
def _simulator(walls_cause_death: bool) -> _Simulator:
    jax, HeuristicEnemySMAX, Scenario = _import_smax()
    jnp = jax.numpy
    scenario = Scenario(jnp.zeros((N_UNITS,), jnp.uint8), N_ALLIES, N_ENEMIES, False, False)
    # the env counts steps itself (max_cycles): SMAX's own limit is set out of reach, so one
    # compiled step serves every max_cycles
    game = HeuristicEnemySMAX(
        scenario=scenario, max_steps=2**31 - 1, walls_cause_death=walls_cause_death
    )
    agents = game.agents
    cpu = jax.devices("cpu")[0]

    def outputs(state, reward):
        """Everything the env reads after a call, as one float32 vector (one transfer)."""
        obs = game.get_obs(state)
        masks = game.get_avail_actions(state)
        units = state.state
        parts = [
            *(obs[a] for a in agents),
            game.get_world_state(state),
            *(masks[a] for a in agents),
            units.unit_health,
            units.unit_alive,
            units.unit_positions.reshape(-1),
            units.prev_attack_actions,
            jnp.reshape(reward, (1,)),
        ]
        return jnp.concatenate([p.astype(jnp.float32) for p in parts])

    def strong(state):
        """The state with no weakly typed leaves: reset() returns one (the enemies' last
        targets) that step() returns strongly typed, and a call with a differently typed
        state would compile step() a second time."""
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), state)

    def reset(key):
        key, reset_key = jax.random.split(key)
        _, state = game.reset(reset_key)
        return key, strong(state), outputs(state, 0.0)

    def step(key, state, actions):
        key, step_key = jax.random.split(key)
        _, state, rewards, _, _ = game.step_env(
            step_key, state, {a: actions[i] for i, a in enumerate(agents)}
        )
        return key, strong(state), outputs(state, rewards[agents[0]])

    return _Simulator(game, jax, cpu, jax.jit(reset), jax.jit(step))


class SMAX4mVs3mParallelEnv(ParallelEnv):
    """SMAX's 4 marines vs 3 marines (Li et al. (ICLR 2024)'s SMAC map) as a PettingZoo env.

    See the module docstring for the game, the spaces, the rewards and how it differs from SMAC.
    """

    metadata = {
        "name": "smax_4m_vs_3m_v0",
        "render_modes": [m for m in RENDER_MODES if m is not None],
        "is_parallelizable": True,
        "render_fps": 2,
    }

    def __init__(
        self,
        max_cycles: int = 100,
        reward: str = "smax",
        walls_cause_death: bool = True,
        render_mode: str | None = None,
    ):
        self.max_cycles = check_int(max_cycles, "max_cycles", 1)
        if not isinstance(reward, str) or reward not in REWARDS:
            raise InvalidArgumentError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.reward = reward
        self.walls_cause_death = check_bool(walls_cause_death, "walls_cause_death")
        self.render_mode = check_render_mode(render_mode, RENDER_MODES)
        self._sim = _simulator(self.walls_cause_death)
        self.game = self._sim.game
        self.possible_agents = list(self.game.agents)
        self.agents: list[str] = []
        self._obs_space = gymnasium.spaces.Box(-1.0, 1.0, (self.game.obs_size,), np.float32)
        self._act_space = gymnasium.spaces.Discrete(N_ACTIONS)
        if self.game.obs_size != 88 or self.game.state_size != 84:  # the documented layout
            raise RuntimeError(f"unexpected SMAX sizes for jaxmarl {self.game!r}")
        # state bounds: per unit health fraction, x, y, cooldown (s), 6 type bits; teams; types
        max_cooldown = float(self.game.unit_type_weapon_cooldowns.max()) + 2 * float(
            self.game.time_per_step
        )
        unit_high = [1.0, MAP_SIZE, MAP_SIZE, max_cooldown] + [1.0] * 6
        n_types = float(len(self.game.unit_type_names) - 1)
        high = unit_high * N_UNITS + [1.0] * N_UNITS + [n_types] * N_UNITS
        self.state_space = gymnasium.spaces.Box(
            np.zeros(len(high), np.float32), np.array(high, np.float32), dtype=np.float32
        )
        self._key: Any = None
        self.jax_state: Any = None
        self.t = 0
        self._obs = np.zeros((N_ALLIES, self.game.obs_size), np.float32)
        self._state = np.zeros(self.state_space.shape, np.float32)
        self._masks = np.zeros((N_ALLIES, N_ACTIONS), np.int8)
        self._health = np.zeros(N_UNITS, np.float32)
        self._alive = np.zeros(N_UNITS, bool)
        self._positions = np.zeros((N_UNITS, 2), np.float32)
        self._fired = np.zeros(N_UNITS, bool)

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._act_space

    def state(self) -> np.ndarray:
        return self._state.copy()

    # -- simulation ---------------------------------------------------------------------------

    def _load(self, outputs: Any) -> float:
        """Copy one call's outputs from the JAX device; return SMAX's reward of the step."""
        flat = np.asarray(self._sim.jax.device_get(outputs))
        n_obs, n_state = N_ALLIES * self.game.obs_size, self.state_space.shape[0]
        sizes = [n_obs, n_state, N_ALLIES * N_ACTIONS, N_UNITS, N_UNITS, 2 * N_UNITS, N_UNITS, 1]
        obs, state, masks, health, alive, positions, attacks, reward = np.split(
            flat, np.cumsum(sizes)[:-1]
        )
        self._obs = np.clip(obs, -1.0, 1.0).reshape(N_ALLIES, -1)
        self._state = state.copy()
        cooldowns = self._state[3 : 10 * N_UNITS : 10]
        self._state[3 : 10 * N_UNITS : 10] = np.maximum(cooldowns, 0.0)
        self._masks = masks.astype(np.int8).reshape(N_ALLIES, N_ACTIONS)
        self._health = health
        self._alive = alive > 0
        self._positions = positions.reshape(N_UNITS, 2)
        self._fired = attacks >= 5
        return float(reward[0])

    def _battle(self) -> tuple[bool, bool]:
        """(won, over): no enemy left with an ally alive; one side has no unit left."""
        allies, enemies = self._alive[:N_ALLIES].any(), self._alive[N_ALLIES:].any()
        return bool(allies and not enemies), bool(not allies or not enemies)

    def _smac_reward(self, health_before: np.ndarray, alive_before: np.ndarray) -> float:
        lost = health_before - self._health  # health never regenerates in SMAX
        killed = alive_before & ~self._alive
        reward = lost[N_ALLIES:].sum() + _SMAC_DEATH * killed[N_ALLIES:].sum()
        won, over = self._battle()
        if self.reward == "smac_signed":
            reward -= lost[:N_ALLIES].sum() + _SMAC_DEATH * killed[:N_ALLIES].sum()
            if over and not won and self._alive[N_ALLIES:].any():  # lost the battle
                reward -= _SMAC_WIN
        if won:
            reward += _SMAC_WIN
        return float(reward * _SMAC_SCALE / _SMAC_MAX_REWARD)

    def _infos(self) -> dict[str, dict[str, Any]]:
        won, _ = self._battle()
        return {
            a: {
                "action_mask": self._masks[i].copy(),
                "alive": bool(self._alive[i]),
                "battle_won": won,
            }
            for i, a in enumerate(self.possible_agents)
        }

    def _observations(self) -> dict[str, np.ndarray]:
        return {a: self._obs[i].copy() for i, a in enumerate(self.possible_agents)}

    # -- PettingZoo API -----------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        jax = self._sim.jax
        if seed is not None or self._key is None:
            rng, _ = seeding.np_random(seed)
            key = jax.random.PRNGKey(int(rng.integers(2**63)))
            self._key = jax.device_put(key, self._sim.cpu)  # the jitted calls follow it
        self._key, self.jax_state, outputs = self._sim.reset(self._key)
        self._load(outputs)
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]):
        if not self.agents or actions.keys() != set(self.agents):
            raise MissingActionError(
                f"step() needs exactly one action per agent in env.agents={self.agents}; "
                f"got actions for {list(actions)}"
            )
        chosen = np.empty(N_ALLIES, np.int32)
        for i, agent in enumerate(self.possible_agents):
            action = actions[agent]
            if not self._act_space.contains(action):
                raise InvalidActionError(
                    f"action of {agent} must be an int in 0..{N_ACTIONS - 1}, got {action!r}"
                )
            chosen[i] = int(action)
        health_before, alive_before = self._health, self._alive
        self._key, self.jax_state, outputs = self._sim.step(self._key, self.jax_state, chosen)
        smax_reward = self._load(outputs)
        self.t += 1
        if self.reward == "smax":
            reward = smax_reward
        else:
            reward = self._smac_reward(health_before, alive_before)
        _, over = self._battle()
        truncated = not over and self.t >= self.max_cycles
        obs = self._observations()
        rewards = {a: reward for a in self.agents}
        terminations = {a: over for a in self.agents}
        truncations = {a: truncated for a in self.agents}
        infos = self._infos()
        if over or truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called with render_mode=None; nothing to draw")
            return None
        return self._draw()

    def _draw(self) -> np.ndarray:
        size = MAP_SIZE * _PIXELS
        frame = np.full((size, size, 3), 245, np.uint8)
        frame[:: 4 * _PIXELS, :] = frame[:, :: 4 * _PIXELS] = 225  # a grid line every 4 units
        radius = max(int(round(0.375 * _PIXELS)), 4)
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disc = yy**2 + xx**2 <= radius**2
        cross = (np.abs(yy) == np.abs(xx)) & (np.abs(yy) <= radius - 1)

        def paste(mask: np.ndarray, row: int, col: int, colour: Any) -> None:
            top, left = row - radius, col - radius
            r0, c0 = max(top, 0), max(left, 0)
            r1, c1 = min(top + mask.shape[0], size), min(left + mask.shape[1], size)
            if r0 < r1 and c0 < c1:
                region = frame[r0:r1, c0:c1]
                region[mask[r0 - top : r1 - top, c0 - left : c1 - left]] = colour

        for u in range(N_UNITS):
            x, y = self._positions[u]
            col = int(np.clip(x * _PIXELS, 0, size - 1))
            row = int(np.clip((MAP_SIZE - y) * _PIXELS, 0, size - 1))  # north up
            if not self._alive[u]:
                paste(cross, row, col, (150, 150, 150))
                continue
            colour = _ALLY_RGB if u < N_ALLIES else _ENEMY_RGB
            paste(disc, row, col, colour // 2 if self._fired[u] else colour)
            bar_top, bar_left = row - radius - 5, col - radius
            if 0 <= bar_top and bar_left >= 0 and col + radius < size:
                fraction = self._health[u] / _MARINE_HEALTH
                frame[bar_top : bar_top + 3, bar_left : col + radius + 1] = (200, 60, 60)
                filled = int(round(fraction * (2 * radius + 1)))
                frame[bar_top : bar_top + 3, bar_left : bar_left + filled] = (60, 180, 60)
        return frame

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> SMAX4mVs3mParallelEnv:
    return SMAX4mVs3mParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
