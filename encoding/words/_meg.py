"""MEG (or EEG) recordings to word epochs and sensor x window targets, through MNE-Python.

A run is a raw recording in any format ``mne.io.read_raw`` reads (FIF, CTF, BTi/4D, KIT, EDF, BrainVision,
...) with its word-onset table, or epochs already cut (``-epo.fif``, or an ``.npy``/HDF5 array of shape
(n_words, n_channels, n_times)) with the table that names their words. Epochs are filtered, cut,
baseline-corrected and decimated by MNE itself (``Raw.filter``/``Epochs.filter``, ``mne.Epochs``,
``Epochs.apply_baseline``, ``Epochs.decimate``); the targets are the epochs' means over time windows
after onset (``encoding.timeresolved.window_means``).

- Filtering (config ``filter: {l_freq, h_freq, antialias}``): the band-pass the user asks for (none by
  default), and before decimation a low-pass at a third of the decimated rate (``antialias``, on by
  default) unless the data are already low-passed below it; a raw recording is filtered whole, before
  it is cut, so no epoch edge enters the filter.
- MNE's warnings (aliasing, filter length, ...) reach the user: MNE's log level is raised to WARNING only
  around our own calls, to hide its INFO chatter, never for the whole process.
- Epochs overlapping a ``BAD`` annotation of the raw recording are dropped by MNE
  (``reject_by_annotation``) and counted; their words are left out of the fits.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError

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
    kept: np.ndarray = None  # bool per table row: its epoch was kept (False: it overlapped a BAD annotation)

    @property
    def n_bad(self):
        return int((~self.kept).sum())


def _mne():
    try:
        import mne
    except ImportError:
        raise InputError("mne: package not installed; `pip install mne` reads the MEG recordings.") from None
    return mne


def _quiet_info():
    """MNE's INFO lines hidden, its warnings kept, for the calls inside the block only."""
    return _mne().utils.use_log_level("WARNING")


def read_run(run, config):
    """Epochs of one run, baseline-corrected and decimated as the config's ``epochs`` says.

    Parameters
    ----------
    run : dict
        ``raw`` or ``epochs`` (a file), ``words`` (its table); for ``.npy``/HDF5 epochs ``sfreq``,
        ``tmin`` and optionally ``ch_names``, ``ch_types``, ``dataset`` or ``info`` (a FIF file whose
        measurement info names the channels and gives their positions); for a raw file optionally
        ``events: {stim_channel, id}`` to take the onsets from trigger pulses instead of the table.
    config : dict
        The words config (``load_words_config``: the run's paths resolved, ``{subject}`` filled).

    Returns
    -------
    RunEpochs
    """
    with _quiet_info():
        return _read_run(run, config)


def _read_run(run, config):
    table_path = Path(run["words"])            # the run's files resolved by load_words_config
    if "raw" in run:
        source = Path(run["raw"])
        table = read_word_table(table_path, need_onset="events" not in run)
        epochs, kept = _epochs_from_raw(source, table, table_path, run, config["epochs"], config.get("filter"))
    else:
        source = Path(run["epochs"])
        table = read_word_table(table_path, need_onset=False)
        epochs = _epochs_from_file(source, run, config)
        kept = np.ones(len(table), bool)
        onsets = pd.to_numeric(table["onset"], errors="coerce") if "onset" in table else None
        if onsets is not None and onsets.notna().all():
            check_baseline_gap(onsets.to_numpy(float), config["epochs"], table_path)
        if len(epochs) != len(table):
            raise InputError(f"{source}: field 'epochs' holds {len(epochs)} epochs, its table {table_path} lists "
                             f"{len(table)} words.")
    log.info("read %s: %d word epochs, %d channels, %d samples from %.3f s", source, len(epochs),
             len(epochs.ch_names), len(epochs.times), epochs.times[0])
    if not kept.all():
        log.warning("%s: dropped %d of %d word epochs that overlap BAD annotations; their words are left out of "
                    "the fits", source, int((~kept).sum()), kept.size)
    return RunEpochs(epochs, table, table_path, source, kept)


def filter_settings(filtering, sfreq, lowpass, decim):
    """(l_freq, h_freq) for MNE's filter, or None when nothing is to be filtered.

    The band-pass asked for, and with ``antialias`` and ``decim > 1`` a low-pass at a third of the
    decimated rate (MNE's advice before decimating) when the data's low-pass lies above it.
    """
    filtering = {"l_freq": None, "h_freq": None, "antialias": True, **(filtering or {})}
    l_freq = None if filtering["l_freq"] is None else float(filtering["l_freq"])
    h_freq = None if filtering["h_freq"] is None else float(filtering["h_freq"])
    if filtering["antialias"] and decim > 1:
        cut = sfreq / decim / 3.0
        if (h_freq if h_freq is not None else lowpass) > cut:
            h_freq = cut
    return None if l_freq is None and h_freq is None else (l_freq, h_freq)


def _epochs_from_raw(source, table, table_path, run, settings, filtering=None):
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
    band = filter_settings(filtering, raw.info["sfreq"], raw.info["lowpass"], int(settings["decim"]))
    try:
        if band is not None:
            raw.load_data().filter(*band, picks=settings["picks"])
        epochs = mne.Epochs(raw, events, event_id=None, tmin=tmin, tmax=tmax, baseline=_baseline(settings),
                            picks=settings["picks"], preload=True, reject=None, flat=None, decim=int(settings["decim"]),
                            reject_by_annotation=True, metadata=table.reset_index(drop=True), event_repeated="error")
    except (ValueError, RuntimeError) as err:
        raise InputError(f"{table_path}: field 'onset' cannot be epoched or filtered in {source} "
                         f"({str(err).splitlines()[0]}).") from None
    kept = np.zeros(len(table), bool)
    kept[epochs.selection] = True
    other = [i for i in np.flatnonzero(~kept) if not all(str(r).upper().startswith("BAD") for r in epochs.drop_log[i])]
    if other:
        raise InputError(f"{source}: {len(other)} word epochs of {table_path} were dropped by MNE for "
                         f"{epochs.drop_log[other[0]]}; every word outside BAD annotations needs its epoch.")
    return epochs, kept


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


def _epochs_from_file(source, run, config):
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
        info = _array_info(run, data.shape[1], sfreq, names, source)
        epochs = mne.EpochsArray(data, info, tmin=tmin, baseline=None)
    band = filter_settings(config.get("filter"), epochs.info["sfreq"], epochs.info["lowpass"], int(settings["decim"]))
    try:
        if band is not None:
            epochs.filter(*band, picks=settings["picks"])
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


def _array_info(run, n_channels, sfreq, names, source):
    mne = _mne()
    if run.get("info"):
        path = Path(run["info"])
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
    with _quiet_info():
        return _sensor_groups(spec, info, mne)


def _sensor_groups(spec, info, mne):
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
