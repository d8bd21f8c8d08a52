"""The dry run's memory per fit is the solver's own working set: what it holds and the batches it takes."""
import numpy as np
import pytest

from encoding.ridge import DEFAULT_ALPHAS, fit_banded_ridge, fit_ridge, run_splits
from encoding.ridge._primal import decompose_primal
from encoding.ridge.memory import batch_bytes
from encoding.sweep import fit_memory_gb
from encoding.sweep._plan import fit_working_set

N_RUNS, N_PER_RUN, N_TEST, N_TARGETS = 4, 50, 40, 600


def _arrays(n_features, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_RUNS * N_PER_RUN + N_TEST, n_features)).astype(np.float32)
    Y = (X[:, :3] @ rng.standard_normal((3, N_TARGETS)) + rng.standard_normal((len(X), N_TARGETS))).astype(np.float32)
    n = N_RUNS * N_PER_RUN
    return X[:n], Y[:n], np.repeat(np.arange(N_RUNS), N_PER_RUN), X[n:], Y[n:]


def _shape(n_features, **extra):
    return dict(n_train=N_RUNS * N_PER_RUN, n_test=N_TEST, n_features=n_features, n_targets=N_TARGETS,
                n_folds=N_RUNS, n_alphas=len(DEFAULT_ALPHAS), **extra)


def test_the_kernel_forms_batches_are_the_ones_fit_ridge_takes():
    shape = _shape(300)   # 300 features > 150 training TRs per fold
    held, per_target, _ = fit_working_set(shape, 2.0)
    for wanted in (64, 100, 450):
        budget = (held + wanted * per_target) / 2 ** 30
        assert fit_working_set(shape, budget)[2] == wanted
        scores = fit_ridge(*_arrays(300), memory_gb=budget)
        assert scores.extra["n_targets_batch"] == wanted
    gb = fit_memory_gb(shape, (held + 100 * per_target) / 2 ** 30)
    data = 4 * (N_RUNS * N_PER_RUN + N_TEST) * (300 + N_TARGETS)
    assert gb == pytest.approx((data + held + 100 * per_target) / 2 ** 30)


def test_the_primal_forms_held_memory_bounds_its_decomposition():
    X_train, _, runs, X_test, _ = _arrays(40)
    decomposition = decompose_primal(X_train, run_splits(runs), X_test, np.asarray(DEFAULT_ALPHAS), "float32")
    held, per_target = batch_bytes(decomposition, len(X_train), len(X_test), len(DEFAULT_ALPHAS), 4)
    planned, planned_per_target, _ = fit_working_set(_shape(40), 2.0)
    assert held <= planned <= 2 * held
    assert planned_per_target == per_target


def test_a_banded_fit_holds_each_bands_kernels_and_batches_as_the_fast_search():
    X_train, Y_train, runs, X_test, Y_test = _arrays(300)
    shape = _shape(600, banded_iterations=3, n_bands=2)
    held, per_target, _ = fit_working_set(shape, 2.0)
    single, _, _ = fit_working_set(_shape(600), 2.0)
    assert held - single == 3 * 8 * N_RUNS * N_PER_RUN * (N_RUNS * N_PER_RUN + N_TEST)   # 2 bands' and a sum
    budget = (held + 100 * per_target) / 2 ** 30
    scores = fit_banded_ridge([X_train, X_train[:, ::-1].copy()], Y_train, runs, [X_test, X_test[:, ::-1].copy()],
                              Y_test, n_iter=3, solver="fast", memory_gb=budget)
    assert scores.extra["n_targets_batch"] == fit_working_set(shape, budget)[2] == 100
