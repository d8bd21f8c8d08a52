"""What an embedding says about pairs of items: SPoSE's predicted similarity, and how dimensions of two
embeddings correspond.
"""
from __future__ import annotations

import numpy as np

from features.errors import InputError


def spose_similarity(embedding, block_elements=1 << 20, device="cpu"):
    """The probability that two items are chosen together (not the odd one out), averaged over third items.

    ``P_ij = 1 / (n - 2) * sum over k != i, j of exp(S_ij) / (exp(S_ij) + exp(S_ik) + exp(S_jk))`` with
    ``S = X X^T``, the similarity matrix Hebart et al. (2020) compare with behaviour and the brain. An
    exact O(n^3) sum, computed in blocks of rows of about ``block_elements`` terms (at least one row,
    ``n_items^2`` terms).

    Parameters
    ----------
    embedding : array of shape (n_items, n_dims)
    block_elements : int
        Terms per block (float64: 8 bytes each, times two temporaries).
    device : str
        ``"cpu"`` or a CUDA device.

    Returns
    -------
    similarity : float64 array of shape (n_items, n_items)
        Symmetric, in [0, 1], diagonal 1.
    """
    import torch

    x = torch.as_tensor(np.asarray(embedding, dtype=np.float64), device=device)
    n = x.shape[0]
    if x.ndim != 2 or n < 3:
        raise InputError(f"spose_similarity: field 'embedding' expected (n_items >= 3, n_dims), found "
                         f"{tuple(x.shape)}.")
    s = x @ x.T
    rows = max(1, int(block_elements) // (n * n))
    # Exponentials shifted by the largest similarity are all in (0, 1], and with a spread under 600 none
    # underflows in float64, so each term is a ratio of three of them (4 passes over a block). A wider
    # spread (an embedding on another scale, e.g. rescaled to 0..100) takes the log-space form.
    if float(s.max() - s.min()) < 600:
        term_sums, matrix = _term_sums, (s - s.max()).exp()
    else:
        term_sums, matrix = _term_sums_log_space, s
    out = torch.empty((n, n), dtype=torch.float64, device=device)
    for first in range(0, n, rows):
        block = torch.arange(first, min(first + rows, n), device=device)
        out[block] = term_sums(matrix, block) / (n - 2)
    out.fill_diagonal_(1.0)
    return out.cpu().numpy()


def _term_sums(e, block):
    """Per row i of ``block`` and item j, the sum over k != i, j of the terms, from ``e = exp(S - max S)``."""
    a = e[block]                                            # (b, n): exp(S_ij)
    total = (a[:, :, None] + a[:, None, :] + e[None]).reciprocal_().sum(2)   # over k: 1 / (e_ij + e_ik + e_jk)
    total -= 1 / (2 * a + e[block, block][:, None])         # k = i: e_ij + e_ii + e_ji
    total -= 1 / (2 * a + e.diagonal()[None])               # k = j: e_ij + e_ij + e_jj
    return a * total


def _term_sums_log_space(s, block):
    """As :func:`_term_sums`, each term as 1 / (1 + exp(S_ik - S_ij) + exp(S_jk - S_ij)) (+inf gives 0)."""
    import torch

    a = s[block]
    term = 1 / (1 + torch.exp(a[:, None, :] - a[:, :, None]) + torch.exp(s[None] - a[:, :, None]))
    local = torch.arange(len(block), device=s.device)
    return term.sum(2) - term[local, :, block] - torch.diagonal(term, dim1=1, dim2=2)


def best_match_correlations(reference, other):
    """Pearson r of each dimension of ``reference`` with its best-matching dimension of ``other``.

    Parameters
    ----------
    reference : array of shape (n_items, n_dims)
    other : array of shape (n_items, n_other)

    Returns
    -------
    r : float64 array of shape (n_dims,)
        The largest correlation of each reference column with any column of ``other`` (NaN where a column
        is constant).
    """
    a, b = _standardized(reference), _standardized(other)
    if b.shape[1] == 0:
        return np.full(a.shape[1], np.nan)
    r = a.T @ b / a.shape[0]
    with np.errstate(invalid="ignore"):
        return np.nanmax(np.where(np.isfinite(r), r, -np.inf), axis=1)


def _standardized(x):
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x - x.mean(0)) / np.where(sd > 0, sd, np.nan)


def dimension_reproducibility(embedding, others):
    """Reproducibility of each dimension across fits from other seeds (Hebart et al. 2020): its
    best-matching Pearson r in each other embedding, averaged after Fisher's z.

    Parameters
    ----------
    embedding : array of shape (n_items, n_dims)
    others : list of arrays of shape (n_items, n_dims_s)

    Returns
    -------
    reproducibility : float64 array of shape (n_dims,) (NaN without other embeddings)
    """
    if not others:
        return np.full(np.shape(embedding)[1], np.nan)
    best = np.array([best_match_correlations(embedding, other) for other in others])   # (n_others, n_dims)
    z = np.arctanh(np.clip(best, -1 + 1e-12, 1 - 1e-12))
    return np.tanh(np.nanmean(z, 0))
