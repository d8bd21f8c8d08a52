"""``python -m encoding.words run``: every subject x model x layer fitted, one output folder written.

The folder (written under a temporary name, renamed when complete, never replaced without
``--overwrite``) holds:

- ``words_scores.csv``: the tidy table, one row per (subject, model, layer, sensor, window): r (pooled
  over all words, the one tested), r_foldwise (mean over folds), p, q, significant, the median alpha
  over the outer folds and the inner-CV score;
- ``layers.csv``: per (subject, model, layer): mean and max r, significant sensor x windows, the
  inner-CV score, the layer chosen by it (``best_layer_by_cv``), the words fitted (``n_words``) and
  those left out because their epochs overlapped a BAD annotation (``n_words_dropped_bad``);
- ``scores.h5``: ``/<subject>/<model>/layer_<k>/{r, p, q, alpha, cv_score, word_error}`` (word_error:
  (n_words, n_sensor_groups, n_windows)) with the sensor names, windows and groups as attributes;
- ``figures/``: r over time per sensor group and a topography per window, at each model's CV-best layer;
- ``config.yaml``, ``versions.json``.
"""
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from ..config import as_given
from ..outputs.folder import atomic_folder, refuse_existing
from ..versions import library_versions
from ._config import output_folder
from ._plots import plot_r_over_time, plot_topographies
from ._study import best_layer, fit_study, load_story, load_subject

log = logging.getLogger(__name__)


def prepare(config):
    """The story and every subject's targets (checked before any model is loaded)."""
    story = load_story(config)
    subjects = {subject: load_subject(config, subject, story) for subject in config["subjects"]}
    return story, subjects


def run_words(config, overwrite=False, models=None, out=None):
    """Fit and write the ``run`` output folder.

    Returns
    -------
    out : Path
    table : DataFrame, the rows of ``words_scores.csv``
    """
    out = Path(out) if out else output_folder(config)
    refuse_existing(out, overwrite)
    story, subjects = prepare(config)
    models = models or list(config["models"])
    fits, layers = fit_study(config, story, subjects, models)
    table = scores_table(fits, subjects, config["fdr_q"])
    summary = layers_table(fits, subjects, models, layers, config["fdr_q"])
    with atomic_folder(out, overwrite) as partial:
        table.to_csv(partial / "words_scores.csv", index=False)
        summary.to_csv(partial / "layers.csv", index=False)
        _write_scores(partial / "scores.h5", fits, subjects)
        if config["figures"]:
            _figures(partial / "figures", fits, subjects, models, layers, config["fdr_q"])
        write_provenance(partial, config)
    log.info("wrote %s (%d rows)", out / "words_scores.csv", len(table))
    return out, table


def write_provenance(folder, config):
    (folder / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(as_given(config), default=_plain)),
                                                       sort_keys=False))
    (folder / "versions.json").write_text(json.dumps(library_versions(), indent=2))


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else str(value)


def scores_table(fits, subjects, fdr_q):
    frames = []
    for (subject, model, layer), fit in fits.items():
        target = subjects[subject]
        n_sensors, n_windows = fit.r.shape
        sensor, window = np.meshgrid(np.arange(n_sensors), np.arange(n_windows), indexing="ij")
        windows = np.asarray(target.windows)
        frames.append(pd.DataFrame({
            "subject": subject, "model": model, "layer": layer,
            "sensor": np.asarray(target.info["ch_names"])[sensor.ravel()], "window": window.ravel(),
            "window_start": windows[window.ravel(), 0], "window_stop": windows[window.ravel(), 1],
            "r": fit.r.ravel(), "r_foldwise": fit.r_foldwise.ravel(), "p": fit.p.ravel(), "q": fit.q.ravel(),
            "significant": fit.q.ravel() < fdr_q,
            "alpha": np.median(fit.alpha, 0).ravel(), "cv_score": fit.cv_score.ravel()}))
    return pd.concat(frames, ignore_index=True)


def layers_table(fits, subjects, models, layers, fdr_q):
    rows = []
    for model in models:
        best = best_layer(fits, subjects, model, layers[model])
        for subject in subjects:
            for layer in layers[model]:
                fit = fits[subject, model, layer]
                rows.append({"subject": subject, "model": model, "layer": layer, "mean_r": float(np.nanmean(fit.r)),
                             "mean_r_foldwise": float(np.nanmean(fit.r_foldwise)),
                             "max_r": float(np.nanmax(fit.r)), "n_significant": int((fit.q < fdr_q).sum()),
                             "n_targets": int(fit.r.size), "mean_cv_score": float(np.nanmean(fit.cv_score)),
                             "best_layer_by_cv": layer == best, "n_words": int(len(subjects[subject].Y)),
                             "n_words_dropped_bad": _n_dropped(subjects[subject])})
    return pd.DataFrame(rows)


def _n_dropped(target):
    """Words whose epochs overlapped a BAD annotation of the recording."""
    return 0 if target.kept is None else int((~target.kept).sum())


def _write_scores(path, fits, subjects):
    with h5py.File(path, "w") as handle:
        for (subject, model, layer), fit in fits.items():
            group = handle.require_group(f"{subject}/{model}/layer_{layer}")
            for name in ("r", "r_foldwise", "p", "q", "alpha", "cv_score", "word_error"):
                group.create_dataset(name, data=getattr(fit, name))
            group.attrs["sensor_groups"] = json.dumps(list(fit.extra["groups"]))
        for subject, target in subjects.items():
            handle[subject].attrs["sensors"] = json.dumps(list(target.info["ch_names"]))
            handle[subject].attrs["windows"] = json.dumps(target.windows)
            handle[subject].attrs["segments"] = target.segments


def _figures(folder, fits, subjects, models, layers, fdr_q):
    folder.mkdir()
    for model in models:
        layer = best_layer(fits, subjects, model, layers[model])
        for subject, target in subjects.items():
            fit = fits[subject, model, layer]
            title = f"{subject} / {model} / layer {layer} (CV-best)"
            figure = plot_r_over_time(fit.r, fit.q, target.windows, target.groups, title, fdr_q,
                                      folder / f"r_over_time_{subject}_{model}.png")
            close_figure(figure)
            close_figure(plot_topographies(fit.r, fit.q, target.windows, target.info, title, fdr_q,
                                     folder / f"topography_{subject}_{model}.png"))


def close_figure(figure):
    """Free a figure's memory once it is saved (None: nothing was drawn)."""
    import matplotlib.pyplot as plt

    if figure is not None:
        plt.close(figure)
