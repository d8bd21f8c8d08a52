"""Cross-validated ridge for one feature space, every alpha from one decomposition per fold.

himalaya's RidgeCV forms, per fold and per alpha, an (n_val, n_train) resolution matrix and multiplies
it with the training targets: n_alphas * n_val * n_train * n_targets operations per fold, and refits
one weight matrix per alpha. Here each fold's training design is decomposed once and the targets are
projected once onto its r = min(p, n_train) axes:

    primal (p <= n_train):  G_train = X_train^T X_train = V diag(s) V^T,   z = V^T X_train^T y
    kernel (p > n_train):   K_train = X_train X_train^T = Q diag(s) Q^T,   z = Q^T y_train
    validation prediction:  y_val_hat(alpha) = A diag(1 / (s + alpha)) z,  A = X_val V or K_val,train Q

Each alpha then costs either n_val * r per target ("direct": form the prediction), or nothing of that
order ("fractions"): with H = A^T A and b = A^T y_val, the validation error is a rational function of
alpha whose partial fractions need only two r-vectors per target,

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
every prediction in float32 does). Each fold takes the cheaper method. In the primal form no fold
re-reads its training rows: X_train^T X_train is the total of the folds' blocks X_f^T X_f minus its
own, and z = V^T (X^T Y) - A^T Y_val, with X^T Y computed once.

The refit on all training rows needs no decomposition of its own in the kernel form: with fold 0's
K_ff = Q diag(s) Q^T, block elimination of K + alpha I over (f, v) gives the weights from that fold's
z = Q^T y_f, A = K_vf Q and one Schur complement per alpha, S = K_vv + alpha I - A diag(f) A^T:

    w_v = S^-1 (y_v - A diag(f) z),   w_f = Q diag(f) (z - A^T w_v),   y_test_hat = K_test,f w_f + K_test,v w_v

(at n = 3,000 that spares a 3,000 x 3,000 eigendecomposition, a quarter of the fixed cost). These
per-target products run in float64: in float32, S^-1 (norm up to 1 / alpha) amplified the rounding of
the residual to 10% of the prediction at alpha = 0.01, where in float64 they stay within 1e-6 of a
direct solve. S^-1 is formed when an alpha is first chosen; when an alpha's targets in a batch
outnumber the test rows, R = K_test,v - K_test,f Q diag(f) A^T is formed once and y_test_hat =
K_test,f Q diag(f) z + R w_v, one product per target fewer. The primal form decomposes X^T X once more
instead (p x p, the cheaper side there).

The primal form's decompositions are computed in float64 (on the numpy backend by scipy's
divide-and-conquer driver, see ``_eigh_numpy``). The kernel form (``_kernel``) builds its folds one at a
time from float64 kernels, with float32 eigendecompositions refined in float64 where float32 cannot
resolve the spectrum. Products with the targets run in the data's dtype (float32 on GPU). Targets are
processed in batches sized from a memory budget (by default half the memory available,
``working_memory_gb``). Every function works on arrays of the current himalaya backend, so numpy,
torch and torch_cuda run the same path.
"""
import logging
import os
from typing import NamedTuple, Optional

import numpy as np
from himalaya.backend import get_backend
from tqdm import tqdm

from ._distributed import gather_targets, launcher_world, target_share

log = logging.getLogger(__name__)

#: himalaya's score for alphas too small to be trusted with a negative eigenvalue ("nan" rule).
_UNTRUSTED_SCORE = -1e5
#: Fewer targets per batch than this would make the products too thin to be worth the memory saved.
_MIN_BATCH = 64
#: On CPU backends, batches above this many targets run slower: their (r, n_batch) float64 arrays
#: fall out of cache between the elementwise passes (20% slower at 20,000 than at 5,000 targets; at
#: r = 1,280, 8,192 targets took 10.0 s CPU in batches of 2,048, 10.1 s of 1,024, 11.3 s of 4,096).
_CPU_BATCH = 2048
#: Eigenvalues closer than this times (s + alpha_min) are summed exactly, not by partial fractions:
#: it bounds the rounding amplification of the fractions to 1e6 (float64: ~1e-10 relative).
_NEAR = 1e-6
#: Pairs whose partial fractions amplify rounding more than this, (min(s_k, s_l) + alpha_min) / |s_k - s_l|,
#: take the float64 band of the coupling; the rest may run in float32 (rounding then stays below ~1e-5).
#: On the benchmark's delayed designs the band was 7-12 axes wide and validation scores stayed within
#: 7e-7 of float64 partial fractions, where float32 predictions for every alpha differed by up to 5e-6.
_AMPLIFICATION = 100
#: The float64 band is applied in diagonal blocks of at least this many axes (fewer, larger products).
_MIN_BLOCK = 32
#: Axes per block of rows when scoring by partial fractions (blocks of (1024, 2048) float64: 16 MB). At
#: r = 8,000 the (block, r) x (r, 2,048) float32 products ran at 108 GF/s in blocks of 1,014 rows and at
#: 84 GF/s in blocks of 507; at r = 1,600 both ran alike.
_ROW_BLOCK = 1024
#: The working memory when the memory available cannot be read.
DEFAULT_MEMORY_GB = 2.0


class Fractions(NamedTuple):
    """What a fold needs to score every alpha from z and b (see module docstring)."""
    coupling: object      # (r, r) C, zero within clusters: float64, or the work dtype outside ``band``
    diagonal: object      # (r,) float64 H_kk
    clusters: list        # of (start, stop): runs of near-equal eigenvalues
    pair_rows: object     # (n_pairs,) int k of every pair k < l inside a cluster
    pair_cols: object     # (n_pairs,) int l
    pair_weights: object  # (n_pairs,) float64 2 H_kl: those pairs are summed exactly, 2 f_k f_l H_kl z_k z_l
    band: list = None     # of (rows, cols, float64 block): C near the diagonal, when ``coupling`` is float32


class Fold(NamedTuple):
    """One training decomposition: the r axes of its training side and how validation rows see them."""
    train: object                 # indices (n_train_fold,) into the training rows
    val: object                   # indices (n_val_fold,)
    eigenvalues: object           # (r,) float64, descending
    basis: object                 # (p, r) V in the primal form, (n_train_fold, r) Q in the kernel form
    val_map: object               # (n_val_fold, r) A
    fractions: Optional[Fractions] = None
    in_float64: bool = False      # kernel form: decomposed in float64 (not float32 refined at its small end)


class Refit(NamedTuple):
    """The kernel form's refit on all training rows, by block elimination from fold 0 (module docstring)."""
    stacked: object               # (n_val + n_test, r) float64: A = K_vf Q of fold 0 over K_test,f Q
    schur_inverses: dict          # alpha index -> (n_val, n_val) float64 (K_vv + alpha I - A diag(f) A^T)^-1
    test_val: object              # (n_test, n_val) float64 K_test,v
    corrections: dict = None      # alpha index -> (n_test, n_val) float64 K_test,v - K_test,f Q diag(f) A^T
    kernel_val: object = None     # (n_val, n_val) float64 K_vv
    uncorrected: object = None    # (n_alphas,) int64 numpy: targets refit at each alpha without its correction

    @property
    def val_map(self):
        return self.stacked[:self.test_val.shape[1]]

    @property
    def test_train(self):
        return self.stacked[self.test_val.shape[1]:]


class Decomposition(NamedTuple):
    """Everything about a design that does not depend on the targets."""
    form: str                     # "primal" or "kernel"
    folds: list                   # of Fold
    full: Optional[Fold] = None   # primal: all training rows; its val_map maps the test rows
    X_train: Optional[object] = None  # primal: (n_train, p) in work dtype, for X^T Y
    refit: Optional[Refit] = None     # kernel: the refit from fold 0


def choose_form(n_features, splits):
    """The cheaper side of the ridge: "primal" when features are no more than any fold's training rows."""
    return "primal" if n_features <= min(len(train) for train, _ in splits) else "kernel"


def check_splits(splits, n_samples):
    """Folds must be run-wise K-fold: validation sets partition the rows, training = the rest.

    The primal form takes a fold's training side as all rows minus its validation rows, which is only
    right for such splits (``run_splits`` makes them).
    """
    seen = np.zeros(n_samples, int)
    for train, val in splits:
        seen[np.asarray(val)] += 1
        if len(train) + len(val) != n_samples or np.intersect1d(train, val).size:
            raise ValueError("fast ridge: each fold's training rows must be all rows not in its validation set.")
    if not (seen == 1).all():
        raise ValueError("fast ridge: validation sets must cover every training row exactly once.")


def _eigh_descending(matrix):
    """Eigenvalues and eigenvectors, largest first."""
    backend = get_backend()
    if backend.name == "numpy":
        eigenvalues, vectors = _eigh_numpy(matrix)
    else:
        eigenvalues, vectors = backend.eigh(matrix)
    return backend.flip(eigenvalues, 0), backend.flip(vectors, 1)


def _eigh_numpy(matrix):
    """Symmetric eigendecomposition of a numpy array: scipy's divide-and-conquer driver (LAPACK syevd).

    Not torch's, even where torch is installed, so that a numpy-backend fit computes the same numbers with
    or without torch (and its fingerprint need not name torch). On a 1,280 x 1,280 Gram of delayed features
    (a clustered spectrum), one thread: 0.30 s against torch's 0.40 s (scipy 1.17 with OpenBLAS 0.3.31;
    an older OpenBLAS once took 3.3 s).
    """
    import scipy.linalg

    return scipy.linalg.eigh(matrix, driver="evd", check_finite=False)


def _inverse(matrix):
    """Inverse of a float64 matrix on the current backend (himalaya's backends have no inverse)."""
    backend = get_backend()
    if backend.name.startswith("torch"):
        import torch
        return torch.linalg.inv(matrix)
    return backend.asarray(np.linalg.inv(backend.to_numpy(matrix)))


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


def _fractions_if_cheaper(form, eigenvalues, val_gram, n_val, alphas, method="auto", dtype="float64"):
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
    block = None if width is None or 6 * max(width, _MIN_BLOCK) >= rank else max(width, _MIN_BLOCK)
    fractions, direct = scoring_costs(form, rank, n_val, n_alphas, block, n_pairs)
    if method == "direct" or (method == "auto" and fractions >= direct):
        return None
    return partial_fractions(eigenvalues, val_gram(), clusters, block, dtype)


def scoring_costs(form, rank, n_val, n_alphas, block=None, n_pairs=0):
    """Multiply-adds per target and fold of scoring every alpha (``_fractions_if_cheaper``'s counts):
    (by partial fractions, directly). ``block``: the float64 band's block of a float32 coupling, None for
    a float64 coupling; ``n_pairs``: pairs of near-equal eigenvalues summed exactly."""
    coupling = 2 * rank ** 2 if block is None else rank ** 2 + 6 * rank * block
    fractions = coupling + 2 * n_alphas * (2 * rank + n_pairs) + 6 * n_pairs
    fractions += n_val * rank if form == "kernel" else 0
    return fractions, n_alphas * n_val * rank


def decompose_primal(X_train, splits, X_test, alphas, dtype, method="auto"):
    """Per-fold eigendecompositions of X_train^T X_train from per-fold blocks (no row read twice).

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    splits : list of (train_indices, val_indices), validation sets partitioning the rows
    X_test : array of shape (n_test, n_features)
    alphas : array of shape (n_alphas,)
    dtype : str, dtype of the products with the targets
    method : {"auto", "direct", "fractions"}
        How folds score alphas; "auto" takes the cheaper per fold.

    Returns
    -------
    Decomposition
    """
    backend = get_backend()
    X_train = backend.asarray(X_train)
    splits = [(backend.asarray(train), backend.asarray(val)) for train, val in splits]
    blocks = [backend.asarray(X_train[val], dtype="float64") for _, val in splits]
    grams = [block.T @ block for block in blocks]
    gram = sum(grams)
    folds = [_primal_fold(train, val, gram - block_gram, block, block_gram, alphas, dtype, method)
             for (train, val), block, block_gram in zip(splits, blocks, grams)]
    eigenvalues, V = _eigh_descending(gram)
    test_map = backend.asarray(X_test, dtype="float64") @ V
    full = Fold(None, None, backend.clip(eigenvalues, 0, None), backend.asarray(V, dtype=dtype),
                backend.asarray(test_map, dtype=dtype))
    return Decomposition("primal", folds, full, backend.asarray(X_train, dtype=dtype))


def _primal_fold(train, val, train_gram, block, block_gram, alphas, dtype, method):
    backend = get_backend()
    eigenvalues, V = _eigh_descending(train_gram)
    eigenvalues = backend.clip(eigenvalues, 0, None)   # squared singular values: never negative
    val_map = block @ V
    # H = A^T A through whichever side is smaller
    val_gram = (lambda: val_map.T @ val_map) if block.shape[0] <= V.shape[0] else (lambda: V.T @ block_gram @ V)
    fractions = _fractions_if_cheaper("primal", eigenvalues, val_gram, block.shape[0], alphas, method, dtype)
    return Fold(train, val, eigenvalues, backend.asarray(V, dtype=dtype), backend.asarray(val_map, dtype=dtype),
                fractions)


def decompose(X_train, splits, X_test, alphas, form="auto", dtype="float32", method="auto"):
    """Target-independent part of the fit: ``decompose_primal`` or ``decompose_kernel`` by ``form``."""
    if form == "auto":
        form = choose_form(X_train.shape[1], splits)
    if form == "primal":
        check_splits(splits, X_train.shape[0])
        return decompose_primal(X_train, splits, X_test, alphas, dtype, method)
    if form == "kernel":
        from ._kernel import decompose_kernel
        return decompose_kernel(X_train, splits, X_test, alphas, dtype, method)
    raise ValueError(f"fast ridge: unknown form '{form}'; known: auto, primal, kernel.")


def _work_dtype(X):
    """The dtype of the products with the targets: float64 only for float64 designs, as in himalaya."""
    return "float64" if str(X.dtype).replace("torch.", "") == "float64" else "float32"


def _shrinkage(eigenvalues, alphas, dtype):
    """f = 1 / (s + alpha) for every alpha and axis: (n_alphas, r), computed in float64."""
    backend = get_backend()
    alphas = backend.asarray_like(np.asarray(alphas, dtype=np.float64), eigenvalues)
    return backend.asarray(1 / (eigenvalues[None, :] + alphas[:, None]), dtype=dtype)


def errors_direct(fold, Z, Y_val, alphas, dtype):
    """|y_val - y_val_hat(alpha)|^2 from each alpha's prediction: (n_alphas, n_targets) numpy float64."""
    backend = get_backend()
    shrink = _shrinkage(fold.eigenvalues, alphas, dtype)
    errors = np.empty((len(alphas), Z.shape[1]))
    for a in range(len(alphas)):
        residual = fold.val_map @ (Z * shrink[a][:, None])
        residual -= Y_val
        residual *= residual
        errors[a] = backend.to_numpy(residual.sum(0))
    return errors


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
    shrink = _shrinkage(fold.eigenvalues, alphas, "float64")
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


def fold_scores(fold, Z, Y_val, alphas, dtype, B=None):
    """Validation R^2 of every alpha, as himalaya's r2_score computes it (no intercept).

    Parameters
    ----------
    fold : Fold
    Z : array of shape (r, n_targets)
        The training targets on the fold's axes (V^T X_train^T Y_train or Q^T Y_train).
    Y_val : array of shape (n_val, n_targets)
    alphas : array of shape (n_alphas,)
    B : array of shape (r, n_targets) or None
        A^T Y_val, for folds scored by fractions.

    Returns
    -------
    scores : numpy array of shape (n_alphas, n_targets), float64
    """
    backend = get_backend()
    ss_tot = backend.to_numpy(((Y_val - Y_val.mean(0)) ** 2).sum(0)).astype(np.float64)
    if fold.fractions is not None:
        errors = errors_by_fractions(fold, Z, B, Y_val, alphas)
    else:
        errors = errors_direct(fold, Z, Y_val, alphas, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot == 0, 0.0, 1 - errors / ss_tot)
    # himalaya's rule in the kernel form: a negative eigenvalue (rounding) makes alphas below twice its
    # size untrustworthy, and they are never selected
    smallest = float(backend.to_numpy(fold.eigenvalues).min())
    scores[np.asarray(alphas) < -2 * smallest] = _UNTRUSTED_SCORE
    return scores


def select_alphas(scores, alphas):
    """Best alpha per target from fold scores, with himalaya's tie-break toward larger alphas.

    Parameters
    ----------
    scores : array of shape (n_folds, n_alphas, n_targets)
    alphas : array of shape (n_alphas,)

    Returns
    -------
    best : int array of shape (n_targets,), index into alphas
    cv_score : array of shape (n_targets,), mean validation score at the best alpha (plus the tie-break
        slope of 1e-10 * log(alpha), as himalaya reports it)
    """
    mean = scores.mean(0) + (np.log(np.asarray(alphas, dtype=np.float32)) * 1e-10)[:, None]
    best = mean.argmax(0)
    return best, mean[best, np.arange(mean.shape[1])]


def fit_batch(decomposition, Y, alphas, dtype):
    """Cross-validate, choose alphas and predict the test rows for one batch of targets.

    Parameters
    ----------
    decomposition : Decomposition
    Y : array of shape (n_train, n_batch), backend array in ``dtype``
    alphas : array of shape (n_alphas,)

    Returns
    -------
    best : int numpy array of shape (n_batch,)
    cv_score : numpy array of shape (n_batch,)
    prediction : backend array of shape (n_test, n_batch)
    """
    backend = get_backend()
    folds, full, primal = decomposition.folds, decomposition.full, decomposition.form == "primal"
    if primal:
        total = decomposition.X_train.T @ Y   # X^T Y once; a fold's share is X_f^T Y_f = V (A^T Y_val)
    scores = []
    for fold in folds:
        Y_val = Y[fold.val]
        B = fold.val_map.T @ Y_val if primal or fold.fractions is not None else None
        Z = fold.basis.T @ total - B if primal else fold.basis.T @ Y[fold.train]
        scores.append(fold_scores(fold, Z, Y_val, alphas, dtype, B))
        if not primal and len(scores) == 1:
            Z_first = Z   # the kernel form's refit starts from fold 0's projection
        del Z, B, Y_val
    best, cv_score = select_alphas(np.stack(scores), alphas)
    if not primal:
        return best, cv_score, refit_kernel(decomposition, Y, Z_first, alphas, best, dtype)
    Z = full.basis.T @ total
    chosen = backend.asarray_like(alphas[best], full.eigenvalues)
    shrink = backend.asarray(1 / (full.eigenvalues[:, None] + chosen[None, :]), dtype=dtype)
    return best, cv_score, full.val_map @ (Z * shrink)


def refit_kernel(decomposition, Y, Z, alphas, best, dtype):
    """Test prediction of the kernel form's refit on all training rows, by block elimination from fold 0.

    Parameters
    ----------
    decomposition : Decomposition in the kernel form
    Y : array of shape (n_train, n_batch)
    Z : array of shape (r, n_batch)
        Fold 0's training targets on its axes, Q^T Y_f.
    alphas : array of shape (n_alphas,)
    best : int numpy array of shape (n_batch,), each target's alpha

    Returns
    -------
    prediction : array of shape (n_test, n_batch) in ``dtype``
    """
    backend = get_backend()
    refit, fold = decomposition.refit, decomposition.folds[0]
    n_val = refit.test_val.shape[1]
    chosen = backend.asarray_like(alphas[best], fold.eigenvalues)
    shrink = 1 / (fold.eigenvalues[:, None] + chosen[None, :])
    shrunk = backend.asarray(Z, dtype="float64") * shrink   # diag(f) z
    both = refit.stacked @ shrunk   # A diag(f) z over K_test,f Q diag(f) z, one product
    residual, prediction = backend.asarray(Y[fold.val], dtype="float64") - both[:n_val], both[n_val:]
    for a in np.unique(best):
        group = backend.asarray(np.flatnonzero(best == a))
        val_weights = schur_inverse(refit, fold, alphas, int(a)) @ residual[:, group]   # w_v
        correction = _refit_correction(refit, fold, alphas, int(a), len(group))
        if correction is None:   # y_test_hat = K_test,f Q diag(f) (z - A^T w_v) + K_test,v w_v
            prediction[:, group] += refit.test_val @ val_weights - refit.test_train @ (
                shrink[:, group] * (refit.val_map.T @ val_weights))
        else:
            prediction[:, group] += correction @ val_weights
    return backend.asarray(prediction, dtype=dtype)


def schur_inverse(refit, fold, alphas, index):
    """(K_vv + alpha I - A diag(f) A^T)^-1 of fold 0 for alpha ``index``, float64, formed once when first needed."""
    if index not in refit.schur_inverses:
        backend = get_backend()
        alpha, eigenvalues, val_map = float(alphas[index]), fold.eigenvalues, refit.val_map
        if float(backend.to_numpy(eigenvalues).min()) + alpha > 0:   # A diag(f) A^T as one symmetric product
            scaled = val_map / backend.sqrt(eigenvalues + alpha)[None, :]
            shrunk = scaled @ scaled.T
        else:   # an alpha below a negative eigenvalue (never chosen, himalaya's rule, unless all are)
            shrunk = (val_map / (eigenvalues + alpha)[None, :]) @ val_map.T
        schur = refit.kernel_val - shrunk
        diagonal = backend.arange(schur.shape[0])
        schur[diagonal, diagonal] += alpha
        refit.schur_inverses[index] = _inverse(schur)
    return refit.schur_inverses[index]


def _refit_correction(refit, fold, alphas, index, n_group):
    """K_test,v - K_test,f Q diag(f) A^T for alpha ``index``, cached, once it has paid for itself.

    Applied to w_v it replaces the two products A^T w_v and K_test,f Q (.) per target (n_val * r and
    n_test * r) by one of n_test * n_val, for n_test * r * n_val once: worth it from
    n_test * n_val / (n_val + n_test) targets on. Which alphas reach that is known only as fold 0's batches
    come, so it is formed when the targets refit at that alpha without it, this group included, reach that
    count (the fit then costs at most twice the best choice made knowing the future). Before, a batch's
    group had to reach n_test targets by itself: at 10,000 TRs (batches of 2,048, ten or more alphas
    chosen) no correction was ever formed, and the refit cost 1.8 ms more per target.
    """
    if refit.corrections is None:
        return None
    if index not in refit.corrections:
        n_test, n_val = refit.test_val.shape
        done = 0 if refit.uncorrected is None else int(refit.uncorrected[index])
        if done + n_group < n_test * n_val / (n_val + n_test):
            if refit.uncorrected is not None:
                refit.uncorrected[index] += n_group
            return None
        f = 1 / (fold.eigenvalues + float(alphas[index]))
        refit.corrections[index] = refit.test_val - (refit.test_train * f[None, :]) @ refit.val_map.T
    return refit.corrections[index]


def _nbytes(array):
    if array is None:
        return 0
    if hasattr(array, "element_size"):  # torch
        return array.numel() * array.element_size()
    return array.nbytes


def decomposition_bytes(decomposition):
    """Memory a decomposition holds for the whole fit (bases, maps, couplings, blocks)."""
    held = _nbytes(decomposition.X_train)
    for part in decomposition.refit or ():   # arrays, and the refit's caches of per-alpha arrays
        held += sum(_nbytes(array) for array in part.values()) if isinstance(part, dict) else _nbytes(part)
    for fold in decomposition.folds + ([decomposition.full] if decomposition.full else []):
        held += _nbytes(fold.basis) + _nbytes(fold.val_map)
        if fold.fractions is not None:
            fractions = fold.fractions
            held += sum(_nbytes(array) for array in (fractions.coupling, fractions.pair_rows, fractions.pair_cols,
                                                     fractions.pair_weights))
            held += sum(_nbytes(near) for _, _, near in fractions.band or ())
    return held


def per_target_bytes(form, n_train, n_test, rank, n_val, side, n_folds, n_alphas, itemsize):
    """Memory per target of a batch (see ``batch_bytes``), from the shapes of the folds."""
    side += rank if form == "kernel" else 0
    return itemsize * (n_train + 3 * n_test + side + 4 * rank + 3 * n_val) \
        + 8 * (4 * rank + n_val + 2 * n_test) + 8 * (n_folds + 1) * n_alphas


def batch_bytes(decomposition, n_train, n_test, n_alphas, itemsize):
    """Memory a fit holds throughout (the decomposition) and per target of a batch.

    Per target a batch holds: its training and test columns, X^T Y (primal) or the gathered training
    rows and fold 0's projection (kernel), the fold's projections and validation rows, the validation
    products (direct) or float64 copies (fractions, and the kernel form's float64 refit), the test
    prediction, and float64 scores. The kernel form holds the kernels, one fold and the refit at a time
    (``_kernel.held_bytes``).

    Returns
    -------
    held, per_target : int, bytes
    """
    folds = decomposition.folds
    rank = max(fold.basis.shape[1] for fold in folds + ([decomposition.full] if decomposition.full else []))
    n_val = max(len(fold.val) for fold in folds)
    side = folds[0].basis.shape[0] if decomposition.form == "primal" else max(fold.basis.shape[0] for fold in folds)
    per_target = per_target_bytes(decomposition.form, n_train, n_test, rank, n_val, side, len(folds), n_alphas,
                                  itemsize)
    if decomposition.form == "kernel":
        from ._kernel import held_bytes
        return held_bytes(n_train, n_test, [(fold.train, fold.val) for fold in folds], n_alphas, itemsize), per_target
    return decomposition_bytes(decomposition), per_target


def batch_size(held, per_target, memory_gb, n_targets, warn=True):
    """How many targets fit in ``memory_gb`` of working memory once ``held`` bytes are held."""
    free = memory_gb * 2 ** 30 - held
    if free < _MIN_BATCH * per_target:
        if warn:
            log.warning("memory_gb=%.2f leaves room for fewer than %d targets once the decomposition (%.2f GB) is "
                        "held; using %d (memory_gb=%.1f would give batches of 1,024)", memory_gb, _MIN_BATCH,
                        held / 2 ** 30, _MIN_BATCH, (held + 1024 * per_target) / 2 ** 30)
        return min(n_targets, _MIN_BATCH)
    return int(min(n_targets, free // per_target))


def batch_for(held, per_target, memory_gb, n_targets, n_targets_batch=None, warn=True):
    """Targets per batch of a fit: ``batch_size``'s, at most ``n_targets_batch`` and, on CPU backends,
    ``_CPU_BATCH``."""
    batch = batch_size(held, per_target, memory_gb, max(n_targets, 1), warn)
    cap = _CPU_BATCH if get_backend().name in ("numpy", "torch") else None
    return min(batch, n_targets_batch or batch, cap or batch)


def working_memory_gb(n_processes=1):
    """The default working memory: half the memory available now (the GPU's on torch_cuda), shared by the
    launcher's processes on this machine; ``DEFAULT_MEMORY_GB`` (2) when it cannot be read.

    A fixed 2 GB does not hold the kernel form's working set at 10,000 TRs (the kernels, one fold and the
    refit: about 2.5 GB at p = 17,920), which left batches of 64 targets.
    """
    backend = get_backend()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", n_processes))
    try:
        if backend.name == "torch_cuda":
            import torch
            available = torch.cuda.mem_get_info()[0]
        else:
            available = _available_memory()
    except (OSError, ValueError, RuntimeError, ImportError):
        return DEFAULT_MEMORY_GB
    return 0.5 * available / 2 ** 30 / max(local, 1)


def _available_memory():
    """Bytes of memory available to new allocations (psutil, else Linux's /proc/meminfo)."""
    try:
        import psutil
        return psutil.virtual_memory().available
    except ImportError:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    raise OSError("no MemAvailable in /proc/meminfo")


def ridge_cv(X_train, Y_train, splits, X_test, Y_test, alphas, form="auto", memory_gb=None,
             n_targets_batch=None, method="auto", progress=False, return_prediction=False):
    """Ridge with per-target alphas chosen by cross-validation, refit on all training rows, scored on test.

    Equals himalaya's RidgeCV (fit_intercept=False, score_func=r2_score, local_alpha) with the same
    alphas and splits, up to float rounding.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    Y_train : array of shape (n_train, n_targets); read one batch of columns at a time
    splits : list of (train_indices, val_indices)
        Validation sets partitioning the training rows (run-wise K-fold, see ``run_splits``).
    X_test : array of shape (n_test, n_features)
    Y_test : array of shape (n_test, n_targets)
    alphas : array of shape (n_alphas,)
    form : {"auto", "primal", "kernel"}
        "auto" takes the primal form when features are no more than any fold's training rows.
    memory_gb : float or None
        Working memory for the fit beyond the arrays passed in; sets the targets per batch. None: half
        the memory available now (``working_memory_gb``).
    n_targets_batch : int or None
        Upper bound on targets per batch (None: the memory budget decides, and on CPU at most 2048).
    method : {"auto", "direct", "fractions"}
        How folds score alphas (see module docstring); "auto" takes the cheaper per fold.
    progress : bool
        Show a progress bar over target batches.
    return_prediction : bool
        Also return the test rows' prediction, ``test_prediction``.

    Under a launcher (torchrun, ``accelerate launch``: WORLD_SIZE > 1) each process decomposes the design,
    fits a contiguous share of the targets and all-gathers the per-target results (``_distributed``), so
    every process returns the full arrays. One process is rank 0 of 1 on the same path.

    Returns
    -------
    dict with numpy arrays of shape (n_targets,): ``alpha_index``, ``alpha`` (as himalaya reports
    best_alphas_), ``cv_score``, ``test_r``, ``test_r2``; ``test_prediction`` of shape (n_test, n_targets),
    float32, when asked for; and ``form``, ``n_targets_batch``, ``methods``, ``world_size``.
    """
    from ._scoring import pearson_r, r2
    backend = get_backend()
    alphas = np.asarray(alphas, dtype=np.float64)
    dtype = _work_dtype(X_train)
    form = choose_form(X_train.shape[1], splits) if form == "auto" else form
    if form not in ("primal", "kernel"):
        raise ValueError(f"fast ridge: unknown form '{form}'; known: auto, primal, kernel.")
    rank, world = launcher_world()
    share = target_share(Y_train.shape[1], rank, world)
    n_share = share.stop - share.start
    memory_gb = working_memory_gb(world) if memory_gb is None else memory_gb

    def batch_of(held, per_target):
        return batch_for(held, per_target, memory_gb, n_share, n_targets_batch)

    if form == "kernel":
        from ._kernel import fit_kernel
        n_rank, n_val = max(len(train) for train, _ in splits), max(len(val) for _, val in splits)
        per_target = per_target_bytes(form, X_train.shape[0], X_test.shape[0], n_rank, n_val, n_rank, len(splits),
                                      len(alphas), np.dtype(dtype).itemsize)
        batches = fit_kernel(X_train, Y_train, splits, X_test, Y_test, alphas, dtype, method,
                             lambda held: batch_of(held, per_target), share, progress=progress and rank == 0)
    else:
        check_splits(splits, X_train.shape[0])
        decomposition = decompose_primal(X_train, splits, X_test, alphas, dtype, method)
        held, per_target = batch_bytes(decomposition, X_train.shape[0], X_test.shape[0], len(alphas),
                                       np.dtype(dtype).itemsize)
        batches = _fit_primal(decomposition, Y_train, alphas, dtype, batch_of(held, per_target), share,
                              progress=progress and rank == 0)
    out = {name: np.empty(n_share) for name in ("cv_score", "test_r", "test_r2")}
    out["alpha_index"] = np.empty(n_share, dtype=np.int64)
    if return_prediction:
        out["test_prediction"] = np.empty((X_test.shape[0], n_share), dtype=np.float32)
    for item in batches:
        if isinstance(item, dict):   # the last item: how the fit went
            info = item
            continue
        mine, best, cv_score, prediction = item
        columns = slice(share.start + mine.start, share.start + mine.stop)
        prediction = backend.to_numpy(prediction)
        Y_true = np.asarray(backend.to_numpy(Y_test[:, columns]), dtype=prediction.dtype)
        out["alpha_index"][mine], out["cv_score"][mine] = best, cv_score
        out["test_r"][mine], out["test_r2"][mine] = pearson_r(Y_true, prediction), r2(Y_true, prediction)
        if return_prediction:
            out["test_prediction"][:, mine] = prediction
    if world > 1:
        out = gather_targets(out, Y_train.shape[1], world, on_cuda=backend.name == "torch_cuda")
    # himalaya reports best_alphas_ as exp(-log(1 / alpha)) in the fit's dtype; so do we, so that
    # stored alphas compare equal to himalaya's bit for bit
    grid = alphas.astype(dtype)
    out["alpha"] = np.exp(-np.log(1 / grid))[out["alpha_index"]]
    out.update(form=form, n_targets_batch=info["n_targets_batch"], world_size=world, methods=info["methods"])
    return out


def _fit_primal(decomposition, Y_train, alphas, dtype, batch, share, progress=False):
    """The primal form's batches of a share of the targets: (columns, best, cv_score, prediction) per batch
    (as ``_kernel.fit_kernel``), then a dict with ``methods`` and ``n_targets_batch``."""
    backend = get_backend()
    n_share = share.stop - share.start
    for start in tqdm(range(0, n_share, batch), desc="ridge target batches", disable=not progress):
        mine = slice(start, min(start + batch, n_share))
        Y = backend.asarray(Y_train[:, share.start + mine.start:share.start + mine.stop], dtype=dtype)
        yield (mine, *fit_batch(decomposition, Y, alphas, dtype))
    yield dict(n_targets_batch=batch,
               methods=["fractions" if f.fractions is not None else "direct" for f in decomposition.folds])
