"""FGSM and PGD against a differentiable victim (torch); skipped when torch is absent."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mpe2 import simple_spread_v3  # noqa: E402

from adv_envs import echo_v0  # noqa: E402
from adv_wrappers import InvalidArgumentError, state_perturbation_v0  # noqa: E402
from adv_wrappers.attacks import FGSM, PGD  # noqa: E402


def linear_victim(d_in, d_out, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(d_in, d_out)


def test_import_adv_wrappers_does_not_import_torch():
    code = "import adv_wrappers, adv_envs, adv_wrappers.vector, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_matches_the_closed_form_gradient_of_a_linear_victim(norm):
    victim = linear_victim(3, 5)
    env = state_perturbation_v0(
        echo_v0.parallel_env(), 0.3, agents=["agent_0"], norm=norm, attack=FGSM(victim)
    )
    env.reset(seed=0)
    obs, *_, infos = env.step({"agent_0": 2, "agent_1": 1, "agent_2": 3})
    o = np.array([2.0, 1.0, 3.0])
    w, b = (
        victim.weight.detach().numpy().astype(np.float64),
        victim.bias.detach().numpy().astype(np.float64),
    )
    logits = w @ o + b
    p = np.exp(logits - logits.max())
    p /= p.sum()
    onehot = np.eye(5)[logits.argmax()]
    grad = w.T @ (p - onehot)  # d CE / d o for a linear softmax policy
    step = 0.3 * (np.sign(grad) if norm == "linf" else grad / np.linalg.norm(grad))
    np.testing.assert_allclose(obs["agent_0"], o + step, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(obs["agent_1"], o)  # not attacked


def test_pgd_is_at_least_as_strong_as_fgsm_and_flips_actions():
    env_fn = lambda: simple_spread_v3.parallel_env(N=3, max_cycles=10)  # noqa: E731
    d = env_fn().observation_space("agent_0").shape[0]
    victim = linear_victim(d, 5, seed=1)
    flips = {"fgsm": 0, "pgd": 0}
    compared = 0
    for name, attack in [("fgsm", FGSM(victim)), ("pgd", PGD(victim, steps=20))]:
        env = state_perturbation_v0(env_fn(), 0.5, attack=attack)
        obs, infos = env.reset(seed=3)
        rng = np.random.default_rng(0)
        while env.agents:
            gt = next(iter(infos.values()))["state_perturbation"]
            for a, true in gt["true_obs"].items():
                with torch.no_grad():
                    clean = victim(torch.as_tensor(true[None])).argmax().item()
                    attacked = victim(torch.as_tensor(obs[a][None])).argmax().item()
                flips[name] += clean != attacked
                compared += 1
            obs, *_, infos = env.step({a: rng.integers(5) for a in env.agents})
    assert compared == 2 * 3 * 10
    assert flips["pgd"] >= flips["fgsm"] > 0, flips


def test_gradient_attack_argument_errors():
    victim = linear_victim(3, 5)
    with pytest.raises(InvalidArgumentError, match="kind"):
        FGSM(victim, kind="binary")
    with pytest.raises(InvalidArgumentError, match="steps"):
        PGD(victim, steps=0)
    with pytest.raises(InvalidArgumentError, match="step_size"):
        PGD(victim, step_size=float("nan"))
    with pytest.raises(InvalidArgumentError, match="callable"):
        FGSM({"agent_0": 3})
