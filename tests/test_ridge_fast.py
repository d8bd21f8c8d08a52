"""The fast ridge solver equals himalaya's RidgeCV on the same arrays and folds, in every form and batch size;
per-layer PCA is fitted on training rows only and recovers planted low-rank responses."""
import numpy as np
import pytest
from himalaya.backend import set_backend
from himalaya.ridge import Ridge, RidgeCV
from himalaya.scoring import r2_score
from threadpoolctl import threadpool_limits

from encoding.ridge import fit_pca, fit_ridge, pearson_r, reduce_features, ridge_cv, run_splits
from encoding.ridge._fast import decompose
from encoding.ridge._folds import check_splits
from encoding.ridge._fractions import _AMPLIFICATION, errors_by_fractions, partial_fractions
from encoding.ridge.memory import batch_bytes
from features.delays import delay_run

ALPHAS = np.logspace(-2, 5, 15)


@pytest.fixture(autouse=True)
def one_thread():
    """Arrays here are tiny: threads only add spin-waiting, badly so when other jobs share the cores."""
    try:
        import torch
    except ImportError:
        torch = None
    threads = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    if torch:
        torch.set_num_threads(threads)


def _planted(n_runs=5, n_per_run=60, n_features=30, n_targets=60, n_test=60, seed=0):
    """Y = X W + noise, with noise levels spread over targets so that the chosen alphas differ."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_per_run + n_test
    X = rng.standard_normal((n, n_features))
    X[1:] += 0.5 * X[:-1]   # neighbouring TRs correlate, as delayed features do
    signal = X @ rng.standard_normal((n_features, n_targets))
    noise = np.geomspace(0.3, 10, n_targets) * signal.std(0)
    Y = signal + noise * rng.standard_normal(signal.shape)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    train = slice(0, n_runs * n_per_run)
    test = slice(n_runs * n_per_run, n)
    return (X[train].astype(np.float32), Y[train].astype(np.float32), runs, X[test].astype(np.float32),
            Y[test].astype(np.float32))


def _himalaya(X_train, Y_train, runs, X_test, Y_test, n_folds=None):
    """himalaya RidgeCV on the same folds: grid index of the chosen alphas, cv scores, test r."""
    model = RidgeCV(alphas=ALPHAS, cv=run_splits(runs, n_folds),
                    solver_params=dict(score_func=r2_score, warn=False)).fit(X_train, Y_train)
    prediction = model.predict(X_test)
    r = np.array([np.corrcoef(prediction[:, j], Y_test[:, j])[0, 1] for j in range(Y_test.shape[1])])
    index = np.abs(np.log(model.best_alphas_)[:, None] - np.log(ALPHAS)[None]).argmin(1)
    return model.best_alphas_, index, model.cv_scores_, r


def _grid_index(alpha):
    return np.abs(np.log(alpha)[:, None] - np.log(ALPHAS)[None]).argmin(1)


# n_features 30 < n_val 60: validation error from r x r products; 100: from predictions; 400 > n_train: kernel
@pytest.mark.parametrize("n_features, form", [(30, "primal"), (100, "primal"), (400, "kernel")])
@pytest.mark.parametrize("n_runs, n_folds", [(5, None), (6, 3)])
def test_fast_path_equals_himalaya_ridgecv(n_features, form, n_runs, n_folds):
    data = _planted(n_runs=n_runs, n_features=n_features, seed=n_features)
    alpha, index, cv_score, r = _himalaya(*data, n_folds=n_folds)
    ours = fit_ridge(*data, alphas=ALPHAS, n_folds=n_folds)
    assert ours.solver == f"fast-{form}"
    assert len(np.unique(index)) >= 4, "the planted noise levels should spread the chosen alphas"
    np.testing.assert_array_equal(ours.alpha, alpha)   # same grid points, reported bit for bit like himalaya
    np.testing.assert_allclose(ours.test_r, r, atol=1e-4)
    np.testing.assert_allclose(ours.cv_score, cv_score, atol=1e-4)


@pytest.mark.parametrize("method", ["direct", "fractions"])
@pytest.mark.parametrize("n_features", [30, 100, 400])
def test_both_ways_of_scoring_alphas_equal_himalaya(n_features, method):
    X_train, Y_train, runs, X_test, Y_test = _planted(n_features=n_features, seed=n_features + 1)
    alpha, index, cv_score, r = _himalaya(X_train, Y_train, runs, X_test, Y_test)
    ours = ridge_cv(X_train, Y_train, run_splits(runs), X_test, Y_test, ALPHAS, method=method)
    assert set(ours["methods"]) == {method}
    np.testing.assert_array_equal(ours["alpha_index"], index)
    np.testing.assert_allclose(ours["test_r"], r, atol=1e-4)
    np.testing.assert_allclose(ours["cv_score"], cv_score, atol=1e-4)


def test_repeated_and_empty_features_give_himalaya_numbers():
    """Duplicated and all-zero columns make exactly equal (zero) eigenvalues: partial fractions would divide
    by zero, so those pairs are summed exactly."""
    X_train, Y_train, runs, X_test, Y_test = _planted(n_features=40, seed=12)
    pad = lambda X: np.concatenate([X, X[:, :20], np.zeros((len(X), 5), np.float32)], 1)  # noqa: E731
    X_train, X_test = pad(X_train), pad(X_test)
    alpha, index, cv_score, r = _himalaya(X_train, Y_train, runs, X_test, Y_test)
    ours = ridge_cv(X_train, Y_train, run_splits(runs), X_test, Y_test, ALPHAS, method="fractions")
    clusters = decompose(X_train, run_splits(runs), X_test, ALPHAS, method="fractions").folds[0].fractions.clusters
    assert clusters == [(40, 65)]   # the 25 null directions
    np.testing.assert_array_equal(ours["alpha_index"], index)
    np.testing.assert_allclose(ours["test_r"], r, atol=1e-4)
    np.testing.assert_allclose(ours["cv_score"], cv_score, atol=1e-4)


def _delayed_design(n_runs=5, n_per_run=80, n_hidden=80, seed=0):
    """Smooth features delayed by 1..5 TRs within runs and z-scored per run, like a layer's design."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((n_runs * n_per_run, n_hidden))
    for t in range(1, len(hidden)):
        hidden[t] += 0.8 * hidden[t - 1]
    runs = [delay_run(hidden[i:i + n_per_run]) for i in range(0, len(hidden), n_per_run)]
    X = np.concatenate([(r - r.mean(0)) / r.std(0) for r in runs]).astype(np.float32)
    Y = (X[:, :40] @ rng.standard_normal((40, 50)) + 20 * rng.standard_normal((len(X), 50))).astype(np.float32)
    return X, Y, np.repeat(np.arange(n_runs), n_per_run)


@pytest.mark.parametrize("n_hidden", [40, 80])   # p = 200 < 320 training rows per fold: primal; 400: kernel
def test_float32_coupling_with_float64_band_scores_alphas_as_float64_does(n_hidden):
    """Partial fractions in float32 away from the diagonal: the pairs left out of the float64 band amplify
    rounding at most 100-fold, and every fold's validation errors match all-float64 fractions."""
    X, Y, runs = _delayed_design(n_hidden=n_hidden)
    splits = run_splits(runs)
    decomposition = decompose(X, splits, X[:10], ALPHAS, method="fractions")
    assert decomposition.form == ("primal" if n_hidden == 40 else "kernel")
    for fold in decomposition.folds:
        fractions, s = fold.fractions, fold.eigenvalues
        assert fractions.band is not None and str(fractions.coupling.dtype) == "float32"
        in_band = np.zeros((len(s), len(s)), bool)
        for rows, cols, _ in fractions.band:
            in_band[rows, cols] = True
        in_cluster = np.zeros_like(in_band)
        for start, stop in fractions.clusters:
            in_cluster[start:stop, start:stop] = True
        gaps = np.abs(s[:, None] - s[None, :])
        outside = ~in_band & ~in_cluster
        amplification = (np.minimum(s[:, None], s[None, :])[outside] + ALPHAS.min()) / gaps[outside]
        assert amplification.max() <= _AMPLIFICATION
        Y_val = Y[fold.val]
        B = fold.val_map.T @ Y_val
        Z = fold.basis.T @ (decomposition.X_train.T @ Y) - B if decomposition.form == "primal" \
            else fold.basis.T @ Y[fold.train]
        val_map = fold.val_map.astype(np.float64)
        exact = fold._replace(fractions=partial_fractions(s, val_map.T @ val_map, fractions.clusters))
        ss_tot = ((Y_val - Y_val.mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(errors_by_fractions(fold, Z, B, Y_val, ALPHAS) / ss_tot,
                                   errors_by_fractions(exact, Z, B, Y_val, ALPHAS) / ss_tot, rtol=0, atol=4e-6)


@pytest.mark.parametrize("n_hidden", [40, 80])
def test_float64_fractions_equal_direct_validation_errors_up_to_alpha_1e6(n_hidden):
    """Eigenvalues are grouped by their gap relative to s + alpha_min, not to alpha_max: up to alpha = 1e6 the
    fractions still give every fold's validation errors to float64 precision (direct: form each prediction)."""
    X, Y, runs = _delayed_design(n_hidden=n_hidden)
    alphas = np.logspace(-2, 6, 11)
    decomposition = decompose(X, run_splits(runs), X[:10], alphas, dtype="float64", method="fractions")
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    for fold in decomposition.folds:
        Y_val = Y64[fold.val]
        B = fold.val_map.T @ Y_val
        Z = fold.basis.T @ (X64[fold.train].T @ Y64[fold.train] if decomposition.form == "primal" else Y64[fold.train])
        direct = np.stack([((Y_val - fold.val_map @ (Z / (fold.eigenvalues + alpha)[:, None])) ** 2).sum(0)
                           for alpha in alphas])
        ss_tot = ((Y_val - Y_val.mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(errors_by_fractions(fold, Z, B, Y_val, alphas) / ss_tot, direct / ss_tot,
                                   rtol=0, atol=1e-9)


@pytest.mark.parametrize("n_hidden", [40, 80])
def test_banded_fractions_on_the_torch_backend_give_the_numpy_numbers(n_hidden):
    """The float64 band, the float32 coupling and (kernel form) the refit by block elimination, on torch."""
    pytest.importorskip("torch")
    X, Y, runs = _delayed_design(n_hidden=n_hidden)
    train = runs < 4
    args = (X[train], Y[train], run_splits(runs[train]), X[~train], Y[~train], ALPHAS)
    reference = ridge_cv(*args, method="fractions")
    set_backend("torch")
    try:
        ours = ridge_cv(*args, method="fractions")
    finally:
        set_backend("numpy")
    assert ours["form"] == reference["form"] == ("primal" if n_hidden == 40 else "kernel")
    np.testing.assert_array_equal(ours["alpha_index"], reference["alpha_index"])
    np.testing.assert_allclose(ours["cv_score"], reference["cv_score"], atol=1e-5)
    np.testing.assert_allclose(ours["test_r"], reference["test_r"], atol=1e-5)


@pytest.mark.parametrize("n_features, forced", [(100, "fast-kernel"), (400, "fast-primal")])
def test_the_other_form_gives_the_same_numbers(n_features, forced):
    data = _planted(n_features=n_features, seed=7)
    auto = fit_ridge(*data, alphas=ALPHAS)
    other = fit_ridge(*data, alphas=ALPHAS, solver=forced)
    assert other.solver == forced != auto.solver
    np.testing.assert_array_equal(other.alpha, auto.alpha)
    np.testing.assert_allclose(other.test_r, auto.test_r, atol=1e-5)


@pytest.mark.parametrize("n_features", [30, 400])
def test_memory_budget_batches_give_the_one_batch_numbers(n_features):
    X_train, Y_train, runs, X_test, Y_test = _planted(n_features=n_features, n_targets=300, seed=2)
    splits = run_splits(runs)
    one = ridge_cv(X_train, Y_train, splits, X_test, Y_test, ALPHAS, memory_gb=4.0)
    assert one["n_targets_batch"] == 300
    decomposition = decompose(X_train, splits, X_test, ALPHAS)
    held, per_target = batch_bytes(decomposition, len(X_train), len(X_test), len(ALPHAS), 4)
    budget_gb = (held + 70.5 * per_target) / 2 ** 30   # room for 70 targets once the decomposition is held
    batched = ridge_cv(X_train, Y_train, splits, X_test, Y_test, ALPHAS, memory_gb=budget_gb)
    assert batched["n_targets_batch"] == 70   # five batches, the last one short
    for name in ("cv_score", "test_r", "test_r2"):
        np.testing.assert_allclose(batched[name], one[name], atol=1e-6)
    np.testing.assert_array_equal(batched["alpha_index"], one["alpha_index"])


def test_a_budget_below_the_decomposition_still_runs_in_small_batches():
    X_train, Y_train, runs, X_test, Y_test = _planted(n_features=100, n_targets=100, seed=3)
    batched = ridge_cv(X_train, Y_train, run_splits(runs), X_test, Y_test, ALPHAS, memory_gb=1e-4)
    assert batched["n_targets_batch"] == 64
    one = ridge_cv(X_train, Y_train, run_splits(runs), X_test, Y_test, ALPHAS)
    np.testing.assert_array_equal(batched["alpha_index"], one["alpha_index"])


def test_primal_form_refuses_folds_that_do_not_partition_the_rows():
    with pytest.raises(ValueError, match="all rows not in its validation set"):
        check_splits([(np.arange(5, 10), np.arange(0, 5)), (np.arange(0, 5), np.arange(6, 10))], 10)
    with pytest.raises(ValueError, match="every training row exactly once"):
        check_splits([(np.arange(5, 10), np.arange(0, 5))] * 2, 10)


def _low_rank(n_train=400, n_test=100, n_latent=5, n_features=200, n_targets=20, noise=1.0, seed=0):
    """Features are a few latent time courses mixed into many columns; responses are driven by the latents."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    latents = rng.standard_normal((n, n_latent))
    X = latents @ rng.standard_normal((n_latent, n_features)) + 0.05 * rng.standard_normal((n, n_features))
    signal = latents @ rng.standard_normal((n_latent, n_targets))
    signal /= signal.std(0)
    Y = signal + noise * rng.standard_normal(signal.shape)
    runs = np.repeat(np.arange(4), n_train // 4)
    return (X[:n_train].astype(np.float32), Y[:n_train].astype(np.float32), runs,
            X[n_train:].astype(np.float32), Y[n_train:].astype(np.float32))


def test_pca_basis_ignores_the_test_rows():
    X_train, _, _, X_test, _ = _low_rank()
    reduced_train, reduced_test, explained = reduce_features(X_train, X_test, 5)
    changed = X_test.copy()
    changed[::2] = 100 * np.random.default_rng(1).standard_normal(changed[::2].shape)
    again_train, again_test, again_explained = reduce_features(X_train, changed, 5)
    np.testing.assert_array_equal(again_train, reduced_train)   # same basis, same mean
    np.testing.assert_array_equal(again_test[1::2], reduced_test[1::2])   # unchanged test rows, same scores
    np.testing.assert_array_equal(again_explained, explained)


@pytest.mark.parametrize("n_features", [50, 600])   # features below and above the training rows
def test_pca_axes_are_the_leading_singular_vectors(n_features):
    X_train = _low_rank(n_features=n_features)[0].astype(np.float64)
    mean, components, explained = fit_pca(X_train, 5)
    _, singular, Vt = np.linalg.svd(X_train - X_train.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(components @ Vt[:5].T), np.eye(5), atol=1e-6)
    np.testing.assert_allclose(explained, singular[:5] ** 2 / (singular ** 2).sum(), rtol=1e-6)


@pytest.mark.parametrize("noise", [0.5, 1.0])
def test_pca_recovers_planted_low_rank_responses(noise):
    data = _low_rank(noise=noise)
    scores = fit_ridge(*data, pca_components=5)
    assert scores.extra["pca_components"] == 5 and scores.extra["pca_explained_variance"] > 0.99
    assert np.mean(scores.test_r) == pytest.approx(1 / np.sqrt(1 + noise ** 2), abs=0.03)


@pytest.mark.parametrize("n_features, pca", [(30, None), (100, None), (400, None), (100, 20)])
def test_torch_backend_gives_the_numpy_numbers(n_features, pca):
    pytest.importorskip("torch")
    data = _planted(n_features=n_features, seed=11)
    reference = fit_ridge(*data, alphas=ALPHAS, pca_components=pca)
    set_backend("torch")
    try:
        ours = fit_ridge(*data, alphas=ALPHAS, pca_components=pca)
    finally:
        set_backend("numpy")
    assert ours.solver == reference.solver
    np.testing.assert_array_equal(_grid_index(ours.alpha), _grid_index(reference.alpha))
    np.testing.assert_allclose(ours.test_r, reference.test_r, atol=1e-5)
    np.testing.assert_allclose(ours.cv_score, reference.cv_score, atol=1e-5)


@pytest.mark.parametrize("n_features, solver, pca", [(30, "auto", None), (400, "auto", None), (100, "auto", 20),
                                                      (30, "primal", None), (400, "kernel", None)])
def test_test_prediction_is_x_test_times_ridge_weights_at_the_chosen_alphas(n_features, solver, pca):
    X_train, Y_train, runs, X_test, Y_test = _planted(n_features=n_features, seed=21)
    scores = fit_ridge(X_train, Y_train, runs, X_test, Y_test, alphas=ALPHAS, solver=solver, pca_components=pca,
                       n_targets_batch=25, return_prediction=True)
    prediction = scores.extra["test_prediction"]
    assert isinstance(prediction, np.ndarray) and prediction.dtype == np.float32
    assert prediction.shape == Y_test.shape
    if pca:   # the independent fit sees the same PCA, computed again
        X_train, X_test, _ = reduce_features(X_train, X_test, pca)
    # independent: per-target ridge weights (SVD solver) at the alphas the fit chose, in float64
    ridge = Ridge(alpha=scores.alpha.astype(np.float64), fit_intercept=False, solver_params=dict(warn=False))
    weights = ridge.fit(X_train.astype(np.float64), Y_train.astype(np.float64)).coef_
    expected = X_test.astype(np.float64) @ weights
    np.testing.assert_allclose(prediction, expected, atol=5e-5 * np.abs(expected).max())
    np.testing.assert_allclose(pearson_r(Y_test, prediction), scores.test_r, atol=1e-6)


def test_no_test_prediction_unless_asked():
    assert "test_prediction" not in fit_ridge(*_planted(), alphas=ALPHAS).extra
