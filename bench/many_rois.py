"""A thousand parcels through the ROI tables and the heatmap: the former code beside the current one.

    python bench/many_rois.py                      # 1,000 Schaefer-style parcels x 29 layers x 2 instructions
    python bench/many_rois.py --parcels 400 --layers 33

Ceiling columns of alignment.csv (``add_normalized``): the former row-by-row ``DataFrame.loc`` assignment
against the current arrays assigned once, on the same table (they must be equal). The layer x ROI heatmap:
the former one-column-per-ROI figure (0.55 inch a ROI) against the current one ordered by network, its width
in pixels and the time to draw and save it. Prints seconds and ratios.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

root = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(root), str(root / "tests")]
from encoding.outputs.alignment import add_normalized  # noqa: E402
from encoding.outputs.figures import DPI, plot_layer_roi_heatmap  # noqa: E402
from encoding.stats import roi_normalized_r  # noqa: E402
from native_layouts import schaefer_names  # noqa: E402


def former_add_normalized(table, test_r, ceilings, rois, threshold=0.05):
    """add_normalized as it was before issue 14: one .loc assignment per row."""
    table = table.copy()
    for column in ("noise_ceiling", "normalized_mean_test_r"):
        table[column] = np.nan
    table["n_targets_ceiling"] = 0
    table["ceiling_method"] = "none"
    columns = ["noise_ceiling", "normalized_mean_test_r", "n_targets_ceiling", "ceiling_method"]
    for fit, part in table.groupby(["subject", "model", "instruction", "layer"], sort=False):
        if fit[0] in ceilings:       # fit: (subject, model, instruction, layer)
            ceiling, method, variance = ceilings[fit[0]]
            r = test_r(*fit)
            for i, roi in zip(part.index, part["roi"]):
                normalized, mean_ceiling, n = roi_normalized_r(r, ceiling, rois[fit[0]][roi], threshold, variance)
                table.loc[i, columns] = [mean_ceiling, normalized, n, method]
    return table


def former_heatmap_width_px(n_rois):
    return (1.0 + 0.55 * n_rois) * DPI


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parcels", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=29)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = schaefer_names(args.parcels)
    rows = [{"subject": "sub-01", "model": "m", "instruction": instruction, "layer": layer, "roi": name,
             "mean_test_r": rng.normal(0.2, 0.1), "mean_cv_score": rng.normal(0.1, 0.05), "best_layer_by_cv": False}
            for instruction in ("caption", "action") for layer in range(args.layers) for name in names]
    table = pd.DataFrame(rows)
    best = table.groupby(["instruction", "roi"])["mean_cv_score"].idxmax()
    table.loc[best.values, "best_layer_by_cv"] = True
    r = {key: rng.normal(0.2, 0.1, args.parcels) for key in table.groupby(["instruction", "layer"]).groups}
    ceiling = rng.uniform(0.3, 0.9, args.parcels)
    ceilings = {"sub-01": (ceiling, "repeat", ceiling ** 2)}
    rois = {"sub-01": {name: np.array([i]) for i, name in enumerate(names)}}

    def test_r(subject, model, instruction, layer):
        return r[(instruction, layer)]
    start = time.perf_counter()
    former = former_add_normalized(table, test_r, ceilings, rois)
    former_s = time.perf_counter() - start
    start = time.perf_counter()
    current = add_normalized(table, test_r, ceilings, rois)
    current_s = time.perf_counter() - start
    pd.testing.assert_frame_equal(current, former, check_dtype=False)
    print(f"add_normalized, {len(table)} rows: former {former_s:.2f} s, current {current_s:.3f} s, "
          f"{former_s / current_s:.0f}x faster, equal tables")

    part = table[table["instruction"] == "caption"]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        figure = plot_layer_roi_heatmap(part, "bench", Path(folder) / "heatmap.png")
        drawn_s = time.perf_counter() - start
    width = figure.get_size_inches()[0] * DPI
    print(f"heatmap of {args.parcels} ROIs x {args.layers} layers: former width {former_heatmap_width_px(args.parcels):,.0f}"
          f" px, current {width:,.0f} px ({former_heatmap_width_px(args.parcels) / width:.0f}x narrower), ordered by "
          f"{len(set(n.split('_')[2] for n in names))} networks, drawn and saved in {drawn_s:.2f} s")


if __name__ == "__main__":
    main()
