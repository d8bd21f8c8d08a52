"""Scoring every alpha of a fold by partial fractions in alpha: the fold library's cheaper way to score.

With a fold's training side decomposed on r axes (``_folds.Fold``: eigenvalues s, training targets z on
its axes, validation map A), each alpha's validation prediction is A diag(1 / (s + alpha)) z. Forming it
costs n_val * r per alpha and target ("direct", ``_folds.errors_direct``); here nothing of that order
("fractions"): with H = A^T A and b = A^T y_val, the validation error is a rational function of alpha
whose partial fractions need only two r-vectors per target,

    |y_val - y_val_hat|^2 = y.y - 2 sum_k f_k z_k (b_k - g_k) + sum_k f_k^2 z_k^2 H_kk,
    f_k = 1 / (s_k + alpha),   g = C z,   C_kl = H_kl / (s_l - s_k)  (k != l),

since f_k f_l = (f_k - f_l) / (s_l - s_k). g costs one r x r product per fold for all alphas. A pair's
two terms are each (s_l + alpha) / (s_k - s_l) times their sum, so near-equal eigenvalues amplify
rounding, most at the smallest alpha (g is formed once and each alpha scales it by f, so the error added
to a validation error falls as alpha grows): eigenvalues closer than 1e-6 * (s_l + alpha_min) are
grouped and their pairs summed exactly instead, in one product over all such pairs (repeated or empty
features and rank-deficient designs give such clusters; the benchmark's delayed designs have none, or
one of 4 axes). Of the rest, the pairs that amplify rounding more than 100-fold lie within a few axes of
the diagonal (sorted eigenvalues): that band of C runs in float64, in diagonal blocks, and the rest of C
in the work dtype, so a float32 fit's largest product runs at float32 speed with its rounding amplified
at most 100-fold (validation scores then differ from float64 partial fractions by less than forming
every prediction in float32 does). Each fold takes the cheaper method (``fractions_if_cheaper``;
``scoring_costs`` counts both, for the sweep's cost model too).
"""
from typing import NamedTuple

import numpy as np
from himalaya.backend import get_backend

#: Eigenvalues closer than this times (s + alpha_min) are summed exactly, not by partial fractions:
#: it bounds the rounding amplification of the fractions to 1e6 (float64: ~1e-10 relative).
_NEAR = 1e-6
#: Pairs whose partial fractions amplify rounding more than this, (min(s_k, s_l) + alpha_min) / |s_k - s_l|,
#: take the float64 band of the coupling; the rest may run in float32 (rounding then stays below ~1e-5).
#: On the benchmark's delayed designs the band was 7-12 axes wide and validation scores stayed within
#: 7e-7 of float64 partial fractions, where float32 predictions for every alpha differed by up to 5e-6.
_AMPLIFICATION = 100
#: The float64 band is applied in diagonal blocks of at least this many axes (fewer, larger products).
MIN_BLOCK = 32
#: Axes per block of rows when scoring by partial fractions (blocks of (1024, 2048) float64: 16 MB). At
#: r = 8,000 the (block, r) x (r, 2,048) float32 products ran at 108 GF/s in blocks of 1,014 rows and at
#: 84 GF/s in blocks of 507; at r = 1,600 both ran alike.
_ROW_BLOCK = 1024


class Fractions(NamedTuple):
    """What a fold needs to score every alpha from z and b (see module docstring)."""
    coupling: object      # (r, r) C, zero within clusters: float64, or the work dtype outside ``band``
    diagonal: object      # (r,) float64 H_kk
    clusters: list        # of (start, stop): runs of near-equal eigenvalues
    pair_rows: object     # (n_pairs,) int k of every pair k < l inside a cluster
    pair_cols: object     # (n_pairs,) int l
    pair_weights: object  # (n_pairs,) float64 2 H_kl: those pairs are summed exactly, 2 f_k f_l H_kl z_k z_l
    band: list = None     # of (rows, cols, float64 block): C near the diagonal, when ``coupling`` is float32


def clusters_of(eigenvalues, alpha_min):
    """Runs of near-equal eigenvalues, whose pairs partial fractions would divide by ~0.

    A pair's two fractions are each (s_l + alpha) / (s_k - s_l) times their sum (s_k > s_l), so they
    amplify rounding most at the smallest alpha, where the fractions are also largest: the rounding
    error they add to a validation error falls as alpha grows. Eigenvalues closer than
    1e-6 * (s_l + alpha_min) are therefore grouped (amplification at most 1e6: ~1e-10 relative in float64).

    Parameters
    ----------
    eigenvalues : array of shape (r,), descending
    alpha_min : float

    Returns
    -------
    list of (start, stop): index ranges of two or more consecutive eigenvalues, each closer than
    1e-6 * (the next + alpha_min) to the next
    """
    s = get_backend().to_numpy(eigenvalues)
    near = np.flatnonzero(s[:-1] - s[1:] <= _NEAR * (s[1:] + alpha_min))
    clusters = []
    for k in near:
        if clusters and clusters[-1][1] == k + 1:
            clusters[-1][1] = k + 2
        else:
            clusters.append([k, k + 2])
    return [(int(start), int(stop)) for start, stop in clusters]


def band_width(eigenvalues, clusters, alpha_min):
    """How far from the diagonal lie the pairs whose partial fractions amplify rounding more than 100-fold.

    For descending eigenvalues the amplification (min(s_k, s_l) + alpha_min) / |s_k - s_l| falls as |k - l|
    grows, on either side of k, so those pairs form a band; pairs inside one cluster (summed exactly) do
    not count, which keeps the band contiguous.

    Returns
    -------
    int or None: the largest |k - l| of such a pair (0 when there is none), None when it exceeds r / 6
    (then the band would cost more than a float64 coupling saves)
    """
    s = get_backend().to_numpy(eigenvalues).astype(np.float64)
    cluster = np.full(s.shape[0], -1)
    for i, (start, stop) in enumerate(clusters):
        cluster[start:stop] = i
    for distance in range(1, s.shape[0] // 6 + 1):
        upper, lower = s[:-distance], s[distance:]
        amplified = lower + alpha_min > _AMPLIFICATION * (upper - lower)
        amplified &= (cluster[:-distance] != cluster[distance:]) | (cluster[distance:] < 0)
        if not amplified.any():
            return distance - 1
    return None


def partial_fractions(eigenvalues, val_gram, clusters, block=None, dtype="float64"):
    """A fold's Fractions from its eigenvalues (r,) and H = A^T A (r, r), both float64.

    ``block``: with a float32 ``dtype``, keep C within this many axes of the diagonal (block-tridiagonal,
    blocks of ``block`` axes) in float64 and the rest of C in float32; None keeps all of C in float64.
    """
    backend = get_backend()
    rank = eigenvalues.shape[0]
    diagonal = backend.copy(val_gram[backend.arange(rank), backend.arange(rank)])
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start, stop in clusters:
        upper = np.triu_indices(stop - start, 1)
        rows.append(upper[0] + start)
        cols.append(upper[1] + start)
    rows, cols = backend.asarray(np.concatenate(rows)), backend.asarray(np.concatenate(cols))
    banded = block is not None and dtype != "float64"
    coupling = backend.zeros((rank, rank), dtype=dtype if banded else "float64")
    band = [] if banded else None
    step = block * max(1, _ROW_BLOCK // block) if banded else _ROW_BLOCK
    for start in range(0, rank, step):   # in blocks of rows: no (r, r) float64 temporaries
        stop = min(start + step, rank)
        local = backend.arange(stop - start)
        gaps = eigenvalues[None, :] - eigenvalues[start:stop, None]   # s_l - s_k
        gaps[local, local + start] = 1   # any nonzero value: these entries are zeroed below
        inside = [(max(a, start) - start, min(b, stop) - start, a, b) for a, b in clusters if a < stop and b > start]
        for lo, hi, a, b in inside:
            gaps[lo:hi, a:b] = 1
        part = backend.asarray(val_gram[start:stop], dtype="float64") / gaps
        del gaps
        part[local, local + start] = 0
        for lo, hi, a, b in inside:
            part[lo:hi, a:b] = 0
        for near in range(start, stop, block) if banded else ():
            near_rows, near_cols = slice(near, min(near + block, rank)), slice(max(near - block, 0), near + 2 * block)
            local_rows = slice(near_rows.start - start, near_rows.stop - start)
            band.append((near_rows, near_cols, backend.copy(part[local_rows, near_cols])))
            part[local_rows, near_cols] = 0
        coupling[start:stop] = backend.asarray(part, dtype=str(coupling.dtype).replace("torch.", ""))
    return Fractions(coupling, diagonal, clusters, rows, cols, 2 * val_gram[rows, cols], band)


def fractions_if_cheaper(form, eigenvalues, val_gram, n_val, alphas, method="auto", dtype="float64"):
    """Fractions when they cost less per target than forming every alpha's prediction, else None.

    Per target and fold, in float32 multiply-adds (float64 counted twice): direct = n_alphas * n_val * r;
    fractions = r^2 for g (twice that in float64; in float32 plus its float64 band: 6 r * block) +
    2 n_alphas (2 r + n_pairs) + 6 n_pairs (pairs inside clusters), plus n_val * r for b in the kernel
    form (the primal form computes b anyway, for z). ``val_gram`` is a function returning H, computed
    only when needed. ``method`` "direct" or "fractions" overrides the choice.
    """
    if method not in ("auto", "direct", "fractions"):
        raise ValueError(f"fast ridge: unknown method '{method}'; known: auto, direct, fractions.")
    rank, n_alphas, alpha_min = eigenvalues.shape[0], len(alphas), float(np.min(alphas))
    clusters = clusters_of(eigenvalues, alpha_min)
    n_pairs = sum((b - a) * (b - a - 1) // 2 for a, b in clusters)
    width = band_width(eigenvalues, clusters, alpha_min) if dtype != "float64" else None
    block = None if width is None or 6 * max(width, MIN_BLOCK) >= rank else max(width, MIN_BLOCK)
    fractions, direct = scoring_costs(form, rank, n_val, n_alphas, block, n_pairs)
    if method == "direct" or (method == "auto" and fractions >= direct):
        return None
    return partial_fractions(eigenvalues, val_gram(), clusters, block, dtype)


def scoring_costs(form, rank, n_val, n_alphas, block=None, n_pairs=0):
    """Multiply-adds per target and fold of scoring every alpha (``fractions_if_cheaper``'s counts):
    (by partial fractions, directly). ``block``: the float64 band's block of a float32 coupling, None for
    a float64 coupling; ``n_pairs``: pairs of near-equal eigenvalues summed exactly."""
    coupling = 2 * rank ** 2 if block is None else rank ** 2 + 6 * rank * block
    fractions = coupling + 2 * n_alphas * (2 * rank + n_pairs) + 6 * n_pairs
    fractions += n_val * rank if form == "kernel" else 0
    return fractions, n_alphas * n_val * rank



def shrinkage(eigenvalues, alphas, dtype):
    """f = 1 / (s + alpha) for every alpha and axis: (n_alphas, r), computed in float64."""
    backend = get_backend()
    alphas = backend.asarray_like(np.asarray(alphas, dtype=np.float64), eigenvalues)
    return backend.asarray(1 / (eigenvalues[None, :] + alphas[:, None]), dtype=dtype)



def errors_by_fractions(fold, Z, B, Y_val, alphas):
    """|y_val - y_val_hat(alpha)|^2 by partial fractions in alpha: (n_alphas, n_targets) numpy float64.

    Z, B : arrays of shape (r, n_targets): z = training targets on the fold's axes, b = A^T y_val.

    The axes go in blocks of rows (``_ROW_BLOCK``): each block's g = C z, its float64 band and the
    elementwise products stay in cache, where whole (r, n_targets) float64 arrays made eight passes
    through memory (at 1,600 axes and 15,000 targets those passes took a third of the fractions' time).
    """
    backend = get_backend()
    fractions = fold.fractions
    rank = Z.shape[0]
    shrink = shrinkage(fold.eigenvalues, alphas, "float64")
    weighted = shrink * shrink * fractions.diagonal[None, :]
    Y_val = backend.asarray(Y_val, dtype="float64")
    errors = backend.zeros((len(alphas), Z.shape[1]), dtype="float64") + (Y_val * Y_val).sum(0)[None, :]
    del Y_val
    Z64 = backend.asarray(Z, dtype="float64")
    # C in float64 takes z in float64; a float32 C (with its float64 band) takes z in the work dtype
    Z_coupling = Z64 if fractions.band is None else Z
    step = _ROW_BLOCK
    if fractions.band:   # whole band blocks per row block
        width = fractions.band[0][0].stop - fractions.band[0][0].start
        step = width * max(1, _ROW_BLOCK // width)
    band = iter(fractions.band or ())
    near = next(band, None)
    for start in range(0, rank, step):
        rows = slice(start, min(start + step, rank))
        g = backend.asarray(fractions.coupling[rows] @ Z_coupling, dtype="float64")
        while near is not None and near[0].start < rows.stop:
            near_rows, near_cols, block = near
            g[near_rows.start - start:near_rows.stop - start] += block @ Z64[near_cols]
            near = next(band, None)
        z = Z64[rows]
        g -= B[rows]   # b in the work dtype: no float64 copy of it
        g *= z   # z (g - b)
        errors += 2 * (shrink[:, rows] @ g)
        g = z * z
        errors += weighted[:, rows] @ g
    del g, Z_coupling
    # pairs of near-equal eigenvalues, summed exactly: 2 H_kl f_k f_l z_k z_l, as one product over pairs,
    # in chunks of r/2 pairs so that the gathered rows take no more memory than z
    rows, cols, weights = fractions.pair_rows, fractions.pair_cols, fractions.pair_weights
    step = max(rank // 2, 1)
    for start in range(0, rows.shape[0], step):
        k, l = rows[start:start + step], cols[start:start + step]
        products = Z64[k]
        products *= Z64[l]
        errors += (shrink[:, k] * shrink[:, l] * weights[None, start:start + step]) @ products
    return backend.to_numpy(errors)
