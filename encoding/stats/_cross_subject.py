"""Cross-subject noise ceiling: predict one subject from the others, extrapolated over subjects.

In the style of Schrimpf et al. 2021 (PNAS, "The neural architecture of language"): for subsets
of n subjects, each member in turn is held out and predicted from the rest (here: correlated with
the mean of the others' responses at the same target, which needs the subjects in one target
space); the mean score per subset size is extrapolated to infinitely many subjects, the fit is
repeated on bootstrap samples of the subsets, and the ceiling is the median extrapolation. As the
pool of others grows its mean converges to the response all subjects share, so the limit is the
correlation of one subject with what is shared: the ceiling of a model's r with single
presentations, the same scale as the repeat ceiling.

Two extrapolations:

- ``"spearman_brown"`` (default): a shared signal (variance s^2) plus independent noise gives a
  score with m others of exactly ``s^2 / sqrt(s^2 + (1 - s^2) / m)``; s is solved per subset size
  and averaged. It works from two subjects on (one other subject: s = sqrt(r)). On simulated
  shared-signal data it is unbiased.
- ``"exponential"``: Schrimpf's ``v0 * (1 - exp(-n / tau))`` with v0 in [0, 1], fitted per
  target (v0 in closed form on a grid of tau). It needs three or more subset sizes (four
  subjects) and, because it saturates faster than the curve above, reads about 0.06 low on the
  same simulations (tests/test_stats.py shows both); Schrimpf used it for regression-based pools,
  for which no closed form exists.

The bootstrap resamples subsets, so its interval says how much the ceiling depends on which
subjects are pooled; it does not include the sampling noise of a finite test set.

Every subset score comes from the subjects' pairwise correlations per target, computed once, so
the subsets and bootstraps cost nothing next to reading the data.
"""
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from features.errors import InputError

METHODS = ("spearman_brown", "exponential")
_TAUS = np.geomspace(0.1, 100, 80)


@dataclass
class CrossSubjectCeiling:
    """Arrays of shape (n_targets,) unless said otherwise; NaN where a subject has no data."""

    ceiling: np.ndarray          # median over bootstraps of the extrapolated ceiling
    ci_low: np.ndarray           # 2.5th percentile over bootstraps
    ci_high: np.ndarray          # 97.5th percentile
    n_subjects: int
    method: str                  # "exponential" or "spearman_brown"
    subset_sizes: np.ndarray     # (n_points,) subjects per subset, 2..n_subjects
    curve: np.ndarray            # (n_points, n_targets) mean held-out-subject score per size
    shared_variance: np.ndarray  # median squared ceiling, signed (see ``extrapolate``): average it
                                 # over an ROI before the square root


def pairwise_correlations(responses):
    """Correlation in time between every pair of subjects, per target.

    Parameters
    ----------
    responses : list of arrays of shape (n_TR, n_targets)
        One per subject, rows aligned to the same stimulus; NaN columns mark missing targets.

    Returns
    -------
    C : array of shape (n_subjects, n_subjects, n_targets), ones on the diagonal
    """
    shapes = {np.shape(y) for y in responses}
    if len(shapes) != 1 or len(responses) < 2:
        raise InputError(f"cross-subject ceiling: expected two or more subjects with responses of one shape "
                         f"(n_TR, n_targets), found {sorted(shapes)}.")
    z = []
    for y in responses:
        y = np.asarray(y, dtype=np.float64)
        y = y - y.mean(0)
        std = y.std(0)
        z.append(np.where(std > 0, y / np.where(std > 0, std, 1), np.nan).astype(np.float32))
    n = len(z)
    C = np.ones((n, n, z[0].shape[1]))
    for i, j in combinations(range(n), 2):
        C[i, j] = C[j, i] = (z[i] * z[j]).mean(0, dtype=np.float64)
    C[:, :, ~np.isfinite(C).all((0, 1))] = np.nan
    return C


def subject_pool_scores(C, max_subsets=20, seed=0):
    """Score of each held-out subject against the mean of the other subjects of a subset.

    Parameters
    ----------
    C : array of shape (n_subjects, n_subjects, n_targets)
        From :func:`pairwise_correlations`.
    max_subsets : int
        Subsets per size; all of them when there are fewer.
    seed : int

    Returns
    -------
    sizes : array of shape (n_points,)
    scores : list of arrays of shape (n_pairs, n_targets), one per size
    """
    n = C.shape[0]
    rng = np.random.default_rng(seed)
    sizes, scores = np.arange(2, n + 1), []
    for size in sizes:
        subsets = (list(combinations(range(n), size)) if comb(n, size) <= max_subsets
                   else _random_subsets(rng, n, size, max_subsets))
        rows = []
        for subset in subsets:
            for held_out in subset:
                others = [j for j in subset if j != held_out]
                # corr(y_i, sum of others) = sum_j C_ij / sqrt(sum_jl C_jl) for z-scored responses
                covariance = C[held_out, others].sum(0)
                pool_variance = C[np.ix_(others, others)].sum((0, 1))
                with np.errstate(invalid="ignore", divide="ignore"):
                    rows.append(covariance / np.sqrt(pool_variance))
        scores.append(np.array(rows))
    return sizes, scores


def _random_subsets(rng, n, size, count):
    chosen = set()
    while len(chosen) < count:
        chosen.add(tuple(sorted(rng.choice(n, size, replace=False).tolist())))
    return sorted(chosen)


def extrapolate(sizes, curve, method):
    """Shared variance per target from the mean score per subset size.

    Parameters
    ----------
    sizes : array of shape (n_points,)
    curve : array of shape (n_points, n_targets)
    method : {"exponential", "spearman_brown"}

    Returns
    -------
    shared : array of shape (n_targets,)
        The squared ceiling. Spearman-Brown keeps its sign (a negative score gives a negative
        estimate), so averages over noise targets stay near 0; the ceiling is sqrt(max(shared, 0)).
    """
    if method == "exponential":
        return _fit_exponential(np.asarray(sizes, float), curve) ** 2
    # Spearman-Brown: solve s^2 from r with m others (m s^4 - r^2 (m - 1) s^2 - r^2 = 0), average
    m = (np.asarray(sizes, float) - 1)[:, None]
    r2 = np.clip(np.abs(curve), 0, 1) ** 2
    s2 = (r2 * (m - 1) + np.sqrt(r2 ** 2 * (m - 1) ** 2 + 4 * m * r2)) / (2 * m)
    return (np.sign(curve) * s2).mean(0)


def _fit_exponential(x, y):
    """Least-squares v0 * (1 - exp(-x / tau)) per target: v0 in closed form on a grid of tau."""
    basis = 1 - np.exp(-x[None, :] / _TAUS[:, None])                 # (n_taus, n_points)
    y = np.nan_to_num(y)
    v0 = np.clip(basis @ y / (basis ** 2).sum(1)[:, None], 0, 1)      # (n_taus, n_targets)
    sse = (y ** 2).sum(0) - 2 * v0 * (basis @ y) + v0 ** 2 * (basis ** 2).sum(1)[:, None]
    return v0[np.argmin(sse, axis=0), np.arange(y.shape[1])]


def cross_subject_ceiling(responses, n_bootstrap=100, max_subsets=20, method="spearman_brown", seed=0):
    """Schrimpf-style cross-subject ceiling of test r per target, with bootstrap intervals.

    Parameters
    ----------
    responses : list of arrays of shape (n_TR, n_targets)
        Each subject's held-out responses to the same stimulus, in one target space.
    n_bootstrap : int
        Resamples of the subsets (with replacement, per size) refitted to get the median and CI.
    max_subsets : int
    method : {"spearman_brown", "exponential"}
        See the module docstring; "exponential" needs four or more subjects.
    seed : int

    Returns
    -------
    CrossSubjectCeiling
    """
    if method not in METHODS:
        raise InputError(f"noise_ceiling: field 'extrapolation' expected one of {METHODS}, found {method!r}.")
    C = pairwise_correlations(responses)
    sizes, scores = subject_pool_scores(C, max_subsets, seed)
    if method == "exponential" and len(sizes) < 3:
        raise InputError(f"noise_ceiling: field 'extrapolation' is 'exponential', which needs four or more "
                         f"subjects, found {len(responses)}; use 'spearman_brown'.")
    missing = ~np.isfinite(C).all((0, 1))
    rng = np.random.default_rng(seed + 1)
    fits = np.empty((max(n_bootstrap, 1), C.shape[2]))
    for b in range(fits.shape[0]):
        curve = np.stack([s[rng.integers(0, len(s), len(s))].mean(0) if n_bootstrap else s.mean(0)
                          for s in scores])
        fits[b] = extrapolate(sizes, curve, method)
    fits[:, missing] = np.nan
    # percentiles commute with the monotone sqrt(max(., 0)): the same bootstrap draws give both scales
    low, median, high = np.sqrt(np.clip(np.percentile(fits, [2.5, 50, 97.5], axis=0), 0, 1))
    curve = np.stack([s.mean(0) for s in scores])
    return CrossSubjectCeiling(median, low, high, C.shape[0], method, sizes, curve,
                               np.percentile(fits, 50, axis=0))
