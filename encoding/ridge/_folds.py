"""The fold library of the fast ridge: a fold's decomposition, its scores for every alpha, the alpha
choice and the kernel form's refit. The primal form (``_primal``) and the kernel form (``_kernel``) build
the folds; ``_fast.ridge_cv`` drives them.

Each fold's training side is decomposed once on its r = min(p, n_train) axes:

    primal (p <= n_train):  G_train = X_train^T X_train = V diag(s) V^T,   z = V^T X_train^T y
    kernel (p > n_train):   K_train = X_train X_train^T = Q diag(s) Q^T,   z = Q^T y_train
    validation prediction:  y_val_hat(alpha) = A diag(1 / (s + alpha)) z,  A = X_val V or K_val,train Q

and every alpha is scored from it: directly (``errors_direct``, n_val * r per alpha and target) or by
partial fractions (``_fractions``). The alphas are chosen as himalaya does (``select_alphas``).

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
instead (p x p, the cheaper side there, ``_primal``).
"""
from typing import NamedTuple, Optional

import numpy as np
from himalaya.backend import get_backend

from ._fractions import Fractions, errors_by_fractions, shrinkage

#: himalaya's score for alphas too small to be trusted with a negative eigenvalue ("nan" rule).
_UNTRUSTED_SCORE = -1e5


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



def _inverse(matrix):
    """Inverse of a float64 matrix on the current backend (himalaya's backends have no inverse)."""
    backend = get_backend()
    if backend.name.startswith("torch"):
        import torch
        return torch.linalg.inv(matrix)
    return backend.asarray(np.linalg.inv(backend.to_numpy(matrix)))



def work_dtype(X):
    """The dtype of the products with the targets: float64 only for float64 designs, as in himalaya."""
    return "float64" if str(X.dtype).replace("torch.", "") == "float64" else "float32"



def errors_direct(fold, Z, Y_val, alphas, dtype):
    """|y_val - y_val_hat(alpha)|^2 from each alpha's prediction: (n_alphas, n_targets) numpy float64."""
    backend = get_backend()
    shrink = shrinkage(fold.eigenvalues, alphas, dtype)
    errors = np.empty((len(alphas), Z.shape[1]))
    for a in range(len(alphas)):
        residual = fold.val_map @ (Z * shrink[a][:, None])
        residual -= Y_val
        residual *= residual
        errors[a] = backend.to_numpy(residual.sum(0))
    return errors



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
