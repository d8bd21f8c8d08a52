"""From files to the arrays the ridge engine sees: fMRI runs of one subject and delayed features.

Order of operations per run, the reference pipeline's (voxelwise_tutorials: features z-scored per
run, FIR delays within runs), chosen so nothing leaks across runs and trimming never drops the
features that delayed rows need:
1. feature rows and fMRI TRs are aligned to their common length (within ``tr_tolerance``);
2. the features are z-scored over the run's aligned rows, so the rows a delay shifts in from outside
   the run hold the run mean (0), never raw zeros far from the features' offsets;
3. FIR delays are applied to the run's standardized features;
4. the first/last TRs named by ``trim`` are dropped from both;
5. fMRI is detrended and z-scored in time within the run (after trimming).

Targets are fitted when they are finite and not constant in every *training* run; one that is
constant (or NaN) only in a test run is still fitted, and its test scores are NaN.

Segments. A run cut into ``segments`` (one long story, Narratives or Alice style) gives CV and the test
split parts to use like runs: segment k of ``run-1`` is the stimulus run ``run-1:k`` (``test_runs`` may
name it). The run is aligned, its features delayed and its ``trim`` dropped as a whole (delays never
cross the run's own boundaries, and a segment's first TRs see the stimulus before it); then:

- each test segment is kept whole, and the training TRs within ``max |delay|`` TRs of it (before and
  after) are dropped, so no training TR's delayed stimulus window reaches into a test segment's
  stimulus, nor a test TR's into a training segment's responses;
- the features are z-scored over the run's rows outside the test segments and their gaps (a run held
  out whole is z-scored over itself, as in the reference recipe): nothing is fitted on test TRs;
- the responses are detrended and z-scored within each segment, as within each run.
"""
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.delays import delay_run, zscore_run
from features.errors import InputError
from features.store import FeatureStore
from features.timing import aligned_length

from .config import RUN_FILE_FIELDS
from .fmri import TargetSpace, check_same_space, find_bad_targets, load_run, preprocess_run

log = logging.getLogger(__name__)


@dataclass
class SubjectData:
    """One subject's preprocessed runs, ready for fitting."""
    subject: str
    run_names: list              # one per fMRI run, e.g. "run-1" (repeats get "#2")
    stimulus_runs: list          # the stimulus run each fMRI run belongs to
    files: list
    n_keep: list                 # aligned length (before trimming) per run
    bold: list                   # preprocessed (n_TR_kept, n_targets) per run
    valid: np.ndarray            # (n_targets,) fitted: finite and not constant in every training run
    space: TargetSpace
    trs: list = field(default_factory=list)
    train: list = field(default_factory=list)   # indices of the training runs
    test: list = field(default_factory=list)    # indices of the test runs (scored only)
    untestable: np.ndarray = None               # (n_targets,) fitted, but NaN/constant in a test run
    # Where each entry's rows come from, for runs cut into segments (None: whole runs, ``trim`` dropped):
    feature_runs: list = None    # the store run each entry reads (its parent run for a segment)
    rows: list = None            # (start, stop) of the entry's rows in its run's aligned rows
    fit_rows: list = None        # per entry, the (start, stop) ranges its run's feature z-score is fitted on,
                                 # or None for the run's aligned rows

    def __post_init__(self):
        if self.feature_runs is None:
            self.feature_runs = list(self.stimulus_runs)

    @property
    def n_targets(self):
        return self.valid.size

    def cv_groups(self, run_of_row):
        """The stimulus run of each training row: CV folds keep every viewing of a stimulus together."""
        return np.asarray(self.stimulus_runs, dtype=object)[np.asarray(run_of_row)]




def check_run_files(config):
    """Every file the subjects' runs name exists: checked before any run is loaded, so a typo in the last
    subject's last run stops the analysis at once, with one sentence naming the subject, the run and the field."""
    for subject, spec in (config["subjects"] or {}).items():
        for i, run in enumerate((spec or {}).get("runs") or [] if isinstance(spec, dict) else []):
            if not isinstance(run, dict):
                continue                    # load_subject says what a run entry must be
            for key in RUN_FILE_FIELDS:
                if key in run:
                    path = Path(run[key])       # resolved by load_config
                    if not path.is_file():
                        found = "a folder" if path.is_dir() else "no such file"
                        raise InputError(f"{path}: field 'subjects.{subject}.runs[{i}].{key}' must name an existing "
                                         f"file, found {found}.")


def load_subject(config, subject, feature_rows):
    """Load, align and preprocess every run of one subject.

    Parameters
    ----------
    config : dict
    subject : str
    feature_rows : dict stimulus_run -> list of (store path, n_rows, tr or None) over the stores used

    Returns
    -------
    SubjectData
    """
    spec = config["subjects"][subject]
    if not isinstance(spec, dict) or not spec.get("runs"):
        raise InputError(f"{config['config_file']}: field 'subjects.{subject}.runs' must list the subject's runs.")
    base_dir = Path(config["config_file"]).resolve().parent
    loaded, spaces, files = [], [], []
    for i, run in enumerate(spec["runs"]):
        if not isinstance(run, dict):
            raise InputError(f"{config['config_file']}: field 'subjects.{subject}.runs[{i}]' must be a mapping "
                             f"(path, stimulus_run, tr, ...), found {run!r}.")
        # the run's files were resolved (made absolute) by load_config, so the loader's own resolution against
        # base_dir leaves them alone
        for key in ("stimulus_run", "tr"):
            if key not in run:
                raise InputError(f"{config['config_file']}: field 'subjects.{subject}.runs[{i}].{key}' is missing.")
        data, space = load_run(run, base_dir)
        name = run.get("path") or run.get("left")
        log.info("read %s: %d TRs x %d targets (%s)", name, data.shape[0], data.shape[1], space.kind)
        loaded.append((run, data))
        spaces.append(space)
        files.append(name)
    space = check_same_space(spaces, files)

    bold, n_keep, stimulus_runs, names, trs, entry_files = [], [], [], [], [], []
    feature_runs, rows, fit_rows = [], [], []
    for (run, data), name in zip(loaded, files):
        stimulus = str(run["stimulus_run"])
        if stimulus not in feature_rows:
            raise InputError(f"{name}: field 'stimulus_run' is '{stimulus}', which no features store holds; "
                             f"stores hold: {', '.join(feature_rows)}.")
        n = data.shape[0]
        for store_path, n_rows, store_tr in feature_rows[stimulus]:
            if store_tr is not None and abs(float(store_tr) - float(run["tr"])) > 1e-3:
                raise InputError(f"{name}: field 'tr' is {run['tr']} s but {store_path} holds features "
                                 f"computed at a TR of {store_tr} s.")
            n = min(n, aligned_length(n_rows, data.shape[0], config["tr_tolerance"], store_path, name))
        parts, fitted_on = run_parts(config, stimulus, n, name)
        for part, (start, stop) in parts:
            n_keep.append(n)
            bold.append(preprocess_run(data[start:stop], detrend=config["detrend"], zscore=config["zscore"]))
            stimulus_runs.append(part)
            names.append(part if part not in names else f"{part}#{stimulus_runs.count(part)}")
            feature_runs.append(stimulus)
            rows.append((start, stop))
            fit_rows.append(fitted_on)
            trs.append(float(run["tr"]))
            entry_files.append(name)
    train, test = split_runs(config, subject, stimulus_runs)
    valid = ~find_bad_targets([bold[i] for i in train])
    if not valid.any():
        raise EmptySubjectError(f"{entry_files[train[0]]}: every target of {subject} is NaN or constant in some "
                                f"training run (field 'subjects.{subject}.runs'); nothing can be fitted.")
    untestable = valid & find_bad_targets([bold[i] for i in test])
    segmented = bool(config.get("segments"))
    return SubjectData(subject, names, stimulus_runs, entry_files, n_keep, bold, valid, space, trs, train, test,
                       untestable, feature_runs if segmented else None, rows if segmented else None,
                       fit_rows if segmented else None)


class EmptySubjectError(InputError):
    """A subject with no target that can be fitted (all NaN or constant, e.g. time courses of zeros)."""


def run_parts(config, stimulus, n, name):
    """The parts of one aligned run of ``n`` TRs that enter the fits, and the rows its features are z-scored on.

    Parameters
    ----------
    config : dict
        ``trim``, ``delays``, ``segments`` and ``test_runs`` are read.
    stimulus : str
        The run's stimulus run.
    n : int
        Its aligned length (fMRI TRs matched to feature rows).
    name : str
        Its file, named in messages.

    Returns
    -------
    parts : list of (stimulus run, (start, stop))
        One part, the run after ``trim``, for a run without segments; else one per segment
        (``<stimulus>:<k>``, k from 1), training segments without the gap rows beside a test segment.
    fit_rows : list of (start, stop) or None
        Rows of the run its features are z-scored on: None (all ``n``) unless a test segment must be left out.
    """
    trim = config["trim"]
    first, last = trim.get("start", 0), n - trim.get("end", 0)
    spec = (config.get("segments") or {}).get(stimulus)
    if spec is None:
        return [(stimulus, (first, last))], None
    where = f"{config['config_file']}: field 'segments.{stimulus}'"
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 2 <= spec <= (last - first) // 2:
            raise InputError(f"{where} asks for {spec} segments; expected 2 to {(last - first) // 2} for the "
                             f"{last - first} TRs of {name} after trim.")
        bounds = [first + round(k * (last - first) / spec) for k in range(spec + 1)]
        segments = list(zip(bounds[:-1], bounds[1:]))
    else:
        segments = _explicit_segments(spec, where, first, last, name)
    labels = [f"{stimulus}:{k + 1}" for k in range(len(segments))]
    held_out = {str(r) for r in config["test_runs"]}
    tests = [seg for label, seg in zip(labels, segments) if label in held_out]
    if not tests:
        return list(zip(labels, segments)), None
    gap = max(abs(int(d)) for d in config["delays"])
    blocked = [(start - gap, stop + gap) for start, stop in tests]
    parts = []
    for label, (start, stop) in zip(labels, segments):
        if label not in held_out:
            keep = [r for r in range(start, stop) if not any(a <= r < b for a, b in blocked)]
            if len(keep) < 2 or keep[-1] - keep[0] + 1 != len(keep):
                raise InputError(f"{where}: training segment {label} ({start}-{stop}) keeps "
                                 f"{'no contiguous block' if keep else 'nothing'} once the {gap} TRs beside a test "
                                 f"segment are dropped; use fewer segments or explicit TR ranges.")
            start, stop = keep[0], keep[-1] + 1
        parts.append((label, (start, stop)))
    fit_rows = _complement(blocked, n)
    return parts, fit_rows


def _explicit_segments(spec, where, first, last, name):
    """Explicit TR ranges ``[[start, stop], ...]`` (0-based volumes of the file, stop excluded), checked."""
    try:
        segments = [(int(a), int(b)) for a, b in spec]
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected a number of segments or a list of [start, stop] TR ranges, "
                         f"found {spec!r}.") from None
    if len(segments) < 2:
        raise InputError(f"{where}: expected two or more segments, found {len(segments)}.")
    previous = first
    for start, stop in segments:
        if start < previous or stop <= start + 1 or stop > last:
            raise InputError(f"{where}: the range [{start}, {stop}] is not an increasing, non-overlapping range "
                             f"of two or more TRs within {first}-{last} (the TRs of {name} after trim).")
        previous = stop
    return segments


def _complement(blocked, n):
    """Ranges of ``range(n)`` outside every ``(start, stop)`` of ``blocked``."""
    inside = np.zeros(n, bool)
    for start, stop in blocked:
        inside[max(start, 0):max(min(stop, n), 0)] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[True], inside, [True]]).astype(int)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def layer_design(store: FeatureStore, instruction, layer, subject: SubjectData, delays, trim):
    """Delayed, trimmed, z-scored features of one layer for each run of a subject.

    Returns
    -------
    list of float32 arrays (n_TR_kept, n_features * n_delays), one per fMRI run.
    """
    design, delayed_runs = [], {}
    for i, (stimulus, n) in enumerate(zip(subject.feature_runs, subject.n_keep)):
        fit_rows = subject.fit_rows[i] if subject.fit_rows else None
        key = (stimulus, n, json.dumps(fit_rows))   # a run's segments share one delayed design
        if key not in delayed_runs:
            features = store.read_layer(instruction, stimulus, layer)[:n]
            delayed_runs[key] = delay_run(zscore_run(features, fit_rows), delays)
        start, stop = subject.rows[i] if subject.rows else (trim.get("start", 0), n - trim.get("end", 0))
        design.append(delayed_runs[key][start:stop].astype(np.float32))
    return design


def split_runs(config, subject, stimulus_runs):
    """Indices of training and test runs; test runs (``config["test_runs"]``) are named by their stimulus run.

    Cross-validation inside the training runs needs two or more training *stimuli*: its folds group the
    runs by stimulus (see :meth:`SubjectData.cv_groups`).
    """
    test_runs = {str(r) for r in config["test_runs"]}
    test = [i for i, s in enumerate(stimulus_runs) if s in test_runs]
    train = [i for i, s in enumerate(stimulus_runs) if s not in test_runs]
    missing = test_runs - set(stimulus_runs)
    if missing:
        raise InputError(f"{config['config_file']}: field 'test_runs' names {sorted(missing)[0]!r}, which is not a stimulus run of "
                         f"{subject} (runs: {', '.join(stimulus_runs)}).")
    n_stimuli = len({stimulus_runs[i] for i in train})
    if not test or n_stimuli < 2:
        raise InputError(f"{config['config_file']}: field 'test_runs' must hold out at least one run of {subject} and leave "
                         f"two or more training stimuli; found {len(test)} test runs and {n_stimuli} training "
                         f"stimuli.")
    return train, test


def stack(runs, indices):
    """Concatenate the runs at ``indices`` and return rows with their run labels."""
    arrays = [runs[i] for i in indices]
    labels = np.concatenate([np.full(a.shape[0], i) for i, a in zip(indices, arrays)])
    return np.concatenate(arrays), labels
