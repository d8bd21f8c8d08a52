"""The layer x ROI heatmap marks a CV-best layer only where it is a finding: significant, or said to be untested."""
import numpy as np
import pandas as pd

from encoding.outputs.figures import plot_layer_roi_heatmap

ROIS = ["EVC", "LOC", "PPA", "dmPFC"]
BEST = {"EVC": 0, "LOC": 2, "PPA": 1, "dmPFC": 2}
Q_AT_BEST = {"EVC": 0.001, "LOC": 0.049, "PPA": 0.3, "dmPFC": np.nan}     # dmPFC: too few targets to test


def _table(with_q=True):
    rows = []
    for roi in ROIS:
        for layer in range(3):
            best = layer == BEST[roi]
            rows.append({"subject": "sub-01", "model": "m", "instruction": "caption", "layer": layer, "roi": roi,
                         "mean_test_r": 0.1 * layer, "best_layer_by_cv": best,
                         "q_perm": Q_AT_BEST[roi] if best else 0.001})   # other layers' q must not matter
    table = pd.DataFrame(rows)
    return table if with_q else table.drop(columns="q_perm")


def _marks(figure):
    """(ROI, layer) of every mark drawn."""
    return {(ROIS[int(x)], int(y)) for x, y in figure.axes[0].collections[0].get_offsets()}


def test_marks_only_rois_whose_cv_best_layer_is_significant(tmp_path):
    figure = plot_layer_roi_heatmap(_table(), "sub-01 · m · caption", tmp_path / "heatmap.png", fdr_q=0.05)
    assert _marks(figure) == {("EVC", 0), ("LOC", 2)}
    assert "where significant (ROI mean r, q < 0.05)" in figure.axes[0].get_title()


def test_the_threshold_is_the_one_asked_for():
    assert _marks(plot_layer_roi_heatmap(_table(), fdr_q=0.01)) == {("EVC", 0)}


def test_without_permutations_every_choice_is_marked_and_called_untested():
    figure = plot_layer_roi_heatmap(_table(with_q=False))
    assert _marks(figure) == {(roi, layer) for roi, layer in BEST.items()}
    assert "not tested for significance" in figure.axes[0].get_title()
