"""Per-run cleaning in time: trim, detrend, z-score; and finding targets no model can fit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import detrend as linear_detrend

from features.errors import InputError

# Columns are cleaned in blocks so a whole-brain run never needs a float64 copy at once.
_BLOCK_TARGETS = 16384
# A target whose detrended std is below this fraction of its raw std was a pure ramp:
# what is left is rounding noise, and z-scoring it would invent a signal.
_RAMP_ONLY = 1e-5


def preprocess_run(data, trim_start: int = 0, trim_end: int = 0, detrend: bool = True,
                   zscore: bool = True) -> np.ndarray:
    """Trim, linearly detrend and z-score one run in time, target by target.

    Parameters
    ----------
    data : array of shape (n_TR, n_targets)
        One run as returned by :func:`load_run`.
    trim_start, trim_end : int
        Time points dropped at the start (e.g. scanner warm-up) and at the end.
    detrend : bool
        Remove a least-squares line in time (:func:`scipy.signal.detrend`, ``type="linear"``).
    zscore : bool
        Scale each target to mean 0 and standard deviation 1 in time (population std).

    Returns
    -------
    array of shape (n_TR - trim_start - trim_end, n_targets), float32
        A target with any non-finite value or no variance in the trimmed run is all-NaN, so
        :func:`find_bad_targets` excludes it; such targets never raise.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise InputError(f"run data: expected an array (n_TR, n_targets), "
                         f"found shape {data.shape}.")
    if trim_start < 0 or trim_end < 0 or data.shape[0] - trim_start - trim_end < 2:
        raise InputError(f"trim_start/trim_end: expected non-negative counts leaving at least "
                         f"2 of the run's {data.shape[0]} time points, found {trim_start} and "
                         f"{trim_end}.")
    kept = data[trim_start:data.shape[0] - trim_end]
    cleaned = np.empty(kept.shape, dtype=np.float32)
    for start in range(0, kept.shape[1], _BLOCK_TARGETS):
        block = slice(start, start + _BLOCK_TARGETS)
        cleaned[:, block] = _clean_block(kept[:, block], detrend, zscore)
    return cleaned


def _clean_block(block: np.ndarray, detrend: bool, zscore: bool) -> np.ndarray:
    block = np.array(block, dtype=np.float64)
    bad = _bad_columns(block)
    # detrend's least squares refuses NaN anywhere; bad columns are blanked at the end anyway.
    block[:, bad] = 0.0
    raw_std = block.std(axis=0)
    if detrend:
        block = linear_detrend(block, axis=0, type="linear", overwrite_data=True)
        bad |= block.std(axis=0) <= _RAMP_ONLY * raw_std
    if zscore:
        block -= block.mean(axis=0)
        std = block.std(axis=0)
        block /= np.where(bad, 1.0, std)
    block[:, bad] = np.nan
    return block


def _bad_columns(block: np.ndarray) -> np.ndarray:
    """True where a column has a non-finite value or is constant (max == min, exactly)."""
    finite = np.isfinite(block).all(axis=0)
    with np.errstate(invalid="ignore"):
        constant = np.ptp(block, axis=0) == 0
    return ~finite | constant


def find_bad_targets(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Flag targets that are unusable in at least one run.

    Parameters
    ----------
    runs : sequence of arrays of shape (n_TR_i, n_targets)
        Runs of one subject, raw or preprocessed (all-NaN columns count as bad).

    Returns
    -------
    array of shape (n_targets,), bool
        True where a target is NaN or infinite anywhere, or constant in time in any run.
    """
    if not runs:
        raise InputError("runs: expected at least one run to look for bad targets, found none.")
    shapes = [np.shape(run) for run in runs]
    if any(len(shape) != 2 for shape in shapes) or len({s[1] for s in shapes}) != 1:
        raise InputError(f"runs: expected 2D runs (n_TR, n_targets) with one number of targets, "
                         f"found shapes {shapes}.")
    bad = np.zeros(shapes[0][1], dtype=bool)
    for run in runs:
        bad |= _bad_columns(np.asarray(run))
    return bad
