"""Brain RDMs of one subject, per ROI, from precomputed item patterns or from fMRI runs.

A subject entry of the config is one of::

    {patterns: {path: betas.npy}, residuals: {path: res.npy}}   # (n_items, n_targets) or
                                                                 # (n_runs, n_items, n_targets)
    {runs: [{path: run-1.dtseries.nii, stimulus_run: run-1, tr: 1.5}, ...]}   # item GLM per run

Patterns files are read with the fMRI loaders (NPY/NPZ/HDF5 with an optional ``dataset``), so
their columns are targets of the same kinds of space as encoding's runs.
"""
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from features.errors import InputError

from ..fmri import load_run, preprocess_run
from ..roi_sets import rois_for_subject
from ..rois import drop_empty
from ._crossnobis import crossnobis_rdm, noise_precision
from ._patterns import item_betas, item_design
from ._rdm import pattern_rdm

log = logging.getLogger(__name__)


def brain_rdms(config, subject, items, events):
    """{roi: (rdm of shape (n_items, n_items), n_targets)} for one subject.

    Targets that are not finite in every pattern are left out of every ROI; ROIs left without
    targets are skipped with a warning.
    """
    spec = config["subjects"][subject]
    if not isinstance(spec, dict) or not ({"patterns", "runs"} & set(spec)):
        raise InputError(f"{config['config_file']}: field 'subjects.{subject}' needs 'patterns' or 'runs'.")
    if "patterns" in spec:
        run_patterns, residuals, dof, space, files = _from_pattern_files(config, subject, spec, len(items))
    else:
        run_patterns, residuals, dof, space, files = _from_runs(config, subject, spec, items, events)
    valid = np.isfinite(run_patterns).any(1).all(0) if run_patterns.ndim == 3 else np.isfinite(run_patterns).all(0)
    data = SimpleNamespace(subject=subject, space=space, valid=valid, files=files)
    rois, dropped = _subject_rois(config, data)
    if dropped:
        log.warning("%s: ROI(s) with no valid targets, skipped: %s", subject, ", ".join(dropped))
    crossnobis = config["brain_metric"] == "crossnobis"
    if crossnobis and run_patterns.ndim != 3:
        raise InputError(f"{files[0]}: field 'patterns' holds one pattern per item; brain_metric crossnobis needs "
                         f"patterns per run, shape (n_runs, n_items, n_targets).")
    mean_patterns = np.nanmean(run_patterns, axis=0) if run_patterns.ndim == 3 else run_patterns
    result = {}
    for roi, index in rois.items():
        if crossnobis:
            precision = None
            if residuals is not None:
                precision = noise_precision(residuals[:, index], dof, _shrinkage(config))
            result[roi] = (crossnobis_rdm(run_patterns[:, :, index], precision), int(index.size))
        else:
            result[roi] = (pattern_rdm(mean_patterns[:, index], config["brain_metric"]), int(index.size))
    log.info("%s: %d brain RDMs (%s) over %d items", subject, len(result), config["brain_metric"], len(items))
    return result


def _subject_rois(config, data):
    """ROIs as in encoding (glasser_groups, glasser, parcels, atlas files, a YAML/JSON file mapping ROI
    names to target indices), plus "all" (one ROI of every target), which plain pattern arrays need."""
    spec = config["rois"] or {}
    atlas = spec.get("atlas", "all") if isinstance(spec, dict) else spec
    if atlas == "all":
        return drop_empty({"all": np.arange(data.valid.size)}, data.valid)
    return rois_for_subject(config, data)


def _shrinkage(config):
    value = config["shrinkage"]
    if value == "auto":
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1
    if not 0 <= value <= 1:
        raise InputError(f"{config['config_file']}: field 'shrinkage' must be 'auto' or a number in [0, 1].")
    return value


def _load_entry(config, subject, entry, field):
    entry = dict(entry) if isinstance(entry, dict) else {"path": entry}
    if "path" not in entry:
        raise InputError(f"{config['config_file']}: field 'subjects.{subject}.{field}.path' is missing.")
    return load_run(entry, _base(config))        # its path resolved by load_rsa_config


def _base(config):
    return Path(config["config_file"]).parent


def _from_pattern_files(config, subject, spec, n_items):
    patterns, space = _load_entry(config, subject, spec["patterns"], "patterns")
    path = space.source
    if patterns.ndim not in (2, 3) or patterns.shape[-2] != n_items:
        raise InputError(f"{path}: field 'patterns' expected shape (n_items={n_items}, n_targets) or (n_runs, "
                         f"{n_items}, n_targets) in item order, found {patterns.shape}.")
    residuals, dof = None, None
    if spec.get("residuals") is not None:
        residuals, res_space = _load_entry(config, subject, spec["residuals"], "residuals")
        if residuals.ndim != 2 or residuals.shape[1] != patterns.shape[-1]:
            raise InputError(f"{res_space.source}: field 'residuals' expected shape (n_samples, "
                             f"{patterns.shape[-1]}), found {residuals.shape}.")
    elif config["brain_metric"] == "crossnobis":
        log.warning("%s: no 'residuals' given; crossnobis uses an identity noise covariance", subject)
    log.info("read %s: patterns %s", path, patterns.shape)
    return patterns.astype(np.float64), residuals, dof, space, [path]


def _from_runs(config, subject, spec, items, events):
    """Item betas per run from an HRF-convolved item GLM; residuals pooled over runs."""
    if events is None:
        raise InputError(f"{config['config_file']}: field 'events' is needed to estimate item patterns from "
                         f"the runs of {subject}.")
    betas, residuals, dof, files, space = [], [], 0, [], None
    for i, run in enumerate(spec["runs"]):
        for key in ("stimulus_run", "tr"):
            if key not in run:
                raise InputError(f"{config['config_file']}: field 'subjects.{subject}.runs[{i}].{key}' is missing.")
        data, space = _load_entry(config, subject, run, f"runs[{i}]")
        bold = preprocess_run(data, detrend=config["detrend"], zscore=config["zscore"])
        run_events = events[events["run"] == str(run["stimulus_run"])]
        if run_events.empty:
            raise InputError(f"{space.source}: field 'stimulus_run' is {run['stimulus_run']!r}, which no event "
                             f"in the events table names.")
        design = item_design(run_events, items, bold.shape[0], float(run["tr"]), config["hrf_model"])
        run_betas, run_residuals, run_dof = item_betas(np.nan_to_num(bold), design)
        run_betas[:, ~np.isfinite(bold).all(0)] = np.nan
        betas.append(run_betas)
        residuals.append(run_residuals)
        dof += run_dof
        files.append(space.source)
        log.info("read %s: %d TRs, betas of %d items", space.source, bold.shape[0],
                 int(np.isfinite(run_betas[:, 0]).sum()))
    return np.array(betas), np.concatenate(residuals), dof, space, files
