"""Finite impulse response (FIR) delays, applied within each run.

A delayed design holds, for each delay d, the features of d TRs earlier, so a linear model can
learn the hemodynamic response shape per target. Rows are shifted inside one run only: the first
d rows of a run are zero, never the last rows of the previous run.

Standardize each run's features (:func:`zscore_run`) *before* delaying, as the reference pipeline
(voxelwise_tutorials) does: the zeros shifted in are then the run mean. Language-model hidden states
carry large offsets (some units sit many SDs from 0); delayed raw, their zero-filled rows become
extreme high-leverage rows once the design is standardized.
"""
import numpy as np


def zscore_run(features, fit_rows=None):
    """Centre each column of one run's features and scale it to unit (population) standard deviation.

    Parameters
    ----------
    features : array of shape (n_TR, n_features)
    fit_rows : list of (start, stop), optional
        The rows the mean and standard deviation are computed on (a run cut into segments leaves its
        test segments out); default every row.

    Returns
    -------
    array of shape (n_TR, n_features), float64
        A column constant over the fitted rows becomes all zeros.
    """
    features = np.asarray(features, dtype=np.float64)
    fitted = features if fit_rows is None else np.concatenate([features[a:b] for a, b in fit_rows])
    centred = features - fitted.mean(0)
    std = (centred if fit_rows is None else np.concatenate([centred[a:b] for a, b in fit_rows])).std(0)
    return centred / np.where(std > 0, std, 1)


def delay_run(features, delays=(1, 2, 3, 4, 5)):
    """Stack delayed copies of one run's features.

    Parameters
    ----------
    features : array of shape (n_TR, n_features)
    delays : sequence of int
        Delays in TRs; negative delays look ahead.

    Returns
    -------
    delayed : array of shape (n_TR, n_features * n_delays)
        Column block i holds the features delayed by ``delays[i]``; rows shifted in from outside the
        run are zero (the run mean, for features standardized by :func:`zscore_run`).
    """
    features = np.asarray(features)
    n_trs, n_features = features.shape
    delayed = np.zeros((n_trs, n_features * len(delays)), dtype=features.dtype)
    for i, delay in enumerate(delays):
        block = delayed[:, i * n_features:(i + 1) * n_features]
        if delay >= 0:
            block[delay:] = features[:n_trs - delay] if delay < n_trs else 0
        else:
            block[:delay] = features[-delay:]
    return delayed


def delay_runs(runs, delays=(1, 2, 3, 4, 5)):
    """Apply :func:`delay_run` to each run of a list, so nothing crosses a run boundary."""
    return [delay_run(run, delays) for run in runs]
