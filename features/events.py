"""Event-based stimuli (words, sounds, scene cuts) turned into rows at the fMRI's TR.

Transcripts come as tables of events with an onset and a duration in seconds; a feature vector
per event (a word embedding, a word rate of 1, ...) is resampled to the TR grid with a Lanczos
filter (Huth et al. 2016): a windowed sinc low-pass at the TR's Nyquist frequency, so that events
between two TRs are shared between them instead of aliased onto the nearest one. The result goes
through the same FIR delays (``features.delays``) and ridge engine as clip features.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError

REQUIRED_COLUMNS = ("onset", "duration")


def read_events(path, required=REQUIRED_COLUMNS):
    """Read an events table (BIDS ``events.tsv`` style: tab-separated, ``onset`` and ``duration``
    in seconds, any further columns such as ``word``, ``trial_type``, ``item`` or ``run``).

    Returns
    -------
    events : DataFrame
        Rows sorted by onset.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: events table not found.")
    separator = "," if path.suffix == ".csv" else "\t"
    try:
        events = pd.read_csv(path, sep=separator)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable events table ({str(err).splitlines()[0]}).") from None
    for column in required:
        if column not in events.columns:
            found = ", ".join(map(str, events.columns))
            raise InputError(f"{path}: field '{column}' is missing; columns found: {found}.")
    for column in ("onset", "duration"):
        if column in events.columns and not pd.api.types.is_numeric_dtype(events[column]):
            raise InputError(f"{path}: field '{column}' must hold numbers of seconds.")
    if "duration" in events.columns and (events["duration"] < 0).any():
        raise InputError(f"{path}: field 'duration' has negative values.")
    return events.sort_values("onset", kind="stable").reset_index(drop=True)


def lanczos_kernel(t, cutoff, window=3):
    """Lanczos kernel, ``sinc(2 cutoff t) * sinc(2 cutoff t / window)``, zero beyond ``window`` lobes.

    Parameters
    ----------
    t : array
        Time from the output sample, in seconds.
    cutoff : float
        Low-pass cutoff in Hz; the first zero crossing is at ``1 / (2 cutoff)`` seconds.
    window : int
        Number of lobes on each side.

    Returns
    -------
    weights : array of the shape of t
        1 at t = 0 (the convention of Huth et al.: an event on a sample adds its value to it).
    """
    x = 2 * cutoff * np.asarray(t, dtype=np.float64)
    return np.where(np.abs(x) < window, np.sinc(x) * np.sinc(x / window), 0.0)


def lanczos_resample(values, times, new_times, cutoff=None, window=3):
    """Resample values given at arbitrary times onto new sample times.

    Parameters
    ----------
    values : array of shape (n_events, n_features) or (n_events,)
    times : array of shape (n_events,)
        Time of each value, in seconds.
    new_times : array of shape (n_samples,)
        Output times, e.g. ``np.arange(n_TR) * tr``.
    cutoff : float or None
        Hz; None is the Nyquist frequency of the output, ``1 / (2 * spacing of new_times)``.
    window : int

    Returns
    -------
    resampled : array of shape (n_samples, n_features) or (n_samples,)
        ``sum_k kernel(new_t - t_k) * value_k``. Values sampled densely at spacing dt come out
        scaled by ``1 / (2 * cutoff * dt)``; sparse events (words) add up, so a TR with more words
        gets more weight.
    """
    new_times = np.asarray(new_times, dtype=np.float64)
    if cutoff is None:
        if new_times.size < 2:
            raise InputError("lanczos_resample: field 'new_times' needs two or more samples to set the cutoff.")
        cutoff = 1 / (2 * np.median(np.diff(new_times)))
    weights = lanczos_kernel(new_times[:, None] - np.asarray(times, dtype=np.float64)[None], cutoff, window)
    return weights @ np.asarray(values, dtype=np.float64)


def event_features(events, values, n_trs, tr, cutoff=None, window=3, anchor="onset"):
    """Features at TR rate for one run from a feature vector per event.

    Parameters
    ----------
    events : DataFrame with ``onset`` (and ``duration`` when ``anchor="middle"``), seconds from the
        start of the run's first TR
    values : array of shape (n_events, n_features) or (n_events,)
        One row per event, in the table's row order.
    n_trs : int
        Length of the run.
    tr : float
        Seconds.
    cutoff : float or None
        Hz; default the TR's Nyquist frequency, ``1 / (2 tr)``.
    window : int
    anchor : {"onset", "middle"}
        Where in time each event's value is placed.

    Returns
    -------
    features : float32 array of shape (n_trs, n_features)
        Rows are TRs; sample t stands for time ``t * tr``, as in the features store.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if len(events) != values.shape[0]:
        raise InputError(f"event_features: field 'values' has {values.shape[0]} rows for {len(events)} events.")
    times = events["onset"].to_numpy(dtype=np.float64)
    if anchor == "middle":
        times = times + events["duration"].to_numpy(dtype=np.float64) / 2
    elif anchor != "onset":
        raise InputError(f"event_features: field 'anchor' is {anchor!r}; known: onset, middle.")
    cutoff = 1 / (2 * tr) if cutoff is None else cutoff
    return lanczos_resample(values, times, np.arange(n_trs) * tr, cutoff, window).astype(np.float32)


def event_row_weights(events, n_rows, tr):
    """How much of each event falls in each row (TR) of a run.

    Parameters
    ----------
    events : DataFrame with ``onset`` and ``duration`` in seconds
    n_rows : int
    tr : float
        Row t covers ``[t * tr, (t + 1) * tr)``.

    Returns
    -------
    weights : array of shape (n_events, n_rows)
        Seconds of overlap divided by the event's duration, so each event's row sums to 1 when it
        lies inside the run; an event of zero duration puts weight 1 on the row that holds it.
    """
    onset = events["onset"].to_numpy(dtype=np.float64)[:, None]
    duration = events["duration"].to_numpy(dtype=np.float64)[:, None]
    starts = np.arange(n_rows)[None] * tr
    overlap = np.clip(np.minimum(onset + duration, starts + tr) - np.maximum(onset, starts), 0, None)
    instant = (duration == 0) & (starts <= onset) & (onset < starts + tr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(duration > 0, overlap / np.where(duration > 0, duration, 1), instant.astype(float))
