"""Banded ridge in the kernel form: one regularisation per feature space, searched over band weights.

Banded ridge on bands X_1..X_B solves kernel ridge on K(g) = sum_i g_i K_i, K_i = X_i X_i^T, for each
band-weight sample g on the simplex and every alpha, and keeps per target the (g, alpha) with the best
mean validation R^2 (himalaya's MultipleKernelRidgeCV random search; each band's own regularisation is
alpha / g_i). himalaya recomputes, per sample and fold, an (n_alphas, n_val, n_train) resolution matrix
and multiplies it with the training targets. Here:

- the per-band kernels (train and test) are computed once, in float64, and every sample's K(g) is their
  weighted sum;
- each sample is one kernel-form fit of ``_kernel`` (per fold one float32 eigendecomposition refined in
  float64, the targets projected once onto its axes, every alpha scored by partial fractions);
- the refit on all training TRs is done only for targets whose best score the sample improves (by more
  than float32's eps, himalaya's rule), by the fold library's block elimination (``_folds``) from fold 0, with each band's
  share of the test prediction, g_i K_test,i w, kept for its split R^2.

With the same samples (``band_weight_samples``: himalaya's Dirichlet draws, the first one equal weights)
the choices are himalaya's up to float32 rounding (3.3x faster at 1,000 TRs, two bands of 17,920
features). ``band_weight_grid`` spaces two bands' weight ratio evenly in log instead: with the alpha
grid it covers both bands' regularisations on a regular lattice, and its 25 ratios plus the two single
bands, one search (``fit_banded_ridge(search="grid")``), reached the mean CV R^2 of 50 random samples to
1e-5, 5.1x faster than himalaya's (``bench/banded.py``). Targets go in batches sized from a memory budget
(``memory.banded_bytes``), as ``_fast.ridge_cv``'s do.
"""
import numpy as np
from himalaya.backend import get_backend
from himalaya.kernel_ridge import generate_dirichlet_samples
from himalaya.scoring import r2_score_split
from tqdm import tqdm

from ._folds import schur_inverse, select_alphas
from ._kernel import decompose_fold, kernel_refit, linear_kernels, score_batch
from .memory import banded_bytes, batch_for, working_memory_gb
from ._scoring import pearson_r, r2

#: himalaya's rule: a later sample replaces a target's best only if it scores more than this higher.
_IMPROVEMENT = float(np.finfo(np.float32).eps)


def band_weight_samples(n_bands, n_iter, random_state=None, concentration=(0.1, 1.0)):
    """Band-weight samples as himalaya's random search draws them: Dirichlet, the first one equal weights.

    Returns
    -------
    gammas : array of shape (n_iter, n_bands), rows on the simplex
    """
    gammas = generate_dirichlet_samples(n_samples=n_iter, n_kernels=n_bands, concentration=list(concentration),
                                        random_state=random_state)
    gammas[0] = 1 / n_bands
    return np.asarray(gammas, dtype=np.float64)


def band_weight_grid(n_ratios=25, decades=3.0):
    """Two bands' weights with their ratio g_1 / g_2 log-spaced over 10^-decades..10^decades.

    At the default the ratios step by a quarter decade (the default alphas by half a decade), so
    (alpha / g_1, alpha / g_2) runs over a regular lattice of the two bands' regularisations. The two
    single bands are left out (``fit_banded_ridge(return_single=True)`` fits them on the same kernels).
    On ``bench/banded.py``'s study half-decade steps (13 ratios) left the mean CV R^2 2e-5 below 50
    random samples, quarter-decade steps 1e-5; spanning 4 or 5 decades instead of 3 changed nothing.

    Returns
    -------
    gammas : array of shape (n_ratios, 2)
    """
    ratios = np.logspace(-decades, decades, n_ratios)
    return np.stack([ratios / (1 + ratios), 1 / (1 + ratios)], 1)


def _band_test_maps(test_kernels, fold, Q):
    """Per band (K_test,i[:, f] Q, K_test,i[:, v]) of fold 0: its share of the refit's test prediction."""
    return [(test_kernel[:, fold.train] @ Q, test_kernel[:, fold.val]) for test_kernel in test_kernels]


def refit_weights(refit, fold, Y, Z, alphas, best):
    """Dual weights of the refit on all training rows in fold 0's coordinates, float64.

    Returns
    -------
    train_weights : array of shape (r, n_batch), Q^T w_f
    val_weights : array of shape (n_val, n_batch), w_v
    """
    backend = get_backend()
    chosen = backend.asarray_like(alphas[best], fold.eigenvalues)
    shrink = 1 / (fold.eigenvalues[:, None] + chosen[None, :])
    Z = backend.asarray(Z, dtype="float64")
    residual = backend.asarray(Y[fold.val], dtype="float64") - refit.val_map @ (Z * shrink)
    val_weights = backend.zeros_like(residual)
    for a in np.unique(best):
        group = backend.asarray(np.flatnonzero(best == a))
        val_weights[:, group] = schur_inverse(refit, fold, alphas, int(a)) @ residual[:, group]
    return shrink * (Z - refit.val_map.T @ val_weights), val_weights


class _Best:
    """Per target of a share: the best (sample, alpha) so far and its test scores."""

    def __init__(self, n_targets, n_bands):
        self.cv_score = np.full(n_targets, -np.inf)
        self.alpha_index = np.zeros(n_targets, dtype=np.int64)
        self.sample = np.zeros(n_targets, dtype=np.int64)
        self.test_r = np.full(n_targets, np.nan)
        self.test_r2 = np.full(n_targets, np.nan)
        self.test_r2_split = np.full((n_bands, n_targets), np.nan)


def banded_kernel_cv(kernels, test_kernels, Y_train, splits, Y_test, alphas, gammas, dtype, method, batch, share,
                     progress=False):
    """Banded ridge by search over band-weight samples, each a kernel-form fit, for a share of the targets.

    Parameters
    ----------
    kernels : list of arrays of shape (n_train, n_train), float64, one per band
    test_kernels : list of arrays of shape (n_test, n_train), float64
    Y_train : array of shape (n_train, n_targets)
    splits : list of (train_indices, val_indices)
    Y_test : array of shape (n_test, n_targets)
    alphas : array of shape (n_alphas,)
    gammas : array of shape (n_samples, n_bands), band weights on the simplex
    dtype : str, dtype of the products with the targets
    method : {"auto", "direct", "fractions"}
    batch : int, targets per batch
    share : slice of the targets to fit

    Returns
    -------
    _Best of the share
    """
    n_share, n_folds = share.stop - share.start, len(splits)
    best = _Best(n_share, len(kernels))
    bar = tqdm(total=len(gammas) * n_folds, desc="banded ridge samples x folds", disable=not progress, leave=False,
               unit="fold")
    for sample, gamma in enumerate(gammas):
        kernel = sum(float(g) * K for g, K in zip(gamma, kernels))
        test_kernel = sum(float(g) * K for g, K in zip(gamma, test_kernels))
        scores = np.empty((n_folds, len(alphas), n_share))
        try_float32 = True
        for index in list(range(1, n_folds)) + [0]:   # fold 0 last: its batches complete the scores and refit
            fold, Q, val_map = decompose_fold(kernel, *splits[index], alphas, dtype, method, keep64=index == 0,
                                              try_float32=try_float32)
            try_float32 = not fold.in_float64   # as in ``_kernel.fit_kernel``
            if index == 0:
                refit = kernel_refit(kernel, test_kernel, fold, Q, val_map, alphas)
                band_maps = _band_test_maps(test_kernels, fold, Q)
            del Q, val_map
            for start in range(0, n_share, batch):
                mine = slice(start, min(start + batch, n_share))
                Y, Z, scores[index][:, mine] = score_batch(
                    fold, Y_train, slice(share.start + mine.start, share.start + mine.stop), alphas, dtype)
                if index == 0:
                    _update(best, mine, sample, gamma, scores[:, :, mine], refit, fold, band_maps, Y, Z,
                            Y_test[:, share.start + mine.start:share.start + mine.stop], alphas)
            bar.update()
    bar.close()
    return best


def _update(best, mine, sample, gamma, scores, refit, fold, band_maps, Y, Z, Y_test, alphas):
    """Keep this sample for the batch's targets it improves, with their refit's test scores."""
    backend = get_backend()
    alpha_index, cv_score = select_alphas(scores, alphas)
    improved = np.flatnonzero(cv_score > best.cv_score[mine] + _IMPROVEMENT)
    if not improved.size:
        return
    columns = backend.asarray(improved)
    train_weights, val_weights = refit_weights(refit, fold, Y[:, columns], Z[:, columns], alphas,
                                               alpha_index[improved])
    split = backend.stack([float(g) * (test_train @ train_weights + test_val @ val_weights)
                           for g, (test_train, test_val) in zip(gamma, band_maps)])
    prediction = backend.to_numpy(split.sum(0))
    Y_true = np.asarray(backend.to_numpy(Y_test), dtype=np.float64)[:, improved]
    targets = np.arange(mine.start, mine.stop)[improved]
    best.cv_score[targets], best.alpha_index[targets] = cv_score[improved], alpha_index[improved]
    best.sample[targets] = sample
    best.test_r[targets], best.test_r2[targets] = pearson_r(Y_true, prediction), r2(Y_true, prediction)
    centered = backend.asarray(Y_true - Y_true.mean(0), dtype="float64")
    best.test_r2_split[:, targets] = backend.to_numpy(r2_score_split(centered, split))


def banded_ridge_cv(Xs_train, Y_train, splits, Xs_test, Y_test, alphas, gammas, n_targets_batch=None,
                    method="auto", progress=False, return_single=False, memory_gb=None):
    """Banded ridge in the kernel form with per-target band weights and alpha chosen by cross-validation.

    Parameters
    ----------
    Xs_train : list of arrays of shape (n_train, n_features_band)
    Y_train : array of shape (n_train, n_targets)
    splits : list of (train_indices, val_indices)
    Xs_test : list of arrays of shape (n_test, n_features_band)
    Y_test : array of shape (n_test, n_targets)
    alphas : array of shape (n_alphas,)
    gammas : array of shape (n_samples, n_bands)
        Band-weight samples (``band_weight_samples`` or ``band_weight_grid``).
    n_targets_batch : int or None
        Upper bound on targets per batch (None: the memory budget decides, and on CPU at most 2,048).
    memory_gb : float or None
        Working memory beyond the arrays passed in (``banded_bytes``); sets the targets per batch. None:
        half the memory available now (``working_memory_gb``).
    return_single : bool
        Also fit each band alone (g = one band) on the same kernels, outside the search.

    Returns
    -------
    dict with numpy arrays: ``alpha_index``, ``alpha`` (n_targets,) as himalaya's best_alphas_,
    ``band_weights`` (n_bands, n_targets) g / alpha (himalaya's exp(deltas_)), ``sample`` (n_targets,),
    ``cv_score``, ``test_r``, ``test_r2`` (n_targets,), ``test_r2_split`` (n_bands, n_targets),
    ``n_targets_batch`` (int); with
    ``return_single``, ``single`` = a list per band of dicts with ``alpha``, ``cv_score``, ``test_r``,
    ``test_r2``.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    gammas = np.asarray(gammas, dtype=np.float64)
    dtype = "float64" if any(str(X.dtype).endswith("float64") for X in Xs_train) else "float32"
    pairs = [linear_kernels(X, X_test) for X, X_test in zip(Xs_train, Xs_test)]
    kernels, test_kernels = [K for K, _ in pairs], [K for _, K in pairs]
    del pairs
    share = slice(0, Y_train.shape[1])
    held, per_target = banded_bytes(len(kernels), Y_train.shape[0], Y_test.shape[0], splits, len(alphas),
                                    np.dtype(dtype).itemsize)
    memory_gb = working_memory_gb() if memory_gb is None else memory_gb
    batch = batch_for(held, per_target, memory_gb, Y_train.shape[1], n_targets_batch)
    best = banded_kernel_cv(kernels, test_kernels, Y_train, splits, Y_test, alphas, gammas, dtype, method, batch,
                            share, progress)
    grid = alphas.astype(dtype)
    alpha = np.exp(-np.log(1 / grid))[best.alpha_index]
    out = dict(alpha_index=best.alpha_index, alpha=alpha, band_weights=gammas[best.sample].T / alpha[None, :],
               sample=best.sample, cv_score=best.cv_score, test_r=best.test_r, test_r2=best.test_r2,
               test_r2_split=best.test_r2_split, n_targets_batch=batch)
    if return_single:
        out["single"] = []
        for band in range(len(kernels)):
            one = banded_kernel_cv([kernels[band]], [test_kernels[band]], Y_train, splits, Y_test, alphas,
                                   np.ones((1, 1)), dtype, method, batch, share, progress)
            out["single"].append(dict(alpha=np.exp(-np.log(1 / grid))[one.alpha_index], cv_score=one.cv_score,
                                      test_r=one.test_r, test_r2=one.test_r2))
    return out
