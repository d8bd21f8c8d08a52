"""``group_tests.csv``: across-subject tests per ROI, each p-value beside its number of subjects.

Each subject contributes its ROI's mean test r at the layer its own cross-validation chose, so
no choice is made on test data and models with different depths compare at their best. Rows:

- ``comparison = "above_zero"``: is the score above 0 (one-sided t and Wilcoxon over subjects);
- ``"model"``: two models, same instruction (paired, two-sided);
- ``"instruction"``: two instructions, same model (paired, two-sided).

``q_ttest`` and ``q_wilcoxon`` are BH over the ROIs of one comparison.
"""
from itertools import combinations

import numpy as np
import pandas as pd

from ..stats import fdr_bh, one_sample_tests, paired_tests

VALUE = "mean_test_r"


def _per_subject(best, **where):
    part = best
    for column, value in where.items():
        part = part[part[column] == value]
    return part.set_index("subject")[VALUE]


def group_tests(table):
    """Across-subject tests from alignment rows (needs ``best_layer_by_cv``).

    Parameters
    ----------
    table : DataFrame of alignment.csv

    Returns
    -------
    DataFrame, empty with fewer than two subjects
    """
    best = table[table["best_layer_by_cv"]]
    if best["subject"].nunique() < 2:
        return pd.DataFrame()
    rows = []
    rois = list(dict.fromkeys(table["roi"]))      # atlas order (the table lists every ROI per layer)
    models, instructions = sorted(best["model"].unique()), sorted(best["instruction"].unique())
    for roi in rois:
        for model in models:
            for instruction in instructions:
                result = one_sample_tests(_per_subject(best, roi=roi, model=model, instruction=instruction))
                rows.append({"comparison": "above_zero", "roi": roi, "a": f"{model}:{instruction}", "b": "0",
                             **result, "mean_a": result.pop("mean")})
        for a, b in combinations(models, 2):
            for instruction in instructions:
                rows.append(_paired(roi, "model", f"{a}:{instruction}", f"{b}:{instruction}",
                                    _per_subject(best, roi=roi, model=a, instruction=instruction),
                                    _per_subject(best, roi=roi, model=b, instruction=instruction)))
        for model in models:
            for a, b in combinations(instructions, 2):
                rows.append(_paired(roi, "instruction", f"{model}:{a}", f"{model}:{b}",
                                    _per_subject(best, roi=roi, model=model, instruction=a),
                                    _per_subject(best, roi=roi, model=model, instruction=b)))
    frame = pd.DataFrame(rows)
    for test in ("ttest", "wilcoxon"):
        frame[f"q_{test}"] = np.nan
        for _, part in frame.groupby(["comparison", "a", "b"], sort=False):
            frame.loc[part.index, f"q_{test}"] = fdr_bh(part[f"p_{test}"].to_numpy(float))
    columns = ["comparison", "roi", "a", "b", "n_subjects", "mean_a", "mean_b", "mean_difference", "t", "p_ttest",
               "q_ttest", "wilcoxon_w", "p_wilcoxon", "q_wilcoxon"]
    return frame.reindex(columns=columns)


def _paired(roi, comparison, a, b, values_a, values_b):
    subjects = values_a.index.intersection(values_b.index)
    result = paired_tests(values_a[subjects].to_numpy(), values_b[subjects].to_numpy())
    return {"comparison": comparison, "roi": roi, "a": a, "b": b, **result}
