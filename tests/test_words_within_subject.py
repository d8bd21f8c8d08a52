"""Within-subject comparison of two models: tests over the blocks of held-out test segments, predicted
by one model trained on the other segments, hold the nominal rate on simulated nulls; the old tests over
every outer fold's blocks do not (a fold's predictions come from weights fitted on the other folds'
responses, so blocks of different folds are correlated), and the planted A-over-B cluster is still found."""
import numpy as np
import pytest

from encoding.words import fit_words
from encoding.words._compare import compare_fits
from encoding.words._study import SubjectTargets
from words_meg_planted import ar_over_words, simulate

N_WORDS, N_SENSORS, N_WINDOWS = 400, 2, 20
SEGMENTS = np.repeat(np.arange(4), N_WORDS // 4)
WINDOWS = [(w / 40, (w + 1) / 40) for w in range(N_WINDOWS)]


def _null_cell_p_values(phi, seeds):
    """Per sensor x window paired-t p of A against B, two models of 8 random features fitted to responses
    they do not predict; 'held-out': compare.test_segments: half (segments 2 and 3, one model trained on
    0 and 1), 'pooled': no test segments, every outer fold's blocks (the old test)."""
    p = {"held-out": [], "pooled": []}
    groups = {f"s{i}": np.array([i]) for i in range(N_SENSORS)}      # one group per sensor: per-cell rows
    for seed in seeds:
        rng = np.random.default_rng(seed)
        Y = ar_over_words(N_WORDS, (N_SENSORS, N_WINDOWS), phi, rng)
        X = {"a": ar_over_words(N_WORDS, (8,), phi, rng), "b": ar_over_words(N_WORDS, (8,), phi, rng)}
        target = SubjectTargets(Y, SEGMENTS, None, groups, WINDOWS, np.ones(N_WORDS, bool))
        for name, test in (("held-out", [2, 3]), ("pooled", None)):
            fits = {("s", m, 0): fit_words(X[m], Y, SEGMENTS, groups, n_permutations=0, test_segments=test)
                    for m in X}
            for group in groups:
                table, _, _ = compare_fits(fits, {"s": target}, ("a", "b"), {"a": 0, "b": 0}, group,
                                           n_permutations=20, block=10)
                rows = table[table["window"] != "all"]
                assert (rows["inference"] == ("held-out" if test else "descriptive")).all()
                p[name].append(rows["p_ttest"].to_numpy(float))
    return {name: np.concatenate(values) for name, values in p.items()}


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_held_out_per_cell_tests_hold_the_nominal_rate_where_pooled_folds_do_not(phi):
    """1,200 null cells (30 nulls x 2 sensors x 20 windows), white and AR(0.5) over words: the held-out
    tests reach p < 0.05 in 5.2 % and 4.9 % of cells (95 % intervals 4.1-6.7 %, 3.8-6.3 %), the old test
    over every outer fold's blocks in 10.6 % and 12.5 %."""
    p = _null_cell_p_values(phi, range(300, 330))
    held_out, pooled = (p[k] < 0.05 for k in ("held-out", "pooled"))
    assert held_out.size == pooled.size == 1200
    assert held_out.mean() < 0.075 and pooled.mean() > 0.09
    # the held-out p-values are near uniform: as many below 0.5 as above (no drift either way)
    assert 0.45 < (p["held-out"] < 0.5).mean() < 0.55


def test_held_out_sensor_x_time_clusters_keep_false_clusters_rare_where_pooled_folds_find_them_often():
    """40 white-noise nulls, 32 sensors of the 10-20 montage x 6 windows, two models of 8 random features:
    a significant (p < 0.05) sensor x time cluster of A against B in 1 null from the held-out blocks
    (200 nulls: 2.5 %, AR(0.5) 5.0 %), in 17 from every outer fold's blocks (200 nulls: 45.5 %, 62.0 %)."""
    import mne

    info = simulate(20)[0].info
    adjacency, _ = mne.channels.find_ch_adjacency(info, "eeg")
    windows = [(w / 10, (w + 1) / 10) for w in range(6)]
    false = {"held-out": 0, "pooled": 0}
    for seed in range(40):
        rng = np.random.default_rng(5000 + seed)
        Y = rng.standard_normal((N_WORDS, 32, 6))
        X = {"a": rng.standard_normal((N_WORDS, 8)), "b": rng.standard_normal((N_WORDS, 8))}
        target = SubjectTargets(Y, SEGMENTS, info, {"all": np.arange(32)}, windows, np.ones(N_WORDS, bool))
        for name, test in (("held-out", [2, 3]), ("pooled", None)):
            fits = {("s", m, 0): fit_words(X[m], Y, SEGMENTS, n_permutations=0, test_segments=test) for m in X}
            _, clusters, _ = compare_fits(fits, {"s": target}, ("a", "b"), {"a": 0, "b": 0}, "all",
                                          n_permutations=100, seed=seed)
            assert (clusters["test"] == "sensors x time").all()
            false[name] += bool((clusters["p"] < 0.05).any())
    assert false["held-out"] <= 4 and false["pooled"] >= 12


def test_held_out_r_is_the_test_words_r_of_one_model_trained_on_the_other_segments():
    """An independent reference: ridge at one alpha by hand (z-scored with the training words' statistics),
    Pearson r over the test words, each test segment centred; the fit's test terms sum to it, and the
    test model's inner-CV score does not change when the test words' responses do."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((N_WORDS, 6)), rng.standard_normal((N_WORDS, 3, 2))
    Y[:, 0, 0] += X[:, 0]
    alpha = 30.0
    for test in ([3], [1, 3]):
        fit = fit_words(X, Y, SEGMENTS, alphas=[alpha], n_permutations=0, test_segments=test)
        rows = np.isin(SEGMENTS, test)
        train_x, train_y = X[~rows], Y[~rows].reshape(int((~rows).sum()), -1)
        mx, sx, my, sy = train_x.mean(0), train_x.std(0), train_y.mean(0), train_y.std(0)
        zx = (train_x - mx) / sx
        weights = np.linalg.solve(zx.T @ zx + alpha * np.eye(6), zx.T @ ((train_y - my) / sy))
        prediction = ((X[rows] - mx) / sx) @ weights
        response = Y[rows].reshape(int(rows.sum()), -1)
        for s in test:                                           # each test segment centred
            within = SEGMENTS[rows] == s
            prediction[within] -= prediction[within].mean(0)
            response[within] -= response[within].mean(0)
        expected = [np.corrcoef(response[:, j], prediction[:, j])[0, 1] for j in range(6)]
        np.testing.assert_allclose(fit.test_sensor_r_terms.sum(0).ravel(), expected, atol=1e-5)
        assert fit.test_sensor_r_terms.shape == (rows.sum(), 3, 2) and fit.test_segments.tolist() == test
        assert fit.test_r_terms.shape == (rows.sum(), 1, 2)
        np.testing.assert_allclose(fit.test_r_terms[:, 0], fit.test_sensor_r_terms.mean(1), atol=1e-6)
        # the layer choice's score: the test model's inner CV over the training segments only
        changed = Y.copy()
        changed[rows] = rng.standard_normal(changed[rows].shape)
        other = fit_words(X, changed, SEGMENTS, alphas=[alpha], n_permutations=0, test_segments=test)
        np.testing.assert_array_equal(other.test_cv_score, fit.test_cv_score)
        assert not np.allclose(other.cv_score, fit.cv_score)    # the outer folds' mean score sees them


def test_test_segments_half_last_and_places_and_bad_values_name_the_file_and_field(tmp_path):
    from encoding.words._config import load_words_config
    from encoding.words._fit import test_segment_labels
    from features.errors import InputError

    four, five = np.repeat(np.arange(4), 3), np.repeat(np.arange(5), 3)
    assert test_segment_labels("half", four) == [2, 3] and test_segment_labels("half", five) == [3, 4]
    assert test_segment_labels("half", np.repeat(np.arange(3), 3)) == [2]
    assert test_segment_labels("last", four) == [3] and test_segment_labels([2, 0], four) == [0, 2]
    assert test_segment_labels(1, four) == [1] and test_segment_labels(None, four) == []
    with pytest.raises(InputError, match=r"study.yaml: field 'compare.test_segments' names segment 4, but there "
                                         r"are 4 segments"):
        test_segment_labels([4], four, "study.yaml: field 'compare.test_segments'")
    with pytest.raises(InputError, match="leaves 1 of 4 segments to train on"):
        test_segment_labels([0, 1, 2], four)
    path = tmp_path / "study.yaml"
    for bad in ("first", -1, [], [1.5], True):
        path.write_text(yaml_text({"models": {"a": "a"}, "subjects": {"s": {"epochs": "e.npy", "words": "w.tsv"}},
                                   "compare": {"test_segments": bad}}))
        with pytest.raises(InputError, match=rf"^{path}: field 'compare.test_segments' expected half, last, null, "
                                             r"or segment places \(whole numbers >= 0\), found"):
            load_words_config(path)
    path.write_text(yaml_text({"models": {"a": "a"}, "subjects": {"s": {"epochs": "e.npy", "words": "w.tsv"}}}))
    assert load_words_config(path)["compare"]["test_segments"] == "half"


def yaml_text(settings):
    import yaml

    return yaml.safe_dump(settings)
