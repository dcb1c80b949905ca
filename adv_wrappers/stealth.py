"""Stealth: how far an attack shifts the victim's observation distribution.

Liu et al. (ICLR 2024), Sec. 7 (Figs. 1 and 3) and App. E.2/E.4 (Fig. 7) measure how
detectable an attack is by the shift it causes in the distribution of the victim's
observations: the victim's observations on clean rollouts against those on attacked
rollouts, compared on the most important features with the squared Wasserstein-2
distance, the KL divergence and the Hellinger distance. A smaller budget eps_pi of partial
control (Prop. 3.2) should shift the distribution less.

The paper does not say how it estimates the three distances from samples. Here:

* :func:`variance_ranking` / :func:`select_features`: the variance-based feature
  importance (App. E.2). Features are ranked by their variance on the *clean* rollouts (the
  reference distribution, Tables 1-3's "Original" column), so every attack is compared on
  the same features; features with (near) zero variance are dropped.
* :func:`wasserstein2`: the squared 2-Wasserstein distance. ``method="gaussian"`` is the
  closed form between the Gaussians fitted to the two samples (the Fréchet distance,
  ``|mu_p - mu_q|^2 + tr(S_p + S_q - 2 (S_q^1/2 S_p S_q^1/2)^1/2)``), the joint distance
  over all selected features; ``method="marginal"`` sums the exact squared W2 distances of
  the empirical one-dimensional marginals (quantile functions on a common grid), which
  needs no Gaussian assumption but ignores dependence between features.
* :func:`kl_divergence`: ``KL(p || q)`` between the fitted Gaussians (``p`` the clean
  sample).
* :func:`hellinger`: the Hellinger distance between the fitted Gaussians, in [0, 1].
* :func:`state_shift`: all three on the selected features.

The Gaussian fits use the sample mean and the (ddof=1) covariance plus ``ridge`` times the
identity (a one-hot or otherwise degenerate feature set has a singular covariance).
Identical samples give 0 for every distance (up to rounding).

Example:
    >>> import numpy as np
    >>> from adv_wrappers.stealth import state_shift
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.normal(0.0, 1.0, size=(5000, 3))
    >>> attacked = rng.normal([1.0, 0.0, 0.0], 1.0, size=(5000, 3))
    >>> shift = state_shift(clean, attacked, top_k=3)
    >>> round(shift["w2"], 1), round(shift["kl"], 1), round(shift["hellinger"], 2)
    (1.0, 0.5, 0.35)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adv_wrappers.errors import InvalidArgumentError

__all__ = [
    "hellinger",
    "kl_divergence",
    "select_features",
    "state_shift",
    "variance_ranking",
    "wasserstein2",
]


def _samples(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be an array of samples; got {x!r}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise InvalidArgumentError(
            f"{name} must have shape (n_samples >= 2, n_features); got {np.shape(x)}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidArgumentError(f"{name} has NaN or infinite values")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidArgumentError(
            f"{name} has {arr.shape[1]} features, the other sample {dim}; they must match"
        )
    return arr


def _pair(p: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _samples(p, "p")
    return a, _samples(q, "q", a.shape[1])


def _check_ridge(ridge: float) -> float:
    if not (isinstance(ridge, (int, float)) and np.isfinite(ridge) and ridge >= 0):
        raise InvalidArgumentError(f"ridge must be a finite number >= 0; got {ridge!r}")
    return float(ridge)


def _fit(x: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return x.mean(axis=0), cov + ridge * np.eye(x.shape[1])


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _logdet(a: np.ndarray, name: str) -> float:
    sign, value = np.linalg.slogdet(a)
    if sign <= 0:
        raise InvalidArgumentError(
            f"the covariance of {name} is singular; drop constant features "
            "(select_features) or pass ridge > 0"
        )
    return float(value)


def variance_ranking(samples: Any) -> tuple[np.ndarray, np.ndarray]:
    """Features by decreasing variance: ``(indices, variances)`` (App. E.2's importance).

    Raises:
        InvalidArgumentError: not a finite ``(n >= 2, d)`` (or ``(n,)``) array.
    """
    x = _samples(samples, "samples")
    var = x.var(axis=0, ddof=1)
    order = np.argsort(-var, kind="stable")
    return order, var[order]


def select_features(clean: Any, top_k: int | None = None, min_variance: float = 1e-8) -> np.ndarray:
    """The indices of the ``top_k`` features of largest variance on ``clean`` whose variance
    exceeds ``min_variance`` (all of those when ``top_k`` is None), most important first.

    Raises:
        InvalidArgumentError: bad samples, ``top_k < 1`` or a negative ``min_variance``; no
            feature varies more than ``min_variance``.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError(f"top_k must be None or an int >= 1; got {top_k!r}")
    if not (np.isfinite(min_variance) and min_variance >= 0):
        raise InvalidArgumentError(f"min_variance must be >= 0; got {min_variance!r}")
    order, var = variance_ranking(clean)
    keep = order[var > min_variance]
    if keep.size == 0:
        raise InvalidArgumentError(
            f"no feature of the clean samples has a variance above {min_variance}"
        )
    return keep if top_k is None else keep[:top_k]


def wasserstein2(p: Any, q: Any, method: str = "gaussian", ridge: float = 0.0) -> float:
    """The squared 2-Wasserstein distance between two samples ``(n, d)`` (module docstring).

    Args:
        p, q: the samples (rows are observations; the sizes may differ).
        method: ``"gaussian"`` (between the fitted Gaussians, joint over the features) or
            ``"marginal"`` (the sum over features of the exact distance between the
            empirical one-dimensional marginals).
        ridge: added to the diagonal of both fitted covariances (``"gaussian"``).

    Raises:
        InvalidArgumentError: bad samples, different feature counts, unknown method.
    """
    a, b = _pair(p, q)
    if method == "marginal":
        n = max(a.shape[0], b.shape[0])
        levels = (np.arange(n) + 0.5) / n  # the quantile functions on a common grid
        qa = np.quantile(a, levels, axis=0, method="inverted_cdf")
        qb = np.quantile(b, levels, axis=0, method="inverted_cdf")
        return float(np.mean((qa - qb) ** 2, axis=0).sum())
    if method != "gaussian":
        raise InvalidArgumentError(
            f"method={method!r} is not allowed; use 'gaussian' or 'marginal'"
        )
    ridge = _check_ridge(ridge)
    (mu_a, s_a), (mu_b, s_b) = _fit(a, ridge), _fit(b, ridge)
    root_b = _sqrtm_psd(s_b)
    cross = _sqrtm_psd(root_b @ s_a @ root_b)
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * cross))
    return max(value, 0.0)


def kl_divergence(p: Any, q: Any, ridge: float = 0.0) -> float:
    """``KL(p || q)`` between the Gaussians fitted to the samples ``p`` and ``q``.

    Raises:
        InvalidArgumentError: bad samples; a singular fitted covariance (use
            :func:`select_features` or ``ridge > 0``).
    """
    a, b = _pair(p, q)
    ridge = _check_ridge(ridge)
    (mu_a, s_a), (mu_b, s_b) = _fit(a, ridge), _fit(b, ridge)
    logdet_a, logdet_b = _logdet(s_a, "p"), _logdet(s_b, "q")
    inv_b = np.linalg.inv(s_b)
    diff = mu_b - mu_a
    value = 0.5 * (np.trace(inv_b @ s_a) - a.shape[1] + diff @ inv_b @ diff + logdet_b - logdet_a)
    return max(float(value), 0.0)


def hellinger(p: Any, q: Any, ridge: float = 0.0) -> float:
    """The Hellinger distance (in [0, 1]) between the Gaussians fitted to ``p`` and ``q``.

    Raises:
        InvalidArgumentError: bad samples; a singular fitted covariance.
    """
    a, b = _pair(p, q)
    ridge = _check_ridge(ridge)
    (mu_a, s_a), (mu_b, s_b) = _fit(a, ridge), _fit(b, ridge)
    s_m = (s_a + s_b) / 2.0
    diff = mu_a - mu_b
    log_coef = 0.25 * (_logdet(s_a, "p") + _logdet(s_b, "q")) - 0.5 * _logdet(s_m, "p and q")
    bc = np.exp(log_coef - 0.125 * diff @ np.linalg.solve(s_m, diff))
    return float(np.sqrt(max(1.0 - bc, 0.0)))


def state_shift(
    clean: Any, attacked: Any, top_k: int | None = 10, ridge: float = 1e-6
) -> dict[str, Any]:
    """All three distances between clean and attacked observations on the selected features.

    Args:
        clean: the victim's observations on clean rollouts ``(n, d)``.
        attacked: its observations on attacked rollouts ``(m, d)``.
        top_k: the number of features (largest variance on ``clean``; ``None``: every
            feature that varies).
        ridge: added to the fitted covariances.

    Returns:
        ``{"w2": squared W2 (Gaussian), "w2_marginal": squared W2 (marginals), "kl":
        KL(clean || attacked), "hellinger": ..., "features": [indices]}``.
    """
    a, b = _pair(clean, attacked)
    features = select_features(a, top_k)
    a, b = a[:, features], b[:, features]
    return {
        "w2": wasserstein2(a, b, "gaussian", ridge),
        "w2_marginal": wasserstein2(a, b, "marginal"),
        "kl": kl_divergence(a, b, ridge),
        "hellinger": hellinger(a, b, ridge),
        "features": [int(f) for f in features],
    }
