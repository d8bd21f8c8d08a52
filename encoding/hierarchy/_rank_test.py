"""Rank test: does preferred depth rise along the ROI hierarchy from sensory to association cortex?"""
from itertools import permutations
from math import factorial

import numpy as np
from scipy.stats import rankdata

# below this many ROIs every ordering is enumerated: an exact p-value at most 8! = 40320 orderings
_EXACT_UP_TO = 8


def _spearman(levels, values):
    """Spearman rho of one ordering (levels (n,)) with many value vectors (m, n), ties averaged."""
    a = rankdata(levels)
    b = rankdata(values, axis=-1)
    a, b = a - a.mean(), b - b.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (b @ a) / np.sqrt((a ** 2).sum() * (b ** 2).sum(-1))


def hierarchy_rank_test(levels, preferred, n_permutations=10000, seed=0):
    """Spearman correlation of preferred depth with ROI level, one-sided permutation p-value.

    The alternative is a positive correlation (deeper layers for higher levels). Levels may tie
    (e.g. EVC and AC are both primary sensory); Spearman's rho averages tied ranks. The null
    shuffles which ROI has which preferred depth: all orderings for up to 8 ROIs, otherwise
    ``n_permutations`` random ones.

    Parameters
    ----------
    levels : array of shape (n_rois,)
    preferred : array of shape (n_rois,)
        Preferred depth per ROI; ROIs with NaN are left out.
    n_permutations : int
    seed : int

    Returns
    -------
    dict with rho, p, n_rois (rho and p NaN with fewer than 3 ROIs or constant levels/depths)
    """
    levels, preferred = np.asarray(levels, float), np.asarray(preferred, float)
    keep = np.isfinite(levels) & np.isfinite(preferred)
    levels, preferred = levels[keep], preferred[keep]
    n = int(keep.sum())
    if n < 3 or np.ptp(levels) == 0 or np.ptp(preferred) == 0:
        return {"rho": np.nan, "p": np.nan, "n_rois": n}
    rho = float(_spearman(levels, preferred[None])[0])
    if n <= _EXACT_UP_TO:
        orderings = np.array(list(permutations(range(n))))
    else:
        rng = np.random.default_rng(seed)
        orderings = rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    null = _spearman(levels, preferred[orderings])
    exact = n <= _EXACT_UP_TO
    exceed = (null >= rho - 1e-12).sum()
    p = exceed / factorial(n) if exact else (1 + exceed) / (1 + n_permutations)
    return {"rho": rho, "p": float(p), "n_rois": n}
