"""MEG (or EEG) recordings to word epochs and sensor x window targets, through MNE-Python.

A run is a raw recording in any format ``mne.io.read_raw`` reads (FIF, CTF, BTi/4D, KIT, EDF, BrainVision,
...) with its word-onset table, or epochs already cut (``-epo.fif``, or an ``.npy``/HDF5 array of shape
(n_words, n_channels, n_times)) with the table that names their words. Epochs are cut, baseline-
corrected and decimated by MNE itself (``mne.Epochs``, ``Epochs.apply_baseline``, ``Epochs.decimate``);
the targets are the epochs' means over time windows after onset (``encoding.timeresolved.window_means``).
"""
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError

from ..config import expand_path
from ..timeresolved import window_means
from ._story import read_word_table

log = logging.getLogger(__name__)

VECTORVIEW_SELECTIONS = ("Left-temporal", "Right-temporal", "Left-parietal", "Right-parietal", "Left-occipital",
                         "Right-occipital", "Left-frontal", "Right-frontal", "Vertex")


@dataclass
class RunEpochs:
    """One run: its MNE epochs (one per word, in table order) and its table."""
    epochs: object          # mne.Epochs / mne.EpochsArray, preloaded
    table: object           # DataFrame
    table_path: Path
    source: Path            # the recording (raw or epochs) file


def _mne():
    try:
        import mne
    except ImportError:
        raise InputError("mne: package not installed; `pip install mne` reads the MEG recordings.") from None
    mne.set_log_level("ERROR")
    return mne


def read_run(run, config, subject, base):
    """Epochs of one run, baseline-corrected and decimated as the config's ``epochs`` says.

    Parameters
    ----------
    run : dict
        ``raw`` or ``epochs`` (a file), ``words`` (its table); for ``.npy``/HDF5 epochs ``sfreq``,
        ``tmin`` and optionally ``ch_names``, ``ch_types``, ``dataset`` or ``info`` (a FIF file whose
        measurement info names the channels and gives their positions); for a raw file optionally
        ``events: {stim_channel, id}`` to take the onsets from trigger pulses instead of the table.
    config : dict
    subject : str
    base : Path
        Folder the paths are relative to.

    Returns
    -------
    RunEpochs
    """
    table_path = expand_path(run["words"], config, base, subject=subject)
    if "raw" in run:
        source = expand_path(run["raw"], config, base, subject=subject)
        table = read_word_table(table_path, need_onset="events" not in run)
        epochs = _epochs_from_raw(source, table, table_path, run, config["epochs"])
    else:
        source = expand_path(run["epochs"], config, base, subject=subject)
        table = read_word_table(table_path, need_onset=False)
        epochs = _epochs_from_file(source, run, config, base, subject)
        onsets = pd.to_numeric(table["onset"], errors="coerce") if "onset" in table else None
        if onsets is not None and onsets.notna().all():
            check_baseline_gap(onsets.to_numpy(float), config["epochs"], table_path)
        if len(epochs) != len(table):
            raise InputError(f"{source}: field 'epochs' holds {len(epochs)} epochs, its table {table_path} lists "
                             f"{len(table)} words.")
    log.info("read %s: %d word epochs, %d channels, %d samples from %.3f s", source, len(epochs),
             len(epochs.ch_names), len(epochs.times), epochs.times[0])
    return RunEpochs(epochs, table, table_path, source)


def _epochs_from_raw(source, table, table_path, run, settings):
    mne = _mne()
    if not source.is_file():
        raise InputError(f"{source}: raw recording not found.")
    try:
        raw = mne.io.read_raw(source, preload=False)
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        raise InputError(f"{source}: not a raw recording MNE can read ({str(err).splitlines()[0]}).") from None
    samples = _onset_samples(raw, table, table_path, run, source)
    tmin, tmax = float(settings["tmin"]), float(settings["tmax"])
    seconds = (samples - raw.first_samp) / raw.info["sfreq"]
    check_baseline_gap(seconds, settings, table_path)
    last = raw.times[-1]
    outside = np.flatnonzero((seconds + tmin < 0) | (seconds + tmax > last))
    if outside.size:
        i = int(outside[0])
        raise InputError(f"{table_path}: field 'onset' row {i + 1} ({table['word'].iloc[i]!r} at {seconds[i]:.3f} s) "
                         f"needs [{seconds[i] + tmin:.3f}, {seconds[i] + tmax:.3f}] s, outside the recording "
                         f"{source} (0 to {last:.3f} s); {outside.size} word(s) fall outside.")
    events = np.column_stack([samples, np.zeros_like(samples), np.ones_like(samples)]).astype(int)
    try:
        epochs = mne.Epochs(raw, events, event_id=None, tmin=tmin, tmax=tmax, baseline=_baseline(settings),
                            picks=settings["picks"], preload=True, reject=None, flat=None, decim=int(settings["decim"]),
                            reject_by_annotation=False, metadata=table.reset_index(drop=True), event_repeated="error")
    except (ValueError, RuntimeError) as err:
        raise InputError(f"{table_path}: field 'onset' cannot be epoched in {source} "
                         f"({str(err).splitlines()[0]}).") from None
    if len(epochs) != len(table):
        raise InputError(f"{source}: {len(table) - len(epochs)} word epochs of {table_path} were dropped by MNE "
                         f"({epochs.drop_log_stats():.1f}% dropped); every word needs its epoch.")
    return epochs


def _onset_samples(raw, table, table_path, run, source):
    """Sample (in MNE's first_samp-based counting) of each word's onset."""
    mne = _mne()
    sfreq = raw.info["sfreq"]
    if "events" not in run:
        return raw.first_samp + np.round(table["onset"].to_numpy(float) * sfreq).astype(int)
    spec = run["events"] or {}
    try:
        events = mne.find_events(raw, stim_channel=spec.get("stim_channel"), shortest_event=1)
    except ValueError as err:
        raise InputError(f"{source}: field 'events.stim_channel' gives no events ({err}).") from None
    if spec.get("id") is not None:
        events = events[events[:, 2] == int(spec["id"])]
    if len(events) != len(table):
        raise InputError(f"{source}: field 'events' finds {len(events)} word events, the table {table_path} lists "
                         f"{len(table)} words.")
    return events[:, 0]


def check_baseline_gap(onsets, settings, table_path):
    """Warn when the baseline interval falls inside the previous word's epoch.

    With words every 500 ms and epochs to 800 ms, a baseline of -200 to 0 ms is the previous word's
    300-500 ms response: subtracting it puts that response, negated, into every window of the current
    word, and a model whose context carries the previous word "predicts" it there (false early effects).
    A baseline is safe for a word only when ``onset + baseline start >= previous onset + tmax``.

    Returns
    -------
    n_overlapping : int, the words whose baseline overlaps the previous word's epoch
    """
    baseline = _baseline(settings)
    onsets = np.asarray(onsets, dtype=np.float64)
    if baseline is None or onsets.size < 2:
        return 0
    start = float(settings["tmin"]) if baseline[0] is None else baseline[0]
    gaps = np.diff(onsets)
    needed = float(settings["tmax"]) - start
    overlapping = int(np.sum(gaps < needed - 1e-9))
    if overlapping:
        log.warning("%s: the baseline [%s, %s] s overlaps the previous word's epoch for %d of %d words (it needs "
                    "%.3f s between onsets, the median gap is %.3f s); the previous word's response leaks into "
                    "every window. Set epochs.baseline: null (the default) for continuous speech.", table_path,
                    baseline[0], baseline[1], overlapping, onsets.size, needed, float(np.median(gaps)))
    return overlapping


def _baseline(settings):
    baseline = settings["baseline"]
    return None if baseline in (None, False, "none") else tuple(None if b is None else float(b) for b in baseline)


def _epochs_from_file(source, run, config, base, subject):
    mne = _mne()
    if not source.is_file():
        raise InputError(f"{source}: epochs file not found.")
    settings = config["epochs"]
    if source.name.endswith(".fif") or source.name.endswith(".fif.gz"):
        try:
            epochs = mne.read_epochs(source, preload=True)
        except (ValueError, OSError, RuntimeError) as err:
            raise InputError(f"{source}: not an MNE epochs file ({str(err).splitlines()[0]}).") from None
    else:
        data, sfreq, tmin, names = _epochs_array(source, run)
        info = _array_info(run, data.shape[1], sfreq, names, config, base, subject, source)
        epochs = mne.EpochsArray(data, info, tmin=tmin, baseline=None)
    try:
        if _baseline(settings) is not None:
            epochs.apply_baseline(_baseline(settings))
        if int(settings["decim"]) > 1:
            epochs.decimate(int(settings["decim"]))
        epochs.pick(settings["picks"], exclude="bads")
    except ValueError as err:
        raise InputError(f"{source}: field 'epochs' settings do not fit these epochs "
                         f"({str(err).splitlines()[0]}).") from None
    return epochs


def _epochs_array(source, run):
    """(data (n_epochs, n_channels, n_times), sfreq, tmin, channel names or None) from .npy or HDF5."""
    names = run.get("ch_names")
    if source.suffix == ".npy":
        data = np.load(source, allow_pickle=False)
        sfreq, tmin = run.get("sfreq"), run.get("tmin")
    elif source.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(source, "r") as handle:
            key = run.get("dataset", "epochs")
            if key not in handle:
                raise InputError(f"{source}: field '{key}' is not a dataset of the file; found {', '.join(handle)}.")
            data, attrs = handle[key][()], dict(handle[key].attrs)
        sfreq, tmin = run.get("sfreq", attrs.get("sfreq")), run.get("tmin", attrs.get("tmin"))
        if names is None and "ch_names" in attrs:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in attrs["ch_names"]]
    else:
        raise InputError(f"{source}: field 'epochs' expects a -epo.fif, .npy or HDF5 (.h5) file.")
    if data.ndim != 3 or not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{source}: field 'epochs' expected a numeric array (n_words, n_channels, n_times), found "
                         f"shape {data.shape}.")
    if not np.isfinite(data).all():
        raise InputError(f"{source}: field 'epochs' holds NaN or infinite values.")
    if sfreq is None or tmin is None:
        raise InputError(f"{source}: fields 'sfreq' and 'tmin' are needed for an epochs array (in the run entry or "
                         f"as dataset attributes).")
    return data.astype(np.float64), float(sfreq), float(tmin), names


def _array_info(run, n_channels, sfreq, names, config, base, subject, source):
    mne = _mne()
    if run.get("info"):
        path = expand_path(run["info"], config, base, subject=subject)
        try:
            info = mne.io.read_info(path)
        except (ValueError, OSError, RuntimeError) as err:
            raise InputError(f"{path}: field 'info' is not a FIF file with measurement info ({err}).") from None
        picks = mne.pick_types(info, meg=True, eeg=True, exclude=[]) if names is None else \
            [info["ch_names"].index(n) for n in names if n in info["ch_names"]]
        if len(picks) != n_channels:
            raise InputError(f"{source}: field 'epochs' has {n_channels} channels, the info {path} gives "
                             f"{len(picks)} data channels.")
        info = mne.pick_info(info, picks)
        with info._unlock():
            info["sfreq"] = sfreq
        return info
    names = list(names) if names is not None else [f"MEG{i + 1:03d}" for i in range(n_channels)]
    if len(names) != n_channels:
        raise InputError(f"{source}: field 'ch_names' lists {len(names)} channels, the array has {n_channels}.")
    return mne.create_info(names, sfreq, run.get("ch_types", "mag"))


def word_targets(epochs, windows):
    """Sensor x window targets of every word.

    Parameters
    ----------
    epochs : mne.BaseEpochs, preloaded
    windows : list of (start, stop) seconds after onset

    Returns
    -------
    Y : float32 array of shape (n_words, n_sensors, n_windows)
    """
    times = epochs.times
    for start, stop in windows:
        if start < times[0] - 1e-9 or stop > times[-1] + 0.5 / epochs.info["sfreq"] + 1e-9:
            raise InputError(f"windows: field 'windows' has [{start}, {stop}) s, outside the epochs "
                             f"({times[0]:.3f} to {times[-1]:.3f} s); widen epochs.tmin/tmax.")
    return window_means(epochs.get_data(copy=False), times, windows).astype(np.float32)


def sensor_groups(spec, info):
    """Sensor groups for the figures and comparisons: name -> channel indices, "all" first.

    Parameters
    ----------
    spec : "channel_types", "vectorview" or {name: [channel names]}
    info : mne.Info of the targets' channels
    """
    mne = _mne()
    names = info["ch_names"]
    groups = {"all": np.arange(len(names))}
    if spec == "channel_types":
        types = np.array(info.get_channel_types())
        for kind in dict.fromkeys(types.tolist()):
            if len(set(types.tolist())) > 1:
                groups[kind] = np.flatnonzero(types == kind)
    elif spec == "vectorview":
        for selection in VECTORVIEW_SELECTIONS:
            wanted = {n.replace(" ", "") for n in mne.read_vectorview_selection(selection)}
            index = np.array([i for i, n in enumerate(names) if n.replace(" ", "") in wanted], dtype=int)
            if index.size:
                groups[selection] = index
    elif isinstance(spec, dict):
        for group, channels in spec.items():
            missing = [c for c in channels if c not in names]
            if missing:
                raise InputError(f"sensor_groups: field 'sensor_groups.{group}' names channel {missing[0]!r}, which "
                                 f"the recordings do not have.")
            groups[str(group)] = np.array([names.index(c) for c in channels], dtype=int)
    else:
        raise InputError(f"sensor_groups: field 'sensor_groups' is {spec!r}; known: channel_types, vectorview or a "
                         f"mapping of names to channel lists.")
    return groups
