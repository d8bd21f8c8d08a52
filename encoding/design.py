"""From files to the arrays the ridge engine sees: fMRI runs of one subject and delayed features.

Order of operations per run, chosen so nothing leaks across runs and trimming never drops the
features that delayed rows need:
1. feature rows and fMRI TRs are aligned to their common length (within ``tr_tolerance``);
2. FIR delays are applied to the features of the whole run;
3. the first/last TRs named by ``trim`` are dropped from both;
4. fMRI is detrended and z-scored in time, features are z-scored, each within the run.
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.delays import delay_run
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
    valid: np.ndarray            # (n_targets,) False for NaN/constant targets
    space: TargetSpace
    trs: list = field(default_factory=list)

    @property
    def n_targets(self):
        return self.valid.size


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
    base_dir = Path(config["config_file"]).parent
    loaded, spaces, files = [], [], []
    for i, run in enumerate(spec["runs"]):
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
    valid = ~find_bad_targets(bold)
    return SubjectData(subject, names, stimulus_runs, files, n_keep, bold, valid, space,
                       [float(r["tr"]) for r, _ in loaded])


def layer_design(store: FeatureStore, instruction, layer, subject: SubjectData, delays, trim):
    """Delayed, trimmed, z-scored features of one layer for each run of a subject.

    Returns
    -------
    list of float32 arrays (n_TR_kept, n_features * n_delays), one per fMRI run.
    """
    design = []
    for stimulus, n in zip(subject.stimulus_runs, subject.n_keep):
        features = store.read_layer(instruction, stimulus, layer)[:n]
        delayed = delay_run(features, delays)
        delayed = delayed[trim.get("start", 0): n - trim.get("end", 0)]
        std = delayed.std(0)
        design.append(((delayed - delayed.mean(0)) / np.where(std > 0, std, 1)).astype(np.float32))
    return design


def split_runs(subject: SubjectData, test_runs):
    """Indices of training and test runs; test runs are named by their stimulus run."""
    test_runs = {str(r) for r in test_runs}
    test = [i for i, s in enumerate(subject.stimulus_runs) if s in test_runs]
    train = [i for i, s in enumerate(subject.stimulus_runs) if s not in test_runs]
    missing = test_runs - set(subject.stimulus_runs)
    if missing:
        raise InputError(f"config: field 'test_runs' names {sorted(missing)[0]!r}, which is not a stimulus run of "
                         f"{subject.subject} (runs: {', '.join(subject.stimulus_runs)}).")
    if not test or len(train) < 2:
        raise InputError(f"config: field 'test_runs' must hold out at least one run of {subject.subject} and leave "
                         f"two or more for training; found {len(test)} test and {len(train)} training runs.")
    return train, test


def stack(runs, indices):
    """Concatenate the runs at ``indices`` and return rows with their run labels."""
    arrays = [runs[i] for i in indices]
    labels = np.concatenate([np.full(a.shape[0], i) for i, a in zip(indices, arrays)])
    return np.concatenate(arrays), labels
