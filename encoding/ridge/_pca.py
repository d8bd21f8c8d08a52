"""Per-layer PCA of a design, fitted on training rows only, so that test runs never shape the features.

Ridge on the leading principal components is ridge on the projection of the design onto its leading
subspace (ridge is rotation-invariant), so components are kept unwhitened. Fewer features make every
fold's decomposition and every alpha cheaper (see ``_fast``).
"""
import numpy as np
from himalaya.backend import get_backend


def fit_pca(X_train, n_components):
    """Leading principal axes of the training rows.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
        Training rows only; the axes must not depend on test rows.
    n_components : int
        At most min(n_train, n_features).

    Returns
    -------
    mean : array of shape (n_features,), float64
    components : array of shape (n_components, n_features), float64, orthonormal rows
    explained_variance_ratio : numpy array of shape (n_components,)
    """
    backend = get_backend()
    n_train, n_features = X_train.shape
    if not 1 <= n_components <= min(n_train, n_features):
        raise ValueError(f"pca_components: expected 1..{min(n_train, n_features)} (min of training rows and "
                         f"features), found {n_components}.")
    X = backend.asarray(X_train, dtype="float64")
    mean = X.mean(0)
    X = X - mean
    # eigendecompose the smaller of the two Gram matrices
    if n_features <= n_train:
        variances, axes = backend.eigh(X.T @ X)
        components = backend.flip(axes, 1)[:, :n_components].T
    else:
        variances, left = backend.eigh(X @ X.T)
        left = backend.flip(left, 1)[:, :n_components]
        components = (X.T @ left).T
        components = components / backend.norm(components, axis=1, keepdims=True)
    variances = np.clip(backend.to_numpy(variances)[::-1], 0, None)
    components = _fix_signs(components)
    return mean, components, variances[:n_components] / variances.sum()


def _fix_signs(components):
    """Largest-magnitude loading positive, so a refit on the same rows gives the same axes, not flipped ones."""
    backend = get_backend()
    largest = backend.argmax(backend.abs(components), 1)
    signs = backend.sign(components[backend.arange(components.shape[0]), largest])
    return components * signs[:, None]


def apply_pca(X, mean, components):
    """Project rows on fitted axes.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    mean : array of shape (n_features,)
    components : array of shape (n_components, n_features)

    Returns
    -------
    array of shape (n_samples, n_components), in X's dtype
    """
    backend = get_backend()
    dtype = "float64" if str(X.dtype).replace("torch.", "") == "float64" else "float32"
    projected = (backend.asarray(X, dtype="float64") - mean) @ components.T
    return backend.asarray(projected, dtype=dtype)


def reduce_features(X_train, X_test, n_components):
    """PCA fitted on the training rows, applied to training and test rows.

    Returns
    -------
    X_train_reduced : array of shape (n_train, n_components)
    X_test_reduced : array of shape (n_test, n_components)
    explained_variance_ratio : numpy array of shape (n_components,), on the training rows
    """
    mean, components, explained = fit_pca(X_train, n_components)
    return apply_pca(X_train, mean, components), apply_pca(X_test, mean, components), explained
