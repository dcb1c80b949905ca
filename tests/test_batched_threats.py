"""The action threat models on the batched path (``BatchedVectorEnv(threat=...)``, reached with
``make_vector_env(..., "batched")``) against the same wrappers on the sync backend.

Both paths run the wrapper's own episode code (the batched path through a per-copy shadow of
the wrapper, seeded as the sync backend seeds its copies), so with the same seeds they must
draw the same attacked agents, victims, types and coins; with the batched env's worlds loaded
from the sync copies (``load_from_pettingzoo``) the observations, rewards, flags, masks and
ground truth must then agree step for step under fixed deterministic policies.
"""

from __future__ import annotations

import numpy as np
import pytest

import adv_wrappers  # noqa: F401  (registers the adv/ envs)
from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.train.envs import make_env, make_vector_env
from tests.test_trainers import only, train

CN = "adv/cooperative_navigation-v0"
CASES = {
    "k1_uniform": ({}, "k_corruption_v0", {"k": 1}),
    "k2_exact": ({}, "k_corruption_v0", {"k": 2, "subset": "exact"}),
    "k2_victim": ({}, "k_corruption_v0", {"k": 2, "victim": "agent_0"}),
    "k1_state": ({}, "k_corruption_v0", {"k": 1, "adversary_observes": "state"}),
    "partial": ({}, "partial_control_v0", {"agent": "agent_1", "epsilon": 0.3}),
    "partial_box": (
        {"continuous_actions": True},
        "partial_control_v0",
        {"agent": "agent_2", "epsilon": 0.6, "victim": "agent_0"},
    ),
    "byzantine": ({}, "byzantine_v0", {}),
    "byzantine_two": (
        {"continuous_actions": True},
        "byzantine_v0",
        {"prior": {"000": 0.2, "110": 0.3, "001": 0.5}},
    ),
}


def _policy(obs: np.ndarray, alive: np.ndarray, envs, discrete: bool | None = None) -> np.ndarray:
    """A fixed deterministic policy of the observations; padding where an agent is not listed
    (-1 or NaN, which neither path may read)."""
    e, a = alive.shape
    w = np.sin(np.arange(obs.shape[-1] * 5, dtype=np.float64)).reshape(obs.shape[-1], 5)
    scores = obs.reshape(e, a, -1) @ w + np.arange(a)[None, :, None]
    if envs.action_nvec is not None if discrete is None else discrete:
        return np.where(alive, scores.argmax(-1), -1)
    actions = np.clip(np.tanh(scores), 0.0, 1.0).astype(np.float32)
    actions[~alive] = np.nan
    return actions


def _same(mine, theirs, where="") -> None:
    """Equal nested infos: dicts key by key, arrays exactly, floats to float32 rounding."""
    if isinstance(theirs, dict):
        assert isinstance(mine, dict) and mine.keys() == theirs.keys(), where
        for key in theirs:
            _same(mine[key], theirs[key], f"{where}/{key}")
    elif isinstance(theirs, float):
        assert mine == pytest.approx(theirs, abs=1e-6), where
    elif isinstance(theirs, np.ndarray | np.generic):
        np.testing.assert_array_equal(mine, theirs, err_msg=where)
    else:
        assert mine == theirs, where


def _same_infos(mine, theirs) -> None:
    assert len(mine) == len(theirs)
    for e, (m, t) in enumerate(zip(mine, theirs, strict=True)):
        _same(m, t, f"copy {e}")


def _step_both(sync, bat, actions, t, tol=0.0):
    """Step both backends with ``actions`` and compare what does not depend on a new
    episode's world: flags, masks, rewards (to float32 rounding, or ``tol``), final
    observations and the observations of copies that went on (exactly, or to ``tol``).
    Returns both outputs."""
    out_s, out_b = sync.step(actions), bat.step(actions)
    (obs_s, rew_s, term_s, trunc_s, inf_s), (obs_b, rew_b, term_b, trunc_b, inf_b) = out_s, out_b
    reset = inf_s["reset"]
    np.testing.assert_array_equal(inf_b["reset"], reset)
    np.testing.assert_allclose(rew_b, rew_s, rtol=1e-6, atol=max(tol, 1e-6))
    np.testing.assert_array_equal(term_b, term_s)
    np.testing.assert_array_equal(trunc_b, trunc_s)
    for key in ("alive", "acted", "has_obs", "has_reward", "final_alive"):
        np.testing.assert_array_equal(inf_b[key], inf_s[key], err_msg=f"{key} at step {t}")
    np.testing.assert_allclose(inf_b["final_obs"], inf_s["final_obs"], atol=tol, rtol=0)
    np.testing.assert_allclose(obs_b[~reset], obs_s[~reset], atol=tol, rtol=0)
    return out_s, out_b


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_batched_path_agrees_with_the_wrapper_step_for_step(case):
    """4 copies, 3 episodes of 25 steps (75 steps; every copy auto-resets three times): every
    output of the batched path equals the sync backend's, with the batched worlds reloaded
    from the sync copies after each reset (the two envs draw new worlds with different
    generators). Observations and flags exactly, rewards to float32 rounding (the adversary's
    is a mean the sync path takes in float64 and the batched one in float64 of float32
    rewards). Counted: 75 steps x 4 copies, and the attacks actually vary."""
    env_kwargs, name, kwargs = CASES[case]
    env_fn = make_env(CN, env_kwargs, {"name": name, "kwargs": kwargs})
    sync = make_vector_env(env_fn, 4, "sync")
    bat = make_vector_env(env_fn, 4, "batched")
    assert bat.agents == sync.agents and bat.single_observation_space == (
        sync.single_observation_space
    )
    obs_s, inf_s = sync.reset(seed=11)
    obs_b, inf_b = bat.reset(seed=11)

    def reload(copies):
        for i in copies:
            bat.env.load_from_pettingzoo(int(i), sync.envs[i].env)

    reload(range(4))
    for key in ("alive", "has_obs"):
        np.testing.assert_array_equal(inf_b[key], inf_s[key])
    _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
    returns_s = np.zeros((4, sync.num_agents))
    returns_b = np.zeros((4, sync.num_agents))
    steps = attacked_sets = 0
    seen = set()
    coins = []
    for t in range(75):
        actions = _policy(obs_s, inf_s["alive"], sync)
        (obs_s, rew_s, _, _, inf_s), (_, rew_b, _, _, inf_b) = _step_both(sync, bat, actions, t)
        reset = inf_s["reset"]
        _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
        _same_infos(inf_b["reset_infos"], inf_s["reset_infos"])
        returns_s += rew_s
        returns_b += rew_b
        for info in inf_s["agent_infos"]:
            gt = next(iter(next(iter(info.values())).values()))
            seen.add(gt["attacked"])
            coins += list(gt["adversary_acted"].values())
        reload(np.flatnonzero(reset))
        steps += 1
        attacked_sets += int(reset.sum())
    assert steps == 75 and attacked_sets == 12  # resets at steps 25, 50 and 75
    np.testing.assert_allclose(returns_b, returns_s, rtol=1e-5, atol=1e-4)
    assert len(seen) >= 2 or case.startswith("partial")
    if name == "partial_control_v0":
        assert 0 < np.mean(coins) < 1  # the coin came up both ways


def test_the_batched_draws_follow_the_configured_distributions():
    """1024 copies, two resets each (2048 episodes): the Byzantine types follow the prior and
    partial control's coins come up with probability epsilon over 30 steps, within 4
    standard errors. (The draws are the wrapper's own code; this checks that the batch gives
    each copy its own stream rather than one repeated stream.)"""
    prior = {"000": 0.5, "100": 0.1, "010": 0.25, "001": 0.15}
    envs = make_vector_env(
        make_env(CN, {}, {"name": "byzantine_v0", "kwargs": {"prior": prior}}), 1024, "batched"
    )
    thetas = []
    for seed in (1, 5000):  # copy i is seeded with seed + i: no seed repeats
        _, infos = envs.reset(seed=seed)
        for info in infos["agent_infos"]:
            gt = next(iter(info.values()))["byzantine"]
            thetas.append("".join(str(int(x)) for x in gt["theta"]))
    assert len(thetas) == 2048
    for key, p in prior.items():
        freq = thetas.count(key) / len(thetas)
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(thetas)), (key, freq)
    eps = 0.3
    envs = make_vector_env(
        make_env(CN, {}, {"name": "partial_control_v0", "kwargs": {"agent": "agent_0",
                                                                    "epsilon": eps}}),
        1024,
        "batched",
    )  # fmt: skip
    envs.reset(seed=3)
    acted = []
    for _ in range(30):
        *_, infos = envs.step(np.zeros((1024, 4), dtype=np.int64))
        acted.append(
            [info["agent_0"]["partial_control"]["adversary_acted"]["agent_0"]
             for info in infos["agent_infos"]]
        )  # fmt: skip
    acted = np.array(acted)
    assert acted.size == 30 * 1024
    assert abs(acted.mean() - eps) < 4 * np.sqrt(eps * (1 - eps) / acted.size)
    # copies draw different coins at the same step (not one stream repeated)
    assert 0 < acted[0].mean() < 1


def test_the_batched_path_refuses_the_threats_it_does_not_run():
    def build(name, kwargs, **extra):
        return make_vector_env(make_env(CN, {}, {"name": name, "kwargs": kwargs}, **extra), 2,
                               "batched")  # fmt: skip

    with pytest.raises(InvalidArgumentError, match="embedded adversary"):
        build("k_corruption_v0", {"k": 1, "adversary": "random"})
    with pytest.raises(InvalidArgumentError, match="benign_policy"):
        build("partial_control_v0", {"agent": "agent_0", "epsilon": 0.5,
                                     "benign_policy": "random"})  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="reveal_types"):
        build("byzantine_v0", {"reveal_types": True})
    with pytest.raises(InvalidArgumentError, match="same_step"):
        build("state_perturbation_v0", {"epsilon": 0.1, "timing": "same_step"})
    with pytest.raises(InvalidArgumentError, match="victim_policies"):
        build("state_perturbation_v0", {"epsilon": 0.1, "victim_policies": "random"})
    with pytest.raises(InvalidArgumentError, match="act_batch"):
        build("state_perturbation_v0", {"epsilon": 0.1, "attack": lambda obs: obs * 0})
    with pytest.raises(InvalidArgumentError, match="has no act_batch"):
        build("k_corruption_v0", {"k": 1}, frozen={"agent_0": lambda obs: 0})


def test_ippo_trains_under_a_threat_on_the_batched_backend(tmp_path):
    """The one flag: ippo.py with k-corruption's exposed adversaries on the batched env."""
    train("ippo", tmp_path, "--env-id", CN, "--vector-backend", "batched", "--num-envs", "8",
          "--num-steps", "50", "--total-timesteps", "800", "--eval-episodes", "1",
          "--threat", "k_corruption_v0", "--threat-kwargs", '{"k": 1}')  # fmt: skip
    assert only("runs/*/checkpoints/final.safetensors", tmp_path).exists()


def _checkpoint(path, env_kwargs, agents, seed=0):
    """A random MLP policy per agent of cooperative navigation, saved as a checkpoint."""
    import pettingzoo
    import torch

    from adv_wrappers.train.checkpoint import export_policies, save_policies
    from adv_wrappers.train.networks import ActorSpec, MLPActor

    env = pettingzoo.make("parallel", CN, **env_kwargs)
    act = env.action_space(agents[0])
    continuous = not hasattr(act, "n")
    torch.manual_seed(seed)
    spec = ActorSpec(
        input_dim=18,
        action_dim=int(act.shape[0] if continuous else act.n),
        head="gaussian" if continuous else "categorical",
    )
    actor = MLPActor(spec, members=len(agents))
    spaces = {a: (env.observation_space(a), env.action_space(a)) for a in agents}
    save_policies(path, export_policies(actor, agents), env_id=CN, env_kwargs=env_kwargs,
                  spaces=spaces)  # fmt: skip
    return str(path)


@pytest.mark.parametrize("continuous", [False, True])
def test_frozen_defenders_on_the_batched_path_agree_with_freeze(continuous, tmp_path):
    """attack.py's training env: k-corruption with exposed adversaries, every defender frozen
    with a checkpoint policy, so the adversaries are the only agents outside. 4 copies, 75
    steps (three episodes): the batched path (BatchedFreeze, the policies evaluated on the
    batch) equals freeze_v0 on the sync backend, including the frozen agents' rewards in the
    infos; the worlds are reloaded after each reset as above. Exactly with Discrete actions
    (greedy argmax), to 1e-5 with Box ones (see ``tol``)."""
    env_kwargs = {"continuous_actions": True} if continuous else {}
    # a network on a batch rounds differently from one on a single observation (other
    # kernels): Box actions differ in the last bit, and the worlds by ~1e-8 after it
    tol = 1e-5 if continuous else 0.0
    agents = ["agent_0", "agent_1", "agent_2"]
    path = _checkpoint(tmp_path / "defenders.safetensors", env_kwargs, agents)
    frozen = {a: {"checkpoint": path} for a in agents}
    threat = {"name": "k_corruption_v0", "kwargs": {"k": 1, "victim": "agent_0"}}
    env_fn = make_env(CN, env_kwargs, threat, frozen=frozen)
    sync = make_vector_env(env_fn, 4, "sync")
    bat = make_vector_env(env_fn, 4, "batched")
    assert bat.agents == sync.agents == ("agent_1_adversary", "agent_2_adversary")
    obs_s, inf_s = sync.reset(seed=5)
    obs_b, inf_b = bat.reset(seed=5)

    def reload(copies):
        for i in copies:
            bat.envs.env.load_from_pettingzoo(int(i), sync.envs[i].env.env)

    reload(range(4))
    # the frozen agents act on the reloaded worlds: restore the inner observations too
    bat._obs = bat.envs._observations(bat.envs.env._observe().numpy(), None)
    np.testing.assert_array_equal(inf_b["alive"], inf_s["alive"])
    _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
    frozen_rewards = 0
    for t in range(75):
        actions = _policy(obs_s, inf_s["alive"], sync)
        (obs_s, _, _, _, inf_s), (_, _, _, _, inf_b) = _step_both(sync, bat, actions, t, tol)
        reset = inf_s["reset"]
        _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
        _same_infos(inf_b["reset_infos"], inf_s["reset_infos"])
        for info in inf_s["agent_infos"]:
            for agent_info in info.values():
                frozen_rewards += len(agent_info["freeze"]["rewards"])
        if reset.any():
            reload(np.flatnonzero(reset))
            bat._obs = bat.envs._observations(bat.envs.env._observe().numpy(), None)
    # every step: each copy's info for its one adversary lists the 2 frozen agents left
    assert frozen_rewards == 75 * 4 * 2


def test_the_batched_path_refuses_an_episode_with_no_outside_agent():
    """Agent_0 is always corrupted (a fixed K) and its adversary is frozen, like the other
    agents: nobody is left outside, which only freeze_v0's play-out can handle."""
    threat = {"name": "k_corruption_v0", "kwargs": {"k": 1, "subset": ["agent_0"]}}
    frozen = {"agent_1": "random", "agent_2": "random", "agent_0_adversary": "random"}
    envs = make_vector_env(make_env(CN, {}, threat, frozen=frozen), 2, "batched")
    assert envs.agents == ("agent_0",)
    with pytest.raises(InvalidArgumentError, match="no outside agent"):
        envs.reset(seed=0)


# ----------------------------------------------------------------------- state perturbation

SP = "state_perturbation_v0"
GT = "state_perturbation"  # its infos key


def _chi_checkpoint(path, agents):
    """A random tanh actor per attacked agent: chi_j's action in [-1, 1]^18."""
    import pettingzoo
    import torch
    from gymnasium import spaces as gym_spaces

    from adv_wrappers.train.checkpoint import export_policies, save_policies
    from adv_wrappers.train.networks import ActorSpec, MLPActor

    env = pettingzoo.make("parallel", CN)
    torch.manual_seed(3)
    actor = MLPActor(ActorSpec(input_dim=18, action_dim=18, head="tanh"), members=len(agents))
    box = gym_spaces.Box(-1.0, 1.0, (18,), np.float32)
    names = [f"{a}_obs_adversary" for a in agents]
    spaces = {n: (env.observation_space(a), box) for n, a in zip(names, agents, strict=True)}
    save_policies(path, export_policies(actor, names), env_id=CN, spaces=spaces)
    return str(path)


def _without_true_obs(infos):
    return [
        None if info is None else {
            a: {GT: {k: v for k, v in i[GT].items() if k != "true_obs"}} for a, i in info.items()
        }
        for info in infos
    ]  # fmt: skip


@pytest.mark.parametrize("case", ["exposed", "exposed_box_l2", "exposed_state", "chi"])
def test_state_perturbation_on_the_batched_path_agrees_with_the_wrapper(case, tmp_path):
    """The deterministic configurations, step for step against the sync backend as above (4
    copies, 75 steps, worlds reloaded after each reset): exposed observation adversaries
    (their action at a step perturbs the observation that step returns; an episode's first
    observation is true), with Discrete and Box agents, the l2 ball, the adversary observing
    the state; and chi_j given as checkpoint policies that see each true observation. Exact,
    except chi's actions, which a network computes on a batch (last-bit differences, 1e-5)."""
    env_kwargs = {}
    kwargs = {"epsilon": 0.3}
    tol = 0.0
    if case == "exposed_box_l2":
        env_kwargs, kwargs = {"continuous_actions": True}, {"epsilon": 0.5, "norm": "l2",
                                                             "agents": ["agent_0", "agent_2"]}  # fmt: skip
    elif case == "exposed_state":
        kwargs = {"epsilon": 0.2, "adversary_observes": "state", "agents": ["agent_1"]}
    elif case == "chi":
        path = _chi_checkpoint(tmp_path / "chi.safetensors", ["agent_0", "agent_1"])
        kwargs = {"epsilon": 0.4, "agents": ["agent_0", "agent_1"], "attack": {
            a: {"checkpoint": path, "agent": f"{a}_obs_adversary"} for a in ("agent_0", "agent_1")
        }}  # fmt: skip
        tol = 1e-5
    env_fn = make_env(CN, env_kwargs, {"name": SP, "kwargs": kwargs})
    sync = make_vector_env(env_fn, 4, "sync")
    bat = make_vector_env(env_fn, 4, "batched")
    assert bat.agents == sync.agents and bat.single_action_space == sync.single_action_space
    obs_s, inf_s = sync.reset(seed=2)
    bat.reset(seed=2)
    for i in range(4):
        bat.env.load_from_pettingzoo(i, sync.envs[i].env)
    rng = np.random.default_rng(0)
    steps = 0
    for t in range(75):
        alive = inf_s["alive"]
        if sync.action_nvec is not None:
            actions = _policy(obs_s, alive, sync)
        else:  # Discrete agents read column 0 of the float array; the adversaries act in [-1, 1]
            actions = rng.uniform(-1, 1, (4, sync.num_agents, sync.single_action_space.shape[0]))
            n = 3
            if env_kwargs:
                actions[:, :n, :5] = rng.uniform(0, 1, (4, n, 5))
            else:
                actions[:, :n, 0] = _policy(obs_s[:, :n], alive[:, :n], sync, discrete=True)
            actions = actions.astype(np.float32)
        (obs_s, _, _, _, inf_s), (_, _, _, _, inf_b) = _step_both(sync, bat, actions, t, tol)
        reset = inf_s["reset"]
        if tol == 0:
            _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
            # a new episode's true observations come from the batched env's own new world
            # (reloaded from the sync copy only after this step)
            _same_infos(_without_true_obs(inf_b["reset_infos"]),
                        _without_true_obs(inf_s["reset_infos"]))  # fmt: skip
        for i in np.flatnonzero(reset):
            bat.env.load_from_pettingzoo(int(i), sync.envs[i].env)
        steps += 1
    assert steps == 75
    # the attacked agents' observations really moved (not the identity)
    gt = inf_s["agent_infos"][0]["agent_0"][GT]  # (agent_0 is outside in every case)
    assert max(gt["perturbation_norm"].values()) > 0


@pytest.mark.parametrize(
    "attack,norm,std",
    [
        ("uniform", "linf", 1 / np.sqrt(3)),  # U[-eps, eps]
        ("truncated_normal", "linf", 0.4398),  # N(0, (eps/2)^2) truncated to [-eps, eps]
        ("gaussian", "linf", None),
        ("uniform", "l2", None),
    ],
)
def test_random_noise_on_the_batched_path_has_the_wrappers_distribution(attack, norm, std):
    """Random noise is drawn for the whole batch from one generator, so only its
    distribution can match the sync backend's: the perturbations (observation minus the
    ground truth's true observation) of 1024 batched copies x 5 steps against 8 sync copies
    x 25 steps, radius 0.5. Per coordinate: both inside the ball, the same standard
    deviation and mean to within 5 standard errors of the smaller sample, and the closed
    form where there is one (uniform: eps / sqrt(3); truncated normal: 0.4398 eps, i.e.
    sigma sqrt(1 - 2a phi(a) / (2 Phi(a) - 1)) at a = 2, sigma = eps / 2). With a truncated
    normal no mass sits at the boundary (it is redrawn, not clipped)."""
    eps = 0.5
    env_fn = make_env(CN, {}, {"name": SP, "kwargs": {"epsilon": eps, "attack": attack,
                                                       "norm": norm}})  # fmt: skip

    def deltas(backend, copies, steps):
        envs = make_vector_env(env_fn, copies, backend)
        envs.reset(seed=7)
        out = []
        for _ in range(steps):
            obs, *_, infos = envs.step(np.zeros((copies, 3), dtype=np.int64))
            for e in range(copies):
                gt = infos["agent_infos"][e]["agent_0"][GT]
                for j, a in enumerate(("agent_0", "agent_1", "agent_2")):
                    if not infos["reset"][e]:
                        out.append(obs[e, j] - gt["true_obs"][a])
        return np.array(out, dtype=np.float64)

    batched_d, sync_d = deltas("batched", 1024, 5), deltas("sync", 8, 25)
    assert batched_d.shape == (1024 * 5 * 3, 18) and len(sync_d) >= 8 * 24 * 3
    for d in (batched_d, sync_d):
        radius = np.abs(d).max(axis=1) if norm == "linf" else np.linalg.norm(d, axis=1)
        assert radius.max() <= eps + 1e-6
    se = sync_d.std() / np.sqrt(sync_d.size)
    assert abs(batched_d.mean() - sync_d.mean()) < 5 * se
    se_std = sync_d.std() / np.sqrt(2 * sync_d.size)
    assert abs(batched_d.std() - sync_d.std()) < 5 * se_std
    if std is not None:
        assert abs(batched_d.std() - std * eps) < 5 * batched_d.std() / np.sqrt(2 * batched_d.size)
    if attack == "truncated_normal":
        assert (np.abs(batched_d) > eps - 1e-6).mean() < 1e-4


@pytest.mark.parametrize("backend", ["sync", "batched"])
def test_an_episode_schedule_gives_each_copy_and_episode_its_options(backend):
    """``reset(options={"episode_schedule": ...})`` (art.py's plans): copy e's l-th episode
    since the reset gets table[e][l mod len]; 3 copies, 3 episodes each (the 2-entry rows
    wrap around), read back from the wrapper's ground truth."""
    table = {
        "victim": [["agent_0", "agent_1"], ["agent_2", "agent_0"], ["agent_1", "agent_1"]],
        "attacked": [[["agent_1"], ["agent_2"]], [["agent_0"], ["agent_1"]],
                     [["agent_0"], ["agent_2"]]],
    }  # fmt: skip
    envs = make_vector_env(make_env(CN, {}, {"name": "k_corruption_v0", "kwargs": {"k": 1}}), 3,
                           backend)  # fmt: skip
    _, infos = envs.reset(seed=0, options={"episode_schedule": table})
    seen = [[] for _ in range(3)]

    def record(infos_list, copies):
        for e in copies:
            gt = next(iter(infos_list[e].values()))["k_corruption"]
            seen[e].append((gt["victim"], list(gt["attacked"])))

    record(infos["agent_infos"], range(3))
    for _ in range(50):  # two auto-resets per copy (25-step episodes)
        *_, infos = envs.step(np.zeros((3, envs.num_agents), dtype=np.int64))
        record(infos["reset_infos"], np.flatnonzero(infos["reset"]))
    for e in range(3):
        expected = [(table["victim"][e][i % 2], table["attacked"][e][i % 2]) for i in range(3)]
        assert seen[e] == expected
    with pytest.raises(InvalidArgumentError, match="3 non-empty rows"):
        envs.reset(options={"episode_schedule": {"victim": [["agent_0"]]}})


def test_state_perturbation_victims_act_inside_on_the_batched_path(tmp_path):
    """attack.py's state-perturbation training env: agents 0 and 1 act inside the wrapper with
    checkpoint policies (``victim_policies``) on their observations perturbed by their
    adversaries' actions of the same step; agent_2 is outside. 4 copies, 75
    steps against the sync backend, worlds reloaded after each reset (and the victims' last
    true observations with them): everything equal, the victims' observations, distances and
    rewards in the infos included."""
    path = _checkpoint(tmp_path / "defenders.safetensors", {}, ["agent_0", "agent_1", "agent_2"])
    kwargs = {"epsilon": 0.5, "agents": ["agent_0", "agent_1"],
              "victim_policies": {a: {"checkpoint": path, "agent": a}
                                  for a in ("agent_0", "agent_1")}}  # fmt: skip
    env_fn = make_env(CN, {}, {"name": SP, "kwargs": kwargs})
    sync = make_vector_env(env_fn, 4, "sync")
    bat = make_vector_env(env_fn, 4, "batched")
    assert bat.agents == sync.agents == (
        "agent_2", "agent_0_obs_adversary", "agent_1_obs_adversary",
    )  # fmt: skip
    obs_s, inf_s = sync.reset(seed=4)
    bat.reset(seed=4)

    def reload(copies):
        for i in copies:
            bat.env.load_from_pettingzoo(int(i), sync.envs[i].env)
        bat.threat.remember(bat.env._observe().numpy())

    reload(range(4))
    rng = np.random.default_rng(1)
    victim_steps = 0
    for t in range(75):
        actions = rng.uniform(-1, 1, (4, 3, 18)).astype(np.float32)
        actions[:, :1, 0] = _policy(obs_s[:, :1], inf_s["alive"][:, :1], sync, discrete=True)
        (obs_s, _, _, _, inf_s), (_, _, _, _, inf_b) = _step_both(sync, bat, actions, t)
        reset = inf_s["reset"]
        _same_infos(inf_b["agent_infos"], inf_s["agent_infos"])
        _same_infos(_without_true_obs(inf_b["reset_infos"]),
                    _without_true_obs(inf_s["reset_infos"]))  # fmt: skip
        for info in inf_s["agent_infos"]:
            victim_steps += len(info["agent_2"][GT]["victim_obs"])
        reload(np.flatnonzero(reset))
    assert victim_steps == 75 * 4 * 2
