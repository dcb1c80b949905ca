"""Bounded observation perturbation (He et al. (TMLR 2023), SAMG; Li et al. (ICLR 2024) noise)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import gymnasium
import numpy as np
from pettingzoo.utils.env import AgentID, ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper
from typing_extensions import override

from adv_wrappers.core import (
    OwnRNG,
    check_action_keys,
    check_adversary_observes,
    check_agents,
    check_env_kind,
    check_epsilon,
)
from adv_wrappers.errors import (
    AgentIDCollisionError,
    CallOrderError,
    InvalidActionError,
    InvalidArgumentError,
    UnsupportedSpaceError,
)
from adv_wrappers.policies import Policy, PolicySlot, resolve_policies

NORMS = ("linf", "l2")
NOISE_ATTACKS = ("uniform", "gaussian", "truncated_normal")
TIMINGS = ("next_step", "same_step")


def perturber_id(agent: AgentID) -> str:
    """The stable ID of the exposed observation adversary of ``agent``: ``f"{agent}_obs_adversary"``."""
    return f"{agent}_obs_adversary"


class GradientAttack(Protocol):
    """What ``attack=`` accepts besides noise and policies: an object with ``perturb``.

    ``perturb(agent, obs, epsilon, norm, low, high, rng)`` returns a perturbed observation
    (same shape and dtype) inside the admissible set; see :mod:`adv_wrappers.attacks` for
    FGSM and PGD against a differentiable victim policy.
    """

    def perturb(
        self,
        agent: AgentID,
        obs: np.ndarray,
        epsilon: float,
        norm: str,
        low: np.ndarray,
        high: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray: ...


def to_ball(u: np.ndarray, epsilon: float, norm: str) -> np.ndarray:
    """Map an adversary action ``u`` in [-1, 1]^d onto the ball of radius ``epsilon``.

    ``linf``: ``epsilon * u`` (a bijection of the cube onto the ball). ``l2``:
    ``epsilon * u / max(1, ||u||_2)`` (onto the whole l2 ball: points inside the unit ball
    are scaled, points outside are first projected onto its sphere). ``u`` may have leading
    batch axes (the last axis is d), as on the batched path.
    """
    if norm == "linf":
        return epsilon * u
    n = _l2(u)
    return epsilon * np.where(n > 1.0, u / np.where(n > 0, n, 1.0), u)


def project(delta: np.ndarray, epsilon: float, norm: str) -> np.ndarray:
    """Euclidean projection of ``delta`` onto the ``norm`` ball of radius ``epsilon`` (the last
    axis; leading axes are a batch)."""
    if norm == "linf":
        return np.clip(delta, -epsilon, epsilon)
    n = _l2(delta)
    return np.where(n > epsilon, delta * (epsilon / np.where(n > 0, n, 1.0)), delta)


def _l2(x: np.ndarray) -> np.ndarray:
    """The l2 norm over the last axis (kept), computed the same way for one vector and for a
    batch, so both paths round alike."""
    return np.sqrt((x * x).sum(axis=-1, keepdims=True))


def noise(
    attack: str, rng: np.random.Generator, epsilon: float, norm: str, shape: tuple[int, ...]
) -> np.ndarray:
    """A draw of ``attack``'s random perturbation ``delta`` (one of :data:`NOISE_ATTACKS`; see
    :class:`StatePerturbationWrapper`), float64 of ``shape`` whose last axis is the
    observation's flat size d; leading axes are independent draws (the batched path). For
    ``shape == (d,)`` this is the wrapper's draw for one observation."""
    if attack == "uniform":
        if norm == "linf":
            return rng.uniform(-epsilon, epsilon, shape)
        d = shape[-1]
        direction = rng.normal(size=shape)
        direction /= np.maximum(_l2(direction), 1e-12)
        radius = epsilon * rng.random(shape[:-1]) ** (1.0 / d)
        return direction * np.asarray(radius)[..., None]
    if attack == "gaussian":
        return project(rng.normal(0.0, epsilon / 2, shape), epsilon, norm)
    if attack == "truncated_normal":
        # each coordinate N(0, (epsilon / 2)^2) conditioned on |x| <= epsilon: out-of-range
        # draws are redrawn (rejection; each is kept with probability 0.954), never clipped
        delta = rng.normal(0.0, epsilon / 2, shape)
        outside = np.abs(delta) > epsilon
        while outside.any():
            delta[outside] = rng.normal(0.0, epsilon / 2, int(outside.sum()))
            outside = np.abs(delta) > epsilon
        return delta
    raise InvalidArgumentError(f"attack={attack!r} is not one of {NOISE_ATTACKS}")


def distance(a: np.ndarray, b: np.ndarray, norm: str) -> np.ndarray:
    """``||a - b||`` in ``norm`` over the last axis (computed in the observations' dtype: what
    the agent sees); 0 for an empty axis."""
    diff = np.subtract(a, b)
    if diff.shape[-1] == 0:
        return np.zeros(diff.shape[:-1])
    if norm == "linf":
        return np.abs(diff).max(axis=-1)
    return _l2(diff)[..., 0]


class StatePerturbationWrapper(OwnRNG, BaseParallelWrapper):
    """Attacked agents observe a perturbed observation inside an epsilon-ball of the truth.

    He et al. (TMLR 2023), "Robust Multi-Agent RL with State Uncertainty", SAMG, App. A-D:
    an adversary chi_i per agent replaces the state agent i observes by a perturbed state
    from an admissible set P_s^i, to minimize the agents' return; the environment's
    transitions and rewards are those of the true state. Here the admissible set of an
    observation ``o`` is ``{o' : ||o' - o|| <= epsilon} intersected with [low, high]`` (the
    observation space's bounds), in the l-infinity (default) or l2 norm. Random noise in
    the ball is the papers' "w/ N" baseline (He et al. (TMLR 2023), Tables 4-5) and the
    l-inf noise attack of Li et al. (ICLR 2024), Sec. 4.

    Perturbations are computed as ``o' = clip(o + delta, low, high)`` with ``delta`` in the
    ball; since ``o`` is inside the bounds, clipping only moves coordinates towards ``o``,
    so ``o'`` stays in the ball (this clip *is* the admissible set, not a correction).

    Args:
        env: any PettingZoo ParallelEnv.
        epsilon: the radius, a finite float >= 0 (0: no perturbation).
        agents: the attacked agents (default: every agent); each needs a Box observation
            space (any shape; the perturbation has its flattened size d).
        norm: ``"linf"`` or ``"l2"``.
        attack: who perturbs.

            * ``None``: a learned adversary exposed as agent ``f"{j}_obs_adversary"`` with
              action space ``Box(-1, 1, (d,), float32)``, mapped into the ball by
              :func:`to_ball`; it observes the true observation of ``j`` (or ``state()``
              with ``adversary_observes="state"``) and is rewarded minus ``j``'s reward.
              Timing: in a simultaneous-move (parallel) API an outside adversary and its
              outside victim act in the same ``step``, so the adversary's action at a step
              perturbs the observation that step *returns*, chosen from the true
              observation returned by the previous step (it commits one step ahead; the
              first observation of an episode is unperturbed). The paper's chi(. | s),
              which sees the observation it perturbs, needs the victim to act after the
              adversary: give the victims' policies as ``victim_policies`` and the
              adversary's action at a step perturbs the true observation it was shown,
              and the victim acts on the result inside that same step (this is how a
              fresh attacker is trained against frozen defenders). To co-train the
              adversary and the victims with that timing, use ``timing="same_step"``
              (below). A trained adversary also plugs into the embedded policy slot
              below, with the same timing.
            * ``"uniform"``: delta uniform in the ball (l-inf: each coordinate uniform in
              [-epsilon, epsilon]; l2: uniform in the l2 ball).
            * ``"gaussian"``: delta ~ N(0, (epsilon / 2)^2 I) projected onto the ball.
            * ``"truncated_normal"`` (l-inf only): each coordinate of delta ~ N(0,
              (epsilon / 2)^2) truncated to [-epsilon, epsilon] (redrawn, not clipped: no
              mass piles up at the boundary). With epsilon = 1 this is He et al.'s "w/ N"
              (Table 3: uncertainty level lambda = 0.5 within [l, u] = [-1, 1]).
            * a policy (callable on the adversary observation, optional ``reset()``)
              returning ``u`` in [-1, 1]^d, mapped like the exposed action; it perturbs each
              observation knowing it (chi(. | s) exactly). A dict attacked agent -> policy
              gives each attacked agent its own (e.g. the chi_j trained by ``attack.py``).
            * a gradient attack: an object with ``perturb(...)`` (see
              :class:`GradientAttack`; FGSM and PGD in :mod:`adv_wrappers.attacks`).
        adversary_observes: ``"agent"`` (true observation, default) or ``"state"``.
        victim_policies: only with ``attack=None``: a policy (for every attacked agent) or a
            dict attacked agent -> policy; those agents act inside the wrapper on the
            perturbed observation and leave the outside agent list, so the exposed
            adversaries see exactly the observation they perturb (see Timing above).
        timing: only with ``attack=None``: ``"next_step"`` (default; the exposed adversary
            commits one step ahead, see Timing above) or ``"same_step"``, He et al.'s
            Algorithm 1 with every agent outside: each step has two phases.

            1. ``reset()``/``step()`` return the *true* observation to each exposed
               adversary; an attacked agent's entry is withheld (an array of NaN; its
               observation space must be floating-point).
            2. ``perturb(adversary_actions)`` takes the actions of the exposed adversaries
               of the attacked agents that must act, projects them onto the admissible
               set and returns ``(observations, infos)``: the same dicts with the attacked
               agents' perturbed observations and the ground truth.
            3. ``step(actions)`` then takes every agent's action; the adversaries' entries
               must equal those given to ``perturb()``.

            ``step()`` before ``perturb()``, or ``perturb()`` twice, raises
            :class:`~adv_wrappers.errors.CallOrderError`. An attacked agent's last
            observation of an episode (on which it does not act) is returned true.

    What agents see: attacked agents get the perturbed observation; every reward, flag and
    transition is the true env's. Unattacked agents are untouched.

    Infos: every outside agent's info has ``info["state_perturbation"]`` with
    ``"attacked"``, ``"epsilon"``, ``"norm"``, ``"true_obs"`` (dict attacked agent -> true
    observation), ``"perturbation_norm"`` (dict attacked agent -> ||o' - o|| in ``norm``,
    float) and ``"adversary_actions"`` (dict agent -> u, for exposed and policy attacks).
    With ``victim_policies`` also ``"victim_obs"`` (dict victim -> the perturbed observation
    it acted on in this step), ``"victim_perturbation_norm"`` and ``"victim_rewards"``;
    ``"perturbation_norm"`` then covers only the attacked agents that are outside. With
    ``timing="same_step"``: ``reset()``/``step()`` infos have ``"awaiting"`` (the attacked
    agents whose perturbation ``perturb()`` must give) and empty ``"perturbation_norm"`` and
    ``"adversary_actions"`` (filled in the infos ``perturb()`` returns); ``step()`` infos
    also have ``"applied"``: ``{"obs", "perturbation_norm", "adversary_actions"}`` of the
    perturbation the agents acted on in that step.

    Raises:
        EnvKindError: ``env`` is not a ParallelEnv (an AECEnv: convert it with
            ``pettingzoo.utils.conversions.aec_to_parallel``).
        InvalidArgumentError: epsilon not finite or negative; unknown ``norm``, ``attack``
            string or ``adversary_observes``; ``"truncated_normal"`` with ``norm="l2"``; an
            ``attack`` that is neither a string,
            a callable, a dict of callables for the attacked agents nor an object with
            ``perturb``; ``victim_policies`` with an
            embedded attack, or that is not a policy/dict of policies for attacked agents;
            an unknown ``timing``, or ``"same_step"`` with an embedded attack or
            ``victim_policies``.
        UnknownAgentError: ``agents`` with IDs not in ``possible_agents``.
        UnsupportedSpaceError: an attacked agent whose observation space is not a Box (or,
            with ``timing="same_step"``, not floating-point).
        AgentIDCollisionError: an exposed adversary ID already exists.
        MissingActionError: ``step`` without an action for a listed agent (adversaries
            included) or with one for an unlisted agent.
        InvalidActionError: the exposed adversary's action or a policy attack's output is not
            d numbers in [-1, 1] (NaN included), or a gradient attack returned an
            observation outside the admissible set or of the wrong shape (raised at that
            step, naming the agent); with ``timing="same_step"``, a ``step()`` whose
            adversary actions differ from those given to ``perturb()``.
        CallOrderError: ``timing="same_step"`` used out of order (see ``timing``).

    Example:
        >>> from adv_envs import echo_v0
        >>> from adv_wrappers import state_perturbation_v0
        >>> env = state_perturbation_v0(echo_v0.parallel_env(n_agents=2), 0.5, agents=["agent_0"], attack="uniform")
        >>> obs, infos = env.reset(seed=0)
        >>> obs, rewards, _, _, infos = env.step({"agent_0": 2, "agent_1": 1})
        >>> obs["agent_0"], obs["agent_1"]
        (array([2.2165322, 1.4098383], dtype=float32), array([2., 1.], dtype=float32))
        >>> round(infos["agent_0"]["state_perturbation"]["perturbation_norm"]["agent_0"], 4)
        0.4098

    Change logs:
        v0: initial release.
    """

    threat_name = "state_perturbation"

    def __init__(
        self,
        env: ParallelEnv,
        epsilon: float,
        *,
        agents: Sequence[AgentID] | None = None,
        norm: str = "linf",
        attack: Any = None,
        adversary_observes: str = "agent",
        victim_policies: Any = None,
        timing: str = "next_step",
    ):
        check_env_kind(env, "state_perturbation_v0")
        super().__init__(env)
        self._base_possible = list(env.possible_agents)
        self.epsilon = check_epsilon(epsilon, "epsilon", upper=None)
        if norm not in NORMS:
            raise InvalidArgumentError(f"norm={norm!r} is not allowed; use one of {NORMS}")
        self.norm = norm
        self.adversary_observes = check_adversary_observes(adversary_observes, env)
        self.attacked = (
            list(self._base_possible)
            if agents is None
            else check_agents(agents, "agents", self._base_possible)
        )
        self._bounds: dict[AgentID, tuple[np.ndarray, np.ndarray, int]] = {}
        self._bounded: dict[AgentID, bool] = {}
        self._victim_record: dict[str, dict[AgentID, Any]] = {}
        for a in self.attacked:
            space = env.observation_space(a)
            if not isinstance(space, gymnasium.spaces.Box):
                raise UnsupportedSpaceError(
                    f"state_perturbation_v0 perturbs Box observations; agent {a!r} has {space}"
                )
            self._bounds[a] = (space.low, space.high, math.prod(space.shape))
            # MPE-style unbounded spaces need no clip (the ball is the whole admissible set)
            self._bounded[a] = bool(np.isfinite(space.low).any() or np.isfinite(space.high).any())
        # None, a noise name, a policy or a gradient attack (told apart by _is_policy)
        self.attack: str | Policy | GradientAttack | None
        if isinstance(attack, str) and attack == "truncated_normal" and norm != "linf":
            raise InvalidArgumentError(
                f"attack='truncated_normal' truncates each coordinate (norm='linf'); got "
                f"norm={norm!r}"
            )
        if attack is None or (isinstance(attack, str) and attack in NOISE_ATTACKS):
            self.attack = attack
        elif isinstance(attack, str):
            raise InvalidArgumentError(
                f"attack={attack!r} is not allowed; use None (exposed learned adversary), "
                f"one of {NOISE_ATTACKS}, a policy, or a gradient attack (adv_wrappers.attacks)"
            )
        elif hasattr(attack, "perturb") or callable(attack):
            self.attack = attack
        elif isinstance(attack, Mapping):  # one policy per attacked agent (e.g. trained chi_j)
            per_agent = resolve_policies(attack, "attack", self.attacked, self._base_possible)
            self.attack = cast(Any, per_agent)
            if any(isinstance(p, str) for p in (per_agent or {}).values()):
                raise InvalidArgumentError(
                    "attack: a dict maps attacked agents to callable policies; for random "
                    f"noise use attack in {NOISE_ATTACKS}"
                )
        else:
            raise InvalidArgumentError(
                f"attack must be None, a string in {NOISE_ATTACKS}, a callable policy, a dict "
                f"attacked agent -> policy or an object with perturb(); got {type(attack).__name__}"
            )
        self.exposed = self.attack is None
        self._adv_ids = {a: perturber_id(a) for a in self.attacked}
        self._adv_to_agent = {v: k for k, v in self._adv_ids.items()}
        self._adv_action_spaces = {
            a: gymnasium.spaces.Box(-1.0, 1.0, (self._bounds[a][2],), np.float32)
            for a in self.attacked
        }
        self._victim_slots: dict[AgentID, PolicySlot] = {}
        if victim_policies is not None:
            if not self.exposed:
                raise InvalidArgumentError(
                    "victim_policies is for the exposed slot (attack=None); with an embedded "
                    "attack the perturbation already sees the observation it perturbs: put "
                    "freeze_v0 on top to embed the victims"
                )
            policies = resolve_policies(
                victim_policies, "victim_policies", self.attacked, self._base_possible
            )
            assert policies is not None  # None only for victim_policies=None
            self._victim_slots = {
                a: PolicySlot(a, p, env.action_space(a), "victim policy")
                for a, p in policies.items()
            }
        if timing not in TIMINGS:
            raise InvalidArgumentError(f"timing={timing!r} is not allowed; use one of {TIMINGS}")
        self.timing = timing
        self.same_step = timing == "same_step"
        if self.same_step:
            if not self.exposed or self._victim_slots:
                raise InvalidArgumentError(
                    'timing="same_step" is for exposed adversaries co-trained with outside '
                    "victims (attack=None, no victim_policies); an embedded attack and "
                    "victim_policies already perturb the observation they see"
                )
            not_float = [a for a in self.attacked if env.observation_space(a).dtype.kind != "f"]
            if not_float:
                raise UnsupportedSpaceError(
                    f'timing="same_step" withholds the observations of attacked agents as NaN '
                    f"until perturb(); agents {not_float} have non-floating-point observations"
                )
        self._awaiting: dict[AgentID, Any] = {}
        self._perturbed: dict[AgentID, Any] | None = None
        self._committed: dict[AgentID, Any] = {}
        self._applied: dict[str, Any] | None = None
        self._last_out: dict[AgentID, Any] = {}
        self._last_infos_out: dict[AgentID, Any] = {}
        if self.exposed:
            clash = [i for i in self._adv_ids.values() if i in self._base_possible]
            if clash:
                raise AgentIDCollisionError(
                    f"the exposed adversary IDs {clash} already exist in the env"
                )
        outside = [a for a in self._base_possible if a not in self._victim_slots]
        if self.exposed:
            outside += list(self._adv_ids.values())
        self.possible_agents = outside
        self._attack_policies: dict[AgentID, Policy] = {}
        if isinstance(self.attack, Mapping):
            self._attack_policies = dict(self.attack)
        elif callable(self.attack) and not hasattr(self.attack, "perturb"):
            self._attack_policies = dict.fromkeys(self.attacked, self.attack)
        self._is_policy = bool(self._attack_policies)
        self._np_random = None
        self._agent_set: set[AgentID] = set()
        self.agents: list[AgentID] = []

    @override
    def observation_space(self, agent: AgentID) -> gymnasium.spaces.Space:
        base = self._adv_to_agent.get(agent) if self.exposed else None
        if base is None:
            return self.env.observation_space(agent)
        return (
            self.env.state_space
            if self.adversary_observes == "state"
            else self.env.observation_space(base)
        )

    @override
    def action_space(self, agent: AgentID) -> gymnasium.spaces.Space:
        base = self._adv_to_agent.get(agent) if self.exposed else None
        return self.env.action_space(agent) if base is None else self._adv_action_spaces[base]

    # ------------------------------------------------------------------ perturbation
    def _adversary_observation(self, agent: AgentID, true_obs: Any) -> Any:
        return self.env.state() if self.adversary_observes == "state" else true_obs

    def _perturb(
        self, agent: AgentID, obs: np.ndarray, u: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        """Return ``(perturbed obs, adversary action or None)`` for one attacked agent."""
        low, high, d = self._bounds[agent]
        if self.attack is None or self._is_policy:
            if self._is_policy:
                u = self._attack_policies[agent](self._adversary_observation(agent, obs))
            if u is None:  # exposed slot before its first action: no perturbation
                return obs, None
            u_arr = np.asarray(u)
            if (
                u_arr.size != d
                or u_arr.dtype.kind not in "fiu"
                or not np.abs(u_arr).max() <= 1.0  # also rejects NaN
            ):
                raise InvalidActionError(
                    f"the observation adversary of agent {agent!r} gave action {u!r}; it must be "
                    f"{d} finite numbers in [-1, 1]"
                )
            delta = to_ball(u_arr.reshape(-1), self.epsilon, self.norm)
        elif isinstance(self.attack, str):  # one of NOISE_ATTACKS
            delta = noise(self.attack, self.np_random, self.epsilon, self.norm, (d,))
        else:
            perturbed = cast(GradientAttack, self.attack).perturb(
                agent, obs, self.epsilon, self.norm, low, high, self.np_random
            )
            perturbed = np.asarray(perturbed)
            self._check_admissible(agent, obs, perturbed)
            return perturbed.astype(obs.dtype, copy=False), None
        perturbed = obs + delta.reshape(obs.shape).astype(obs.dtype, copy=False)
        if self._bounded[agent]:
            np.clip(perturbed, low, high, out=perturbed)
        return perturbed, u

    def _distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(distance(np.ravel(a), np.ravel(b), self.norm))

    def _check_admissible(self, agent: AgentID, obs: np.ndarray, perturbed: np.ndarray) -> None:
        low, high, _ = self._bounds[agent]
        tol = 1e-5 * max(1.0, self.epsilon)
        if (
            perturbed.shape != obs.shape
            or self._distance(perturbed, obs) > self.epsilon + tol
            or (perturbed < low - tol).any()
            or (perturbed > high + tol).any()
        ):
            raise InvalidActionError(
                f"the gradient attack on agent {agent!r} returned an observation outside the "
                f"admissible set (shape {perturbed.shape} vs {obs.shape}, distance "
                f"{self._distance(perturbed, obs) if perturbed.shape == obs.shape else 'n/a'} "
                f"vs epsilon={self.epsilon}, bounds)"
            )

    def _apply(
        self,
        obs: Mapping[AgentID, Any],
        infos: Mapping[AgentID, Any],
        actions: Mapping[AgentID, Any],
    ) -> tuple[dict[AgentID, Any], dict[AgentID, Any]]:
        out = dict(obs)
        true_obs, norms, adv_actions = {}, {}, {}
        awaiting: dict[AgentID, Any] = {}
        victims = self._victim_slots
        for a in self.attacked:
            if a not in obs:
                continue
            o = true_obs[a] = obs[a]
            if a in victims:  # perturbed at the next step, with the adversary's action on o
                del out[a]
            elif self.same_step:
                if a in self.env.agents:  # withheld until perturb(); a last one stays true
                    awaiting[a] = o
                    out[a] = np.full_like(o, np.nan)
            else:
                perturbed, u = self._perturb(a, o, actions.get(self._adv_ids[a]))
                out[a] = perturbed
                norms[a] = self._distance(perturbed, o)
                if u is not None:
                    adv_actions[a] = u
            if self.exposed:
                out[self._adv_ids[a]] = self._adversary_observation(a, o)
        gt = {
            "attacked": tuple(true_obs),
            "epsilon": self.epsilon,
            "norm": self.norm,
            "true_obs": true_obs,
            "perturbation_norm": norms,
            "adversary_actions": adv_actions,
        }
        if victims:
            gt.update(self._victim_record)
        if self.same_step:
            gt["awaiting"] = tuple(awaiting)
            if self._applied is not None:
                gt["applied"] = self._applied
            self._awaiting, self._perturbed, self._committed = awaiting, None, {}
        out_infos = {}
        for a, info in infos.items():
            if a not in victims:
                out_infos[a] = {**info, self.threat_name: gt}
            if self.exposed and a in self._adv_ids:
                out_infos[self._adv_ids[a]] = {**info, self.threat_name: gt}
        if self.same_step:
            self._last_out, self._last_infos_out = out, out_infos
        return out, out_infos

    def _sync_agents(self) -> None:
        agents = [a for a in self.env.agents if a not in self._victim_slots]
        if self.exposed:
            agents += [self._adv_ids[a] for a in self.env.agents if a in self._adv_ids]
        self.agents = agents
        self._agent_set = set(agents)

    # ------------------------------------------------------------------ API
    @override
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._seed_rng(seed)
        obs, infos = self.env.reset(seed=seed, options=options)
        for policy in {id(p): p for p in self._attack_policies.values()}.values():
            reset = getattr(policy, "reset", None)
            if callable(reset):
                reset()
        for slot in self._victim_slots.values():
            slot.reset()
        self._victim_record = {
            "victim_obs": {},
            "victim_perturbation_norm": {},
            "victim_rewards": {},
        }
        self._last_obs, self._last_infos = obs, infos
        self._applied = None
        self._sync_agents()
        return self._apply(obs, infos, {})

    @property
    def awaiting_adversaries(self) -> list[AgentID]:
        """``timing="same_step"``: the exposed adversaries whose actions ``perturb()`` takes
        for the current observations (empty with ``timing="next_step"``)."""
        return [self._adv_ids[a] for a in self._awaiting] if self.same_step else []

    def perturb(
        self, actions: Mapping[AgentID, Any]
    ) -> tuple[dict[AgentID, Any], dict[AgentID, Any]]:
        """``timing="same_step"``: perturb the observations that await it, before ``step``.

        Args:
            actions: the action of the exposed adversary of every attacked agent that must
                act now (the ``"awaiting"`` agents of the last ``reset()``/``step()``
                infos), keyed by the adversary's ID; ``Box(-1, 1, (d,))`` as in ``step``.

        Returns:
            ``(observations, infos)``: the last ``reset()``/``step()`` dicts with the
            attacked agents' perturbed observations, and the ground truth (``"true_obs"``,
            ``"perturbation_norm"``, ``"adversary_actions"``) in every agent's info.

        Raises:
            CallOrderError: ``timing`` is not ``"same_step"``, ``perturb()`` was already
                called for these observations, or none awaits a perturbation.
            MissingActionError: an awaiting agent's adversary has no action, or an action is
                given for another agent.
            InvalidActionError: an action that is not d finite numbers in [-1, 1].
        """
        if not self.same_step:
            raise CallOrderError(
                f'perturb() is for timing="same_step"; this wrapper has timing={self.timing!r}'
            )
        if self._perturbed is not None:
            raise CallOrderError(
                "perturb() was already called for these observations; call step() next"
            )
        if not self._awaiting:
            raise CallOrderError(
                "no observation awaits a perturbation (none of the attacked agents must act, "
                "or reset() was not called)"
            )
        expected = [self._adv_ids[a] for a in self._awaiting]
        check_action_keys(actions, expected, set(expected))
        perturbed, norms, adv_actions = {}, {}, {}
        for a, o in self._awaiting.items():
            perturbed[a], u = self._perturb(a, o, actions[self._adv_ids[a]])
            norms[a] = self._distance(perturbed[a], o)
            adv_actions[a] = u
        self._perturbed = perturbed
        self._committed = {self._adv_ids[a]: u for a, u in adv_actions.items()}
        self._applied = {
            "obs": perturbed,
            "perturbation_norm": norms,
            "adversary_actions": adv_actions,
        }
        infos = {}
        for a, info in self._last_infos_out.items():
            gt = {**info[self.threat_name], "perturbation_norm": norms}
            infos[a] = {**info, self.threat_name: {**gt, "adversary_actions": adv_actions}}
        return {**self._last_out, **perturbed}, infos

    @override
    def step(self, actions: dict[AgentID, Any]):
        check_action_keys(actions, self.agents, self._agent_set)
        if self.same_step:
            if self._awaiting and self._perturbed is None:
                raise CallOrderError(
                    f'timing="same_step": the observations of {list(self._awaiting)} await '
                    "their perturbation; call perturb(adversary_actions) before step()"
                )
            for pid, u in self._committed.items():
                if not np.array_equal(np.asarray(actions[pid]), np.asarray(u)):
                    raise InvalidActionError(
                        f"{pid!r} acted {actions[pid]!r} in step() but {u!r} in perturb(); "
                        'with timing="same_step" they must be equal'
                    )
            if not self._awaiting:
                self._applied = None
        base_actions = {a: actions[a] for a in self.env.agents if a in self._agent_set}
        victim_obs, victim_norms = {}, {}
        for a, slot in self._victim_slots.items():
            if a in self.env.agents:  # the paper's chi(. | s): perturb o_t, then the victim acts
                true = self._last_obs[a]
                perturbed, _ = self._perturb(a, true, actions[self._adv_ids[a]])
                victim_obs[a], victim_norms[a] = perturbed, self._distance(perturbed, true)
                base_actions[a] = slot.act(perturbed, self.np_random, self._last_infos.get(a))
        obs, rewards, terminations, truncations, infos = self.env.step(base_actions)
        self._last_obs, self._last_infos = obs, infos
        if self._victim_slots:
            self._victim_record = {
                "victim_obs": victim_obs,
                "victim_perturbation_norm": victim_norms,
                "victim_rewards": {a: rewards[a] for a in self._victim_slots if a in rewards},
            }
        obs, infos = self._apply(obs, infos, actions)
        if self.exposed:
            rewards, terminations, truncations = (
                dict(rewards),
                dict(terminations),
                dict(truncations),
            )
            for a in self.attacked:
                if a in rewards:
                    pid = self._adv_ids[a]
                    rewards[pid] = -float(rewards[a])
                    terminations[pid] = terminations[a]
                    truncations[pid] = truncations[a]
            for a in self._victim_slots:
                for d in (rewards, terminations, truncations):
                    d.pop(a, None)
        self._sync_agents()
        return obs, rewards, terminations, truncations, infos


state_perturbation_v0 = StatePerturbationWrapper
"""The versioned public name of :class:`StatePerturbationWrapper` (bump the suffix when results move)."""
