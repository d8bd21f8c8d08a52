"""Cross-validated Mahalanobis distance ("crossnobis") across runs, with a shrunk noise covariance.

Distances computed within one run are biased upwards by that run's noise (||b + e||^2 grows with
the noise). Multiplying a difference from one run with the difference from independent runs
cancels the noise in expectation, so two items with the same true pattern have expected distance
0 and distances can be negative (Walther et al. 2016, NeuroImage). Noise is whitened with the
inverse of a covariance estimated from GLM residuals and shrunk towards its diagonal, because with
more targets than residual samples the sample covariance is singular.
"""
import warnings

import numpy as np

from features.errors import InputError


def noise_covariance(residuals, dof=None, shrinkage="auto"):
    """Noise covariance over targets, shrunk towards its diagonal.

    Parameters
    ----------
    residuals : array of shape (n_samples, n_targets)
        Residuals of the model that estimated the patterns (e.g. the per-run item GLM); they are
        centred here.
    dof : int or None
        Degrees of freedom; default ``n_samples - 1`` (give ``n_samples - n_regressors`` for GLM
        residuals).
    shrinkage : "auto" or float in [0, 1]
        Weight of the diagonal target. "auto" is the Schäfer & Strimmer (2005) optimum for the
        correlation matrix (the estimator rsatoolbox calls ``shrinkage_diag``).

    Returns
    -------
    covariance : array of shape (n_targets, n_targets)
    """
    residuals = np.asarray(residuals, dtype=np.float64)
    residuals = residuals - residuals.mean(0)
    n_samples = residuals.shape[0]
    dof = n_samples - 1 if dof is None else dof
    if n_samples < 2 or dof < 1:
        raise InputError(f"noise_covariance: field 'residuals' needs two or more samples, found {n_samples}.")
    cross = residuals.T @ residuals
    covariance = cross / dof
    if shrinkage == "auto":
        shrinkage = _schafer_strimmer_lambda(residuals, cross, dof)
    off_diagonal = ~np.eye(covariance.shape[0], dtype=bool)
    return covariance * np.where(off_diagonal, 1 - float(shrinkage), 1.0)


def _schafer_strimmer_lambda(residuals, cross, dof):
    """Optimal shrinkage of the off-diagonal correlations towards 0 (their estimated variance
    over their squared size); the formula rsatoolbox uses, so results agree with it."""
    n_samples = residuals.shape[0]
    variance = np.diag(cross) / dof
    std = np.sqrt(variance)
    mean_r = cross / np.outer(std, std) / (n_samples - 1)
    mean_r2 = ((residuals ** 2).T @ residuals ** 2) / np.outer(variance, variance) / (n_samples - 1)
    var_r = n_samples / dof ** 2 * (mean_r2 - mean_r ** 2)
    off_diagonal = ~np.eye(cross.shape[0], dtype=bool)
    denominator = np.sum(mean_r[off_diagonal] ** 2)
    if denominator == 0:
        return 1.0
    return float(np.clip(np.sum(var_r[off_diagonal]) / denominator, 0, 1))


def noise_precision(residuals, dof=None, shrinkage="auto"):
    """Inverse of :func:`noise_covariance`, array of shape (n_targets, n_targets)."""
    return np.linalg.inv(noise_covariance(residuals, dof, shrinkage))


def crossnobis_rdm(run_patterns, precision=None):
    """Crossnobis RDM, cross-validated leave one run out.

    For each run r, the pattern differences of run r are multiplied (through the noise precision)
    with those of the mean of the other runs; the folds are averaged and the result divided by
    the number of targets, as in rsatoolbox's ``calc_rdm(method="crossnobis")``.

    Parameters
    ----------
    run_patterns : array of shape (n_runs, n_items, n_targets)
        Item patterns estimated separately in each run (independent noise). An item absent from a
        run is a row of NaN there; a fold that lacks an item leaves its pairs out of the mean.
    precision : array of shape (n_targets, n_targets) or None
        Noise precision (:func:`noise_precision`); None is the identity (cross-validated squared
        Euclidean distance).

    Returns
    -------
    rdm : array of shape (n_items, n_items)
        Zero diagonal; off-diagonal entries are unbiased and may be negative.
    """
    run_patterns = np.asarray(run_patterns, dtype=np.float64)
    if run_patterns.ndim != 3 or run_patterns.shape[0] < 2:
        raise InputError(f"crossnobis_rdm: field 'run_patterns' expected (n_runs >= 2, n_items, n_targets), "
                         f"found shape {run_patterns.shape}.")
    n_runs, n_items, n_targets = run_patterns.shape
    if precision is None:
        precision = np.eye(n_targets)
    folds = []
    for run in range(n_runs):
        others = np.delete(run_patterns, run, axis=0)
        present = np.isfinite(others).all(-1)
        train = _nanmean(np.where(present[..., None], others, np.nan))
        kernel = train @ precision @ run_patterns[run].T
        diagonal = np.diag(kernel)
        folds.append(diagonal[:, None] + diagonal[None] - kernel - kernel.T)
    folds = np.array(folds)
    if np.isnan(folds).all(0)[~np.eye(n_items, dtype=bool)].any():
        raise InputError("crossnobis_rdm: field 'run_patterns' has an item pair that no two runs both hold.")
    rdm = _nanmean(folds) / n_targets
    np.fill_diagonal(rdm, 0)
    return rdm


def _nanmean(values):
    """Mean over axis 0 ignoring NaN; all-NaN slices stay NaN without a warning (they are expected
    where an item is missing from runs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=0)
