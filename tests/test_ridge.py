"""The ridge engine recovers planted responses and equals himalaya on the same arrays and folds."""
import numpy as np
import pytest
from himalaya.ridge import RidgeCV
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.scoring import r2_score
from sklearn.model_selection import LeaveOneGroupOut

from encoding.ridge import fit_banded_ridge, fit_ridge, run_splits


def _planted(n_runs=5, n_per_run=400, n_features=10, n_targets=40, noise=1.0, seed=0):
    """Y = X W + noise with unit signal variance per target, so the SNR is 1 / noise**2."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_runs * n_per_run, n_features))
    W = rng.standard_normal((n_features, n_targets)) / np.sqrt(n_features)
    signal = X @ W
    signal /= signal.std(0)
    Y = signal + noise * rng.standard_normal(signal.shape)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    return X.astype(np.float32), Y.astype(np.float32), runs


def _split(X, Y, runs, test_run):
    train = runs != test_run
    return X[train], Y[train], runs[train], X[~train], Y[~train]


@pytest.mark.parametrize("noise", [0.5, 1.0, 2.0])
def test_planted_linear_responses_reach_the_theoretical_test_r(noise):
    X, Y, runs = _planted(noise=noise)
    scores = fit_ridge(*_split(X, Y, runs, 4))
    # Prediction = signal, so r = corr(signal, signal + noise) = 1 / sqrt(1 + noise^2).
    expected = 1 / np.sqrt(1 + noise ** 2)
    assert np.mean(scores.test_r) == pytest.approx(expected, abs=0.02)
    assert np.mean(scores.test_r2) == pytest.approx(expected ** 2, abs=0.03)


def test_chosen_alphas_rise_with_planted_noise():
    rng = np.random.default_rng(1)
    n, p, per_level = 300, 40, 30
    X = rng.standard_normal((n, p)).astype(np.float32)
    W = rng.standard_normal((p, per_level * 4)) / np.sqrt(p)
    levels = np.repeat([0.25, 1.0, 4.0, 16.0], per_level)
    Y = (X @ W + levels * rng.standard_normal((n, W.shape[1]))).astype(np.float32)
    runs = np.repeat(np.arange(5), n // 5)
    scores = fit_ridge(*_split(X, Y, runs, 4), alphas=np.logspace(-2, 5, 29))
    medians = [np.median(scores.alpha[levels == level]) for level in np.unique(levels)]
    assert all(a < b for a, b in zip(medians, medians[1:])), medians


@pytest.mark.parametrize("solver", ["primal", "kernel"])
def test_scores_equal_himalaya_ridgecv_on_the_same_arrays_and_folds(solver):
    X, Y, runs = _planted(n_per_run=60, n_features=30, noise=1.5, seed=3)
    X_train, Y_train, run_train, X_test, Y_test = _split(X, Y, runs, 4)
    alphas = np.logspace(-1, 4, 11)
    ours = fit_ridge(X_train, Y_train, run_train, X_test, Y_test, alphas=alphas, solver=solver)
    folds = list(LeaveOneGroupOut().split(X_train, groups=run_train))
    estimator = RidgeCV if solver == "primal" else KernelRidgeCV
    reference = estimator(alphas=alphas, cv=folds, solver_params=dict(score_func=r2_score)).fit(X_train, Y_train)
    prediction = reference.predict(X_test)
    r = [np.corrcoef(prediction[:, j], Y_test[:, j])[0, 1] for j in range(Y.shape[1])]
    np.testing.assert_array_equal(ours.alpha, reference.best_alphas_)
    np.testing.assert_allclose(ours.test_r, r, atol=1e-5)
    np.testing.assert_allclose(ours.cv_score, reference.cv_scores_, atol=1e-5)


def test_run_splits_keep_runs_whole():
    runs = np.repeat([3, 1, 2, 7], 5)
    splits = run_splits(runs)
    assert len(splits) == 4
    for train, validation in splits:
        assert len(set(runs[validation])) == 1 and not set(runs[train]) & set(runs[validation])
    grouped = run_splits(runs, n_folds=2)
    assert [sorted(set(runs[v])) for _, v in grouped] == [[1, 3], [2, 7]]


def test_banded_ridge_gives_each_band_its_planted_share():
    rng = np.random.default_rng(4)
    n = 1000
    A, B = rng.standard_normal((n, 8)), rng.standard_normal((n, 8))
    # targets 0-9 driven by band A only, 10-19 by band B only
    Y = np.concatenate([A @ rng.standard_normal((8, 10)), B @ rng.standard_normal((8, 10))], axis=1)
    Y = (Y / Y.std(0) + 0.7 * rng.standard_normal(Y.shape)).astype(np.float32)
    runs = np.repeat(np.arange(5), n // 5)
    train = runs != 4
    scores = fit_banded_ridge([A[train].astype(np.float32), B[train].astype(np.float32)], Y[train], runs[train],
                              [A[~train].astype(np.float32), B[~train].astype(np.float32)], Y[~train], n_iter=20)
    split = scores.test_r2_split
    # the shares add up to the joint test R^2 (up to the test-set mean of the prediction)
    np.testing.assert_allclose(split.sum(0), scores.test_r2, atol=0.01)
    assert split[0, :10].mean() > 0.5 and abs(split[1, :10].mean()) < 0.05
    assert split[1, 10:].mean() > 0.5 and abs(split[0, 10:].mean()) < 0.05


def test_torch_backend_gives_the_numpy_numbers():
    pytest.importorskip("torch")
    from himalaya.backend import set_backend

    X, Y, runs = _planted(n_per_run=60, n_features=20, noise=1.0, seed=5)
    split = _split(X, Y, runs, 4)
    reference = fit_ridge(*split)
    set_backend("torch")
    try:
        ours = fit_ridge(*split)
    finally:
        set_backend("numpy")
    np.testing.assert_allclose(ours.alpha, reference.alpha, rtol=1e-5)   # same grid point, float32 rounding
    np.testing.assert_allclose(ours.test_r, reference.test_r, atol=1e-4)
