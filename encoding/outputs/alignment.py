"""``alignment.csv``: the tidy layer-by-ROI table users plot from, and the best layer per ROI."""
import numpy as np
import pandas as pd

KEYS = ["subject", "model", "instruction", "roi"]


def roi_rows(subject, model, instruction, layer, n_layers, scores, rois):
    """Summaries over each ROI's fitted targets for one (subject, model, instruction, layer).

    Parameters
    ----------
    scores : dict name -> array (n_targets,) with NaN for unfitted targets
    rois : dict roi -> target indices

    Returns
    -------
    list of dict, one per ROI
    """
    rows = []
    for roi, index in rois.items():
        test_r = scores["test_r"][index]
        fitted = np.isfinite(test_r)
        r = test_r[fitted]
        rows.append({
            "subject": subject, "model": model, "instruction": instruction, "layer": layer,
            "depth": layer / max(n_layers - 1, 1), "roi": roi, "n_targets": int(fitted.sum()),
            "mean_test_r": r.mean() if r.size else np.nan,
            "median_test_r": np.median(r) if r.size else np.nan,
            "mean_test_r2": scores["test_r2"][index][fitted].mean() if r.size else np.nan,
            "mean_cv_score": scores["cv_score"][index][fitted].mean() if r.size else np.nan,
        })
    return rows


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


def best_layer_table(table):
    """One row per (subject, model, instruction, roi): the CV-chosen layer and its test scores."""
    best = table[table["best_layer_by_cv"]]
    columns = KEYS + ["layer", "depth", "n_targets", "mean_test_r", "mean_cv_score"]
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
