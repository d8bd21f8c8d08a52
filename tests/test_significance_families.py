"""One definition per multiple-comparison family, and the table and the maps read the same one (issue 12).

A study whose targets are driven half by one layer and half by another, with a short test run (5 blocks
of 10 TRs: 120 distinct block orderings): the per-layer family holds half null targets, the best-layer
family none, so the two Benjamini-Hochberg thresholds differ; best_layers.csv must report what the
best-layer map paints, and the test must use each ordering once.
"""
import numpy as np
import pandas as pd
import yaml

from encoding.flatmap._maps import layer_maps
from encoding.outputs.alignment import SIGNIFICANCE_FAMILIES
from encoding.outputs.scores_file import ScoresFile
from encoding.run import main
from reference_recipe import write_study


def test_best_layers_table_reports_the_share_the_best_layer_map_paints(tmp_path):
    study = write_study(tmp_path / "study", hidden=12, n_targets=240, two_layers=True, test_trs=50)
    spec = yaml.safe_load(study.config.read_text())
    spec.update(n_permutations=1000, rois={"atlas": "rois.yaml"})
    # ROIs of 24 targets with noise levels from low to high, so some of each ROI's targets are near the threshold
    (tmp_path / "study" / "rois.yaml").write_text(yaml.safe_dump({f"roi-{k}": list(range(k, 240, 10))
                                                                  for k in range(10)}))
    study.config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main(["--config", str(study.config), "--out", str(out), "--quiet"]) == 0
    best = pd.read_csv(out / "best_layers.csv").set_index("roi")
    with ScoresFile(out / "scores.h5", "r") as scores:
        assert scores.attrs("sub-01")["n_permutations"] == 120 and scores.attrs("sub-01")["permutations_exact"]
        rois = scores.read_rois("sub-01")
        painted = layer_maps(scores, "sub-01", "best_layer", threshold=0.05)[0].values
        r = scores.read("sub-01/offset/caption", "best_layer_test_r")
    for roi, index in rois.items():
        fitted = np.isfinite(r[index])
        assert best.loc[roi, "frac_targets_significant"] == np.isfinite(painted[index][fitted]).mean(), roi
    assert (pd.read_csv(out / "alignment.csv")["n_permutations"] == 120).all()
    report = (out / "report.md").read_text()
    assert all(text in report for text in SIGNIFICANCE_FAMILIES.values())
