"""Benjamini-Hochberg false discovery rate control."""
import numpy as np


def fdr_bh(p_values):
    """Benjamini-Hochberg adjusted p-values (q-values); NaN p-values stay NaN and are not counted.

    Equal to ``scipy.stats.false_discovery_control(p, method="bh")`` on the finite entries:
    q_(i) = min over j >= i of p_(j) * m / j, capped at 1, with m the number of finite p-values.

    Parameters
    ----------
    p_values : array of shape (n_tests,) or any shape
        One family of tests; the whole array is one family.

    Returns
    -------
    q_values : array of the same shape, float64
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return q
    flat = p[finite]
    order = np.argsort(flat)
    scaled = flat[order] * m / np.arange(1, m + 1)
    # the running minimum from the largest p down makes the adjusted values monotone
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    q[finite] = out
    return q
