"""Two models on the same words: a paired test over words, and MNE's cluster permutation test over time.

A model's held-out r at a sensor and window is a sum over words of ``z_y * z_p`` (``_fit``); averaged
over a sensor group, each word contributes one term per window. Model A minus model B, word by word,
gives paired differences whose sum is r_A - r_B:

- per window and over the chosen windows: the paired t-test and Wilcoxon signed-rank test of the two
  models' terms (``encoding.stats.paired_tests``);
- the map (``compare.sensor_group: all``, the default): MNE's sensor x time cluster permutation test
  (``mne.stats.spatio_temporal_cluster_1samp_test``) on the per-sensor differences, clusters of
  cells whose t exceeds the threshold and that neighbour in time or in space (channel adjacency from
  the montage, ``mne.channels.find_ch_adjacency``), which controls the family-wise error over the map;
- an ROI chosen beforehand (``compare.sensor_group: <group>``): ``mne.stats.permutation_cluster_1samp_test``
  over the windows of the group's mean differences;
- with two or more subjects, the paired tests and the clusters over time on each subject's r_A - r_B.

Within a subject the unit of every test is a *block* of ``permutation_block`` consecutive words (never
crossing a segment boundary; a segment's leftover words form a last, shorter block): the terms of
neighbouring words are alike (their epochs overlap, slow noise and the models' context are shared),
so sign flips and tests of single words are liberal; the differences summed over a block are nearly
independent from block to block. The across-subject rows are the population inference. Blocks do not
remove one dependence: the held-out predictions of different folds share training words, so one fold's
terms depend on the other folds' responses; on white-noise nulls with fitted models per-cell paired
tests reach p < 0.05 in 12-18 % of cells. Within-subject p-values are descriptive.
"""
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError

from ..outputs.folder import atomic_folder, refuse_existing
from ..stats import paired_tests
from ._config import output_folder
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
    """Rows of the comparison table and the clusters over time of models[0] against models[1].

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
    curves : dict subject -> (r_a (n_windows,), r_b (n_windows,), cluster list)
    """
    a, b = models
    rows, cluster_rows, curves, per_subject = [], [], {}, []
    for subject, target in subjects.items():
        fit_a, fit_b = fits[subject, a, layers[a]], fits[subject, b, layers[b]]
        g = _group_index(fit_a, group)
        terms_a, terms_b = fit_a.word_r_terms[:, g].astype(np.float64), fit_b.word_r_terms[:, g].astype(np.float64)
        kept = np.isfinite(terms_a).all(1) & np.isfinite(terms_b).all(1)     # words of dropped epochs are NaN
        terms_a, terms_b = block_sums(terms_a[kept], target.segments, block), \
            block_sums(terms_b[kept], target.segments, block)
        chosen = _window_mask(target.windows, windows)
        for w, (start, stop) in enumerate(target.windows):
            rows.append({"subject": subject, "window": w, "window_start": start, "window_stop": stop,
                         "n_words": int(kept.sum()), **paired_word_tests(terms_a[:, w], terms_b[:, w], "blocks")})
        rows.append({"subject": subject, "window": "all", "window_start": target.windows[chosen.argmax()][0],
                     "window_stop": target.windows[len(chosen) - 1 - chosen[::-1].argmax()][1],
                     "n_words": int(kept.sum()),
                     **paired_word_tests(terms_a[:, chosen].mean(1), terms_b[:, chosen].mean(1), "blocks")})
        if group == "all":
            sensor_a, sensor_b = (block_sums(sensor_terms(f)[kept].astype(np.float64), target.segments, block)
                                  for f in (fit_a, fit_b))
            t, map_clusters = cluster_test_sensors_time(sensor_a - sensor_b, sensor_adjacency(target.info),
                                                        n_permutations, threshold, seed)
            names = np.asarray(target.info["ch_names"])
            for mask, p, sign in map_clusters:
                cells = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                cluster_rows.append({"subject": subject, "test": "sensors x time",
                                     "start": target.windows[cells[1][0]][0], "stop": target.windows[cells[1][-1]][1], "n_windows": int(cells[1].size),
                                     "n_cells": int(mask.sum()), "sensors": " ".join(names[cells[0]]),
                                     "sign": sign, "t_sum": float(t[mask].sum()), "p": p})
            clusters = [(mask.any(0), p, sign) for mask, p, sign in map_clusters]
        else:
            t, clusters = cluster_test_over_time(terms_a - terms_b, n_permutations, threshold, seed)
            for mask, p, sign in clusters:
                index = np.flatnonzero(mask)
                cluster_rows.append({"subject": subject, "test": f"time, group {group}",
                                     "start": target.windows[index[0]][0], "stop": target.windows[index[-1]][1],
                                     "n_windows": int(index.size), "n_cells": int(index.size), "sensors": group,
                                     "sign": sign, "t_sum": float(t[mask].sum()), "p": p})
        curves[subject] = (terms_a.sum(0), terms_b.sum(0), [(m, p) for m, p, _ in clusters if p < 0.05])
        per_subject.append((terms_a.sum(0), terms_b.sum(0)))
    if len(subjects) >= 2:
        _group_rows(rows, cluster_rows, per_subject, next(iter(subjects.values())).windows, n_permutations,
                    threshold, seed)
    table = pd.DataFrame(rows)
    table.insert(1, "model_a", f"{a} (layer {layers[a]})")
    table.insert(2, "model_b", f"{b} (layer {layers[b]})")
    table.insert(3, "sensor_group", group)
    columns = ["subject", "test", "start", "stop", "n_windows", "n_cells", "sensors", "sign", "t_sum", "p"]
    return table, pd.DataFrame(cluster_rows, columns=columns), curves


def _group_rows(rows, cluster_rows, per_subject, windows, n_permutations, threshold, seed):
    """Across-subject rows: paired tests and clusters over each subject's r_A - r_B."""
    r_a, r_b = (np.array([pair[i] for pair in per_subject]) for i in (0, 1))
    for w, (start, stop) in enumerate(windows):
        result = paired_tests(r_a[:, w], r_b[:, w])
        rows.append({"subject": "group", "window": w, "window_start": start, "window_stop": stop,
                     "n_subjects": result["n_subjects"], "r_a": result["mean_a"], "r_b": result["mean_b"],
                     "r_difference": result["mean_difference"],
                     **{k: result[k] for k in ("t", "p_ttest", "wilcoxon_w", "p_wilcoxon")}})
    t, clusters = cluster_test_over_time(r_a - r_b, n_permutations, threshold, seed)
    for mask, p, sign in clusters:
        index = np.flatnonzero(mask)
        cluster_rows.append({"subject": "group", "test": "time, subjects", "start": windows[index[0]][0],
                             "stop": windows[index[-1]][1], "n_windows": int(index.size), "n_cells": int(index.size),
                             "sensors": "", "sign": sign, "t_sum": float(t[mask].sum()), "p": p})


def _group_index(fit, group):
    names = list(fit.extra["groups"])
    if group not in names:
        raise InputError(f"compare: field 'compare.sensor_group' is {group!r}; the sensor groups are "
                         f"{', '.join(names)}.")
    return names.index(group)


def _window_mask(windows, span):
    if span is None:
        return np.ones(len(windows), bool)
    start, stop = (float(v) for v in span)
    mask = np.array([a >= start - 1e-9 and b <= stop + 1e-9 for a, b in windows])
    if not mask.any():
        raise InputError(f"compare: field 'windows' [{start}, {stop}] s holds none of the target windows.")
    return mask


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
    chosen = {m: int(settings["layers"][m]) if m in (settings["layers"] or {}) else best_layer(fits, subjects, m,
                                                                                                  layers[m])
              for m in models}
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
                close_figure(plot_model_difference(r_a, r_b, subjects[subject].windows,
                                                   [f"{m} L{chosen[m]}" for m in models], significant,
                                                   f"{subject}, sensors: {settings['sensor_group']}",
                                                   partial / "figures" / f"difference_{subject}.png"))
        write_provenance(partial, config)
    return out, table
