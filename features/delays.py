"""Finite impulse response (FIR) delays, applied within each run.

A delayed design holds, for each delay d, the features of d TRs earlier, so a linear model can
learn the hemodynamic response shape per target. Rows are shifted inside one run only: the first
d rows of a run are zero, never the last rows of the previous run.
"""
import numpy as np


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
        run are zero.
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
