"""Time-resolved encoding: a target measured in time windows (MEG/EEG sensors x windows after each
word or event), fitted window by window with the same ridge engine, scored per sensor and window.

Each (sensor, window) is its own target with its own alpha chosen by run-wise cross-validation,
so the time course of the scores says when, after the stimulus, each sensor carries the features.
"""
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from features.errors import InputError

from .ridge import DEFAULT_ALPHAS, fit_ridge


@dataclass
class TimeResolvedScores:
    """Per sensor and window. Arrays have shape (n_sensors, n_windows)."""
    test_r: np.ndarray      # Pearson r on the test samples
    test_r2: np.ndarray
    alpha: np.ndarray       # chosen on cross-validation inside the training runs
    cv_score: np.ndarray
    windows: np.ndarray     # (n_windows, 2) start and stop in seconds, or window indices


def window_means(epochs, times, windows):
    """Average epoched data over time windows.

    Parameters
    ----------
    epochs : array of shape (n_samples, n_sensors, n_times)
        One epoch per word or event.
    times : array of shape (n_times,)
        Seconds from the event onset.
    windows : sequence of (start, stop) in seconds
        Half-open windows ``[start, stop)``.

    Returns
    -------
    Y : array of shape (n_samples, n_sensors, n_windows)
    """
    epochs, times = np.asarray(epochs), np.asarray(times)
    if epochs.ndim != 3 or epochs.shape[-1] != times.size:
        raise InputError(f"window_means: field 'epochs' expected (n_samples, n_sensors, {times.size}), "
                         f"found {epochs.shape}.")
    columns = []
    for start, stop in windows:
        inside = (times >= start) & (times < stop)
        if not inside.any():
            raise InputError(f"window_means: field 'windows' has [{start}, {stop}), which holds no sample time.")
        columns.append(epochs[..., inside].mean(-1))
    return np.stack(columns, axis=-1)


def fit_time_resolved(X_train, Y_train, run_ids, X_test, Y_test, windows=None, alphas=DEFAULT_ALPHAS,
                      n_folds=None, solver="auto"):
    """Ridge from stimulus features to each sensor in each time window.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features) or (n_train, n_features, n_windows)
        Features of each sample (word, event); a 3-D array gives each window its own design
        (e.g. features that are themselves time-resolved).
    Y_train : array of shape (n_train, n_sensors, n_windows)
    run_ids : array of shape (n_train,)
        Run (or recording block) of each training sample; folds never split a run.
    X_test : array of shape (n_test, n_features) or (n_test, n_features, n_windows)
    Y_test : array of shape (n_test, n_sensors, n_windows)
    windows : array of shape (n_windows, 2) or None
        Kept in the result to label the windows.
    alphas, n_folds, solver : as :func:`encoding.ridge.fit_ridge`.

    Returns
    -------
    TimeResolvedScores
    """
    Y_train, Y_test = np.asarray(Y_train, dtype=np.float32), np.asarray(Y_test, dtype=np.float32)
    if Y_train.ndim != 3 or Y_test.shape[1:] != Y_train.shape[1:]:
        raise InputError(f"fit_time_resolved: field 'Y' expected (n_samples, n_sensors, n_windows) for train and "
                         f"test, found {Y_train.shape} and {Y_test.shape}.")
    _, n_sensors, n_windows = Y_train.shape
    fields = ("test_r", "test_r2", "alpha", "cv_score")
    out = {name: np.full((n_sensors, n_windows), np.nan) for name in fields}
    for w in tqdm(range(n_windows), desc="time windows", unit="window", disable=n_windows < 10):
        X_tr = X_train[..., w] if np.ndim(X_train) == 3 else X_train
        X_te = X_test[..., w] if np.ndim(X_test) == 3 else X_test
        scores = fit_ridge(np.asarray(X_tr, dtype=np.float32), Y_train[..., w], run_ids,
                           np.asarray(X_te, dtype=np.float32), Y_test[..., w], alphas=alphas, n_folds=n_folds,
                           solver=solver)
        for name in fields:
            out[name][:, w] = getattr(scores, name)
    windows = np.arange(n_windows) if windows is None else np.asarray(windows)
    return TimeResolvedScores(windows=windows, **out)


def time_resolved_table(scores, sensor_names=None):
    """Tidy rows, one per (sensor, window): sensor, window, window_start, window_stop, test_r, ...

    Returns
    -------
    DataFrame
    """
    import pandas as pd

    n_sensors, n_windows = scores.test_r.shape
    names = sensor_names if sensor_names is not None else [f"sensor_{i:03d}" for i in range(n_sensors)]
    windows = np.asarray(scores.windows)
    starts = windows[:, 0] if windows.ndim == 2 else windows
    stops = windows[:, 1] if windows.ndim == 2 else windows + 1
    rows = [{"sensor": names[s], "window": w, "window_start": starts[w], "window_stop": stops[w],
             "test_r": scores.test_r[s, w], "test_r2": scores.test_r2[s, w], "alpha": scores.alpha[s, w],
             "cv_score": scores.cv_score[s, w]} for s in range(n_sensors) for w in range(n_windows)]
    return pd.DataFrame(rows)
