"""Held-out predictions of a ridge fit, from the alphas its cross-validation chose.

The permutation test needs each target's test prediction, which ``encoding.ridge.fit_ridge``
scores but does not return. Refitting at the chosen alphas costs one eigendecomposition of the
smaller Gram matrix and a few products, far less than the cross-validated search; it belongs in
``encoding.ridge`` once ``fit_ridge`` can hand its predictions back.
"""
import numpy as np


def ridge_test_predictions(X_train, Y_train, X_test, alphas, n_targets_batch=20000):
    """Ridge predictions of the test rows, one alpha per target (no intercept, as fit_ridge).

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    Y_train : array of shape (n_train, n_targets)
    X_test : array of shape (n_test, n_features)
    alphas : array of shape (n_targets,)
        The alpha chosen for each target.
    n_targets_batch : int
        Targets projected at once; bounds memory.

    Returns
    -------
    Y_pred : array of shape (n_test, n_targets), float32
    """
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    n_train, n_features = X_train.shape
    if n_features <= n_train:
        # primal: W = V diag(1 / (lambda + alpha)) V^T X^T Y with X^T X = V diag(lambda) V^T
        eigenvalues, vectors = np.linalg.eigh(X_train.T @ X_train)
        left, right = X_test @ vectors, (X_train @ vectors).T
    else:
        # kernel: Y_pred = K_test U diag(1 / (mu + alpha)) U^T Y with X X^T = U diag(mu) U^T
        eigenvalues, vectors = np.linalg.eigh(X_train @ X_train.T)
        left, right = X_test @ X_train.T @ vectors, vectors.T
    eigenvalues = np.clip(eigenvalues, 0, None)
    alphas = np.asarray(alphas, dtype=np.float64)
    # the decomposition needs float64 (small alphas on a float32 Gram lose digits); the products over
    # targets are the cost and keep test r within 1e-5 in float32
    right = right.astype(np.float32)
    Y_pred = np.empty((X_test.shape[0], Y_train.shape[1]), dtype=np.float32)
    for start in range(0, Y_train.shape[1], n_targets_batch):
        # targets sorted by alpha make one contiguous block per alpha: no masked gathers per alpha
        order = start + np.argsort(alphas[start:start + n_targets_batch], kind="stable")
        projected = right @ np.asarray(Y_train[:, order], dtype=np.float32)
        sorted_alphas = alphas[order]
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(sorted_alphas)) + 1, [order.size]])
        block = np.empty((X_test.shape[0], order.size), dtype=np.float32)
        for a, b in zip(bounds[:-1], bounds[1:]):
            block[:, a:b] = (left / (eigenvalues + sorted_alphas[a])).astype(np.float32) @ projected[:, a:b]
        Y_pred[:, order] = block
    return Y_pred
