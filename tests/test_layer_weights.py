"""Layer weights per target (issue 32, part 1): one banded ridge over all layers, each layer a band.

The planted study (``encoding.demo.mixture_study``): a 6-layer store whose adjacent layers correlate (0.5 per
unit, as a model's hidden states do), and one subject whose targets are driven by layer 1, by layer 4, or by an
equal mixture of both (each exactly half of every target's signal variance). The layer weights must give the
mixture targets both layers while the layer sweep's argmax gives each of them one, give the single-layer
targets their own layer, and fit the mixtures better on the held-out run.
"""
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from encoding.demo.mixture_study import PLANTED, write_mixture_study
from encoding.layer_weights import band_designs, band_layers, fit_layer_weights, weight_samples
from encoding.run import main

KEY = "sub-01/chain/caption"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixtures")
    config = write_mixture_study(folder)
    out = folder / "out"
    assert main(["--config", str(config), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out / "scores.h5") as scores:
        fit = {name: scores[f"{KEY}/layer_weights/{name}"][()] for name in ("weights", "preferred_depth", "test_r")}
        fit["best_layer"] = scores[f"{KEY}/best_layer"][()]
        fit["rois"] = {roi: np.arange(i * 30, (i + 1) * 30) for i, roi in enumerate(PLANTED)}
    return folder, config, out, fit


def test_mixture_targets_get_both_layers_while_the_argmax_picks_one(study):
    *_, fit = study
    mixture = fit["rois"]["mixture1+4"]
    weights = fit["weights"][:, mixture]
    assert ((weights[1] > 0.25) & (weights[4] > 0.25)).mean() >= 0.8        # measured: 26 of 30
    assert weights[1].mean() == pytest.approx(0.5, abs=0.05) and weights[4].mean() == pytest.approx(0.5, abs=0.05)
    assert weights[[0, 2, 3, 5]].max() < 0.1                                   # nothing elsewhere
    assert np.all((fit["preferred_depth"][mixture] > 0.25) & (fit["preferred_depth"][mixture] < 0.75))
    # the argmax gives each mixture target one of its layers: depth 0.2 or 0.8, never between
    assert np.isin(fit["best_layer"][mixture], [1, 4]).mean() >= 0.9
    assert {1, 4} <= set(fit["best_layer"][mixture])


def test_single_layer_targets_get_their_own_layer(study):
    *_, fit = study
    for roi, layer in (("layer1", 1), ("layer4", 4)):
        index = fit["rois"][roi]
        assert fit["weights"][layer, index].min() > 0.8 and fit["weights"][layer, index].mean() > 0.9
        np.testing.assert_allclose(fit["preferred_depth"][index], layer / 5, atol=0.1)
        assert np.all(fit["best_layer"][index] == layer)


def test_weights_sum_to_one_and_the_table_sets_the_banded_r_beside_the_best_layers(study):
    _, _, out, fit = study
    np.testing.assert_allclose(fit["weights"].sum(0), 1, atol=1e-6)
    table = pd.read_csv(out / "layer_weights.csv").set_index("roi")
    # mixtures: the banded fit predicts the held-out run far better than either layer alone
    assert table.loc["mixture1+4", "test_r_gain"] > 0.1                         # measured: 0.68 against 0.51
    assert table.loc["mixture1+4", "frac_targets_mixed"] >= 0.8
    for roi in ("layer1", "layer4"):
        assert abs(table.loc[roi, "test_r_gain"]) < 0.01 and table.loc[roi, "frac_targets_mixed"] == 0
    assert table.loc["mixture1+4", "preferred_depth_weights"] == pytest.approx(0.5, abs=0.05)
    assert table.loc["layer1", "preferred_depth_weights"] == pytest.approx(0.2, abs=0.03)
    assert table.loc["mixture1+4", ["weight_layer1", "weight_layer4"]].sum() > 0.95


def test_the_hierarchy_table_puts_the_weighted_depth_beside_the_argmax(study):
    _, _, out, _ = study
    rows = pd.read_csv(out / "hierarchy.csv").set_index("roi")
    assert rows.loc["mixture1+4", "preferred_depth_argmax"] in (0.2, 0.8)
    assert rows.loc["mixture1+4", "preferred_depth_layer_weights"] == pytest.approx(0.5, abs=0.05)
    low, high = rows.loc["mixture1+4", ["layer_weights_ci_low", "layer_weights_ci_high"]]
    assert low < 0.5 < high and high - low < 0.15
    tests = pd.read_csv(out / "hierarchy_tests.csv").set_index("measure")
    assert tests.loc["layer_weights", "spearman_rho"] == pytest.approx(1.0)      # levels 1, 2.5, 4


def test_native_maps_hold_each_bands_weight_and_the_weighted_depth(study):
    _, _, out, fit = study
    index = pd.read_csv(out / "maps.tsv", sep="\t", keep_default_na=False)
    weights = index[index["stat"] == "layerweight"]
    assert list(weights["desc"]) == [f"layer{k}" for k in range(6)]
    for k, row in enumerate(weights.itertuples()):
        values = pd.read_csv(out / row.filename, sep="\t", na_values="n/a")["layerweight"].to_numpy(np.float32)
        np.testing.assert_array_equal(values, fit["weights"][k])
    depth = index[(index["stat"] == "depth") & (index["desc"] == "layerweights")]
    values = pd.read_csv(out / depth["filename"].iloc[0], sep="\t", na_values="n/a")["depth"].to_numpy(np.float32)
    np.testing.assert_array_equal(values, fit["preferred_depth"])


def test_a_rerun_reuses_the_layer_weights_fit_and_new_settings_refit_it_alone(study, tmp_path, caplog):
    folder, config, out, fit = study
    with caplog.at_level("INFO"):
        assert main(["--config", str(config), "--out", str(out), "--overwrite"]) == 0
    assert "7 of 7 fits already done" in caplog.text
    caplog.clear()
    spec = yaml.safe_load(config.read_text())
    variant = folder / "grouped.yaml"
    # three bands of two layers each, every layer on its 8 leading principal components
    variant.write_text(yaml.safe_dump({**spec, "layer_weights": {"bands": 3, "pca_components": 8}}))
    with caplog.at_level("INFO"):
        assert main(["--config", str(variant), "--out", str(tmp_path / "grouped"),
                     "--work-dir", str(folder / "out.work")]) == 0
    assert "6 of 7 fits already done" in caplog.text
    assert "1 fits were computed with another 'settings.layer_weights.bands'" in caplog.text
    with h5py.File(tmp_path / "grouped" / "scores.h5") as scores:
        group = scores[f"{KEY}/layer_weights"]
        assert group.attrs["band_labels"] == '["layers0to1", "layers2to3", "layers4to5"]'
        weights = group["weights"][()]
    mixture = fit["rois"]["mixture1+4"]
    # layers 1 and 4 lie in the first and last bands: the mixture gets both, the middle band nothing much
    assert ((weights[0, mixture] > 0.25) & (weights[2, mixture] > 0.25)).mean() >= 0.8
    # a single layer's band gets most of the weight; its neighbour in the middle band (correlated 0.5) some
    assert weights[0, fit["rois"]["layer1"]].mean() > 0.7 and weights[2, fit["rois"]["layer4"]].mean() > 0.7


def test_the_dry_run_names_the_layer_weights_fit(study, capsys):
    _, config, out, _ = study
    assert main(["--config", str(config), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "chain (layer weights)" in printed and "7 fits, 7 already done" in printed


def test_pairs_try_each_band_alone_all_equally_and_every_pair_at_each_split():
    gammas = weight_samples(4, "pairs", ratios=3)
    assert gammas.shape == (4 + 1 + 6 * 3, 4)
    np.testing.assert_allclose(gammas.sum(1), 1)
    np.testing.assert_array_equal(gammas[:4], np.eye(4))
    assert sorted({round(v, 6) for v in gammas[5:].ravel()} - {0}) == [0.25, 0.5, 0.75]
    neighbours = weight_samples(6, "neighbours", ratios=5)
    assert neighbours.shape == (6 + 1 + 5 * 5, 6)
    assert all(np.flatnonzero(row).tolist() in ([k, k + 1] for k in range(5)) for row in neighbours[7:])
    assert weight_samples(6, "pairs", ratios=5, n_iter=10).shape == (6 + 1 + 15 * 5 + 10, 6)
    assert weight_samples(6, "random", n_iter=20).shape == (20, 6)


def test_groups_of_adjacent_layers_are_scaled_to_equal_traces():
    assert band_layers(range(33), 8) == [list(range(0, 5))] + [list(range(5 + 4 * i, 9 + 4 * i)) for i in range(7)]
    assert band_layers([0, 3, 5]) == [[0], [3], [5]]
    rng = np.random.default_rng(0)
    train = {k: rng.standard_normal((50, 4)).astype(np.float32) for k in range(5)}
    test = {k: rng.standard_normal((10, 4)).astype(np.float32) for k in range(5)}
    Xs_train, Xs_test, scales = band_designs(train, test, [[0, 1, 2], [3, 4]])
    traces = [float((X.astype(np.float64) ** 2).sum()) for X in Xs_train]
    assert traces[0] == pytest.approx(traces[1], rel=1e-5)
    np.testing.assert_allclose(Xs_test[1], np.hstack([test[3], test[4]]) * scales[1], rtol=1e-6)


def test_random_search_without_samples_is_refused_with_one_sentence(study, tmp_path, capsys):
    _, config, _, _ = study
    spec = yaml.safe_load(config.read_text())
    variant = config.parent / "random.yaml"
    variant.write_text(yaml.safe_dump({**spec, "layer_weights": {"search": "random"}}))
    assert main(["--config", str(variant), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {variant}: field 'layer_weights.n_iter' must be >= 1 with search 'random' (the number of "
        f"Dirichlet samples), found 0.")


def test_the_fit_equals_himalayas_multiple_kernel_ridge_on_the_same_samples():
    """fit_layer_weights (the fast kernel-form engine) against himalaya's MultipleKernelRidgeCV given the same
    band-weight samples (each layer alone, all equally, every pair at three splits), in float64: the same alpha
    and sample per target, hence the same normalized weights, and the same scores."""
    from threadpoolctl import threadpool_limits

    from encoding.ridge import fit_banded_ridge

    rng = np.random.default_rng(1)
    n_runs, n_per_run, n_layers, width = 6, 50, 4, 90   # 360 features over 250 training TRs: the kernel form
    layers = [rng.standard_normal((n_runs * n_per_run, width))]
    for _ in range(1, n_layers):
        layers.append(np.sqrt(0.5) * layers[-1] + np.sqrt(0.5) * rng.standard_normal(layers[0].shape))
    readout = [X[:, :10] @ rng.standard_normal((10, 24)) for X in layers]
    share = np.linspace(0, 1, 24)   # target j: layer 0 and layer 2 in proportion 1 - share_j, share_j
    Y = np.sqrt(1 - share) * readout[0] / readout[0].std(0) + np.sqrt(share) * readout[2] / readout[2].std(0)
    Y += rng.standard_normal(Y.shape)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    train = runs < n_runs - 1
    data = ([X[train] for X in layers], Y[train], runs[train], [X[~train] for X in layers], Y[~train])
    gammas = weight_samples(n_layers, "pairs", ratios=3)
    alphas = np.logspace(0, 4, 9)
    with threadpool_limits(1):
        ours = fit_layer_weights(*data, np.arange(n_layers) / 3, gammas, alphas)
        reference = fit_banded_ridge(*data, alphas=alphas, n_iter=gammas, solver="himalaya")
    assert (ours.solver, reference.solver) == ("banded-fast-kernel", "banded-kernel")
    np.testing.assert_allclose(ours.alpha, reference.alpha, rtol=1e-6)
    reference_weights = reference.band_weights / reference.band_weights.sum(0)
    np.testing.assert_allclose(ours.extra["weights"], reference_weights, atol=1e-6)
    for name in ("cv_score", "test_r", "test_r2"):
        np.testing.assert_allclose(getattr(ours, name), getattr(reference, name), atol=1e-8)
    # the planted shares come back: the first targets lean on layer 0, the last on layer 2, layers 1 and 3 get
    # little (measured: 0.78, 0.69, 0.04; correlation of layer 2's weight with share_j 0.73)
    weights = ours.extra["weights"]
    assert weights[0, :8].mean() > 0.7 and weights[2, -8:].mean() > 0.6 and weights[[1, 3]].mean() < 0.1
    assert np.corrcoef(weights[2], share)[0, 1] > 0.6


@pytest.mark.parametrize("value, sentence", [
    ({"bands": 1}, "field 'layer_weights.bands' expected a whole number >= 2 or null, found 1."),
    ({"search": "spiral"}, "field 'layer_weights.search' expected pairs, neighbours or random, found 'spiral'."),
    ({"pca_components": 10000}, "field 'layer_weights.pca_components' expected 1..16 (the training TRs and delayed "
                                "features of layer 0), found 10000."),
])
def test_bad_layer_weights_settings_end_in_one_sentence_naming_the_key(study, tmp_path, capsys, value, sentence):
    _, config, _, _ = study
    variant = config.parent / "bad.yaml"
    variant.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "layer_weights": value}))
    assert main(["--config", str(variant), "--out", str(tmp_path / "bad"), "--quiet",
                 "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(sentence) and "Traceback" not in err
