"""Two models on the same words: a paired test over words, and MNE's cluster permutation test over time.

A model's held-out r at a sensor and window is a sum over words of ``z_y * z_p`` (``_fit``); averaged
over a sensor group, each word contributes one term per window. Model A minus model B, word by word,
gives paired differences whose sum is r_A - r_B:

- per window and over the chosen windows: the paired t-test and Wilcoxon signed-rank test of the two
  models' terms over words (``encoding.stats.paired_tests``);
- over time: ``mne.stats.permutation_cluster_1samp_test`` on the (n_words, n_windows) differences
  (sign flips of whole words, clusters of adjacent windows whose t exceeds the threshold), which
  controls the family-wise error over windows;
- with two or more subjects, the same two tests over subjects on each subject's r_A - r_B.

Words are the unit of the within-subject tests: adjacent words' epochs overlap in time, so their
terms are not strictly independent and these p-values are somewhat liberal; the across-subject rows
are the population inference.
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
from ._study import best_layer, fit_study

log = logging.getLogger(__name__)


def paired_word_tests(terms_a, terms_b):
    """Paired tests of two models' per-word r terms.

    Parameters
    ----------
    terms_a, terms_b : arrays of shape (n_words,)

    Returns
    -------
    dict: n_words, r_a, r_b, r_difference (sums over words), t, p_ttest, wilcoxon_w, p_wilcoxon (two-sided)
    """
    result = paired_tests(terms_a, terms_b)
    return {"n_words": result.pop("n_subjects"), "r_a": float(np.sum(terms_a)), "r_b": float(np.sum(terms_b)),
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


def compare_fits(fits, subjects, models, layers, group="all", windows=None, n_permutations=1000, threshold=None,
                 seed=0):
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
        terms_a, terms_b = terms_a[kept], terms_b[kept]
        chosen = _window_mask(target.windows, windows)
        for w, (start, stop) in enumerate(target.windows):
            rows.append({"subject": subject, "window": w, "window_start": start, "window_stop": stop,
                         **paired_word_tests(terms_a[:, w], terms_b[:, w])})
        rows.append({"subject": subject, "window": "all", "window_start": target.windows[chosen.argmax()][0],
                     "window_stop": target.windows[len(chosen) - 1 - chosen[::-1].argmax()][1],
                     **paired_word_tests(terms_a[:, chosen].mean(1), terms_b[:, chosen].mean(1))})
        t, clusters = cluster_test_over_time(terms_a - terms_b, n_permutations, threshold, seed)
        for mask, p, sign in clusters:
            index = np.flatnonzero(mask)
            cluster_rows.append({"subject": subject, "start": target.windows[index[0]][0],
                                 "stop": target.windows[index[-1]][1], "n_windows": int(index.size), "sign": sign,
                                 "t_sum": float(t[mask].sum()), "p": p})
        curves[subject] = (terms_a.sum(0), terms_b.sum(0), [(m, p) for m, p, _ in clusters if p < 0.05])
        per_subject.append((terms_a.sum(0), terms_b.sum(0)))
    if len(subjects) >= 2:
        _group_rows(rows, cluster_rows, per_subject, next(iter(subjects.values())).windows, n_permutations,
                    threshold, seed)
    table = pd.DataFrame(rows)
    table.insert(1, "model_a", f"{a} (layer {layers[a]})")
    table.insert(2, "model_b", f"{b} (layer {layers[b]})")
    table.insert(3, "sensor_group", group)
    return table, pd.DataFrame(cluster_rows, columns=["subject", "start", "stop", "n_windows", "sign", "t_sum", "p"]), \
        curves


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
        cluster_rows.append({"subject": "group", "start": windows[index[0]][0], "stop": windows[index[-1]][1],
                             "n_windows": int(index.size), "sign": sign, "t_sum": float(t[mask].sum()), "p": p})


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
                                           settings["threshold"], config["seed"])
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
