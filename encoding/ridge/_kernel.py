"""The fast ridge's kernel form (more features than a fold's training TRs), fold by fold.

A 7B model's layer with 5 delays has p = 17,920 delayed features against 1,600-8,000 training TRs per
fold: every fit is in the kernel form, and its fixed cost is one eigendecomposition of each fold's
(n_train_fold, n_train_fold) training kernel. Three things make it cheaper than the primal form's float64 path
(``_primal``):

- **The kernels once, in float64, from feature chunks.** K = X X^T and K_test = X_test X^T are summed
  over column chunks of X converted to float64 one at a time (numpy: scipy's dsyrk, in place), so no
  float64 copy of X (twice the data) is made; every fold slices its blocks from them.
- **float32 eigendecompositions, refined in float64 where float32 cannot resolve the spectrum.** A float32
  eigendecomposition (LAPACK's divide and conquer, about 2.5x faster than float64 on these kernels) has
  absolute eigenvalue errors of about eps32 * s_max, and its eigenvectors of the smallest eigenvalues
  leak into the largest: K_val,train q of a direction with s ~ 0 came out 0.03-0.78 instead of 0.0014 at
  n = 2,000, which at alpha = 0.01 (f = 100) ruins the validation prediction. On a tenth of targets that
  were nearly noiseless (small alphas best) float32 eigendecompositions alone chose another alpha than a
  float64 referee for 58% of them (max |delta r| 1.6e-3). So the axes whose relative eigenvalue error
  eps32 * s_max / (s + alpha_min) exceeds 1e-3 (8 of 1,600-8,000 on the benchmark's designs) are refined
  in float64: two steps of subspace inverse iteration with a Cholesky factor of K_train + alpha_min I,
  Rayleigh-Ritz on the result, and the other eigenvectors orthogonalized against it. Then every target
  took the referee's alpha and max |delta r| was 9.7e-7 (float64 throughout: 7.7e-7). When more than a
  quarter of the axes would need it, the fold is decomposed in float64 instead.
- **One fold at a time.** Each fold is decomposed, every target batch is scored on it, and it is dropped
  before the next; fold 0, whose decomposition the refit on all training TRs starts from (``_folds``'s
  block elimination), goes last, so the batch that completes its scores is refit at once. The fit holds
  the kernels, one fold and the refit, not every fold's bases and couplings.

The validation errors for every alpha come from the fold library (``_folds``: partial fractions or direct,
per fold), and
so do the alpha choice and the refit; this module only builds the folds differently and orders the work.
"""
import logging

import numpy as np
from himalaya.backend import get_backend
from tqdm import tqdm

from ._folds import Decomposition, Fold, Refit, fold_scores, refit_kernel, select_alphas
from ._fractions import fractions_if_cheaper
from .memory import held_bytes

log = logging.getLogger(__name__)

_EPS32 = float(np.finfo(np.float32).eps)
#: Axes whose float32 eigenvalue error relative to s + alpha_min exceeds this are refined in float64: the
#: per-run null directions and the delays' edge directions (8 of 1,600-8,000 axes on the benchmark's
#: designs, s < 20 where the bulk starts at ~400). At 1e-4 the bulk of the spectrum was refined at
#: 10,000 TRs (3,628 of 8,000 axes: a float64 decomposition instead); at 1e-2 the edge directions were
#: not, and 1.3% of nearly noiseless targets took another alpha than the float64 referee.
_REFINE_TOLERANCE = 1e-3
#: Refining more than this fraction of a fold's axes costs about as much as a float64 decomposition.
_REFINE_MAX_FRACTION = 0.25
#: Columns of X converted to float64 at a time, in bytes: the kernels' only copy of the data.
_CHUNK_BYTES = 64 * 2 ** 20


def linear_kernels(X_train, X_test=None):
    """K = X_train X_train^T and K_test = X_test X_train^T in float64, summed over feature chunks.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    X_test : array of shape (n_test, n_features), or None

    Returns
    -------
    kernel : array of shape (n_train, n_train), float64
    test_kernel : array of shape (n_test, n_train), float64, or None without ``X_test``
    """
    backend = get_backend()
    n_train, n_features = X_train.shape
    n_test = 0 if X_test is None else X_test.shape[0]
    step = max(64, _CHUNK_BYTES // (8 * (n_train + n_test)))
    kernel = backend.zeros((n_train, n_train), dtype="float64")
    test_kernel = None if X_test is None else backend.zeros((n_test, n_train), dtype="float64")
    if backend.name == "numpy":
        from scipy.linalg.blas import dsyrk
        kernel = np.asfortranarray(kernel)
    for start in range(0, n_features, step):
        block = backend.asarray(X_train[:, start:start + step], dtype="float64")
        if backend.name == "numpy":   # upper triangle, in place: no (n_train, n_train) temporary per chunk
            kernel = dsyrk(1.0, np.ascontiguousarray(block).T, beta=1.0, c=kernel, trans=1, overwrite_c=1)
        else:
            kernel += block @ block.T
        if X_test is not None:
            test_kernel += backend.asarray(X_test[:, start:start + step], dtype="float64") @ block.T
        del block
    if backend.name == "numpy":   # dsyrk filled the upper triangle: mirror it, in blocks
        for start in range(0, n_train, 1024):
            stop = min(start + 1024, n_train)
            kernel[start:stop, :start] = kernel[:start, start:stop].T
            diagonal = kernel[start:stop, start:stop]
            lower = np.tril_indices(stop - start, -1)
            diagonal[lower] = diagonal.T[lower]
    return kernel, test_kernel


def eigh_ascending(matrix):
    """Eigenvalues (ascending) and eigenvectors of a symmetric backend array, in its dtype.

    numpy arrays go to scipy's divide-and-conquer driver: on the benchmark's kernels it took 0.88 s
    (float32) and 2.15 s (float64) at 2,400 TRs where torch's took 1.00 s and 2.78 s, and scipy's default
    driver (MRRR, which fails on these spectra and falls back) 3.5 s in float32.
    """
    backend = get_backend()
    if backend.name == "numpy":
        import scipy.linalg
        return scipy.linalg.eigh(matrix, driver="evd", overwrite_a=True, check_finite=False)
    import torch
    return torch.linalg.eigh(matrix)


def _cholesky_factor(matrix):
    """Cholesky factor of a float64 backend array, in place where the backend allows: (solve, transpose_times)
    with solve(b) = matrix^-1 b and transpose_times(b) = L^T b; None when the matrix is not definite."""
    backend = get_backend()
    if backend.name == "numpy":
        import scipy.linalg
        from scipy.linalg.blas import dtrmm
        try:
            factor = scipy.linalg.cho_factor(matrix, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        return (lambda b: scipy.linalg.cho_solve(factor, b, check_finite=False),
                lambda b: dtrmm(1.0, factor[0], b, lower=1, trans_a=1))
    import torch
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        return None
    return lambda b: torch.cholesky_solve(b, factor), lambda b: factor.T @ b


def _orthonormal(vectors):
    backend = get_backend()
    if backend.name == "numpy":
        return np.linalg.qr(vectors)[0]
    import torch
    return torch.linalg.qr(vectors)[0]


def refine_small_end(kernel_train, eigenvalues, vectors, alpha_min, n_refined):
    """Float64 eigenpairs for the ``n_refined`` smallest eigenvalues of a float32 eigendecomposition.

    Two steps of subspace inverse iteration with (K + shift I)^-1 damp each leaked component of a large
    eigenvector by (s_small + shift) / (s_large + shift) per step; Rayleigh-Ritz then gives the pairs,
    and the other eigenvectors are orthogonalized against them so that the basis stays orthonormal.

    Parameters
    ----------
    kernel_train : array of shape (r, r), float64
    eigenvalues : array of shape (r,), ascending, float64
    vectors : array of shape (r, r), float32 or float64
    alpha_min : float
    n_refined : int

    Returns
    -------
    eigenvalues, vectors : as given, the first ``n_refined`` replaced (``vectors`` in place, in its dtype)
    refined : array of shape (r, n_refined), float64, those eigenvectors unrounded
    or None when K + shift I is not numerically definite (then the caller decomposes in float64).
    ``kernel_train`` is overwritten by its Cholesky factor.
    """
    backend = get_backend()
    shift = max(alpha_min, 1e-12 * float(backend.to_numpy(backend.abs(eigenvalues)).max()))
    index = backend.arange(kernel_train.shape[0])
    kernel_train[index, index] += shift   # factored in place: the fold's copy is not needed afterwards
    factor = _cholesky_factor(kernel_train)
    if factor is None:
        return None
    solve, transpose_times = factor
    small = backend.asarray(vectors[:, :n_refined], dtype="float64")
    for _ in range(2):
        small = _orthonormal(solve(small))
    root = transpose_times(small)   # V^T K V = (L^T V)^T (L^T V) - shift I
    ritz_values, rotation = backend.eigh(root.T @ root)
    small = small @ rotation
    rounded = backend.asarray(small, dtype=str(vectors.dtype).replace("torch.", ""))
    for start in range(n_refined, vectors.shape[1], 1024):   # in column blocks: no second (r, r) array
        block = vectors[:, start:start + 1024]
        block -= rounded @ (rounded.T @ block)
        block /= backend.sqrt((block * block).sum(0))[None, :]
    vectors[:, :n_refined] = rounded
    eigenvalues = backend.copy(eigenvalues)
    eigenvalues[:n_refined] = ritz_values - shift
    return eigenvalues, vectors, small


def eigh_fold(kernel, train, alpha_min, dtype, keep64=False, try_float32=True):
    """Eigendecomposition of a fold's training kernel K[train, train], largest first.

    For float32 work (float32 designs) in float32 with the small end refined in float64
    (``refine_small_end``); for float64 designs, when refining would take more than a quarter of the
    axes, or without ``try_float32`` (a sibling fold needed float64: the folds of one kernel share its
    spectrum), in float64.

    Returns
    -------
    eigenvalues : array of shape (r,), descending, float64
    vectors : array of shape (r, r), C-contiguous: float64 when ``keep64`` or decomposed in float64, else
        in ``dtype``
    refined : array of shape (r, n_refined), float64: the refined eigenvectors (the last columns of
        ``vectors``, in the same order), or None
    in_float64 : bool, whether the fold was decomposed in float64
    """
    backend = get_backend()
    result = None
    if dtype != "float64" and try_float32:
        kernel_train = kernel[train][:, train]
        eigenvalues, vectors = eigh_ascending(backend.asarray(kernel_train, dtype="float32"))
        eigenvalues = backend.asarray(eigenvalues, dtype="float64")
        spread = _EPS32 * float(backend.to_numpy(backend.abs(eigenvalues)).max())
        error = spread / (backend.to_numpy(backend.clip(eigenvalues, 0, None)) + alpha_min)
        n_refined = int((error > _REFINE_TOLERANCE).sum())
        if keep64:
            vectors = backend.asarray(vectors, dtype="float64")
        if n_refined <= _REFINE_MAX_FRACTION * len(train):
            result = (eigenvalues, vectors, None) if not n_refined else \
                refine_small_end(kernel_train, eigenvalues, vectors, alpha_min, n_refined)
        del kernel_train, vectors
    in_float64 = result is None
    if in_float64:
        result = (*eigh_ascending(kernel[train][:, train]), None)
    eigenvalues, vectors, refined = result
    vectors = backend.flip(vectors, 1)
    vectors = np.ascontiguousarray(vectors) if backend.name == "numpy" else vectors.contiguous()
    return backend.flip(eigenvalues, 0), vectors, None if refined is None else backend.flip(refined, 1), in_float64


def decompose_fold(kernel, train, val, alphas, dtype, method="auto", keep64=False, try_float32=True):
    """One fold of the kernel form from the training kernel.

    With ``keep64`` (the refit's fold) the basis and validation map are also returned in float64. Else
    A = K_val,train Q and H = A^T A are formed in the work dtype, except A's refined columns, formed in
    float64 from the refined eigenvectors (their true values are tiny, and float32 products of
    K_val,train with them would be rounding noise of its size). ``try_float32``: as ``eigh_fold``.

    Returns
    -------
    fold : Fold with basis Q and validation map A = K_val,train Q in ``dtype``; its ``in_float64`` says
        whether it was decomposed in float64
    Q, A : the same in float64, or None without ``keep64``
    """
    backend = get_backend()
    train, val = backend.asarray(train), backend.asarray(val)
    keep64 = keep64 or dtype == "float64"
    eigenvalues, Q, refined, in_float64 = eigh_fold(kernel, train, float(np.min(alphas)), dtype, keep64, try_float32)
    kernel_val = kernel[val][:, train]
    if keep64:
        val_map = kernel_val @ Q
    else:
        val_map = backend.asarray(kernel_val, dtype=dtype) @ Q
        if refined is not None:
            val_map[:, Q.shape[1] - refined.shape[1]:] = backend.asarray(kernel_val @ refined, dtype=dtype)
    del kernel_val
    fractions = fractions_if_cheaper("kernel", eigenvalues, lambda: val_map.T @ val_map, len(val), alphas,
                                      method, dtype)
    log.debug("kernel fold of %d training TRs: %s, %s", len(train), "fractions" if fractions is not None else "direct",
              "decomposed in float64" if in_float64 else f"{0 if refined is None else refined.shape[1]} axes refined "
              f"in float64")
    fold = Fold(train, val, eigenvalues, backend.asarray(Q, dtype=dtype), backend.asarray(val_map, dtype=dtype),
                fractions, in_float64)
    return (fold, Q, val_map) if keep64 else (fold, None, None)


def kernel_refit(kernel, test_kernel, fold, Q, val_map, alphas):
    """The refit on all training TRs by block elimination from ``fold`` (``_folds.Refit``), float64.

    Q, val_map : the fold's basis and validation map in float64. The Schur complements' inverses are
    formed when an alpha is first chosen (``_folds.schur_inverse``).
    """
    train, val = fold.train, fold.val
    stacked = get_backend().concatenate([val_map, test_kernel[:, train] @ Q], 0)
    return Refit(stacked, {}, test_kernel[:, val], corrections={}, kernel_val=kernel[val][:, val],
                 uncorrected=np.zeros(len(alphas), dtype=np.int64))


def decompose_kernel(X_train, splits, X_test, alphas, dtype, method="auto"):
    """Every fold of the kernel form and the refit (for inspection; ``fit_kernel`` builds them one by one).

    Parameters and returns as ``_primal.decompose_primal``; the basis is Q of K_train = Q diag(s) Q^T. Without
    ``X_test`` there is no refit.
    """
    kernel, test_kernel = linear_kernels(X_train, X_test)
    folds, refit = [], None
    for index, (train, val) in enumerate(splits):
        fold, Q, val_map = decompose_fold(kernel, train, val, alphas, dtype, method, keep64=index == 0)
        if index == 0 and test_kernel is not None:
            refit = kernel_refit(kernel, test_kernel, fold, Q, val_map, alphas)
        folds.append(fold)
    return Decomposition("kernel", folds, refit=refit)


def score_batch(fold, Y_train, columns, alphas, dtype):
    """One fold's validation scores of a batch of targets.

    Parameters
    ----------
    fold : Fold
    Y_train : array of shape (n_train, n_targets)
    columns : slice of the targets of the batch
    alphas : array of shape (n_alphas,)
    dtype : str, dtype of the products with the targets

    Returns
    -------
    Y : backend array (n_train, n_batch) in ``dtype``, the batch's training targets
    Z : backend array (r, n_batch), the fold's training targets on its axes, Q^T y_f
    scores : numpy array (n_alphas, n_batch), the fold's validation scores per alpha
    """
    backend = get_backend()
    Y = backend.asarray(Y_train[:, columns], dtype=dtype)
    Y_val = Y[fold.val]
    B = fold.val_map.T @ Y_val if fold.fractions is not None else None
    Z = fold.basis.T @ Y[fold.train]
    return Y, Z, fold_scores(fold, Z, Y_val, alphas, dtype, B)


def fit_kernel(X_train, Y_train, splits, X_test, Y_test, alphas, dtype, method, batch_of, share, progress=False):
    """Cross-validate, choose alphas and predict the test rows for a share of the targets, fold by fold.

    Parameters
    ----------
    X_train, Y_train, splits, X_test, Y_test, alphas : as ``_fast.ridge_cv`` (X_test None: no refit)
    dtype : str, dtype of the products with the targets
    method : {"auto", "direct", "fractions"}
    batch_of : callable
        ``batch_of(held)``: targets per batch once ``held`` bytes are held.
    share : slice of the targets to fit

    Yields
    ------
    (columns, best, cv_score, prediction) per batch of the share, in order, after the last fold:
    ``columns`` a slice into the share; ``best`` int numpy array, ``cv_score`` numpy array,
    ``prediction`` backend array (n_test, n_batch) in ``dtype``, None without a test set. Then a final dict
    with ``methods`` (per fold, in split order) and ``n_targets_batch`` (the smallest batch used).
    """
    n_share, n_folds = share.stop - share.start, len(splits)
    kernel, test_kernel = linear_kernels(X_train, X_test)
    n_test = 0 if X_test is None else X_test.shape[0]
    held = held_bytes(X_train.shape[0], n_test, splits, len(alphas), np.dtype(dtype).itemsize)
    batch = max(1, batch_of(held))
    scores = np.empty((n_folds, len(alphas), n_share))
    methods = [None] * n_folds
    bar = tqdm(total=n_folds * -(-n_share // batch), desc="ridge folds x target batches", disable=not progress)
    try_float32 = True
    for index in list(range(1, n_folds)) + [0]:   # fold 0 last: its batches complete the scores and refit
        fold, Q, val_map = decompose_fold(kernel, *splits[index], alphas, dtype, method, keep64=index == 0,
                                          try_float32=try_float32)
        try_float32 = not fold.in_float64   # a steep spectrum in one fold is a steep spectrum in the next
        methods[index] = "fractions" if fold.fractions is not None else "direct"
        decomposition = None
        if index == 0:
            refit = None if test_kernel is None else kernel_refit(kernel, test_kernel, fold, Q, val_map, alphas)
            decomposition = Decomposition("kernel", [fold], refit=refit)
            del kernel, test_kernel, refit
        del Q, val_map
        for start in range(0, n_share, batch):
            mine = slice(start, min(start + batch, n_share))
            Y, Z, scores[index][:, mine] = score_batch(fold, Y_train, slice(share.start + mine.start,
                                                                             share.start + mine.stop), alphas, dtype)
            if index == 0:
                best, cv_score = select_alphas(scores[:, :, mine], alphas)
                yield mine, best, cv_score, (None if decomposition.refit is None else
                                             refit_kernel(decomposition, Y, Z, alphas, best, dtype))
            del Y, Z
            bar.update()
        del fold
    bar.close()
    yield dict(methods=methods, n_targets_batch=min(batch, max(n_share, 1)))
