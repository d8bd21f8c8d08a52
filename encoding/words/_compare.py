"""Two models on the same words: paired tests over blocks of held-out words, and MNE's cluster
permutation tests over sensors x time or over time.

A model's r at a sensor and window is a sum over words of ``z_y * z_p`` (``_fit``); averaged over a
sensor group, each word contributes one term per window. Model A minus model B, word by word, gives
paired differences whose sum is r_A - r_B:

- per window and over the chosen windows: the paired t-test and Wilcoxon signed-rank test of the two
  models' terms (``encoding.stats.paired_tests``);
- the map (``compare.sensor_group: all``, the default): MNE's sensor x time cluster permutation test
  (``mne.stats.spatio_temporal_cluster_1samp_test``) on the per-sensor differences, clusters of
  cells whose t exceeds the threshold and that neighbour in time or in space (channel adjacency from
  the montage, ``mne.channels.find_ch_adjacency``), which controls the family-wise error over the map;
- an ROI chosen beforehand (``compare.sensor_group: <group>``): ``mne.stats.permutation_cluster_1samp_test``
  over the windows of the group's mean differences;
- with two or more subjects, the paired tests and the clusters over time on each subject's pooled
  r_A - r_B (every word, each predicted by its outer fold's model): the population inference.

Within a subject the tests use only the words of held-out test segments (``compare.test_segments``,
default ``half``: the later half of each subject's segments), predicted, for each model and layer, by
one ridge fit on the other segments (``WordFit.test_*``); the layer compared, unless ``compare.layers``
names it, is the one whose test fit has the best inner-CV score, on the training segments only. The
tests' unit is a *block* of ``permutation_block`` consecutive test words (never crossing a segment
boundary; a segment's leftover words form a last, shorter block): neighbouring words' terms are alike
(their epochs overlap, slow noise and the models' context are shared), so tests of single words are
liberal.

Why held-out segments: every word does have a held-out prediction from its outer fold, but fold k's
weights are fitted on the other folds' responses, so a block's term in fold k and a block's term in fold
j both contain the responses of k and j, and blocks of different folds are positively correlated.
Tests that treat them as independent are liberal: on simulated nulls (two models of 8 random features,
400 words in 4 segments, blocks of 10) per-cell paired t-tests over every fold's blocks reach p < 0.05
in 10.7 % of 4,000 cells on white noise and 12.3 % with AR(0.5) responses and features, and the sensor
x time cluster test finds a false cluster in 45.5 % and 62.0 % of 200 nulls. Given the one test model,
the test words' terms depend only on their own responses: the held-out tests reach p < 0.05 in 4.4 %
(95 % interval 3.8-5.1 %) and 6.2 % (5.4-7.0 %) of the cells and find a false cluster in 2.5 % and 5.0 %
of the nulls (``bench/words_within_subject.py``, ``tests/test_words_within_subject.py``). Testing the
last segment only (a model trained on three quarters) holds the rate too but has less power: on the
planted study of ``tests/words_meg_planted.py`` (12 simulations, 14 planted cells each) 43 % of planted
cells at p < 0.05 and the planted cluster in 3 of 12, against 70 % and 11 of 12 with ``half``; a
Nadeau-Bengio corrected t over the outer folds was at 7.0 % and 5.6 % under the null, 35 % in power.

Without test segments (``compare.test_segments: null``) the tests run over every outer fold's blocks
and the rows say ``inference: descriptive``: their p-values are not valid. The ``pooled_r_*`` columns
(r over every word, each predicted by its outer fold's model, as ``run`` reports it) are descriptive.
"""
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError

from ..outputs.folder import atomic_folder, refuse_existing
from ..stats import paired_tests
from ._config import chosen_windows, output_folder
from ._plots import plot_model_difference
from ._run import close_figure, prepare, write_provenance
from ._study import best_layer, fit_study, sensor_terms

log = logging.getLogger(__name__)


def block_sums(terms, segments, block):
    """Terms summed over blocks of ``block`` consecutive words, no block crossing a segment boundary.

    Parameters
    ----------
    terms : array of shape (n_words, ...)
    segments : array of shape (n_words,), constant within a segment (segments contiguous)
    block : int

    Returns
    -------
    array of shape (n_blocks, ...)
    """
    terms, segments = np.asarray(terms), np.asarray(segments)
    starts = np.flatnonzero(np.diff(np.concatenate([[np.nan], segments.astype(float)])) != 0)
    edges = sorted({*(b for a, z in zip(starts, [*starts[1:], len(segments)]) for b in range(a, z, max(1, block))),
                    len(segments)})
    return np.add.reduceat(terms, edges[:-1], axis=0)


def paired_word_tests(terms_a, terms_b, unit="words"):
    """Paired tests of two models' per-word r terms.

    Parameters
    ----------
    terms_a, terms_b : arrays of shape (n_words,) (or of blocks of words: ``unit="blocks"``)
    unit : str
        Names the count: ``n_<unit>``.

    Returns
    -------
    dict: n_<unit>, r_a, r_b, r_difference (sums over words), t, p_ttest, wilcoxon_w, p_wilcoxon (two-sided)
    """
    result = paired_tests(terms_a, terms_b)
    return {f"n_{unit}": result.pop("n_subjects"), "r_a": float(np.sum(terms_a)), "r_b": float(np.sum(terms_b)),
            "r_difference": float(np.sum(terms_a) - np.sum(terms_b)),
            **{k: result[k] for k in ("t", "p_ttest", "wilcoxon_w", "p_wilcoxon")}}


def cluster_test_over_time(differences, n_permutations=1000, threshold=None, seed=0):
    """MNE's cluster permutation test of paired differences over windows.

    Parameters
    ----------
    differences : array of shape (n_observations, n_windows)
        Words (or subjects) x windows, model A minus model B.
    n_permutations : int
    threshold : float or None
        Cluster-forming t; None is MNE's default (the two-sided t at p = 0.05).

    Returns
    -------
    t : array of shape (n_windows,)
    clusters : list of (mask over windows, p-value, sign of t)
    """
    from mne.stats import permutation_cluster_1samp_test

    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2:
        raise InputError("compare: fewer than two observations (blocks of words or subjects) to test.")
    # the t-statistic does not depend on scale; a unit scale keeps MNE's variance floor from mattering
    scale = np.std(differences)
    t, clusters, p_values, _ = permutation_cluster_1samp_test(
        differences / (scale if scale > 0 else 1), threshold=threshold, n_permutations=n_permutations, tail=0,
        out_type="indices", seed=seed, verbose="error")
    out = []
    for (index,), p in zip(clusters, p_values):
        mask = np.zeros(differences.shape[1], bool)
        mask[index] = True
        out.append((mask, float(p), float(np.sign(t[mask].mean()))))
    return t, out


def sensor_adjacency(info):
    """Channel adjacency (sparse, n_channels x n_channels) from the montage or the sensor layout (MNE)."""
    from mne.channels import find_ch_adjacency

    types = set(info.get_channel_types())
    if len(types) > 1:
        raise InputError(f"compare: field 'compare.sensor_group' is 'all', but the recordings mix channel types "
                         f"({', '.join(sorted(types))}); a sensor x time cluster needs one type: set "
                         f"'sensor_groups: channel_types' and name one type as the group.")
    try:
        adjacency, _ = find_ch_adjacency(info, ch_type=types.pop())
    except (ValueError, RuntimeError) as err:
        raise InputError(f"compare: field 'info' gives no channel adjacency for sensor x time clusters "
                         f"({str(err).splitlines()[0]}); set a montage or name a sensor group.") from None
    return adjacency


def cluster_test_sensors_time(differences, adjacency, n_permutations=1000, threshold=None, seed=0):
    """MNE's sensor x time cluster permutation test of paired differences.

    Parameters
    ----------
    differences : array of shape (n_observations, n_sensors, n_windows)
        Blocks of words (or subjects), model A minus model B.
    adjacency : sparse (n_sensors, n_sensors)
    n_permutations : int
    threshold : float or None
        Cluster-forming t; None is MNE's default (the two-sided t at p = 0.05).

    Returns
    -------
    t : array of shape (n_sensors, n_windows)
    clusters : list of (mask (n_sensors, n_windows), p-value, sign of t)
    """
    from mne.stats import spatio_temporal_cluster_1samp_test

    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2:
        raise InputError("compare: fewer than two observations (blocks of words or subjects) to test.")
    scale = np.std(differences)
    # MNE's layout: (observations, times, space)
    t, clusters, p_values, _ = spatio_temporal_cluster_1samp_test(
        differences.transpose(0, 2, 1) / (scale if scale > 0 else 1), threshold=threshold, adjacency=adjacency,
        n_permutations=n_permutations, tail=0, out_type="mask", seed=seed, verbose="error")
    out = []
    for mask, p in zip(clusters, p_values):
        out.append((mask.T, float(p), float(np.sign(t[mask].mean()))))
    return t.T, out


def compare_fits(fits, subjects, models, layers, group="all", windows=None, n_permutations=1000, threshold=None,
                 seed=0, block=10):
    """Rows of the comparison table and the clusters of models[0] against models[1].

    Within a subject the tests use the fits' held-out test segments (``WordFit.test_*``) when they have
    them (inference ``held-out``), else every word's outer-fold terms (inference ``descriptive``; module
    docstring).

    Parameters
    ----------
    fits : dict of (subject, model, layer) -> WordFit
    subjects : dict of subject -> SubjectTargets
    models : (model_a, model_b)
    layers : dict of model -> layer compared
    group : str
        Sensor group (``all`` or one of the config's groups).
    windows : (start, stop) seconds or None
        The windows the overall test averages over; default all.
    block : int
        Consecutive words per tested block (module docstring).

    Returns
    -------
    table : DataFrame, one row per (subject, window) plus ``window = "all"`` rows, and ``group`` rows
    clusters : DataFrame, one row per cluster
    curves : dict subject -> (r_a (n_windows,), r_b (n_windows,), cluster list), r of the tested words
    """
    a, b = models
    rows, cluster_rows, curves, per_subject = [], [], {}, []
    for subject, target in subjects.items():
        fit_a, fit_b = fits[subject, a, layers[a]], fits[subject, b, layers[b]]
        g = _group_index(fit_a, group)
        pooled_a, pooled_b = fit_a.word_r_terms[:, g].astype(np.float64), fit_b.word_r_terms[:, g].astype(np.float64)
        kept = np.isfinite(pooled_a).all(1) & np.isfinite(pooled_b).all(1)     # words of dropped epochs are NaN
        pooled_a, pooled_b = pooled_a[kept], pooled_b[kept]
        tested = _tested_words(fit_a, fit_b, target, g, kept)
        terms_a, terms_b = (block_sums(t, tested["segments"], block) for t in tested["terms"])
        chosen = chosen_windows(target.windows, windows, "compare: field 'windows'")
        label = {"subject": subject, "inference": tested["inference"], "test_segments": tested["labels"]}
        for w, (start, stop) in enumerate(target.windows):
            rows.append({**label, "window": w, "window_start": start, "window_stop": stop,
                         "n_words": int(len(tested["segments"])),
                         **paired_word_tests(terms_a[:, w], terms_b[:, w], "blocks"),
                         **_pooled_columns(pooled_a[:, w], pooled_b[:, w])})
        rows.append({**label, "window": "all", "window_start": target.windows[chosen.argmax()][0],
                     "window_stop": target.windows[len(chosen) - 1 - chosen[::-1].argmax()][1],
                     "n_words": int(len(tested["segments"])),
                     **paired_word_tests(terms_a[:, chosen].mean(1), terms_b[:, chosen].mean(1), "blocks"),
                     **_pooled_columns(pooled_a[:, chosen].mean(1), pooled_b[:, chosen].mean(1))})
        if group == "all":
            # per-sensor terms are read from the work files only here, for the two fits compared
            sensor_a, sensor_b = (block_sums(t, tested["segments"], block) for t in tested["sensor_terms"]())
            t, map_clusters = cluster_test_sensors_time(sensor_a - sensor_b, sensor_adjacency(target.info),
                                                        n_permutations, threshold, seed)
            names = np.asarray(target.info["ch_names"])
            for mask, p, sign in map_clusters:
                cells = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                cluster_rows.append({**label, "test": "sensors x time", "start": target.windows[cells[1][0]][0],
                                     "stop": target.windows[cells[1][-1]][1], "n_windows": int(cells[1].size),
                                     "n_cells": int(mask.sum()), "sensors": " ".join(names[cells[0]]),
                                     "sign": sign, "t_sum": float(t[mask].sum()), "p": p})
            clusters = [(mask.any(0), p, sign) for mask, p, sign in map_clusters]
        else:
            t, clusters = cluster_test_over_time(terms_a - terms_b, n_permutations, threshold, seed)
            for mask, p, sign in clusters:
                index = np.flatnonzero(mask)
                cluster_rows.append({**label, "test": f"time, group {group}",
                                     "start": target.windows[index[0]][0], "stop": target.windows[index[-1]][1],
                                     "n_windows": int(index.size), "n_cells": int(index.size), "sensors": group,
                                     "sign": sign, "t_sum": float(t[mask].sum()), "p": p})
        curves[subject] = (terms_a.sum(0), terms_b.sum(0), [(m, p) for m, p, _ in clusters if p < 0.05])
        per_subject.append((pooled_a.sum(0), pooled_b.sum(0)))
    if len(subjects) >= 2:
        _group_rows(rows, cluster_rows, per_subject, next(iter(subjects.values())).windows, n_permutations,
                    threshold, seed)
    table = pd.DataFrame(rows)
    table.insert(1, "model_a", f"{a} (layer {layers[a]})")
    table.insert(2, "model_b", f"{b} (layer {layers[b]})")
    table.insert(3, "sensor_group", group)
    columns = ["subject", "inference", "test_segments", "test", "start", "stop", "n_windows", "n_cells", "sensors",
               "sign", "t_sum", "p"]
    return table, pd.DataFrame(cluster_rows, columns=columns), curves


def _tested_words(fit_a, fit_b, target, g, kept):
    """The words a subject's within-subject tests use: the held-out test segments' words when the fits have
    them, else every kept word (descriptive). Returns a dict of inference, labels (the test segments'
    0-based places in reading order, ``all (outer folds)`` without), segments of the tested words, terms
    (group g) of both models, and sensor_terms: a function that reads both models' per-sensor terms."""
    if not np.array_equal(fit_a.test_segments, fit_b.test_segments):
        raise InputError(f"compare: the two models' fits hold different test segments ({fit_a.test_segments} and "
                         f"{fit_b.test_segments}); fit them with the same 'compare.test_segments'.")
    fits = (fit_a, fit_b)
    if len(fit_a.test_segments) == 0:
        return {"inference": "descriptive", "labels": "all (outer folds)", "segments": target.segments,
                "terms": [f.word_r_terms[kept, g].astype(np.float64) for f in fits],
                "sensor_terms": lambda: [sensor_terms(f)[kept].astype(np.float64) for f in fits]}
    rows = np.isin(target.segments, fit_a.test_segments)
    if rows.sum() != len(fit_a.test_r_terms):
        raise InputError(f"compare: the fits' test terms hold {len(fit_a.test_r_terms)} words, the subject's test "
                         f"segments {rows.sum()}; the fits are not of these targets.")
    places = list(dict.fromkeys(target.segments.tolist()))
    return {"inference": "held-out", "labels": " ".join(str(places.index(s)) for s in fit_a.test_segments),
            "segments": target.segments[rows],
            "terms": [f.test_r_terms[:, g].astype(np.float64) for f in fits],
            "sensor_terms": lambda: [sensor_terms(f, "test_sensor_r_terms").astype(np.float64) for f in fits]}


def _pooled_columns(pooled_a, pooled_b):
    """Descriptive: r over every word, each predicted by its outer fold's model (as ``run`` reports it)."""
    return {"pooled_r_a": float(pooled_a.sum()), "pooled_r_b": float(pooled_b.sum()),
            "pooled_r_difference": float(pooled_a.sum() - pooled_b.sum())}


def _group_rows(rows, cluster_rows, per_subject, windows, n_permutations, threshold, seed):
    """Across-subject rows: paired tests and clusters over each subject's pooled r_A - r_B (every word,
    each predicted by its outer fold's model: subjects are independent, so all of a subject's words serve)."""
    r_a, r_b = (np.array([pair[i] for pair in per_subject]) for i in (0, 1))
    label = {"subject": "group", "inference": "across subjects", "test_segments": "all (outer folds)"}
    for w, (start, stop) in enumerate(windows):
        result = paired_tests(r_a[:, w], r_b[:, w])
        rows.append({**label, "window": w, "window_start": start, "window_stop": stop,
                     "n_subjects": result["n_subjects"], "r_a": result["mean_a"], "r_b": result["mean_b"],
                     "r_difference": result["mean_difference"],
                     **{k: result[k] for k in ("t", "p_ttest", "wilcoxon_w", "p_wilcoxon")},
                     "pooled_r_a": result["mean_a"], "pooled_r_b": result["mean_b"],
                     "pooled_r_difference": result["mean_difference"]})
    t, clusters = cluster_test_over_time(r_a - r_b, n_permutations, threshold, seed)
    for mask, p, sign in clusters:
        index = np.flatnonzero(mask)
        cluster_rows.append({**label, "test": "time, subjects", "start": windows[index[0]][0],
                             "stop": windows[index[-1]][1], "n_windows": int(index.size), "n_cells": int(index.size),
                             "sensors": "", "sign": sign, "t_sum": float(t[mask].sum()), "p": p})


def _group_index(fit, group):
    names = list(fit.extra["groups"])
    if group not in names:
        raise InputError(f"compare: field 'compare.sensor_group' is {group!r}; the sensor groups are "
                         f"{', '.join(names)}.")
    return names.index(group)


def best_training_layer(fits, subjects, model, layers):
    """The layer with the highest inner-CV score of the held-out test model (mean over sensors, windows and
    subjects): chosen on the training segments only, never on the test words. Fits without test segments:
    ``best_layer`` (the outer folds' inner-CV scores, whose training segments include every segment)."""
    held_out = all(len(fits[s, model, layers[0]].test_segments) for s in subjects)
    return best_layer(fits, subjects, model, layers, "test_cv_score" if held_out else "cv_score")


def run_compare(config, models, overwrite=False, out=None):
    """``python -m encoding.words compare``: fits (reused from the work folder), tests, figures.

    Returns
    -------
    out : Path
    table : DataFrame, the rows of ``compare.csv``
    """
    if len(models) != 2:
        raise InputError(f"--models: expected two models to compare, found {len(models)} ({', '.join(models)}).")
    out = Path(out) if out else output_folder(config, "-compare")
    refuse_existing(out, overwrite)
    settings = config["compare"]
    story, subjects = prepare(config)
    fits, layers = fit_study(config, story, subjects, models)
    chosen = {m: int(settings["layers"][m]) if m in (settings["layers"] or {}) else
              best_training_layer(fits, subjects, m, layers[m]) for m in models}
    for m, k in chosen.items():
        if k not in layers[m]:
            raise InputError(f"{config['config_file']}: field 'compare.layers.{m}' is {k}, not a fitted layer.")
    table, clusters, curves = compare_fits(fits, subjects, models, chosen, settings["sensor_group"],
                                           settings["windows"], int(settings["n_permutations"]),
                                           settings["threshold"], config["seed"], config["permutation_block"])
    with atomic_folder(out, overwrite) as partial:
        table.to_csv(partial / "compare.csv", index=False)
        clusters.to_csv(partial / "clusters.csv", index=False)
        if config["figures"]:
            (partial / "figures").mkdir()
            for subject, (r_a, r_b, significant) in curves.items():
                row = table[table["subject"] == subject].iloc[0]
                words = (f"held-out segments {row['test_segments']}" if row["inference"] == "held-out" else
                         "all words, descriptive")
                close_figure(plot_model_difference(r_a, r_b, subjects[subject].windows,
                                                   [f"{m} L{chosen[m]}" for m in models], significant,
                                                   f"{subject}, sensors: {settings['sensor_group']}, {words}",
                                                   partial / "figures" / f"difference_{subject}.png"))
        write_provenance(partial, config)
    return out, table
