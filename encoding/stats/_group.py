"""Across-subject tests: is a score above zero, and do two models or instructions differ?

Subjects are the unit of inference: each contributes one number per condition (e.g. its ROI's
mean test r at the layer its own cross-validation chose), and the tests run over subjects. Every
result carries ``n_subjects`` so a p-value is never read without it; with few subjects the
Wilcoxon signed-rank test cannot reach small p-values (its smallest two-sided p with n subjects
is 2 / 2^n), and the t-test leans on normality that few subjects cannot check.
"""
import numpy as np
from scipy import stats


def _finite_pairs(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def paired_tests(a, b):
    """Paired t-test and Wilcoxon signed-rank test of a - b across subjects (two-sided).

    Parameters
    ----------
    a, b : arrays of shape (n_subjects,)
        One value per subject for each condition; subjects missing either value are dropped.

    Returns
    -------
    dict with n_subjects, mean_a, mean_b, mean_difference, t, p_ttest, wilcoxon_w, p_wilcoxon
        (NaN where a test is undefined: fewer than two subjects, or all differences zero).
    """
    a, b = _finite_pairs(a, b)
    n = a.size
    result = {"n_subjects": n, "mean_a": a.mean() if n else np.nan, "mean_b": b.mean() if n else np.nan,
              "mean_difference": (a - b).mean() if n else np.nan,
              "t": np.nan, "p_ttest": np.nan, "wilcoxon_w": np.nan, "p_wilcoxon": np.nan}
    difference = a - b
    if n >= 2 and np.ptp(difference) > 0:
        t = stats.ttest_rel(a, b)
        result.update(t=float(t.statistic), p_ttest=float(t.pvalue))
    if n >= 1 and np.any(difference != 0):
        w = stats.wilcoxon(a, b)
        result.update(wilcoxon_w=float(w.statistic), p_wilcoxon=float(w.pvalue))
    return result


def one_sample_tests(x):
    """t-test and Wilcoxon signed-rank test of x > 0 across subjects (one-sided).

    Parameters
    ----------
    x : array of shape (n_subjects,)

    Returns
    -------
    dict with n_subjects, mean, t, p_ttest, wilcoxon_w, p_wilcoxon
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.size
    result = {"n_subjects": n, "mean": x.mean() if n else np.nan, "t": np.nan, "p_ttest": np.nan,
              "wilcoxon_w": np.nan, "p_wilcoxon": np.nan}
    if n >= 2 and np.ptp(x) > 0:
        t = stats.ttest_1samp(x, 0.0, alternative="greater")
        result.update(t=float(t.statistic), p_ttest=float(t.pvalue))
    if n >= 1 and np.any(x != 0):
        w = stats.wilcoxon(x, alternative="greater")
        result.update(wilcoxon_w=float(w.statistic), p_wilcoxon=float(w.pvalue))
    return result
