"""The notebook estimators (issue 14) against himalaya's own estimators on the reference recipe's arrays
(tests/reference_recipe.py: features with large offsets, a movie watched twice), and planted weights."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import GroupRidgeCV, RidgeCV
from himalaya.scoring import r2_score
from sklearn.base import clone
from sklearn.model_selection import LeaveOneGroupOut

from encoding.ridge.estimators import RunwiseBandedRidgeCV, RunwiseRidgeCV
from features.errors import InputError
from reference_recipe import clean, delay, standardize, write_study


@pytest.fixture(autouse=True)
def one_blas_thread():
    """These arrays are small: with several BLAS threads on a shared 2-core machine, OpenBLAS spends
    more time waiting than working (a 0.3 s banded fit took 40 s)."""
    with threadpool_limits(1):
        yield


def _runs(study, layer_of=None):
    """(train X runs, train Y runs, train stimuli, test X runs, test Y runs), raw, in config order."""
    features = layer_of or study.features
    train = [i for i, s in enumerate(study.stimuli) if s != study.test]
    test = [i for i, s in enumerate(study.stimuli) if s == study.test]
    pick = lambda index: [features[study.stimuli[i]] for i in index]  # noqa: E731
    return (pick(train), [study.bold[i] for i in train], [study.stimuli[i] for i in train],
            pick(test), [study.bold[i] for i in test])


def _reference_rows(X_runs, Y_runs, delays):
    """The reference recipe: StandardScaler per run, delays within runs, detrend and z-score per run."""
    X = np.concatenate([delay(standardize(x), delays) for x in X_runs]).astype(np.float32)
    Y = np.concatenate([clean(y) for y in Y_runs]).astype(np.float32)
    return X, Y


@pytest.mark.parametrize("hidden, kernel", [(16, False), (120, True)], ids=["primal", "kernel"])
def test_equals_himalaya_ridgecv_on_the_reference_recipe(tmp_path, hidden, kernel):
    # 380 training rows: 64 delayed features take the primal form, 480 the kernel form
    study = write_study(tmp_path / "study", hidden=hidden, n_targets=120, train_trs=(80, 70, 90, 60), test_trs=40)
    X_runs, Y_runs, stimuli, X_test_runs, Y_test_runs = _runs(study)
    model = RunwiseRidgeCV(alphas=study.alphas, delays=study.delays).fit(X_runs, Y_runs, groups=stimuli)

    X, Y = _reference_rows(X_runs, Y_runs, study.delays)
    groups = np.concatenate([[s] * len(y) for s, y in zip(stimuli, Y_runs)])
    cv = list(LeaveOneGroupOut().split(X, groups=groups))
    params = dict(score_func=r2_score)
    reference = (KernelRidgeCV(alphas=study.alphas, kernel="linear", cv=cv, solver_params=params) if kernel
                 else RidgeCV(alphas=study.alphas, cv=cv, solver_params=params)).fit(X, Y)
    X_test, Y_test = _reference_rows(X_test_runs, Y_test_runs, study.delays)

    same = np.isclose(model.best_alphas_, reference.best_alphas_, rtol=1e-4)
    assert same.mean() >= 0.99
    np.testing.assert_allclose(model.cv_scores_[same], np.asarray(reference.cv_scores_)[same], atol=2e-4)
    assert model.solver_ == ("kernel" if kernel else "primal")
    weights = np.asarray(reference.get_primal_coef() if kernel else reference.coef_)
    ours = model.get_primal_coef()
    scale = np.abs(weights[:, same]).max()
    assert np.abs(ours[:, same] - weights[:, same]).max() < 2e-3 * scale
    if kernel:
        assert not hasattr(model, "coef_")
        np.testing.assert_allclose(model.dual_coef_[:, same], np.asarray(reference.dual_coef_)[:, same],
                                   atol=2e-3 * np.abs(reference.dual_coef_).max())
    else:
        assert not hasattr(model, "dual_coef_") and model.coef_.shape == (hidden * len(study.delays), 120)
    assert model.n_features_in_ == hidden
    prediction = model.predict(X_test_runs)
    expected = np.asarray(reference.predict(X_test))
    assert np.abs(prediction[:, same] - expected[:, same]).max() < 2e-3 * np.abs(expected).max()
    r = model.score(X_test_runs, Y_test_runs, metric="r")
    r_reference = [np.corrcoef(expected[:, j], Y_test[:, j])[0, 1] for j in range(Y_test.shape[1])]
    np.testing.assert_allclose(r[same], np.asarray(r_reference)[same], atol=1e-3)


def test_recovers_planted_weights_and_predicts_a_held_out_run():
    rng = np.random.default_rng(0)
    delays, n_features, n_targets = [1, 2, 3], 6, 25
    X_runs = [rng.standard_normal((150, n_features)) * rng.uniform(0.5, 4, n_features) + 5 for _ in range(5)]
    weights = rng.standard_normal((n_features * len(delays), n_targets))
    Y_runs = [delay(standardize(x), delays) @ weights + 0.05 * rng.standard_normal((150, n_targets))
              for x in X_runs]
    model = RunwiseRidgeCV(alphas=np.logspace(-3, 3, 13), delays=delays, preprocess_targets=False)
    model.fit(X_runs[:4], Y_runs[:4])
    assert model.coef_.shape == weights.shape
    assert np.abs(model.coef_ - weights).max() < 0.02 * np.abs(weights).max()
    assert (model.score(X_runs[4:], Y_runs[4:]) > 0.99).all()
    refit = clone(model).fit(X_runs[1:], Y_runs[1:])        # an unfitted copy, fitted anew
    assert not np.array_equal(refit.coef_, model.coef_)
    assert np.abs(refit.coef_ - weights).max() < 0.02 * np.abs(weights).max()


def test_banded_equals_himalaya_group_ridge_cv_and_finds_each_bands_targets(tmp_path):
    study = write_study(tmp_path / "study", hidden=8, n_targets=60, two_layers=True, repeat=None)
    from features.store import FeatureStore

    with FeatureStore(tmp_path / "study" / "features" / "offset.h5") as store:
        layer_0 = {s: store.read_layer("caption", s, 0) for s in store.runs("caption")}
    band_a, Y_runs, stimuli, band_a_test, Y_test_runs = _runs(study, layer_0)      # drives even targets
    band_b, _, _, band_b_test, _ = _runs(study)                                    # drives odd targets
    alphas = np.logspace(-2, 4, 7)
    model = RunwiseBandedRidgeCV(alphas=alphas, delays=study.delays, n_iter=8).fit([band_a, band_b], Y_runs,
                                                                                    groups=stimuli)

    Xa, Y = _reference_rows(band_a, Y_runs, study.delays)
    Xb, _ = _reference_rows(band_b, Y_runs, study.delays)
    groups = np.concatenate([[s] * len(y) for s, y in zip(stimuli, Y_runs)])
    params = dict(score_func=r2_score, n_iter=8, alphas=alphas, progress_bar=False)
    reference = GroupRidgeCV(groups="input", solver_params=params, random_state=0,
                             cv=list(LeaveOneGroupOut().split(Xa, groups=groups))).fit([Xa, Xb], Y)
    np.testing.assert_allclose(model.deltas_, np.asarray(reference.deltas_), atol=1e-4)
    np.testing.assert_allclose(model.coef_, np.asarray(reference.coef_), atol=1e-3 * np.abs(reference.coef_).max())
    Xa_test, Y_test = _reference_rows(band_a_test, Y_test_runs, study.delays)
    Xb_test, _ = _reference_rows(band_b_test, Y_test_runs, study.delays)
    prediction = model.predict([band_a_test, band_b_test])
    np.testing.assert_allclose(prediction, np.asarray(reference.predict([Xa_test, Xb_test])),
                               atol=1e-3 * np.abs(prediction).max())

    split = model.score([band_a_test, band_b_test], Y_test_runs, split=True)
    assert split.shape == (2, 60)
    assert (split[0, ::2] > split[1, ::2]).mean() > 0.9 and (split[1, 1::2] > split[0, 1::2]).mean() > 0.9
    assert (model.band_weights_[0, ::2] > model.band_weights_[1, ::2]).mean() > 0.9


def test_bad_runs_are_one_sentence_naming_the_run():
    rng = np.random.default_rng(1)
    X_runs = [rng.standard_normal((40, 3)) for _ in range(3)]
    Y_runs = [rng.standard_normal((40, 5)) for _ in range(3)]
    model = RunwiseRidgeCV(delays=[1])
    with pytest.raises(InputError, match=r"X_runs\[1\]: expected 40 rows as Y_runs\[1\] has, found 39"):
        model.fit([X_runs[0], X_runs[1][:39], X_runs[2]], Y_runs)
    with pytest.raises(InputError, match=r"X_runs\[2\]: expected 3 columns as X_runs\[0\] has, found 2"):
        model.fit([X_runs[0], X_runs[1], X_runs[2][:, :2]], Y_runs)
    with pytest.raises(InputError, match=r"groups: expected one label per run \(3\), found 2"):
        model.fit(X_runs, Y_runs, groups=["a", "b"])
    bad = X_runs[0].copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match=r"X_runs\[0\]: expected finite values"):
        model.fit([bad] + X_runs[1:], Y_runs)


def test_banded_bad_runs_are_one_sentence_naming_the_band_and_run():
    rng = np.random.default_rng(2)
    band_a = [rng.standard_normal((40, 3)) for _ in range(3)]
    band_b = [rng.standard_normal((40, 2)) for _ in range(3)]
    Y_runs = [rng.standard_normal((40, 5)) for _ in range(3)]
    model = RunwiseBandedRidgeCV(delays=[1], n_iter=2)
    with pytest.raises(InputError, match=r"Xs_runs\[1\]\[2\]: expected 40 rows as Y_runs\[2\] has, found 39"):
        model.fit([band_a, band_b[:2] + [band_b[2][:39]]], Y_runs)
    with pytest.raises(InputError, match=r"Xs_runs\[0\]: expected one run per run of Y_runs \(3\), found 2"):
        model.fit([band_a[:2], band_b], Y_runs)
    with pytest.raises(InputError, match=r"groups: expected one label per run \(3\), found 4"):
        model.fit([band_a, band_b], Y_runs, groups=["a", "b", "a", "c"])
    with pytest.raises(InputError, match=r"Xs_runs: expected a list of two or more bands"):
        model.fit([band_a], Y_runs)


@pytest.mark.parametrize("estimator, params", [
    (RunwiseRidgeCV, dict(alphas=[0.1, 10.0], delays=[1, 2], cv=3, trim=(2, 1), preprocess_targets=False,
                          memory_gb=1.5, n_targets_batch=7)),
    (RunwiseBandedRidgeCV, dict(alphas=[1.0], delays=[2], n_iter=4, cv=2, trim=(1, 0), preprocess_targets=False,
                                random_state=3, n_targets_batch=5)),
], ids=["ridge", "banded"])
def test_get_params_gives_every_init_parameter_and_clone_keeps_them(estimator, params):
    model = estimator(**params)
    assert model.get_params() == params                      # every parameter of the signature, as given
    copy = clone(model)
    assert copy is not model and copy.get_params() == params
