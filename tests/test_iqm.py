"""``adv_wrappers.train.jobs.iqm_ci`` and ``plot_intervals``: the reports' IQM and stratified
bootstrap CIs (rliable), checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

pytest.importorskip("rliable")

from adv_wrappers.errors import InvalidArgumentError  # noqa: E402 (after the importorskip)
from adv_wrappers.train.jobs import iqm_ci, plot_intervals  # noqa: E402


def test_iqm_of_a_vector_is_the_mean_of_its_middle_half():
    # 8 values, 2 trimmed from each end: the IQM is the mean of 2, 3, 4, 5
    iqm, low, high = iqm_ci([-100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0], seed=0)
    assert (iqm, low, high) == (3.5, -23.5, 28.5)  # the docstring's example
    assert iqm_ci([6.0, -100.0, 3.0, 1.0, 100.0, 2.0, 5.0, 4.0], seed=0)[0] == 3.5


def test_iqm_of_a_matrix_pools_runs_and_tasks():
    scores = np.array([[1.0, 20.0], [3.0, 4.0], [5.0, -6.0], [7.0, 8.0], [9.0, 10.0]])
    iqm, _, _ = iqm_ci(scores, reps=10)
    # the 10 values sorted: -6 1 | 3 4 5 7 8 9 | 10 20; the middle 50 % trims 2.5 values from
    # each end, i.e. scipy's trim_mean drops int(2.5) = 2 from each end
    assert iqm == pytest.approx(np.mean([3.0, 4.0, 5.0, 7.0, 8.0, 9.0]), abs=1e-12)


def test_interval_is_a_stratified_percentile_bootstrap_by_hand():
    """Each resample draws, per task, runs with replacement from that task's column (the
    stratified bootstrap); the CI is the 2.5th and 97.5th percentile of the resamples'
    IQMs. Reproduced here with the same draws from the same seed."""
    scores = np.array([[1.0, 20.0], [3.0, 4.0], [5.0, -6.0], [7.0, 8.0], [9.0, 10.0]])
    reps, seed = 500, 3
    _, low, high = iqm_ci(scores, reps=reps, seed=seed)
    rng = np.random.RandomState(seed)
    iqms = []
    for _ in range(reps):
        runs = rng.choice(len(scores), scores.shape, replace=True)  # one draw per cell
        iqms.append(scipy.stats.trim_mean(scores[runs, [0, 1]], 0.25, axis=None))
    assert (low, high) == pytest.approx(tuple(np.percentile(iqms, [2.5, 97.5])), rel=1e-12)


def test_stratification_keeps_every_task_in_every_resample():
    # task 0 scores 0 in every run, task 1 scores 10: a resample within each task changes
    # nothing, so the stratified CI has no width; the same 6 values as one task do vary
    iqm, low, high = iqm_ci([[0.0, 10.0]] * 3)
    assert (iqm, low, high) == (5.0, 5.0, 5.0)
    iqm, low, high = iqm_ci([0.0, 10.0] * 3)
    assert iqm == 5.0 and low < 5.0 < high


def test_deterministic_by_seed_and_leaves_the_global_generator_alone():
    values = [0.3, -1.2, 4.5, 2.2, 0.9, 3.3]
    assert iqm_ci(values, seed=7) == iqm_ci(values, seed=7)
    assert iqm_ci(values, seed=7)[1:] != iqm_ci(values, seed=8)[1:]
    np.random.seed(11)  # noqa: NPY002 (the global generator rliable uses is what is checked)
    expected = np.random.random(3)  # noqa: NPY002
    np.random.seed(11)  # noqa: NPY002
    iqm_ci(values, seed=7)
    assert np.array_equal(np.random.random(3), expected)  # noqa: NPY002


def test_a_vector_is_one_task_and_one_run_has_no_interval():
    values = [0.3, -1.2, 4.5, 2.2, 0.9]
    assert iqm_ci(values, reps=300) == iqm_ci(np.array(values)[:, None], reps=300)
    iqm, low, high = iqm_ci([[2.0, 4.0, 9.0]])  # one run of 3 tasks
    assert iqm == 5.0 and np.isnan(low) and np.isnan(high)
    iqm, low, high = iqm_ci([-3.0])
    assert iqm == -3.0 and np.isnan(low) and np.isnan(high)


@pytest.mark.parametrize(
    "scores, reps, message",
    [
        ([], 10, "scores is empty"),
        (np.zeros((0, 3)), 10, "scores is empty"),
        ([1.0, float("nan"), 2.0], 10, "scores holds 1 NaN or infinite"),
        ([1.0, float("inf")], 10, "scores holds 1 NaN or infinite"),
        (np.zeros((2, 2, 2)), 10, "scores must be a vector of runs or a runs x tasks matrix"),
        (5.0, 10, "scores must be a vector of runs or a runs x tasks matrix"),
        ([[1.0, 2.0], [3.0]], 10, "scores must be a vector of runs"),
        ([1.0, 2.0], 0, "reps must be an integer >= 1"),
        ([1.0, 2.0], 2.5, "reps must be an integer >= 1"),
    ],
)
def test_bad_input_raises_a_typed_error_naming_the_argument(scores, reps, message):
    with pytest.raises(InvalidArgumentError, match=message):
        iqm_ci(scores, reps=reps)


def test_plot_intervals_writes_a_figure(tmp_path):
    path = tmp_path / "iqm.png"
    plot_intervals(
        path,
        {"A": [(1.0, 0.5, 1.5), (1.2, 0.4, 2.0)], "B": [(2.0, np.nan, np.nan), (2.0, 1.0, 3.0)]},
        ["mean ± SE", "IQM (95 % CI)"],
        xlabel="return",
    )
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(InvalidArgumentError, match=r"estimates\['A'\] has 1"):
        plot_intervals(tmp_path / "bad.png", {"A": [(1.0, 0.5, 1.5)]}, ["a", "b"], xlabel="x")
