# docs and experiment results can be found at docs/index.md
"""The wrapper-only demo (no training): every threat model on one env, one table.

Wraps mpe2 ``simple_spread_v3`` (3 agents, 25 steps, cooperative navigation: the env of He et
al. (TMLR 2023), App. E.1.1) with each registered threat model, plays a scripted benign policy (each agent
heads for "its" landmark) against a random attacker inside the wrapper, and prints the
victims' mean episode return clean vs attacked, over seeded episodes:

    python baselines/demo.py [--episodes 100] [--seed 0]

The clean column runs the same wrapper with the attack switched off (k=0, a prior on
theta = 0, epsilon = 0), so the difference is the threat model's effect alone. Returns are
the victims' rewards summed over the episode and averaged over victims (the team's return in
this cooperative env), mean +- standard error over episodes.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from adv_wrappers import byzantine_v0, k_corruption_v0, partial_control_v0, state_perturbation_v0

N_AGENTS = 3


def scripted_policy(agent_index: int) -> Callable[[np.ndarray], int]:
    """Greedy navigation for simple_spread: move along the larger axis towards landmark i.

    simple_spread observations are ``[vel(2), pos(2), landmark_rel(2N), other_rel(2N-2),
    comm(2N-2)]``; actions are 0 no-op, 1 left, 2 right, 3 down, 4 up.
    """

    def act(obs: np.ndarray) -> int:
        rel = obs[4 + 2 * agent_index : 6 + 2 * agent_index] - 0.5 * obs[0:2]  # damp velocity
        if np.abs(rel).max() < 0.05:
            return 0
        if abs(rel[0]) >= abs(rel[1]):
            return 2 if rel[0] > 0 else 1
        return 4 if rel[1] > 0 else 3

    return act


def make_env():
    try:
        from mpe2 import simple_spread_v3
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SystemExit("the demo needs mpe2: pip install -e '.[mpe]'") from e
    return simple_spread_v3.parallel_env(N=N_AGENTS, max_cycles=25)


def benign_policies() -> dict[str, Callable[[np.ndarray], int]]:
    return {f"agent_{i}": scripted_policy(i) for i in range(N_AGENTS)}


def scenarios() -> list[tuple[str, Callable[[bool], Any]]]:
    """(label, make(attacked) -> wrapped env); make(False) is the same wrapper, attack off."""
    policies = benign_policies()
    no_attack_prior = {(0,) * N_AGENTS: 1.0}
    return [
        (
            "k_corruption_v0(k=1), random attacker",
            lambda on: k_corruption_v0(make_env(), 1 if on else 0, adversary="random"),
        ),
        (
            "k_corruption_v0(k=2), random attacker",
            lambda on: k_corruption_v0(make_env(), 2 if on else 0, adversary="random"),
        ),
        (
            "byzantine_v0(paper prior), random attacker",
            lambda on: byzantine_v0(
                make_env(), prior=None if on else no_attack_prior, adversary="random"
            ),
        ),
        (
            "partial_control_v0(agent_0, eps=0.5), random",
            lambda on: partial_control_v0(
                make_env(),
                "agent_0",
                0.5 if on else 0.0,
                benign_policy=policies["agent_0"],
                adversary="random",
            ),
        ),
        (
            "partial_control_v0(agent_0, eps=1.0), random",
            lambda on: partial_control_v0(
                make_env(),
                "agent_0",
                1.0 if on else 0.0,
                benign_policy=policies["agent_0"],
                adversary="random",
            ),
        ),
        (
            "state_perturbation_v0(eps=0.5, linf), uniform",
            lambda on: state_perturbation_v0(make_env(), 0.5 if on else 0.0, attack="uniform"),
        ),
    ]


def victims_of(infos: dict[str, Any], env) -> tuple[str, ...]:
    for info in infos.values():
        for key in ("k_corruption", "byzantine", "partial_control"):
            if key in info:
                return info[key]["victims"]
    return tuple(env.agents)


def episode_returns(make: Callable[[], Any], episodes: int, seed: int) -> np.ndarray:
    """Victims' return (mean over victims of their summed rewards) of each episode."""
    policies = benign_policies()
    out = np.zeros(episodes)
    for ep in range(episodes):
        env = make()
        obs, infos = env.reset(seed=seed + ep)
        victims = victims_of(infos, env)
        totals = dict.fromkeys(victims, 0.0)
        while env.agents:
            obs, rewards, _, _, infos = env.step({a: policies[a](obs[a]) for a in env.agents})
            for v in victims:
                totals[v] += rewards.get(v, 0.0)
        out[ep] = np.mean(list(totals.values()))
        env.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=100, help="episodes per cell (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error("--episodes must be >= 2 (a standard error needs two episodes)")
    start = time.perf_counter()
    print(
        f"mpe2 simple_spread_v3 (N={N_AGENTS}, 25 steps), scripted benign agents, {args.episodes} "
        f"seeded episodes per cell; victims' mean episode return (mean +- s.e.)\n"
    )
    header = f"{'threat model':<48} {'clean':>16} {'attacked':>16} {'change':>9}"
    print(header)
    print("-" * len(header))
    for label, make in scenarios():
        clean = episode_returns(functools.partial(make, False), args.episodes, args.seed)
        attacked = episode_returns(functools.partial(make, True), args.episodes, args.seed)
        se = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
        print(
            f"{label:<48} {clean.mean():>8.2f} +- {se(clean):<5.2f} {attacked.mean():>8.2f} +- "
            f"{se(attacked):<5.2f} {attacked.mean() - clean.mean():>+9.2f}"
        )
    print(
        "\nVictims: the benign agents (k_corruption, byzantine), the agents other than agent_0\n"
        "(partial_control), every agent (state_perturbation). 'clean' is the same wrapper with\n"
        "the attack off (k=0, theta=0, eps=0). Attackers here are random, not trained: learned\n"
        "worst-case attackers (baselines/attack.py) come with the trainers."
    )
    print(f"({time.perf_counter() - start:.1f} s; see docs/index.md)")


if __name__ == "__main__":
    main()
