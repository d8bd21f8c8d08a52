"""The engine against the field's reference recipe on a study shaped like a real one (issue 12).

Hidden states with large offsets, a training movie watched twice, a short test run, trim 0: the
engine's test r and alphas must equal voxelwise_tutorials-style himalaya ridge on the same raw
arrays (tests/reference_recipe.py), in the primal and in the kernel form.
"""
import logging

import h5py
import numpy as np
import pytest
import yaml

from encoding.design import layer_design, load_subject
from encoding.config import load_config
from encoding.ridge import fit_ridge
from encoding.run import main
from features.store import FeatureStore
from reference_recipe import reference_fit, write_study


def _engine(study, out):
    assert main(["--config", str(study.config), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out / "scores.h5") as scores:
        return scores["sub-01/offset/caption/layer_1/test_r"][()], scores["sub-01/offset/caption/layer_1/alpha"][()]


@pytest.mark.parametrize("hidden, kernel", [(16, False), (200, True)], ids=["primal", "kernel"])
def test_engine_equals_the_reference_recipe_on_features_with_large_offsets(tmp_path, hidden, kernel):
    study = write_study(tmp_path / "study", hidden=hidden)
    r, alpha = _engine(study, tmp_path / "out")
    r_ref, alpha_ref = reference_fit(study, kernel=kernel)
    delta = np.abs(r - r_ref)
    assert delta.max() < 1e-3, (delta.max(), np.median(delta))
    assert np.mean(np.isclose(alpha, alpha_ref, rtol=1e-4)) >= 0.99
    # the study's offsets matter: delaying the raw features first moves r far beyond that tolerance
    r_raw, _ = reference_fit(study, design="raw-delay", kernel=kernel)
    assert np.abs(r_raw - r_ref).max() > 0.02


def test_delayed_rows_from_before_a_run_hold_the_run_mean(tmp_path):
    study = write_study(tmp_path / "study", hidden=8, n_targets=20)
    config = load_config(study.config)
    with FeatureStore(tmp_path / "study" / "features" / "offset.h5") as store:
        rows = {s: [(str(store.path), store.done("caption", s).size, 1.49)] for s in store.runs("caption")}
        subject = load_subject(config, "sub-01", rows)
        design = layer_design(store, "caption", 1, subject, [1, 2], {"start": 0, "end": 0})
    for run in design:
        np.testing.assert_allclose(run[0, :8], 0, atol=1e-6)          # shifted in at delay 1: the mean
        np.testing.assert_allclose(run[:2, 8:], 0, atol=1e-6)         # and at delay 2
        # the undelayed columns of a run are z-scored over the run: the first delayed block is their shift
        assert abs(run[1:, :8].mean()) < 0.2 and 0.8 < run[1:, :8].std() < 1.2


def test_cv_folds_keep_both_viewings_of_a_repeated_movie_together(tmp_path):
    """A training movie watched twice with the same response (a planted repeat): validated on its other
    viewing, pure noise looks predictable. Folds by stimulus do not see it; folds by fMRI run do."""
    study = write_study(tmp_path / "study", hidden=40, n_targets=60, train_trs=(90, 90, 90), repeat="stim-1")
    spec = yaml.safe_load(study.config.read_text())
    rng = np.random.default_rng(1)
    noise = {s: rng.standard_normal((len(b), 60)).astype(np.float32) for s, b in zip(study.stimuli, study.bold)}
    for i, (stimulus, run) in enumerate(zip(study.stimuli, spec["subjects"]["sub-01"]["runs"])):
        np.save(tmp_path / "study" / run["path"], noise[stimulus])   # both viewings of stim-1: one response
    out = tmp_path / "out"
    assert main(["--config", str(study.config), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out / "scores.h5") as scores:
        cv_score = scores["sub-01/offset/caption/layer_1/cv_score"][()]
        alpha = scores["sub-01/offset/caption/layer_1/alpha"][()]
    assert np.mean(cv_score) < 0.01          # nothing to predict: large alphas, R² near 0

    config = load_config(study.config)
    with FeatureStore(tmp_path / "study" / "features" / "offset.h5") as store:
        rows = {s: [(str(store.path), store.done("caption", s).size, 1.49)] for s in store.runs("caption")}
        subject = load_subject(config, "sub-01", rows)
        X = layer_design(store, "caption", 1, subject, study.delays, config["trim"])
    train = subject.train
    by_run = np.concatenate([np.full(len(X[i]), i) for i in train])
    leaky = fit_ridge(np.concatenate([X[i] for i in train]), np.concatenate([subject.bold[i] for i in train]),
                      by_run, X[subject.test[0]], subject.bold[subject.test[0]], alphas=study.alphas)
    # the inflation that grouping by stimulus removes, and the smaller alphas it would choose
    assert np.mean(leaky.cv_score) > 0.05 and (leaky.cv_score > cv_score).all()
    assert np.median(leaky.alpha) < np.median(alpha) / 10


def test_a_target_constant_only_in_a_test_run_is_fitted_and_scored_nan(tmp_path, caplog):
    study = write_study(tmp_path / "study", hidden=8, n_targets=30)
    spec = yaml.safe_load(study.config.read_text())
    runs = spec["subjects"]["sub-01"]["runs"]
    test_file = tmp_path / "study" / runs[-1]["path"]
    bold = np.load(test_file)
    bold[:, 3] = 7.0                                  # constant in the test run only
    np.save(test_file, bold)
    train_file = tmp_path / "study" / runs[0]["path"]
    bold = np.load(train_file)
    bold[:, 5] = np.nan                               # NaN in a training run: not fitted
    np.save(train_file, bold)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert main(["--config", str(study.config), "--out", str(out)]) == 0
    with h5py.File(out / "scores.h5") as scores:
        valid = scores["sub-01/valid"][()]
        fit = {name: scores[f"sub-01/offset/caption/layer_1/{name}"][()] for name in ("alpha", "cv_score", "test_r")}
    assert valid[3] and not valid[5] and valid.sum() == 29
    assert np.isfinite(fit["alpha"][3]) and np.isfinite(fit["cv_score"][3]) and np.isnan(fit["test_r"][3])
    assert np.isnan(fit["alpha"][5]) and np.isfinite(np.delete(fit["test_r"], [3, 5])).all()
    assert "1 targets are NaN or constant in a test run only (test); fitted, their test scores are NaN" in caplog.text
