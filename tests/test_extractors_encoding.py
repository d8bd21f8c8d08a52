"""The encoding CLI consumes stores written by the extractors (tiny models, real decoded movies), and
extracts what a store lacks when the config names the stimuli."""
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest_extractors import read_store, tiny_models  # noqa: F401
from extractors.run import ensure_features

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
N_RUNS, SHAPE, TR = 4, (3, 3, 2), 1.5


def _study(tmp_path, **keys):
    """Four 15 s movies, a random NIfTI subject watching them, a two-label atlas; returns the config path."""
    from encoding.demo.movie import write_synthetic_movie

    (tmp_path / "movies").mkdir()
    for run in range(1, N_RUNS + 1):
        write_synthetic_movie(tmp_path / "movies" / f"run-{run}.mp4", duration_s=15.0, seed=run, scene_s=(2, 4))
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    labels = np.arange(np.prod(SHAPE)).reshape(SHAPE) % 2 + 1
    nib.save(nib.Nifti1Image(labels.astype(np.int16), affine), tmp_path / "atlas.nii.gz")
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tearly\n2\tlate\n")
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), affine), tmp_path / "mask.nii.gz")
    runs = []
    for run in range(1, N_RUNS + 1):
        bold = rng.standard_normal(SHAPE + (10,)).astype(np.float32) + 50  # 15 s at TR 1.5
        nib.save(nib.Nifti1Image(bold, affine), tmp_path / f"sub-01_run-{run}_bold.nii.gz")
        runs.append({"path": f"sub-01_run-{run}_bold.nii.gz", "mask": "mask.nii.gz", "stimulus_run": f"run-{run}",
                     "tr": TR})
    config = {"name": "extracted", "features_dir": "features", "instructions": "caption",
              "subjects": {"sub-01": {"runs": runs}}, "test_runs": [f"run-{N_RUNS}"], "delays": [1, 2],
              "alphas": {"logspace": [0, 4, 5]}, "rois": {"atlas": "atlas.nii.gz", "lut": "atlas.tsv"},
              "flatmap": False, "n_permutations": 0, **keys}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "study.yaml"


def test_encoding_cli_fits_every_layer_of_an_extracted_store(tiny_models, tmp_path):
    from encoding.run import main

    config = _study(tmp_path, models=["qwen2_5_vl"])
    store = ensure_features(tmp_path / "movies", TR, tiny_models["qwen2_5_vl"], "caption", tmp_path / "features",
                            family="qwen2_5_vl", pooling="last_token", progress=False)
    assert store == tmp_path / "features" / "qwen2_5_vl.h5"
    assert main(["--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "out" / "alignment.csv")
    assert sorted(table["layer"].unique()) == [0, 1, 2] and set(table["model"]) == {"qwen2_5_vl"}
    assert set(table["instruction"]) == {"caption"}


def test_encoding_cli_extracts_missing_features_and_fits_a_baseline_under_none(tiny_models, tmp_path):
    """`stimuli` in the config: encoding.run extracts each model's store first (a registered MLLM from a
    local folder, and the VideoMAE baseline, stored and fitted under the no-instruction control)."""
    from encoding.run import main

    config = _study(tmp_path, models=["qwen2.5-vl", "videomae"], stimuli="movies",
                    model_paths={"qwen2.5-vl": str(tiny_models["qwen2_5_vl"]),
                                 "videomae": str(tiny_models["videomae"])},
                    extraction={"max_new_tokens": 2, "batch_clips": 2})
    assert main(["--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    stores = {m: read_store(tmp_path / "features" / f"{m}.h5") for m in ("qwen2.5-vl", "videomae")}
    assert {k[0] for k in stores["qwen2.5-vl"]} == {"caption"} and {k[0] for k in stores["videomae"]} == {"none"}
    for model, store in stores.items():
        for (name, run), (layers, _, done) in store.items():
            assert done.all() and all(layer.shape[0] == 10 for layer in layers), (model, name, run)
    table = pd.read_csv(tmp_path / "out" / "alignment.csv")
    assert set(zip(table["model"], table["instruction"])) == {("qwen2.5-vl", "caption"), ("videomae", "none")}
    assert table.loc[table["model"] == "videomae", "layer"].nunique() == len(stores["videomae"]["none", "run-1"][0])
    # a second run finds the stores complete: nothing is extracted again, the numbers are the same
    before = (tmp_path / "features" / "videomae.h5").stat().st_mtime_ns
    assert main(["--config", str(config), "--out", str(tmp_path / "out2"), "--quiet"]) == 0
    assert (tmp_path / "features" / "videomae.h5").stat().st_mtime_ns == before
    again = pd.read_csv(tmp_path / "out2" / "alignment.csv")
    np.testing.assert_allclose(again["mean_test_r"], table["mean_test_r"], rtol=0, atol=1e-7)
