"""Every factory checks at construction that it was given the kind of env it wraps.

An AEC env given to a parallel factory (or the reverse), a single-agent Gymnasium env, or an
env constructor that was not called raises ``EnvKindError`` (an ``InvalidArgumentError`` and
a ``TypeError``) naming the factory, and the factory or PettingZoo conversion that fits,
instead of failing later at ``reset`` or ``step``. The factories come from the registry, so a
new threat model is covered without editing this file.
"""

from __future__ import annotations

import gymnasium
import pytest

import adv_wrappers
from adv_envs import echo_v0
from adv_wrappers import EnvKindError, InvalidArgumentError, freeze_v0, to_single_agent
from adv_wrappers.registry import THREAT_MODELS


def _threat(tm):
    return lambda env, **kw: tm.factory(env, **{**tm.default_kwargs(env), **kw})


def _aec_threat(tm):
    factory = getattr(adv_wrappers, tm.aec_factory_name)
    return lambda env, **kw: factory(env, **{**tm.default_kwargs(env), **kw})


# name -> (wrap(env), the factory for the other kind or None)
PARALLEL_FACTORIES = {
    **{tm.name: (_threat(tm), tm.aec_factory_name) for tm in THREAT_MODELS.values()},
    "freeze_v0": (lambda env: freeze_v0(env, {env.possible_agents[0]: "random"}), None),
    "to_single_agent": (to_single_agent, None),
}
AEC_FACTORIES = {
    tm.aec_factory_name: (_aec_threat(tm), tm.name)
    for tm in THREAT_MODELS.values()
    if tm.aec_factory_name is not None
}


def test_the_aec_factories_are_the_ones_the_package_exports():
    assert set(AEC_FACTORIES) == {"k_corruption_aec_v0", "partial_control_aec_v0"}
    assert all(hasattr(adv_wrappers, name) for name in AEC_FACTORIES)


@pytest.mark.parametrize("name", sorted(PARALLEL_FACTORIES))
def test_parallel_factory_given_an_aec_env(name):
    wrap, twin = PARALLEL_FACTORIES[name]
    with pytest.raises(EnvKindError) as info:
        wrap(echo_v0.env(n_agents=2))
    message = str(info.value)
    assert message.startswith(f"{name} takes a ParallelEnv; got the AECEnv")
    assert "pettingzoo.utils.conversions.aec_to_parallel(env)" in message
    if twin is not None:
        assert f"use {twin}" in message
    assert isinstance(info.value, InvalidArgumentError) and isinstance(info.value, TypeError)


@pytest.mark.parametrize("name", sorted(AEC_FACTORIES))
def test_aec_factory_given_a_parallel_env(name):
    wrap, twin = AEC_FACTORIES[name]
    with pytest.raises(EnvKindError) as info:
        wrap(echo_v0.parallel_env(n_agents=2))
    message = str(info.value)
    assert message.startswith(f"{name} takes an AECEnv; got the ParallelEnv")
    assert f"use {twin}" in message
    assert "pettingzoo.utils.conversions.parallel_to_aec(env)" in message


NOT_ENVS = {
    "gymnasium env": (lambda: gymnasium.make("CartPole-v1"), "a single-agent gymnasium.Env"),
    "uncalled constructor": (lambda: echo_v0.parallel_env, "'parallel_env', which builds an env"),
    "env class": (lambda: echo_v0.EchoParallelEnv, "'EchoParallelEnv', which builds an env"),
    "None": (lambda: None, "a NoneType"),
}

# arguments that do not need an env to be computed
KWARGS = {
    "k_corruption_v0": {"k": 1},
    "partial_control_v0": {"agent": "agent_0", "epsilon": 0.5},
    "state_perturbation_v0": {"epsilon": 0.1},
}


@pytest.mark.parametrize("what", sorted(NOT_ENVS))
@pytest.mark.parametrize("name", sorted(PARALLEL_FACTORIES) + sorted(AEC_FACTORIES))
def test_factory_given_something_that_is_not_an_env(name, what):
    make, text = NOT_ENVS[what]
    if name in THREAT_MODELS:
        factory = THREAT_MODELS[name].factory
    elif name == "freeze_v0":
        factory = lambda env: freeze_v0(env, {"agent_0": "random"})  # noqa: E731
    else:
        factory = getattr(adv_wrappers, name)
    kwargs = KWARGS.get(name.replace("_aec", ""), {})
    if name.endswith("_aec_v0"):
        kwargs = {**kwargs, **({"agent": "agent_0"} if "partial" in name else {})}
    with pytest.raises(EnvKindError, match=f"^{name} takes an? (Parallel|AEC)Env") as info:
        factory(make(), **kwargs)
    assert text in str(info.value)


def test_the_reported_case_fails_at_construction_not_at_reset():
    with pytest.raises(EnvKindError, match="use k_corruption_aec_v0"):
        adv_wrappers.k_corruption_v0(echo_v0.env(), k=1)
    # and the right kind still works
    env = adv_wrappers.k_corruption_aec_v0(echo_v0.env(), k=1)
    env.reset(seed=0)
    assert env.agent_selection in env.agents
