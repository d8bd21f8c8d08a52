"""The layer-hierarchy analysis of one output folder: tables and plots from scores.h5.

Per (subject, model, instruction) and per ROI: the ROI-mean score over normalized depth, the
preferred depth with bootstrap intervals over the ROI's targets, and the rank test of preferred
depth against the ROI levels. With two or more subjects a "group" row uses the mean profile over
subjects, with intervals over resampled subjects.

Which score: ``cv_score`` by default, because a preferred depth is a choice of layer and every
choice here is made on cross-validation inside the training runs; ``test_r`` reads the held-out
runs instead. With the layer-weights analysis (``encoding.layer_weights``), a third preferred depth stands
beside those: the weight-averaged depth of the ROI's band weights (targets counted by their positive CV score),
with its own bootstrap interval and rank test (measure ``layer_weights``). Which ROIs enter the rank test:
those with a level, and, when the analysis ran permutations, whose mean test r at their CV-best layer is
significant (BH q below ``fdr_q``): the preferred depth of a profile that is noise is itself noise. Bootstrap
intervals over targets treat neighbouring targets as independent, so they are narrower than intervals over
subjects.
"""
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from features.errors import InputError

from ..outputs.scores_file import ScoresFile
from ..rois import load_glasser_groups
from ._plot import plot_hierarchy
from ..layer_weights import roi_weight_profile
from ._profiles import group_preferred_depth, roi_preferred_depth, weights_preferred_depth
from ._rank_test import hierarchy_rank_test

log = logging.getLogger(__name__)
SCORES = ("cv_score", "test_r")
SLICE = ["subject", "model", "instruction"]


def roi_levels(rois, levels=None):
    """Hierarchy level per ROI: given levels first, else the Glasser groups' ``level``.

    Parameters
    ----------
    rois : sequence of str
    levels : dict of str to number, str or Path (a YAML mapping), optional

    Returns
    -------
    dict of str to float; NaN for an ROI without a level
    """
    if isinstance(levels, (str, Path)):
        path = Path(levels)
        if not path.is_file():
            raise InputError(f"{path}: field 'levels' expected a YAML file mapping ROI names to levels, found none.")
        levels = yaml.safe_load(path.read_text()) or {}
    known = {name: spec["level"] for name, spec in load_glasser_groups().items()}
    known.update(levels or {})
    return {roi: float(known[roi]) if roi in known else np.nan for roi in rois}


def _subject_rows(scores, part, score, levels, n_bootstrap, seed, fdr_q):
    """Depth axis, ROI profiles and hierarchy.csv rows of one (subject, model, instruction).

    ``fdr_q`` None puts every ROI with a level in the rank test; otherwise only those whose mean
    test r at the CV-best layer has q below it (all of them when no permutations ran).
    """
    subject, model, instruction = part.iloc[0][SLICE]
    layers = sorted(part["layer"].unique())
    depth = part.drop_duplicates("layer").set_index("layer").loc[layers, "depth"].to_numpy(float)
    rois = scores.read_rois(subject)
    if not rois:
        raise InputError(f"{scores.path}: field '{subject}/rois' is missing; rerun the analysis with this version.")
    per_layer = np.stack([scores.read(f"{subject}/{model}/{instruction}/layer_{k}", score) for k in layers], axis=1)
    best = part[part["best_layer_by_cv"]]
    tested = fdr_q is not None and "q_perm" in best and best["q_perm"].notna().any()
    significant = set(best.loc[best["q_perm"] < fdr_q, "roi"]) if tested else None
    rows, profiles = [], {}
    weighted = _layer_weights(scores, f"{subject}/{model}/{instruction}/layer_weights")
    for i, (roi, index) in enumerate(rois.items()):
        result = roi_preferred_depth(depth, per_layer[index], n_bootstrap, seed + i)
        profiles[roi] = result["profile"]
        rows.append(_row(subject, model, instruction, roi, levels[roi], score, result,
                         n_targets=int(np.isfinite(per_layer[index]).all(1).sum()),
                         in_test=np.isfinite(levels[roi]) and (significant is None or roi in significant)))
        if weighted is not None:
            _, share = roi_weight_profile(weighted["weights"], weighted["cv_score"], index)
            found = weights_preferred_depth(weighted["depth"], weighted["weights"][:, index].T, share, n_bootstrap,
                                            seed + i)
            weighted["profiles"][roi] = found["profile"]
            rows[-1].update(_weights_columns(found))
    return depth, profiles, rows, weighted


def _layer_weights(scores, key):
    """The layer-weights fit of a slice (band depths, weights, CV score), or None when the analysis has none."""
    if key not in scores:
        return None
    return {"depth": np.asarray(scores.attrs(key)["band_depths"], dtype=float), "weights": scores.read(key, "weights"),
            "cv_score": scores.read(key, "cv_score"), "profiles": {}}


def _weights_columns(result):
    return {"preferred_depth_layer_weights": result["weighted"], "layer_weights_ci_low": result["weighted_ci"][0],
            "layer_weights_ci_high": result["weighted_ci"][1]}


def _row(subject, model, instruction, roi, level, score, result, in_test, **counts):
    return {"subject": subject, "model": model, "instruction": instruction, "roi": roi, "level": level, **counts,
            "score": score, "preferred_depth_argmax": result["argmax"], "argmax_ci_low": result["argmax_ci"][0],
            "argmax_ci_high": result["argmax_ci"][1], "preferred_depth_weighted": result["weighted"],
            "weighted_ci_low": result["weighted_ci"][0], "weighted_ci_high": result["weighted_ci"][1],
            "peak_score": float(np.nanmax(result["profile"])), "in_rank_test": bool(in_test)}


def _tests(rows, n_subjects, seed, n_layers):
    """hierarchy_tests.csv rows: the rank test on each preferred-depth measure, and, where there is none,
    why (``note``)."""
    included = [r for r in rows if r["in_rank_test"]]
    levels = [r["level"] for r in included]
    tests = []
    for measure in ("argmax", "weighted") + (("layer_weights",) if "preferred_depth_layer_weights" in rows[0] else ()):
        result = hierarchy_rank_test(levels, [r[f"preferred_depth_{measure}"] for r in included], seed=seed)
        tests.append({**{k: rows[0][k] for k in SLICE}, "measure": measure, "spearman_rho": result["rho"],
                      "p_permutation": result["p"], "n_rois": result["n_rois"], "n_subjects": n_subjects,
                      "note": _too_little_to_rank(rows, included, n_layers, result)})
    return tests


def _too_little_to_rank(rows, included, n_layers, result):
    """Why a rank test has no result ("" when it has one)."""
    if np.isfinite(result["rho"]):
        return ""
    if n_layers < 2:
        return "too little to rank: one layer, so no depth to prefer"
    with_level = sum(np.isfinite(r["level"]) for r in rows)
    if with_level == 0:
        return (f"too little to rank: none of the {len(rows)} ROIs has a level in the sensory-to-association "
                f"ordering (set rois.levels)")
    if len(included) < 3:
        return (f"too little to rank: {len(included)} of the {with_level} ROIs with a level have a significant fit; "
                f"a rank correlation needs 3 or more")
    return "too little to rank: the ROIs' levels or preferred depths are all equal"


def _group_rows(slices, levels, n_bootstrap, seed):
    """Rows of the mean profile over subjects for one (model, instruction); with layer weights in every
    subject, also the preferred depth of the mean weight profile, with intervals over subjects."""
    depth = slices[0][0]
    rois = [r["roi"] for r in slices[0][2]]
    rows, profiles = [], {}
    weighted = all(w is not None for _, _, _, w in slices) and len({len(w["depth"]) for *_, w in slices}) == 1
    for i, roi in enumerate(rois):
        found = [(p[roi], next(r for r in rs if r["roi"] == roi)) for d, p, rs, _ in slices if roi in p]
        if len(found) < len(slices) or any(len(d) != len(depth) for d, _, _, _ in slices):
            continue  # an ROI missing in some subject, or models fitted on other layers: no group profile
        subject_profiles = np.stack([profile for profile, _ in found])
        result = group_preferred_depth(depth, subject_profiles, n_bootstrap, seed + i)
        profiles[roi] = result["profile"]
        # an ROI enters the group test when it entered the test in at least half of the subjects
        in_test = sum(row["in_rank_test"] for _, row in found) >= len(found) / 2
        first = found[0][1]
        rows.append(_row("group", first["model"], first["instruction"], roi, levels[roi], first["score"], result,
                         in_test, n_subjects=len(found)))
        if weighted:
            rows[-1].update(_weights_columns(weights_preferred_depth(
                slices[0][3]["depth"], np.stack([w["profiles"][roi] for *_, w in slices]), None, n_bootstrap,
                seed + i)))
    return depth, profiles, rows


def hierarchy_analysis(folder, score="cv_score", n_bootstrap=None, levels=None, all_rois=False, seed=None,
                       output_dir=None):
    """Run the layer-hierarchy analysis on an output folder of ``python -m encoding.run``.

    Parameters
    ----------
    folder : str or Path
        Holds scores.h5, alignment.csv and config.yaml.
    score : {"cv_score", "test_r"}
    n_bootstrap : int, optional
        Resamples for the intervals; default the config's ``n_bootstrap``.
    levels : dict or path of a YAML mapping ROI -> level, optional
        Default: the config's ``rois.levels``, then the Glasser groups' levels.
    all_rois : bool
        Put every ROI with a level in the rank test, significant or not.
    seed : int, optional
    output_dir : str or Path, optional
        Where to write; default ``folder``.

    Returns
    -------
    rois_table : DataFrame (hierarchy.csv), tests_table : DataFrame (hierarchy_tests.csv),
    figures : list of file names written
    """
    folder = Path(folder)
    output_dir = Path(output_dir or folder)
    config = _folder_config(folder)
    if score not in SCORES:
        raise InputError(f"--score: expected one of {SCORES}, found {score!r}.")
    n_bootstrap = int(n_bootstrap if n_bootstrap is not None else config.get("n_bootstrap", 1000))
    seed = int(seed if seed is not None else config.get("seed", 0))
    fdr_q = None if all_rois else float(config.get("fdr_q", 0.05))
    table = pd.read_csv(folder / "alignment.csv")
    levels = roi_levels(list(dict.fromkeys(table["roi"])), levels or _config_levels(config))
    all_rows, all_tests, figures, by_slice = [], [], [], {}
    with ScoresFile(folder / "scores.h5") as scores:
        for _, part in table.groupby(SLICE, sort=False):
            depth, profiles, rows, weighted = _subject_rows(scores, part, score, levels, n_bootstrap, seed, fdr_q)
            by_slice.setdefault(tuple(part.iloc[0][["model", "instruction"]]), []).append((depth, profiles, rows,
                                                                                           weighted))
            all_rows += rows
            all_tests += _tests(rows, 1, seed, len(depth))
            figures.append(_plot(output_dir, depth, profiles, rows, all_tests[-2:], score))
    for slices in by_slice.values():
        if len(slices) >= 2:
            depth, profiles, rows = _group_rows(slices, levels, n_bootstrap, seed)
            if rows:
                all_rows += rows
                all_tests += _tests(rows, len(slices), seed, len(depth))
                figures.append(_plot(output_dir, depth, profiles, rows, all_tests[-2:], score))
    rois_table, tests_table = pd.DataFrame(all_rows), pd.DataFrame(all_tests)
    output_dir.mkdir(parents=True, exist_ok=True)
    rois_table.to_csv(output_dir / "hierarchy.csv", index=False)
    tests_table.to_csv(output_dir / "hierarchy_tests.csv", index=False)
    log.info("wrote %s, %s and %d plots", output_dir / "hierarchy.csv", output_dir / "hierarchy_tests.csv",
             len(figures))
    return rois_table, tests_table, figures


def _plot(output_dir, depth, profiles, rows, tests, score):
    subject, model, instruction = (rows[0][k] for k in SLICE)
    weighted = next(t for t in tests if t["measure"] == "weighted")
    subjects = f"{weighted['n_subjects']} subject{'s' if weighted['n_subjects'] > 1 else ''}"
    if np.isfinite(weighted["spearman_rho"]):
        test = (f"Spearman rho(level, weighted preferred depth) = {weighted['spearman_rho']:.2f}, one-sided p = "
                f"{weighted['p_permutation']:.3g}, {weighted['n_rois']} ROIs, {subjects}")
    else:   # a rank correlation needs three ROIs with distinct levels
        test = f"no rank test ({weighted['note'].removeprefix('too little to rank: ')}), {subjects}"
    title = f"{subject} · {model} · {instruction}\n{test}"
    name = f"hierarchy_{subject}_{model}_{instruction}.png"
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_hierarchy(depth, profiles, rows, title, score, output_dir / name)
    return name


def _config_levels(config):
    """The config's rois.levels; a relative YAML path is relative to the config file, as every path."""
    levels = (config.get("rois") or {}).get("levels") if isinstance(config.get("rois"), dict) else None
    if isinstance(levels, str) and not Path(levels).is_absolute() and config.get("config_file"):
        levels = Path(config["config_file"]).parent / levels
    return levels


def _folder_config(folder):
    for name in ("scores.h5", "alignment.csv"):
        if not (folder / name).is_file():
            raise InputError(f"{folder / name}: field 'output folder' expected the {name} that python -m "
                             f"encoding.run writes, found none.")
    path = folder / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
