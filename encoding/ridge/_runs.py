"""From lists of runs to the rows a ridge fit sees, the engine's way (``encoding.design``).

Features: each run z-scored over its own rows (``features.delays.zscore_run``), FIR delays applied
within the run (``delay_run``: nothing crosses a run boundary), then ``trim`` rows dropped from its
start and end. Responses: the same rows dropped, then each run detrended and z-scored in time
(``encoding.fmri.preprocess_run``), unless the caller cleaned them already. Cross-validation groups: one
label per run (its stimulus, so a movie watched twice stays in one fold), repeated on its rows.
"""
import numpy as np

from features.delays import delay_run, zscore_run
from features.errors import InputError

from ..fmri import preprocess_run


def as_runs(runs, name):
    """A list of 2D float arrays (n_TR_run, n_columns), all with the same columns; one 2D array is one run."""
    if isinstance(runs, np.ndarray) and runs.ndim == 2:
        runs = [runs]
    if not isinstance(runs, (list, tuple)) or not runs:
        raise InputError(f"{name}: expected a list of runs, each an array (n_TR, n_columns), found "
                         f"{type(runs).__name__}.")
    arrays = [np.asarray(run) for run in runs]
    for i, run in enumerate(arrays):
        if run.ndim != 2 or run.shape[0] < 2:
            raise InputError(f"{name}[{i}]: expected an array (n_TR, n_columns) with 2 or more rows, found shape "
                             f"{run.shape}.")
        if run.shape[1] != arrays[0].shape[1]:
            raise InputError(f"{name}[{i}]: expected {arrays[0].shape[1]} columns as {name}[0] has, found "
                             f"{run.shape[1]}.")
        if not np.isfinite(run).all():
            raise InputError(f"{name}[{i}]: expected finite values, found NaN or infinity.")
    return arrays


def design_runs(X_runs, delays, trim=(0, 0), name="X_runs"):
    """Per run: z-scored, delayed, trimmed features, float32 (n_TR_run - trimmed, n_features * n_delays)."""
    start, end = trim
    design = []
    for run in as_runs(X_runs, name):
        delayed = delay_run(zscore_run(run), list(delays))
        design.append(delayed[start:run.shape[0] - end].astype(np.float32))
    return design


def response_runs(Y_runs, trim=(0, 0), preprocess=True, name="Y_runs"):
    """Per run: trimmed, and detrended and z-scored in time when ``preprocess``, float32."""
    start, end = trim
    runs = as_runs(Y_runs, name)
    if preprocess:
        return [preprocess_run(run, start, end) for run in runs]
    return [np.asarray(run[start:run.shape[0] - end], dtype=np.float32) for run in runs]


def check_pairs(X_runs, Y_runs, x_name="X_runs", y_name="Y_runs"):
    """As many runs of features as of responses, each with as many rows."""
    if len(X_runs) != len(Y_runs):
        raise InputError(f"{x_name}: expected one run per run of {y_name} ({len(Y_runs)}), found {len(X_runs)}.")
    for i, (x, y) in enumerate(zip(X_runs, Y_runs)):
        if x.shape[0] != y.shape[0]:
            raise InputError(f"{x_name}[{i}]: expected {y.shape[0]} rows as {y_name}[{i}] has, found {x.shape[0]}.")


def row_groups(runs, groups=None):
    """The CV group of every row: ``groups[i]`` (default: the run's position) repeated on run i's rows."""
    if groups is None:
        groups = list(range(len(runs)))
    groups = list(groups)
    if len(groups) != len(runs):
        raise InputError(f"groups: expected one label per run ({len(runs)}), found {len(groups)}.")
    return np.concatenate([np.full(run.shape[0], i) for i, run in zip(_codes(groups), runs)])


def _codes(groups):
    """Integer codes of group labels, in order of first appearance (labels may be any hashable)."""
    codes = {}
    return [codes.setdefault(label, len(codes)) for label in groups]
