"""Representational dissimilarity matrices (RDMs) from item patterns.

An RDM is kept in two shapes: square ``(n_items, n_items)`` for reading, and the upper triangle
``(n_pairs,)`` with ``n_pairs = n_items * (n_items - 1) / 2`` (row-major, diagonal excluded) for
comparing; the vector is what every comparison and test in this package works on.
"""
import numpy as np

from features.errors import InputError

METRICS = ("correlation", "cosine", "euclidean")


def pattern_rdm(patterns, metric="correlation"):
    """Dissimilarity between every pair of item patterns.

    Parameters
    ----------
    patterns : array of shape (n_items, n_features)
        One row per item (a feature layer's vector, or a brain pattern over an ROI's targets).
    metric : {"correlation", "cosine", "euclidean"}
        ``1 - Pearson r``, ``1 - cosine similarity`` or the Euclidean distance between rows.

    Returns
    -------
    rdm : array of shape (n_items, n_items)
        Symmetric with a zero diagonal. A constant row (correlation) or an all-zero row (cosine)
        has no defined dissimilarity: its entries are NaN.
    """
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim != 2:
        raise InputError(f"pattern_rdm: field 'patterns' expected shape (n_items, n_features), found {patterns.shape}.")
    if metric == "euclidean":
        squared = (patterns ** 2).sum(1)
        rdm = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * patterns @ patterns.T, 0))
    elif metric in ("correlation", "cosine"):
        if metric == "correlation":
            patterns = patterns - patterns.mean(1, keepdims=True)
        norms = np.linalg.norm(patterns, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = patterns / np.where(norms > 0, norms, np.nan)[:, None]
        rdm = 1 - np.clip(unit @ unit.T, -1, 1)
    else:
        raise InputError(f"pattern_rdm: field 'metric' is {metric!r}; known: {', '.join(METRICS)}, crossnobis.")
    np.fill_diagonal(rdm, 0)
    return rdm


def upper_triangle(rdm):
    """Vector of the entries above the diagonal, row by row.

    Parameters
    ----------
    rdm : array of shape (n_items, n_items), or already a vector of shape (n_pairs,)

    Returns
    -------
    vector : array of shape (n_pairs,)
    """
    rdm = np.asarray(rdm, dtype=np.float64)
    if rdm.ndim == 1:
        return rdm
    if rdm.ndim != 2 or rdm.shape[0] != rdm.shape[1]:
        raise InputError(f"upper_triangle: field 'rdm' expected a square matrix, found shape {rdm.shape}.")
    return rdm[np.triu_indices(rdm.shape[0], k=1)]


def square_rdm(vector):
    """Inverse of :func:`upper_triangle`: a symmetric ``(n_items, n_items)`` matrix, zero diagonal."""
    vector = np.asarray(vector, dtype=np.float64)
    n_items = n_items_of(vector.size)
    rdm = np.zeros((n_items, n_items))
    rows, cols = np.triu_indices(n_items, k=1)
    rdm[rows, cols] = vector
    rdm[cols, rows] = vector
    return rdm


def n_items_of(n_pairs):
    """Number of items whose upper triangle has ``n_pairs`` entries (error if none does)."""
    n_items = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n_items * (n_items - 1) // 2 != n_pairs:
        raise InputError(f"RDM vector: field 'n_pairs' is {n_pairs}, which is no n * (n - 1) / 2.")
    return n_items


def permute_items(rdm, order):
    """The RDM of the items taken in ``order``: rows and columns are permuted together.

    Parameters
    ----------
    rdm : array of shape (n_items, n_items)
    order : array of int of shape (n_items,) or (n_draws, n_items)

    Returns
    -------
    vectors : array of shape (n_pairs,) or (n_draws, n_pairs)
        Upper triangles of the permuted RDMs.
    """
    rows, cols = np.triu_indices(rdm.shape[0], k=1)
    order = np.asarray(order)
    return rdm[order[..., rows], order[..., cols]]
