"""The notebook-like example runs as a script and its map shows the planted truth (issue 14)."""
import runpy
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from threadpoolctl import threadpool_limits

from encoding.demo.toy_study import ROIS, write_toy_study

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fit_one_layer.py"


def test_fit_one_layer_example_maps_the_roi_its_layer_drives(tmp_path, monkeypatch, capsys):
    config = write_toy_study(tmp_path / "toy")
    layer = 2                                            # the toy study's layer k drives ROI k
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--config", str(config), "--layer", str(layer),
                                      "--out", str(tmp_path / "out")])
    with threadpool_limits(1):
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "median test r" in capsys.readouterr().out
    r = np.asarray(nib.load(tmp_path / "out" / f"sub-01_model-toy_layer-{layer}_stat-r.nii.gz").dataobj)
    labels = np.asarray(nib.load(tmp_path / "toy" / "rois.nii.gz").dataobj)
    driven = np.median(r[labels == layer + 1])
    others = [np.median(r[labels == k + 1]) for k in range(len(ROIS)) if k != layer]
    assert driven > 0.5 and max(others) < 0.2
    assert (tmp_path / "out" / "test_r.png").stat().st_size > 10_000
