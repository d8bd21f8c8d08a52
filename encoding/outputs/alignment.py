"""``alignment.csv``: the tidy layer-by-ROI table users plot from, and the best layer per ROI.

Columns beyond the scores (each NaN when its analysis did not run):

- ``p_perm``: block-permutation p-value of the ROI's mean test r (one-sided, the same permuted
  blocks for every target, so the ROI's spatial correlation is kept); ``q_perm``: its BH q over
  the layer x ROI rows of one (subject, model, instruction); ``n_permutations``.
- ``frac_targets_significant``: in ``alignment.csv``, the share of the ROI's targets whose own
  permutation q in the *fit family* is below ``fdr_q``; in ``best_layers.csv``, the share in the
  *best-layer family*, which is what the best-layer maps paint (``SIGNIFICANCE_FAMILIES``).
- ``noise_ceiling``: the ROI's ceiling of r, sqrt of its targets' mean explainable variance
  (``n_targets_ceiling`` targets); ``normalized_mean_test_r``: the ROI's mean test r over that
  ceiling, NaN where the ceiling is at or below ``ceiling_threshold``; ``ceiling_method``.
"""
import numpy as np
import pandas as pd

from ..rois import networks_from_names
from ..stats import fdr_bh, roi_normalized_r

KEYS = ["subject", "model", "instruction", "roi"]

#: Every multiple-comparison family of the analysis, defined once; the report and the README print these.
SIGNIFICANCE_FAMILIES = {
    "fit": "Targets of one fit: Benjamini-Hochberg over the fitted targets of one subject, model, instruction "
           "and layer (`q_perm` of each layer in scores.h5, `frac_targets_significant` in alignment.csv, the "
           "`significant` map of one layer).",
    "best_layer": "Targets at their CV-best layer: each target is tested once, at the layer its cross-validation "
                  "chose, and Benjamini-Hochberg runs over the fitted targets of that map (`best_layer_q_perm`, "
                  "`frac_targets_significant` in best_layers.csv, the best-layer and `significant` maps).",
    "best_instruction": "Targets at their CV-best instruction: the p-value at each target's CV-best instruction "
                        "(at that instruction's CV-best layer), Benjamini-Hochberg over the fitted targets of "
                        "one subject and model (`best_instruction_q_perm`, the best-instruction map).",
    "roi": "ROIs × layers: the block-permutation p of each ROI's mean test r, Benjamini-Hochberg over the "
           "layer × ROI rows of one subject, model and instruction (`p_perm`, `q_perm` in alignment.csv and "
           "best_layers.csv).",
}


def roi_rows(subject, model, instruction, layer, n_layers, scores, rois, roi_p=None, n_permutations=0,
             fdr_q=0.05):
    """Summaries over each ROI's fitted targets for one (subject, model, instruction, layer).

    Parameters
    ----------
    scores : dict name -> array (n_targets,) with NaN for unfitted targets; ``q_perm`` optional
    rois : dict roi -> target indices
    roi_p : dict roi -> permutation p of the ROI's mean test r, optional

    Returns
    -------
    list of dict, one per ROI
    """
    rows = []
    for roi, index in rois.items():
        test_r = scores["test_r"][index]
        fitted = np.isfinite(test_r)
        r = test_r[fitted]
        q = scores.get("q_perm")
        rows.append({
            "subject": subject, "model": model, "instruction": instruction, "layer": layer,
            "depth": layer / max(n_layers - 1, 1), "roi": roi, "n_targets": int(fitted.sum()),
            "mean_test_r": r.mean() if r.size else np.nan,
            "median_test_r": np.median(r) if r.size else np.nan,
            "mean_test_r2": scores["test_r2"][index][fitted].mean() if r.size else np.nan,
            "mean_cv_score": scores["cv_score"][index][fitted].mean() if r.size else np.nan,
            "p_perm": (roi_p or {}).get(roi, np.nan), "n_permutations": n_permutations,
            "frac_targets_significant": float((q[index][fitted] < fdr_q).mean()) if q is not None and r.size
            else np.nan,
        })
    return rows


def add_fdr(table, p_column="p_perm", q_column="q_perm"):
    """``q_column``: BH over the layer x ROI rows of each (subject, model, instruction), the family a
    layer x ROI map is read as; NaN p-values stay NaN."""
    table = table.copy()
    table[q_column] = np.nan
    for _, part in table.groupby(["subject", "model", "instruction"], sort=False):
        table.loc[part.index, q_column] = fdr_bh(part[p_column].to_numpy(float))
    return table


def add_normalized(table, test_r, ceilings, rois, threshold=0.05):
    """Ceiling columns of every row, from per-target test r and each subject's ceiling.

    Parameters
    ----------
    table : DataFrame of alignment rows
    test_r : callable (subject, model, instruction, layer) -> array (n_targets,)
    ceilings : dict subject -> (ceiling (n_targets,), method, variance (n_targets,)) for subjects with a
        ceiling; variance: the unbiased squared ceiling, averaged over each ROI before the root
    rois : dict subject -> dict roi -> target indices
    threshold : float

    Returns
    -------
    DataFrame with noise_ceiling, n_targets_ceiling, normalized_mean_test_r, ceiling_method
    """
    table = table.copy()
    # filled as arrays and assigned once: a row-by-row .loc took 18 s at 1,000 parcels x 6 fits
    ceiling_of, normalized_of = np.full(len(table), np.nan), np.full(len(table), np.nan)
    n_of, method_of = np.zeros(len(table), dtype=np.int64), np.full(len(table), "none", dtype=object)
    positions = {label: i for i, label in enumerate(table.index)}
    for (subject, model, instruction, layer), part in table.groupby(
            ["subject", "model", "instruction", "layer"], sort=False):
        if subject not in ceilings:
            continue
        ceiling, method, variance = ceilings[subject]
        r = test_r(subject, model, instruction, layer)
        for i, roi in zip(part.index, part["roi"]):
            row = positions[i]
            normalized_of[row], ceiling_of[row], n_of[row] = roi_normalized_r(r, ceiling, rois[subject][roi],
                                                                              threshold, variance)
            method_of[row] = method
    table["noise_ceiling"], table["normalized_mean_test_r"] = ceiling_of, normalized_of
    table["n_targets_ceiling"], table["ceiling_method"] = n_of, method_of
    return table


def mark_best_layers(table):
    """Add ``best_layer_by_cv``: True on the layer whose mean CV score is highest for its ROI.

    The choice uses cross-validation inside the training runs only; the test columns of that row
    are the held-out score at the chosen layer.
    """
    table = table.copy()
    table["best_layer_by_cv"] = False
    scored = table.dropna(subset=["mean_cv_score"])
    best = scored.groupby(KEYS)["mean_cv_score"].idxmax()
    table.loc[best.values, "best_layer_by_cv"] = True
    return table


def best_layer_map_significance(scores, fdr_q=0.05):
    """Per (subject, model, instruction, roi): the share of the ROI's targets that the best-layer map
    paints significant (the best-layer family of ``SIGNIFICANCE_FAMILIES``).

    Parameters
    ----------
    scores : ScoresFile
    fdr_q : float

    Returns
    -------
    DataFrame with KEYS and ``frac_targets_significant`` (empty when no permutation test ran)
    """
    rows = []
    for subject in scores.subjects():
        rois = scores.read_rois(subject)
        for model in scores.keys(subject):
            if model in ("valid", "rois", "mask", "joint", "noise_ceiling"):
                continue
            for instruction in scores.keys(f"{subject}/{model}"):
                key = f"{subject}/{model}/{instruction}"
                if f"{key}/best_layer_q_perm" not in scores:
                    continue
                q, r = scores.read(key, "best_layer_q_perm"), scores.read(key, "best_layer_test_r")
                for roi, index in rois.items():
                    fitted = np.isfinite(r[index])
                    rows.append({"subject": subject, "model": model, "instruction": instruction, "roi": roi,
                                 "frac_targets_significant": float((q[index][fitted] < fdr_q).mean())
                                 if fitted.any() else np.nan})
    return pd.DataFrame(rows, columns=KEYS + ["frac_targets_significant"])


def best_layer_table(table, map_significance=None):
    """One row per (subject, model, instruction, roi): the CV-chosen layer and its test scores.

    ``map_significance`` (from :func:`best_layer_map_significance`) replaces the fit family's
    ``frac_targets_significant`` by the best-layer family's, so the table and the best-layer maps agree.
    """
    best = table[table["best_layer_by_cv"]]
    if map_significance is not None and len(map_significance):
        best = best.drop(columns="frac_targets_significant", errors="ignore").merge(
            map_significance, on=KEYS, how="left").set_index(best.index)
    columns = KEYS + ["layer", "depth", "n_targets", "mean_test_r", "mean_cv_score"]
    columns += [c for c in ("normalized_mean_test_r", "p_perm", "q_perm", "frac_targets_significant")
                if c in best and best[c].notna().any()]
    # rows of one (subject, model, instruction) stay in atlas ROI order
    order = {roi: i for i, roi in enumerate(dict.fromkeys(table["roi"]))}
    best = best[columns].rename(columns={"layer": "best_layer"}).assign(_order=best["roi"].map(order))
    return best.sort_values(KEYS[:3] + ["_order"]).drop(columns="_order").reset_index(drop=True)


def to_frame(rows, roi_order):
    """Rows -> DataFrame with ROIs in their atlas order."""
    table = pd.DataFrame(rows)
    table["roi"] = pd.Categorical(table["roi"], categories=list(roi_order), ordered=True)
    table = table.sort_values(["subject", "model", "instruction", "layer", "roi"]).reset_index(drop=True)
    table["roi"] = table["roi"].astype(str)
    return table


def best_instruction_table(table):
    """Per (subject, model, roi): the instruction whose CV-best layer has the highest mean CV score.

    Returns
    -------
    DataFrame with subject, model, roi, best_instruction, layer, mean_test_r, mean_cv_score, and
    the runner-up's test r for comparison; models fitted under one instruction have no rows.
    """
    best = table[table["best_layer_by_cv"]]
    if best["instruction"].nunique() < 2:
        return pd.DataFrame()
    rows = []
    order = {roi: i for i, roi in enumerate(dict.fromkeys(table["roi"]))}
    best = best.assign(_order=best["roi"].map(order)).sort_values(["subject", "model", "_order"])
    for (subject, model, roi), part in best.groupby(["subject", "model", "roi"], sort=False):
        if len(part) < 2:  # a model fitted under one instruction only (a baseline under 'none')
            continue
        ranked = part.sort_values("mean_cv_score", ascending=False)
        top = ranked.iloc[0]
        rows.append({"subject": subject, "model": model, "roi": roi, "best_instruction": top["instruction"],
                     "layer": int(top["layer"]), "mean_test_r": top["mean_test_r"],
                     "mean_cv_score": top["mean_cv_score"], "runner_up": ranked.iloc[1]["instruction"],
                     "runner_up_mean_test_r": ranked.iloc[1]["mean_test_r"]})
    return pd.DataFrame(rows)


#: a (subject, model, instruction) with more ROIs than this is summarised in the terminal, not listed
SUMMARY_ROWS = 40


def summarize_best_layers(best, networks=None, max_rows=SUMMARY_ROWS, csv_path=None, fdr_q=0.05):
    """The terminal's view of best_layers.csv: every row for a few ROIs, a summary for many.

    Per (subject, model, instruction) with more than ``max_rows`` ROIs: one row per network when networks
    are known (its ROIs, the median CV-best layer and depth, the mean of the ROIs' mean test r, its best ROI
    and, with permutations, the share of its ROIs with q < ``fdr_q``), else the ``max_rows // 2`` ROIs of highest
    test r; then where the full table is.

    Parameters
    ----------
    best : DataFrame of best_layers.csv
    networks : dict ROI -> network, optional
        Default: read from Schaefer-style ROI names when they are.
    max_rows : int
    csv_path : str or Path, optional
        The full table, named in the last line.
    fdr_q : float
        Level of the ROI family's q-values counted per network.

    Returns
    -------
    str
    """
    def number(v):
        return f"{v:.3f}"
    parts = []
    many = False
    for key, part in best.groupby(KEYS[:3], sort=False):
        if len(part) <= max_rows:
            parts.append(part)
            continue
        many = True
        known = networks or networks_from_names([str(r) for r in part["roi"]])
        heading = f"{' · '.join(map(str, key))}: {len(part)} ROIs"
        if known:
            text = _per_network(part, known, fdr_q).to_string(index=False, float_format=number)
            parts.append(f"{heading}, summarised per network:\n{text}")
        else:
            top = part.sort_values("mean_test_r", ascending=False).head(max_rows // 2)
            parts.append(f"{heading}; the {len(top)} of highest test r:\n"
                         f"{top.to_string(index=False, float_format=number)}")
    listed = [p for p in parts if not isinstance(p, str)]
    lines = [pd.concat(listed).to_string(index=False, float_format=number)] if listed else []
    lines += [p for p in parts if isinstance(p, str)]
    if csv_path is not None and many:
        lines.append(f"Every ROI: {csv_path}")
    return "\n\n".join(lines)


def _per_network(part, networks, fdr_q):
    """One row per network of one (subject, model, instruction) slice of best_layers.csv."""
    frame = part.assign(network=[networks.get(r, "other") for r in part["roi"]])
    rows = []
    for network, group in frame.groupby("network", sort=False):
        top = group.loc[group["mean_test_r"].idxmax()] if group["mean_test_r"].notna().any() else group.iloc[0]
        row = {"network": network, "n_rois": len(group), "median_best_layer": group["best_layer"].median(),
               "median_depth": group["depth"].median(), "mean_test_r": group["mean_test_r"].mean(),
               "best_roi": top["roi"], "best_roi_test_r": top["mean_test_r"]}
        if "q_perm" in group and group["q_perm"].notna().any():
            row[f"frac_rois_q<{fdr_q:g}"] = float((group["q_perm"] < fdr_q).mean())
        rows.append(row)
    return pd.DataFrame(rows)
