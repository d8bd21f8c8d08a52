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
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.delays import delay_run, zscore_run
from features.errors import InputError
from features.store import FeatureStore
from features.timing import aligned_length

from .config import expand_path
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

    @property
    def n_targets(self):
        return self.valid.size

    def cv_groups(self, run_of_row):
        """The stimulus run of each training row: CV folds keep every viewing of a stimulus together."""
        return np.asarray(self.stimulus_runs, dtype=object)[np.asarray(run_of_row)]


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
        # paths become absolute here, so the loader's own resolution against base_dir leaves them alone
        run = {k: (str(expand_path(v, config, base_dir, subject=subject)) if k in ("path", "mask", "left", "right")
                   else v) for k, v in run.items()}
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

    trim = config["trim"]
    bold, n_keep, stimulus_runs, names = [], [], [], []
    for (run, data), name in zip(loaded, files):
        stimulus = str(run["stimulus_run"])
        if stimulus not in feature_rows:
            raise InputError(f"{name}: field 'stimulus_run' is '{stimulus}', which no features store holds; "
                             f"stores hold: {', '.join(feature_rows)}.")
        n = data.shape[0]
        for store_path, rows, store_tr in feature_rows[stimulus]:
            if store_tr is not None and abs(float(store_tr) - float(run["tr"])) > 1e-3:
                raise InputError(f"{name}: field 'tr' is {run['tr']} s but {store_path} holds features "
                                 f"computed at a TR of {store_tr} s.")
            n = min(n, aligned_length(rows, data.shape[0], config["tr_tolerance"], store_path, name))
        n_keep.append(n)
        bold.append(preprocess_run(data[:n], trim.get("start", 0), trim.get("end", 0),
                                   detrend=config["detrend"], zscore=config["zscore"]))
        stimulus_runs.append(stimulus)
        names.append(stimulus if stimulus not in names else f"{stimulus}#{names.count(stimulus) + 1}")
    train, test = split_runs(config, subject, stimulus_runs)
    valid = ~find_bad_targets([bold[i] for i in train])
    if not valid.any():
        raise InputError(f"{files[train[0]]}: every target of {subject} is NaN or constant in some training run "
                         f"(field 'subjects.{subject}.runs'); nothing can be fitted.")
    untestable = valid & find_bad_targets([bold[i] for i in test])
    return SubjectData(subject, names, stimulus_runs, files, n_keep, bold, valid, space,
                       [float(r["tr"]) for r, _ in loaded], train, test, untestable)


def layer_design(store: FeatureStore, instruction, layer, subject: SubjectData, delays, trim):
    """Delayed, trimmed, z-scored features of one layer for each run of a subject.

    Returns
    -------
    list of float32 arrays (n_TR_kept, n_features * n_delays), one per fMRI run.
    """
    design = []
    for stimulus, n in zip(subject.stimulus_runs, subject.n_keep):
        features = zscore_run(store.read_layer(instruction, stimulus, layer)[:n])
        delayed = delay_run(features, delays)
        design.append(delayed[trim.get("start", 0): n - trim.get("end", 0)].astype(np.float32))
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
