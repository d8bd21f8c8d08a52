"""The README's first command: the embedded demo end to end through the CLI."""
import json

import h5py
import pandas as pd
import pytest

from encoding.run import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLLM_ENCODING_CACHE", str(folder / "cache"))
        assert main(["--instruction", "caption", "--out", str(folder / "out"), "--quiet"]) == 0
    return folder


def test_demo_writes_every_output(demo):
    out = demo / "out"
    expected = ["scores.h5", "alignment.csv", "best_layers.csv", "report.md", "config.yaml", "versions.json"]
    for model in ("synthetic-vision", "synthetic-audio"):
        expected += [f"layer_roi_sub-01_{model}_caption.png", f"flatmap_sub-01_{model}_caption.png"]
    for name in expected:
        assert (out / name).stat().st_size > 0, name
    with h5py.File(out / "scores.h5") as scores:
        assert scores["sub-01/synthetic-vision/caption/layer_7/test_r"].shape == (59412,)
        assert scores["sub-01/joint/vision-late+audio/test_r2_split"].shape == (2, 59412)
    assert "simulated" in (out / "report.md").read_text()


def test_demo_recovers_its_planted_layers(demo):
    planted = json.loads((demo / "cache" / "demo-v2" / "manifest.json").read_text())["planted_layers"]
    best = pd.read_csv(demo / "out" / "best_layers.csv")
    for roi, truth in planted.items():
        row = best[(best["roi"] == roi) & (best["model"] == truth["model"])].iloc[0]
        assert row["best_layer"] == truth["layer"], roi
        assert row["mean_test_r"] > 0.2, roi


def test_demo_joint_fit_splits_variance_between_vision_and_audio(demo):
    from encoding.rois import rois_for_space

    rois = rois_for_space("fsLR32k", 59412)
    with h5py.File(demo / "out" / "scores.h5") as scores:
        split = scores["sub-01/joint/vision-late+audio/test_r2_split"][()]
    # auditory cortex is driven by the audio band, IFG by the late vision band
    assert split[1, rois["AC"]].mean() > 0.1 > split[0, rois["AC"]].mean()
    assert split[0, rois["IFG"]].mean() > 0.05 > split[1, rois["IFG"]].mean()
