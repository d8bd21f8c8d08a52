"""Two models on the same planted MEG data: the model whose features generated the responses wins, with
the expected sign and p, word by word and over time (MNE's cluster permutation test)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from encoding.words import cluster_test_over_time, compare_fits
from encoding.words.__main__ import main
from encoding.words._config import chosen_windows, load_words_config
from encoding.words._run import prepare
from encoding.words._study import fit_study, sensor_terms
from features.errors import InputError
from words_meg_study import CHANNELS, EFFECT_1, PLANTED_LAYER, build_tiny_gpt2, one_torch_thread  # noqa: F401
from words_meg_study import write_study

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    tiny = build_tiny_gpt2(folder / "tiny", seed=0)
    # a narrower random network: the same words, 8 features that cannot carry the planted read-out
    build_tiny_gpt2(folder / "other", seed=1, width=8)
    config, facts = write_study(folder, tiny, n_sentences=80, other_models={"other": "other"}, n_subjects=2,
                                config_extra={"layers": [PLANTED_LAYER],
                                              "compare": {"sensor_group": "effect_1", "n_permutations": 500,
                                                          "windows": [0.1, 0.4]}})
    return folder, config, facts


def test_the_model_that_generated_the_responses_wins_with_the_expected_sign_and_p(study):
    folder, config, _ = study
    assert main(["compare", "--config", str(config), "--models", "tiny,other"]) == 0
    out = folder / "results-compare"
    both = pd.read_csv(out / "compare.csv")
    table = both[both["subject"] == "sub-01"].set_index("window")
    planted = table.loc["2"]                          # 200-300 ms, where effect 1 lives
    assert planted["sensor_group"] == "effect_1" and planted["r_a"] > planted["r_b"] > 0
    assert planted["r_difference"] > 0.05 and planted["p_wilcoxon"] < 1e-3 and planted["p_ttest"] < 1e-3
    assert table.loc["all", "window_start"] == 0.1 and table.loc["all", "window_stop"] == 0.4
    assert table.loc["all", "r_difference"] > 0 and table.loc["all", "p_ttest"] < 0.05
    for empty in ("0", "1", "3"):                       # nothing planted there: no reliable difference
        assert table.loc[empty, "p_wilcoxon"] > 0.001
    # within a subject the tests use the later half of the segments (the default compare.test_segments),
    # predicted by one model trained on the earlier half
    assert (table["inference"] == "held-out").all() and (table["test_segments"] == "2 3").all()
    # across subjects: each subject's pooled r_A - r_B (every word, its outer fold's model), its mean in the
    # group row
    group = both[both["subject"] == "group"].set_index("window")
    assert (group["inference"] == "across subjects").all()
    subject_differences = both[both["window"] == "2"].set_index("subject")["pooled_r_difference"]
    assert group.loc["2", "n_subjects"] == 2 and (subject_differences[["sub-01", "sub-02"]] > 0.05).all()
    assert group.loc["2", "r_difference"] == pytest.approx(subject_differences[["sub-01", "sub-02"]].mean())
    clusters = pd.read_csv(out / "clusters.csv")
    clusters = clusters[clusters["subject"] == "sub-01"]
    winning = clusters[clusters["p"] < 0.05]
    assert len(winning) == 1 and winning["sign"].iloc[0] == 1
    assert winning["start"].iloc[0] <= 0.2 and winning["stop"].iloc[0] >= 0.3
    for subject in ("sub-01", "sub-02"):
        assert (out / "figures" / f"difference_{subject}.png").read_bytes()[:4] == b"\x89PNG"


def test_swapping_the_models_flips_the_sign_and_keeps_the_p_values(study):
    _, config_path, _ = study
    config = load_words_config(config_path)
    story, subjects = prepare(config)
    fits, _ = fit_study(config, story, subjects, ["tiny", "other"], progress=False)
    layers = {"tiny": PLANTED_LAYER, "other": PLANTED_LAYER}
    forward, clusters_ab, _ = compare_fits(fits, subjects, ("tiny", "other"), layers, "effect_1", seed=0)
    backward, clusters_ba, _ = compare_fits(fits, subjects, ("other", "tiny"), layers, "effect_1", seed=0)
    np.testing.assert_allclose(forward["r_difference"], -backward["r_difference"], atol=1e-12)
    np.testing.assert_allclose(forward["p_wilcoxon"], backward["p_wilcoxon"])
    assert (clusters_ab["sign"] == -clusters_ba["sign"]).all()
    # the per-word terms add up to each model's r, averaged over the group's sensors
    fit = fits["sub-01", "tiny", PLANTED_LAYER]
    group = [CHANNELS.index(name) for name in EFFECT_1["sensors"]]
    np.testing.assert_allclose(fit.word_r_terms[:, 1].sum(0), fit.r[group].mean(0), atol=1e-5)
    row = (forward["window"] == 2) & (forward["subject"] == "sub-01")
    np.testing.assert_allclose(forward.loc[row, "pooled_r_a"], fit.r[group, 2].mean(), atol=1e-5)
    # the tested r: the held-out test words' terms (not in the work file: computed again by the same fit), summed,
    # averaged over the group
    assert fit.test_sensor_r_terms is None
    with np.load(fit.extra["file"]) as data:
        assert not {"sensor_r_terms", "test_sensor_r_terms"} & set(data.files)
    test_terms = sensor_terms(fit, "test_sensor_r_terms")
    np.testing.assert_allclose(forward.loc[row, "r_a"], test_terms[:, group, 2].sum(0).mean(), atol=1e-5)
    np.testing.assert_allclose(fit.test_r_terms[:, 1], test_terms[:, group].mean(1), atol=1e-6)
    # the sensor x time comparison of fits read from the work files equals that of the fits as computed
    fresh = {key: f.extra["refit"]() for key, f in fits.items() if key[2] == PLANTED_LAYER}
    assert fresh["sub-01", "tiny", PLANTED_LAYER].test_sensor_r_terms is not None
    read_table, read_clusters, _ = compare_fits(fits, subjects, ("tiny", "other"), layers, "all", n_permutations=200)
    fresh_table, fresh_clusters, _ = compare_fits(fresh, subjects, ("tiny", "other"), layers, "all",
                                                  n_permutations=200)
    pd.testing.assert_frame_equal(read_table, fresh_table)
    pd.testing.assert_frame_equal(read_clusters, fresh_clusters)
    assert (read_clusters["test"] == "sensors x time").sum() >= 2          # the per-sensor terms were tested


def test_cluster_statistic_is_the_paired_t_of_scipy():
    rng = np.random.default_rng(0)
    differences = rng.standard_normal((300, 8))
    differences[:, 3:5] += 0.4
    t, clusters = cluster_test_over_time(differences, n_permutations=200, seed=0)
    np.testing.assert_allclose(t, stats.ttest_1samp(differences, 0).statistic, rtol=1e-10)
    significant = [mask for mask, p, sign in clusters if p < 0.05]
    assert len(significant) == 1 and np.flatnonzero(significant[0]).tolist() == [3, 4]


def test_chosen_windows_keep_those_inside_the_span_and_name_the_field_when_none_is():
    windows = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4)]
    assert chosen_windows(windows, None, "compare: field 'windows'").tolist() == [True] * 4
    assert chosen_windows(windows, (0.1, 0.3), "compare: field 'windows'").tolist() == [False, True, True, False]
    with pytest.raises(InputError, match=r"^diverge: field 'diverge.windows' \[0.5, 0.9\] s holds none"):
        chosen_windows(windows, (0.5, 0.9), "diverge: field 'diverge.windows'")
