"""Comparing RDMs on their upper triangles: rank and linear correlations, partial and semipartial.

Every function takes RDMs as square matrices or upper-triangle vectors. Pairs that are NaN in any
RDM of a comparison are left out of it (e.g. pairs of an item with its own bootstrap copy).
"""
import numpy as np
from scipy import stats

from features.errors import InputError

from ._rdm import upper_triangle

COMPARISONS = ("spearman", "kendall_tau_a", "pearson")


def compare_rdms(rdm_a, rdm_b, method="spearman"):
    """Similarity of two RDMs.

    Parameters
    ----------
    rdm_a, rdm_b : arrays of shape (n_items, n_items) or (n_pairs,)
    method : {"spearman", "kendall_tau_a", "pearson"}
        Spearman's rho (Pearson r of ranks, ties averaged), Kendall's tau-a (concordant minus
        discordant pairs over all pairs, no tie correction, as Nili et al. 2014 recommend for
        models that predict ties) or Pearson's r.

    Returns
    -------
    score : float
    """
    a, b = _finite_pairs(upper_triangle(rdm_a), upper_triangle(rdm_b))
    if method == "pearson":
        return _pearson(a, b)
    if method == "spearman":
        return _pearson(stats.rankdata(a), stats.rankdata(b))
    if method == "kendall_tau_a":
        return kendall_tau_a(a, b)
    raise InputError(f"compare_rdms: field 'method' is {method!r}; known: {', '.join(COMPARISONS)}.")


def kendall_tau_a(a, b):
    """Kendall's tau-a of two vectors, ``(concordant - discordant) / (n (n - 1) / 2)``.

    Computed from scipy's tau-b, whose denominator ``sqrt((n0 - t_a) (n0 - t_b))`` only differs in
    the tied pairs t; this keeps the O(n log n) algorithm instead of comparing all pairs of pairs.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n0 = a.size * (a.size - 1) / 2
    ties_a, ties_b = _tied_pairs(a), _tied_pairs(b)
    if n0 == 0 or ties_a == n0 or ties_b == n0:
        return np.nan
    tau_b = stats.kendalltau(a, b, variant="b").statistic
    return float(tau_b * np.sqrt((n0 - ties_a) * (n0 - ties_b)) / n0)


def _tied_pairs(values):
    _, counts = np.unique(values, return_counts=True)
    return float((counts * (counts - 1) / 2).sum())


def partial_correlation(rdm_a, rdm_b, controls, method="pearson"):
    """Correlation of two RDMs after removing what other RDMs explain from both.

    Parameters
    ----------
    rdm_a, rdm_b : arrays of shape (n_items, n_items) or (n_pairs,)
        Usually the brain RDM and a model RDM.
    controls : sequence of RDMs, each (n_items, n_items) or (n_pairs,)
        E.g. an experiential-ratings RDM.
    method : {"pearson", "spearman"}
        "spearman" ranks every RDM first (partial Spearman).

    Returns
    -------
    score : float
        Pearson r between the residuals of a and of b regressed (with an intercept) on controls.
    """
    a, b, C = _prepared(rdm_a, rdm_b, controls, method)
    return _pearson(_residualize(a, C), _residualize(b, C))


def semipartial_correlation(rdm_a, rdm_b, controls, method="pearson"):
    """Correlation of ``rdm_a`` with the part of ``rdm_b`` that the controls do not explain.

    The controls are removed from ``rdm_b`` only (part correlation): with the brain as ``rdm_a``
    and a model as ``rdm_b``, its square is the share of the brain RDM's variance that the model
    explains uniquely, beyond the controls. Parameters as :func:`partial_correlation`.
    """
    a, b, C = _prepared(rdm_a, rdm_b, controls, method)
    return _pearson(a, _residualize(b, C))


def _prepared(rdm_a, rdm_b, controls, method):
    if method not in ("pearson", "spearman"):
        raise InputError(f"partial correlation: field 'method' is {method!r}; known: pearson, spearman.")
    vectors = [upper_triangle(rdm_a), upper_triangle(rdm_b)] + [upper_triangle(c) for c in controls]
    if len({v.size for v in vectors}) != 1:
        raise InputError("partial correlation: field 'controls' holds an RDM of another number of items.")
    vectors = _finite_pairs(*vectors)
    if method == "spearman":
        vectors = [stats.rankdata(v) for v in vectors]
    C = np.column_stack([np.ones(vectors[0].size)] + list(vectors[2:]))
    return vectors[0], vectors[1], C


def _residualize(y, C):
    coefficients, *_ = np.linalg.lstsq(C, y, rcond=None)
    return y - C @ coefficients


def _pearson(a, b):
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denominator) if denominator > 0 else np.nan


def _finite_pairs(*vectors):
    if len({v.size for v in vectors}) != 1:
        raise InputError(f"compare_rdms: RDMs of different sizes ({', '.join(str(v.size) for v in vectors)} pairs).")
    keep = np.logical_and.reduce([np.isfinite(v) for v in vectors])
    return [v[keep] for v in vectors]
