"""Statistics against planted truth: permutation p-values, FDR, noise ceilings, group tests."""
import numpy as np
import pytest
from scipy import stats

from encoding.ridge import pearson_r
from encoding.stats import (block_permutations, cross_subject_ceiling, explainable_variance, fdr_bh, normalize_r,
                            one_sample_tests, paired_tests, permutation_test, repeat_ceiling,
                            roi_normalized_r, split_half_reliability)


def _ar1(rng, n, n_targets, rho=0.5):
    """Unit-variance AR(1) series in time, independent across targets: autocorrelated like BOLD noise."""
    noise = np.empty((n, n_targets))
    noise[0] = rng.standard_normal(n_targets)
    for t in range(1, n):
        noise[t] = rho * noise[t - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal(n_targets)
    return noise


def test_bh_fdr_equals_scipy_false_discovery_control():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=400), rng.uniform(0, 1e-3, size=100)])
    np.testing.assert_allclose(fdr_bh(p), stats.false_discovery_control(p, method="bh"), rtol=0, atol=1e-12)


def test_bh_fdr_leaves_nan_out_of_the_family():
    p = np.array([0.01, np.nan, 0.02, 0.04, np.nan])
    q = fdr_bh(p)
    assert np.isnan(q[[1, 4]]).all()
    np.testing.assert_allclose(q[[0, 2, 3]], stats.false_discovery_control([0.01, 0.02, 0.04], method="bh"))


def test_permuted_r_of_the_identity_equals_pearson_r():
    rng = np.random.default_rng(1)
    y, prediction = _ar1(rng, 123, 50), _ar1(rng, 123, 50)
    result = permutation_test(y, prediction, block_permutations([60, 63], 10, 50, seed=0))
    np.testing.assert_allclose(result.r, pearson_r(y, prediction), atol=1e-6)


def test_permutation_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(2)
    n_targets = 3000
    y, prediction = _ar1(rng, 400, n_targets), _ar1(rng, 400, n_targets)   # independent: no effect
    result = permutation_test(y, prediction, block_permutations([200, 200], 10, 200, seed=3))
    ks = stats.kstest(result.p, "uniform")
    assert ks.pvalue > 0.05
    assert abs((result.p < 0.05).mean() - 0.05) < 0.015
    assert abs((result.p < 0.01).mean() - 0.01) < 0.006                    # the normal tail, too


def test_permutation_p_values_are_small_under_a_planted_effect():
    rng = np.random.default_rng(4)
    signal = _ar1(rng, 400, 500)
    y = signal + 2.0 * _ar1(rng, 400, 500)                                  # r about 0.45
    permutations = block_permutations([400], 10, 500, seed=5)
    counts = permutation_test(y, signal, permutations, tail="none")
    assert np.median(counts.p) == pytest.approx(1 / 501)                    # no permuted r comes close
    assert (counts.p < 0.01).mean() > 0.99
    # the normal tail reads how far beyond every permuted r the observed one lies
    assert np.median(permutation_test(y, signal, permutations).p) < 1e-5


def test_normal_tail_matches_p_values_of_100_times_more_permutations():
    rng = np.random.default_rng(13)
    signal = _ar1(rng, 300, 3000)
    y = signal * np.linspace(0, 0.35, 3000) + _ar1(rng, 300, 3000)          # effects from none to strong
    few = permutation_test(y, signal, block_permutations([150, 150], 10, 200, seed=14))
    many = permutation_test(y, signal, block_permutations([150, 150], 10, 20000, seed=15), tail="none")
    tail = (many.p < 0.01) & (many.p > 1e-3)                               # beyond 200 permutations' resolution
    assert tail.sum() > 300
    assert 0.7 < np.median(few.p[tail] / many.p[tail]) < 1.4


def test_roi_mean_r_is_tested_against_the_mean_of_its_targets_nulls():
    rng = np.random.default_rng(6)
    signal = _ar1(rng, 300, 200)
    y = _ar1(rng, 300, 200)
    y[:, :100] = signal[:, :100] + 4.0 * y[:, :100]                          # weak effect, r about 0.24
    rois = {"driven": np.arange(100), "noise": np.arange(100, 200)}
    result = permutation_test(y, signal, block_permutations([300], 10, 200, seed=7), rois, tail="none")
    assert result.roi_r["driven"] == pytest.approx(np.mean(result.r[:100]))
    assert result.roi_p["driven"] == pytest.approx(1 / 201)
    assert result.roi_p["noise"] > 0.05


def test_explainable_variance_recovers_the_planted_signal_fraction():
    rng = np.random.default_rng(8)
    fraction = np.linspace(0.0, 0.8, 200)
    signal = rng.standard_normal((1, 300, 200))
    repeats = np.sqrt(fraction) * signal + np.sqrt(1 - fraction) * rng.standard_normal((2, 300, 200))
    ev = explainable_variance(repeats)
    assert np.abs(ev - fraction).mean() < 0.04
    # without the bias correction two repeats read (1 + f) / 2, far above f
    assert explainable_variance(repeats, bias_correction=False).mean() == pytest.approx((1 + 0.4) / 2, abs=0.03)
    np.testing.assert_allclose(repeat_ceiling(repeats), np.sqrt(np.clip(ev, 0, 1)))


def test_split_half_reliability_with_spearman_brown_matches_the_planted_fraction():
    rng = np.random.default_rng(9)
    fraction = np.full(300, 0.3)
    signal = rng.standard_normal((1, 300, 300))
    repeats = np.sqrt(fraction) * signal + np.sqrt(1 - fraction) * rng.standard_normal((4, 300, 300))
    reliability, single = split_half_reliability(repeats, n_splits=20)
    assert single.mean() == pytest.approx(0.3, abs=0.02)
    assert reliability.mean() == pytest.approx(4 * 0.3 / (1 + 3 * 0.3), abs=0.03)   # Spearman-Brown for 4


def _subjects(rng, fraction, n_subjects, n_trs=300):
    shared = rng.standard_normal((n_trs, fraction.size))
    return [np.sqrt(fraction) * shared + np.sqrt(1 - fraction) * rng.standard_normal((n_trs, fraction.size))
            for _ in range(n_subjects)]


def test_cross_subject_ceiling_recovers_the_shared_signal_correlation():
    rng = np.random.default_rng(10)
    fraction = np.linspace(0.05, 0.8, 300)
    responses = _subjects(rng, fraction, 6)
    result = cross_subject_ceiling(responses, n_bootstrap=30, max_subsets=10)
    assert result.method == "spearman_brown"
    assert np.abs(result.ceiling - np.sqrt(fraction)).mean() < 0.03
    assert (result.ci_low <= result.ceiling).all() and (result.ceiling <= result.ci_high).all()
    # Schrimpf's exponential saturates too early on this curve and reads low (module docstring)
    exponential = cross_subject_ceiling(responses, n_bootstrap=30, max_subsets=10, method="exponential")
    assert -0.1 < (exponential.ceiling - np.sqrt(fraction)).mean() < -0.02


def test_cross_subject_ceiling_of_two_subjects_is_the_root_of_their_correlation():
    rng = np.random.default_rng(11)
    responses = _subjects(rng, np.full(50, 0.5), 2)
    result = cross_subject_ceiling(responses, n_bootstrap=5)
    np.testing.assert_allclose(result.ceiling, np.sqrt(np.clip(pearson_r(*responses), 0, 1)), atol=1e-6)


def test_normalized_r_is_nan_where_the_ceiling_is_small():
    r = np.array([0.1, 0.1, 0.3, 0.2])
    ceiling = np.array([0.02, 0.05, 0.6, np.nan])
    np.testing.assert_allclose(normalize_r(r, ceiling, 0.05), [np.nan, np.nan, 0.5, np.nan])
    normalized, mean_ceiling, n = roi_normalized_r(np.array([0.2, 0.4, 0.9]), np.array([0.5, 0.7, 0.01]),
                                                   np.arange(3))
    assert (normalized, mean_ceiling, n) == (pytest.approx(0.3 / 0.6), pytest.approx(0.6), 2)


def test_roi_ceiling_of_pure_noise_averages_explainable_variance_before_the_root():
    rng = np.random.default_rng(14)
    noise = rng.standard_normal((2, 200, 4000))                 # no signal: explainable variance 0
    ev = explainable_variance(noise)
    per_target = repeat_ceiling(noise)
    assert per_target.mean() > 0.1                              # sqrt(max(ev, 0)) of noise reads high
    r = rng.normal(0, 0.1, 4000)
    normalized, roi_ceiling, n = roi_normalized_r(r, per_target, np.arange(4000), 0.05, explainable=ev)
    assert roi_ceiling < 0.05 and np.isnan(normalized) and n == 4000


def test_paired_tests_report_subjects_and_equal_scipy():
    a = np.array([0.31, 0.28, 0.35, 0.30, 0.33, 0.29, 0.36, 0.32])
    b = a - np.array([0.05, 0.02, 0.04, 0.06, 0.01, 0.03, 0.07, 0.02])   # a beats b in every subject
    result = paired_tests(a, b)
    assert result["n_subjects"] == 8
    assert result["p_wilcoxon"] == pytest.approx(2 / 2 ** 8)            # the exact two-sided minimum
    assert result["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    above = one_sample_tests(a - b)
    assert above["n_subjects"] == 8 and above["p_wilcoxon"] == pytest.approx(1 / 2 ** 8)


def _exact_p(y, prediction, block_length):
    """The exact block-permutation p of each target, by permuting the response's rows directly."""
    import itertools
    n_blocks = len(y) // block_length
    blocks = np.arange(n_blocks * block_length).reshape(n_blocks, block_length)
    observed = pearson_r(y, prediction)
    exceed = np.zeros(y.shape[1])
    orderings = list(itertools.permutations(range(n_blocks)))
    for order in orderings:
        rows = np.concatenate([blocks[list(order)].ravel(), np.arange(n_blocks * block_length, len(y))])
        exceed += pearson_r(y[rows], prediction) >= observed - 1e-6
    return exceed / len(orderings)


def test_short_test_runs_enumerate_every_block_ordering_once_and_give_the_exact_p(caplog):
    rng = np.random.default_rng(21)
    signal = _ar1(rng, 53, 40)
    y = signal * np.linspace(0, 1, 40) + _ar1(rng, 53, 40)
    with caplog.at_level("WARNING"):
        permutations = block_permutations([53], 10, 1000, seed=0)     # 5 blocks: 120 orderings, not 1000
    assert permutations.exact and permutations.n_permutations == 120
    assert len({tuple(o) for o in permutations.order}) == 120
    assert "only 120 distinct orderings" in caplog.text
    result = permutation_test(y, signal, permutations)                # the normal tail does not apply
    np.testing.assert_allclose(result.p, _exact_p(y, signal, 10), atol=1e-12)
    assert result.p.min() >= 1 / 120


def test_more_orderings_than_asked_are_drawn_distinct_and_never_the_identity():
    permutations = block_permutations([70], 10, 1000, seed=1)         # 7 blocks: 5,040 orderings
    assert not permutations.exact and permutations.n_permutations == 1000
    orders = {tuple(o) for o in permutations.order}
    assert len(orders) == 1000 and tuple(range(7)) not in orders
    # with many blocks the draw is the plain one: the same seed gives the same permutations as before
    many = block_permutations([600], 10, 200, seed=3)
    expected = np.random.default_rng(3).permuted(np.tile(np.arange(60), (200, 1)), axis=1)
    np.testing.assert_array_equal(many.order, expected)
