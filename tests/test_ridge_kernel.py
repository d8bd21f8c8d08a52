"""The kernel form fold by fold: float64 kernels from feature chunks, float32 eigendecompositions refined in
float64 at the small end, the refit's per-alpha test maps, and the working memory it sizes batches from.
Each is held to an independent float64 computation on the same arrays."""
import numpy as np
import pytest
import scipy.linalg
from threadpoolctl import threadpool_limits

from encoding.ridge import fit_ridge, pearson_r, ridge_cv, run_splits
from encoding.ridge import _folds, _kernel, memory
from features.delays import delay_run

ALPHAS = np.logspace(-2, 6, 17)


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(1):
        yield


def _study(n_runs=6, n_per_run=80, n_hidden=120, n_targets=60, n_clean=20, seed=0):
    """Smooth features delayed within runs and z-scored per run (so each run's rows sum to zero: the
    training kernel has one null direction per run), float32; the first ``n_clean`` targets are a linear
    function of the design with 1% noise (their best alpha is the smallest), the rest noisier."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((n_runs * n_per_run, n_hidden))
    for t in range(1, len(hidden)):
        hidden[t] += 0.8 * hidden[t - 1]
    runs = [delay_run(hidden[i:i + n_per_run]) for i in range(0, len(hidden), n_per_run)]
    X = np.concatenate([(r - r.mean(0)) / r.std(0) for r in runs]).astype(np.float32)
    signal = X @ rng.standard_normal((X.shape[1], n_targets))
    signal /= signal.std(0)
    noise = np.concatenate([np.full(n_clean, 0.01), np.geomspace(0.3, 5, n_targets - n_clean)])
    Y = (signal + noise * rng.standard_normal(signal.shape)).astype(np.float32)
    labels = np.repeat(np.arange(n_runs), n_per_run)
    train = labels < n_runs - 1
    return X[train], Y[train], labels[train], X[~train], Y[~train]


def _referee(X_train, Y_train, splits, X_test, alphas):
    """Kernel ridge CV in float64 with direct solves: chosen alpha index and test prediction per target."""
    X, Y = X_train.astype(np.float64), Y_train.astype(np.float64)
    kernel = X @ X.T
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, val in splits:
        Y_val = Y[val]
        ss_tot = ((Y_val - Y_val.mean(0)) ** 2).sum(0)
        for a, alpha in enumerate(alphas):
            weights = scipy.linalg.solve(kernel[np.ix_(train, train)] + alpha * np.eye(len(train)), Y[train],
                                         assume_a="pos")
            residual = Y_val - kernel[np.ix_(val, train)] @ weights
            scores[a] += (1 - (residual ** 2).sum(0) / ss_tot) / len(splits)
    best = (scores + np.log(alphas)[:, None] * 1e-10).argmax(0)
    prediction = np.empty((len(X_test), Y.shape[1]))
    for a in np.unique(best):
        weights = scipy.linalg.solve(kernel + alphas[a] * np.eye(len(kernel)), Y[:, best == a], assume_a="pos")
        prediction[:, best == a] = X_test.astype(np.float64) @ (X.T @ weights)
    return best, prediction


def test_kernels_from_feature_chunks_equal_x_times_x_transposed_in_float64(monkeypatch):
    X_train, _, _, X_test, _ = _study()
    monkeypatch.setattr(_kernel, "_CHUNK_BYTES", 8 * 64 * (len(X_train) + len(X_test)))   # 64 columns a chunk
    kernel, test_kernel = _kernel.linear_kernels(X_train, X_test)
    X64 = X_train.astype(np.float64)
    np.testing.assert_allclose(kernel, X64 @ X64.T, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(test_kernel, X_test.astype(np.float64) @ X64.T, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(kernel, kernel.T)
    many = np.random.default_rng(1).standard_normal((2100, 70)).astype(np.float32)   # past one 1,024-row block
    kernel, _ = _kernel.linear_kernels(many, many[:3])
    np.testing.assert_allclose(kernel, many.astype(np.float64) @ many.T.astype(np.float64), rtol=1e-12, atol=1e-9)


def test_refined_float32_eigendecomposition_matches_float64_at_the_small_end():
    """The per-run null directions (s ~ 0) come out of a float32 eigendecomposition leaking into the large
    ones; refined, their eigenvalues and K_val,train q match a float64 eigendecomposition."""
    X_train, _, labels, X_test, _ = _study()
    kernel, _ = _kernel.linear_kernels(X_train, X_test)
    train, val = run_splits(labels)[0]
    eigenvalues, vectors, refined, in_float64 = _kernel.eigh_fold(kernel, train, ALPHAS.min(), "float32", keep64=True)
    assert not in_float64
    exact_values, exact_vectors = scipy.linalg.eigh(kernel[np.ix_(train, train)])
    n_refined = refined.shape[1]
    assert 4 <= n_refined < 0.25 * len(train)   # at least the four training runs' null directions
    np.testing.assert_allclose(eigenvalues[::-1][:n_refined], exact_values[:n_refined], rtol=0,
                               atol=1e-10 * exact_values[-1])
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(len(train)), atol=2e-5)
    # the validation map K_val,train q of the null directions (rotation-invariant over the 4 of them):
    # float64's size refined, tens of times more from float32 alone
    kernel_val = kernel[np.ix_(val, train)]
    exact = np.linalg.norm(kernel_val @ exact_vectors[:, :4])
    assert np.linalg.norm(kernel_val @ vectors[:, -4:]) == pytest.approx(exact, rel=0.05)
    _, plain = scipy.linalg.eigh(kernel[np.ix_(train, train)].astype(np.float32))
    assert np.linalg.norm(kernel_val @ plain[:, :4].astype(np.float64)) > 20 * exact


def test_kernel_form_takes_the_float64_referees_alphas_on_nearly_noiseless_targets():
    """Targets with 1% noise choose the smallest alphas, where float32 eigendecompositions alone chose
    other alphas (their null directions leak); refined, every alpha and test r is the float64 referee's."""
    X_train, Y_train, labels, X_test, Y_test = _study()
    splits = run_splits(labels)
    out = ridge_cv(X_train, Y_train, splits, X_test, Y_test, ALPHAS)
    assert out["form"] == "kernel"
    best, prediction = _referee(X_train, Y_train, splits, X_test, ALPHAS)
    assert (best[:20] == 0).sum() >= 8, "nearly noiseless targets should choose the smallest alpha"
    np.testing.assert_array_equal(out["alpha_index"], best)
    np.testing.assert_allclose(out["test_r"], pearson_r(Y_test.astype(np.float64), prediction), atol=1e-5)


def test_refit_by_per_alpha_test_maps_equals_direct_solves():
    """When many targets share an alpha the refit applies K_test,v - K_test,f Q diag(f) A^T, formed once;
    its prediction equals X_test X^T (K + alpha I)^-1 y solved in float64."""
    X_train, Y_train, labels, X_test, Y_test = _study(n_targets=150, n_clean=0)
    splits = run_splits(labels)
    alphas = np.array([30.0])   # one alpha: all 150 targets in one group, more than the 80 test rows
    decomposition = _kernel.decompose_kernel(X_train, splits, X_test, alphas, "float32")
    fold = decomposition.folds[0]
    Y = Y_train.astype(np.float32)
    prediction = _folds.refit_kernel(decomposition, Y, fold.basis.T @ Y[fold.train], alphas,
                                    np.zeros(Y.shape[1], dtype=int), "float32")
    assert 0 in decomposition.refit.corrections   # the per-alpha map was used
    X64 = X_train.astype(np.float64)
    expected = X_test.astype(np.float64) @ (X64.T @ np.linalg.solve(X64 @ X64.T + 30 * np.eye(len(X64)),
                                                                    Y_train.astype(np.float64)))
    np.testing.assert_allclose(prediction, expected, atol=2e-5 * np.abs(expected).max())


def test_refit_forms_a_per_alpha_test_map_once_its_batches_have_paid_for_it():
    """Batches of 15 targets at one alpha, 80 validation and 80 test rows: the map pays for itself from
    80 * 80 / 160 = 40 targets, so the first two batches are refit without it and the third forms it;
    every batch's prediction equals the float64 direct solve."""
    X_train, Y_train, labels, X_test, Y_test = _study(n_targets=45, n_clean=0)
    splits = run_splits(labels)
    alphas = np.array([30.0])
    decomposition = _kernel.decompose_kernel(X_train, splits, X_test, alphas, "float32")
    fold = decomposition.folds[0]
    Y = Y_train.astype(np.float32)
    X64 = X_train.astype(np.float64)
    expected = X_test.astype(np.float64) @ (X64.T @ np.linalg.solve(X64 @ X64.T + 30 * np.eye(len(X64)),
                                                                    Y_train.astype(np.float64)))
    formed = []
    for start in range(0, 45, 15):
        batch = Y[:, start:start + 15]
        prediction = _folds.refit_kernel(decomposition, batch, fold.basis.T @ batch[fold.train], alphas,
                                        np.zeros(15, dtype=int), "float32")
        formed.append(0 in decomposition.refit.corrections)
        np.testing.assert_allclose(prediction, expected[:, start:start + 15], atol=2e-5 * np.abs(expected).max())
    assert formed == [False, False, True]
    assert int(decomposition.refit.uncorrected[0]) == 30


def test_default_working_memory_is_half_the_available_memory(monkeypatch):
    monkeypatch.setattr(memory, "_available_memory", lambda: 16 * 2 ** 30)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert memory.working_memory_gb() == pytest.approx(8.0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")   # four processes of a launcher share the machine
    assert memory.working_memory_gb(4) == pytest.approx(2.0)


def test_at_10000_trs_the_default_budget_holds_the_kernel_form_in_batches_of_2048(monkeypatch):
    """Sizing from the shapes alone: at 10,000 TRs (5 runs), 80,000 targets, the kernel form's working set
    (kernels, one fold, the refit) left a fixed 2 GB budget batches of 64; half of 16 GB available gives
    the CPU's 2,048."""
    n_train, n_test, n_alphas, itemsize = 10000, 2000, 17, 4
    labels = np.repeat(np.arange(5), 2000)
    splits = run_splits(labels)
    held = memory.held_bytes(n_train, n_test, splits, n_alphas, itemsize)
    per_target = memory.per_target_bytes("kernel", n_train, n_test, 8000, 2000, 8000, 5, n_alphas, itemsize)
    assert memory.batch_size(held, per_target, 2.0, 80000) == 64
    monkeypatch.setattr(memory, "_available_memory", lambda: 16 * 2 ** 30)
    assert memory.batch_size(held, per_target, memory.working_memory_gb(), 80000) >= 2048


def test_fit_ridge_without_a_budget_sizes_batches_from_the_available_memory(monkeypatch):
    X_train, Y_train, labels, X_test, Y_test = _study(n_targets=200, n_clean=0)
    splits = run_splits(labels)
    held = memory.held_bytes(len(X_train), len(X_test), splits, len(ALPHAS), 4)
    per_target = memory.per_target_bytes("kernel", len(X_train), len(X_test), 320, 80, 320, 5, len(ALPHAS), 4)
    # half of what is available is the budget: room for 100 targets once the kernel form's arrays are held
    monkeypatch.setattr(memory, "_available_memory", lambda: 2 * (held + 100.5 * per_target))
    small = fit_ridge(X_train, Y_train, labels, X_test, Y_test)
    assert small.extra["n_targets_batch"] == 100
    monkeypatch.setattr(memory, "_available_memory", lambda: 8 * 2 ** 30)
    large = fit_ridge(X_train, Y_train, labels, X_test, Y_test)
    assert large.extra["n_targets_batch"] == 200
    np.testing.assert_allclose(small.test_r, large.test_r, atol=1e-6)
