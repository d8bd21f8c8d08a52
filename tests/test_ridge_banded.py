"""Banded ridge in the kernel form equals himalaya's random search on the same samples, fits each band
alone as fit_ridge does, and gives each band its planted share of the test R^2."""
import numpy as np
import pytest
from himalaya.kernel_ridge import generate_dirichlet_samples
from threadpoolctl import threadpool_limits

from encoding.ridge import band_weight_grid, band_weight_samples, fit_banded_ridge, fit_ridge


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(1):
        yield


def _two_bands(n_runs=6, n_per_run=50, n_features=200, n_targets=40, seed=0, dtype=np.float32, noise=None):
    """Two bands of more features than training TRs; target j mixes band A's and band B's signals in
    proportion cos / sin of j's angle, with noise levels spread over targets (or ``noise`` for all).
    Returns train and test."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_per_run
    A, B = rng.standard_normal((n, n_features)), rng.standard_normal((n, n_features))
    A[1:] += 0.7 * A[:-1]   # neighbouring TRs correlate
    angle = np.linspace(0, np.pi / 2, n_targets)
    signal_a = A[:, :20] @ rng.standard_normal((20, n_targets))
    signal_b = B[:, :20] @ rng.standard_normal((20, n_targets))
    Y = np.cos(angle) * signal_a / signal_a.std(0) + np.sin(angle) * signal_b / signal_b.std(0)
    Y += (np.geomspace(0.3, 3, n_targets) if noise is None else noise) * rng.standard_normal(Y.shape)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    train = runs < n_runs - 1
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return ([cast(A[train]), cast(B[train])], cast(Y[train]), runs[train], [cast(A[~train]), cast(B[~train])],
            cast(Y[~train]))


def test_samples_are_himalayas_random_search_draws():
    ours = band_weight_samples(3, 12, random_state=4)
    theirs = generate_dirichlet_samples(n_samples=12, n_kernels=3, concentration=[0.1, 1.0], random_state=4)
    np.testing.assert_allclose(ours[1:], theirs[1:])
    np.testing.assert_allclose(ours[0], 1 / 3)   # himalaya's first sample: equal weights
    np.testing.assert_allclose(ours.sum(1), 1)


def test_grid_spaces_the_weight_ratio_evenly_in_log():
    grid = band_weight_grid(7, decades=3)
    np.testing.assert_allclose(grid.sum(1), 1)
    np.testing.assert_allclose(np.log10(grid[:, 0] / grid[:, 1]), np.linspace(-3, 3, 7))


def test_fast_search_equals_himalayas_random_search_on_the_same_samples():
    data = _two_bands(dtype=np.float64)
    fast = fit_banded_ridge(*data, n_iter=20, random_state=1, solver="fast")
    reference = fit_banded_ridge(*data, n_iter=20, random_state=1, solver="himalaya")
    assert (fast.solver, reference.solver) == ("banded-fast-kernel", "banded-kernel")
    np.testing.assert_allclose(fast.alpha, reference.alpha, rtol=1e-6)
    # the same sample per target: weights g = band_weights * alpha
    np.testing.assert_allclose(fast.band_weights * fast.alpha, reference.band_weights * reference.alpha, atol=1e-7)
    for name in ("cv_score", "test_r", "test_r2"):
        np.testing.assert_allclose(getattr(fast, name), getattr(reference, name), atol=1e-8)
    np.testing.assert_allclose(fast.test_r2_split, reference.test_r2_split, atol=1e-8)
    assert len(np.unique(fast.extra["sample"])) >= 3, "the targets' mixtures should pick different samples"


def test_float32_search_stays_within_1e_4_of_a_float64_referee():
    """float32 designs against himalaya's search on the same arrays in float64: where a target takes
    another sample than the referee, the two samples' CV scores tie to float32's resolution."""
    fast = fit_banded_ridge(*_two_bands(dtype=np.float32), n_iter=20, random_state=1, solver="fast")
    reference = fit_banded_ridge(*_two_bands(dtype=np.float64), n_iter=20, random_state=1, solver="himalaya")
    g_fast, g_reference = fast.band_weights * fast.alpha, reference.band_weights * reference.alpha
    assert (np.abs(g_fast - g_reference).max(0) < 1e-3).mean() >= 0.9
    np.testing.assert_allclose(fast.cv_score, reference.cv_score, atol=1e-5)
    for name in ("test_r", "test_r2"):
        np.testing.assert_allclose(getattr(fast, name), getattr(reference, name), atol=1e-4)
    np.testing.assert_allclose(fast.test_r2_split, reference.test_r2_split, atol=1e-4)


def test_single_bands_on_the_shared_kernels_equal_fit_ridge_on_each_band():
    Xs_train, Y_train, runs, Xs_test, Y_test = _two_bands()
    banded = fit_banded_ridge(Xs_train, Y_train, runs, Xs_test, Y_test, n_iter=band_weight_grid(5),
                              return_single=True)
    for band, single in enumerate(banded.extra["single"]):
        alone = fit_ridge(Xs_train[band], Y_train, runs, Xs_test[band], Y_test)
        np.testing.assert_array_equal(single["alpha"], alone.alpha)
        np.testing.assert_allclose(single["test_r"], alone.test_r, atol=1e-5)   # kernel vs primal, float32
        np.testing.assert_allclose(single["cv_score"], alone.cv_score, atol=1e-5)


def test_each_band_gets_its_planted_share_of_the_test_r2():
    Xs_train, Y_train, runs, Xs_test, Y_test = _two_bands(n_targets=40, seed=3, noise=0.5)
    scores = fit_banded_ridge(Xs_train, Y_train, runs, Xs_test, Y_test, n_iter=band_weight_grid(9))
    split, g_a = scores.test_r2_split, scores.band_weights[0] * scores.alpha
    # targets 0-7 are (almost) band A alone, 32-39 band B alone
    assert split[0, :8].mean() > 0.3 and abs(split[1, :8].mean()) < 0.05
    assert split[1, 32:].mean() > 0.3 and abs(split[0, 32:].mean()) < 0.05
    assert np.median(g_a[:8]) > 0.8 and np.median(g_a[32:]) < 0.2   # band A's weight follows its share


def test_torch_backend_gives_the_numpy_numbers():
    pytest.importorskip("torch")
    from himalaya.backend import set_backend

    data = _two_bands(n_targets=20)
    reference = fit_banded_ridge(*data, n_iter=6, solver="fast")
    set_backend("torch")
    try:
        ours = fit_banded_ridge(*data, n_iter=6, solver="fast")
    finally:
        set_backend("numpy")
    np.testing.assert_allclose(ours.alpha, reference.alpha, rtol=1e-6)
    np.testing.assert_allclose(ours.test_r, reference.test_r, atol=1e-5)
    np.testing.assert_allclose(ours.test_r2_split, reference.test_r2_split, atol=1e-5)


def test_grid_search_is_the_grid_and_each_band_alone_and_equals_himalaya_on_those_samples():
    """search="grid": band_weight_grid's ratios then (1, 0) and (0, 1), as samples of one search; himalaya's
    random search given the same samples makes the same choices, and a target of band A alone takes A's
    weight (nearly) whole."""
    data = _two_bands(n_targets=40, seed=3, noise=0.5, dtype=np.float64)
    fast = fit_banded_ridge(*data, n_iter=7, search="grid", solver="fast")
    samples = fast.extra["band_weight_samples"]
    np.testing.assert_allclose(samples, np.concatenate([band_weight_grid(7), np.eye(2)]))
    reference = fit_banded_ridge(*data, n_iter=samples, solver="himalaya")
    np.testing.assert_allclose(fast.alpha, reference.alpha, rtol=1e-6)
    np.testing.assert_allclose(fast.band_weights * fast.alpha, reference.band_weights * reference.alpha, atol=1e-7)
    for name in ("cv_score", "test_r", "test_r2"):
        np.testing.assert_allclose(getattr(fast, name), getattr(reference, name), atol=1e-8)
    g_a = fast.band_weights[0] * fast.alpha
    assert g_a[:8].min() > 0.85 and g_a[32:].max() < 0.15   # targets 0-7 (almost) band A alone, 32-39 band B
    sample = fast.extra["sample"]   # 7: (1, 0), band A alone; 8: (0, 1)
    assert (sample[:8] == 7).any() and (sample[32:] == 8).any()   # some of them take a single band's sample
    # the single-band samples are at least as good as the same bands fitted alone
    alone = fit_banded_ridge(*data, n_iter=7, solver="fast", search="grid", return_single=True).extra["single"]
    assert np.all(fast.cv_score >= np.maximum(alone[0]["cv_score"], alone[1]["cv_score"]) - 1e-6)


def test_grid_search_refuses_three_bands_in_one_sentence():
    Xs_train, Y_train, runs, Xs_test, Y_test = _two_bands(n_targets=4)
    with pytest.raises(ValueError, match="search 'grid' takes two bands"):
        fit_banded_ridge(Xs_train + Xs_train[:1], Y_train, runs, Xs_test + Xs_test[:1], Y_test, search="grid")
    with pytest.raises(ValueError, match="unknown search 'lattice'"):
        fit_banded_ridge(Xs_train, Y_train, runs, Xs_test, Y_test, search="lattice")


def test_batches_follow_the_memory_budget_and_leave_the_numbers_unchanged():
    """The per-band kernels, a sample's kernel and one fold are held; the targets go in batches sized from
    memory_gb (at least 64), as fit_ridge's are, with the numbers of one batch."""
    from encoding.ridge.memory import banded_bytes
    from encoding.ridge import run_splits

    data = _two_bands(n_targets=150)
    whole = fit_banded_ridge(*data, n_iter=4, solver="fast")
    assert whole.extra["n_targets_batch"] == 150
    held, per_target = banded_bytes(2, len(data[1]), len(data[4]), run_splits(data[2]), 17, 4)
    assert held > 3 * 8 * len(data[1]) ** 2   # the two bands' kernels and a sample's, in float64
    budget = (held + 100 * per_target) / 2 ** 30
    hundred = fit_banded_ridge(*data, n_iter=4, solver="fast", memory_gb=budget)
    tiny = fit_banded_ridge(*data, n_iter=4, solver="fast", memory_gb=1e-6)
    assert (hundred.extra["n_targets_batch"], tiny.extra["n_targets_batch"]) == (100, 64)
    for scores in (hundred, tiny):
        np.testing.assert_array_equal(scores.alpha, whole.alpha)
        np.testing.assert_array_equal(scores.extra["sample"], whole.extra["sample"])
        for name in ("cv_score", "test_r", "test_r2"):
            np.testing.assert_allclose(getattr(scores, name), getattr(whole, name), atol=1e-6)
