"""The fast ridge's primal form (features no more than a fold's training rows): per-fold eigendecompositions
of X^T X, and the fit of a batch of targets on a decomposition.

No fold re-reads its training rows: X_train^T X_train is the total of the folds' blocks X_f^T X_f minus
its own, and z = V^T (X^T Y) - A^T Y_val, with X^T Y computed once. The refit on all training rows
decomposes X^T X once more (p x p, the cheaper side here). The decompositions are computed in float64 (on
the numpy backend by scipy's divide-and-conquer driver, see ``_eigh_numpy``). The folds' scores, the
alpha choice and the kernel form's refit come from the fold library (``_folds``).
"""
import numpy as np
from himalaya.backend import get_backend
from tqdm import tqdm

from ._folds import Decomposition, Fold, fold_scores, select_alphas
from ._fractions import fractions_if_cheaper


def eigh_descending(matrix):
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



def decompose_primal(X_train, splits, X_test, alphas, dtype, method="auto"):
    """Per-fold eigendecompositions of X_train^T X_train from per-fold blocks (no row read twice).

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    splits : list of (train_indices, val_indices), validation sets partitioning the rows
    X_test : array of shape (n_test, n_features), or None (no refit: ``full`` is None)
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
    if X_test is None:
        return Decomposition("primal", folds, None, backend.asarray(X_train, dtype=dtype))
    eigenvalues, V = eigh_descending(gram)
    test_map = backend.asarray(X_test, dtype="float64") @ V
    full = Fold(None, None, backend.clip(eigenvalues, 0, None), backend.asarray(V, dtype=dtype),
                backend.asarray(test_map, dtype=dtype))
    return Decomposition("primal", folds, full, backend.asarray(X_train, dtype=dtype))


def _primal_fold(train, val, train_gram, block, block_gram, alphas, dtype, method):
    backend = get_backend()
    eigenvalues, V = eigh_descending(train_gram)
    eigenvalues = backend.clip(eigenvalues, 0, None)   # squared singular values: never negative
    val_map = block @ V
    # H = A^T A through whichever side is smaller
    val_gram = (lambda: val_map.T @ val_map) if block.shape[0] <= V.shape[0] else (lambda: V.T @ block_gram @ V)
    fractions = fractions_if_cheaper("primal", eigenvalues, val_gram, block.shape[0], alphas, method, dtype)
    return Fold(train, val, eigenvalues, backend.asarray(V, dtype=dtype), backend.asarray(val_map, dtype=dtype),
                fractions)



def fit_batch(decomposition, Y, alphas, dtype):
    """Cross-validate, choose alphas and predict the test rows for one batch of targets (the primal form's
    decomposition; the kernel form has its own loop in ``_kernel.fit_kernel``).

    Parameters
    ----------
    decomposition : Decomposition
    Y : array of shape (n_train, n_batch), backend array in ``dtype``
    alphas : array of shape (n_alphas,)

    Returns
    -------
    best : int numpy array of shape (n_batch,)
    cv_score : numpy array of shape (n_batch,)
    prediction : backend array of shape (n_test, n_batch), or None when the decomposition has no refit
        (no test set)
    """
    backend = get_backend()
    full = decomposition.full
    total = decomposition.X_train.T @ Y   # X^T Y once; a fold's share is X_f^T Y_f = V (A^T Y_val)
    scores = []
    for fold in decomposition.folds:
        Y_val = Y[fold.val]
        B = fold.val_map.T @ Y_val
        Z = fold.basis.T @ total - B
        scores.append(fold_scores(fold, Z, Y_val, alphas, dtype, B))
        del Z, B, Y_val
    best, cv_score = select_alphas(np.stack(scores), alphas)
    if full is None:
        return best, cv_score, None
    Z = full.basis.T @ total
    chosen = backend.asarray_like(alphas[best], full.eigenvalues)
    shrink = backend.asarray(1 / (full.eigenvalues[:, None] + chosen[None, :]), dtype=dtype)
    return best, cv_score, full.val_map @ (Z * shrink)


def fit_primal(decomposition, Y_train, alphas, dtype, batch, share, progress=False):
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
