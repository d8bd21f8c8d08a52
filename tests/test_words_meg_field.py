"""The MEG study by the field's rules, on a planted continuous-speech study (words every 500 ms): no
baseline by default (the old -200..0 ms baseline leaked the previous word's response and gave false
early effects), MNE's warnings kept, filtering, BAD annotations, fold-wise r, sensor x time clusters with
block-wise sign flips over held-out test segments, and contrast mining."""
import logging

import numpy as np
import pytest

from encoding.words import fit_words
from encoding.words._config import load_words_config
from encoding.words._run import prepare
from words_meg_planted import CHANNELS, PLANTED, ar_over_words, model_features, write

EARLY = [0, 1, 2]          # windows 0-300 ms: nothing is planted there
LATE = [3, 4]              # 300-500 ms: the planted response


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    config, facts = write(folder)
    return folder, config, facts


def _fit(config_path, X, **overrides):
    config = load_words_config(config_path)
    config["epochs"].update(overrides)
    _, subjects = prepare(config)
    target = subjects["sub-01"]
    return fit_words(X, target.Y, target.segments, n_permutations=200, permutation_block=10, seed=0)


def test_the_old_baseline_gives_false_early_effects_and_the_default_none(planted, caplog):
    folder, config, facts = planted
    X, _ = model_features(facts["amplitude"], facts["number"])
    rows = [CHANNELS.index(c) for c in PLANTED]
    with caplog.at_level(logging.WARNING, logger="encoding.words._meg"):
        old = _fit(config, X, baseline=[-0.2, 0.0])
    assert "overlaps the previous word's epoch for 399 of 400 words" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="encoding.words._meg"):
        new = _fit(config, X)                                # the default: no baseline
    assert "overlaps" not in caplog.text
    early_old = (old.p[np.ix_(rows, EARLY)] < 0.05).sum()
    early_new = (new.p[np.ix_(rows, EARLY)] < 0.05).sum()
    # 21 early cells at the planted sensors: the previous word's response, subtracted as a baseline, is
    # "predicted" by the context features in every one of them; without a baseline only chance remains
    # (5 % of 21 is one cell; a sensor's three early windows share their slow noise, so strays come in
    # runs: 3 here, 0 to 5 over seeds 0-2, like the null sensors' 4.7-5.3 %)
    assert early_old == 21 and early_new <= 4
    assert np.median(old.r[np.ix_(rows, EARLY)]) > 0.15 and abs(np.median(new.r[np.ix_(rows, EARLY)])) < 0.05
    # the planted late response is found either way
    assert (new.p[np.ix_(rows, LATE)] < 0.01).all() and (old.p[np.ix_(rows, LATE)] < 0.01).all()
    assert new.r[np.ix_(rows, LATE)].min() > 0.3


def test_permuted_blocks_stay_inside_a_segment_and_move_across_segments():
    """The README's words: blocks of consecutive words, none crossing a segment boundary, exchanged across
    the whole story; a segment's leftover words stay in place."""
    from encoding.stats import block_permutations

    lengths = [25, 23, 30]                                   # segments of 25, 23 and 30 words
    permutations = block_permutations(lengths, 10, 200, seed=0)
    segment = np.repeat([0, 1, 2], lengths)
    blocks = permutations.blocks
    assert len(blocks) == 2 + 2 + 3 and all(len(set(segment[b])) == 1 for b in blocks)
    assert sorted(permutations.fixed.tolist()) == [20, 21, 22, 23, 24, 45, 46, 47]
    # how often a block lands in another segment's place: 1 - sum(n_s^2) / n^2 of all slots = 0.65
    moved = np.mean([segment[blocks[order[b]][0]] != segment[blocks[b][0]] for order in permutations.order
                     for b in range(len(blocks))])
    assert moved == pytest.approx(1 - (4 + 4 + 9) / 49, abs=0.05)


def _hand_targets(raw, onsets, decim, windows, tmin=-0.2, tmax=0.8):
    """Independent reference: cut every word's samples by hand, keep every decim-th, average per window."""
    data, sfreq = raw.get_data(), raw.info["sfreq"]
    first, last = int(round(tmin * sfreq)), int(round(tmax * sfreq))
    start = np.round(onsets * sfreq).astype(int)
    epochs = np.stack([data[:, s + first:s + last + 1] for s in start])[..., ::decim]
    times = (np.arange(first, last + 1) / sfreq)[::decim]
    return np.stack([epochs[..., (times >= a - 1e-9) & (times < b - 1e-9)].mean(-1) for a, b in windows], -1)


def test_mne_warnings_reach_the_user_and_filtering_is_mnes(planted, tmp_path):
    import mne
    import yaml

    folder, config_path, facts = planted
    raw = mne.io.read_raw(folder / "sub-01_raw.fif", preload=True, verbose="error")
    level = logging.getLogger("mne").level
    windows = [(w / 10, (w + 1) / 10) for w in range(6)]

    def targets(**sections):
        settings = yaml.safe_load(config_path.read_text())
        settings["subjects"]["sub-01"] = {k: str(folder / v) for k, v in settings["subjects"]["sub-01"].items()}
        settings.update(sections)
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(settings))
        return prepare(load_words_config(path))[1]["sub-01"].Y

    # decimating 200 Hz by 4 with the recording's 100 Hz low-pass aliases: without the anti-alias low-pass
    # MNE says so, and the warning is no longer silenced for the whole process
    with pytest.warns(RuntimeWarning, match="aliasing"):
        unfiltered = targets(epochs={"tmin": -0.2, "tmax": 0.8, "decim": 4}, filter={"antialias": False})
    np.testing.assert_allclose(unfiltered, _hand_targets(raw, facts["onsets"], 4, windows), rtol=1e-5, atol=1e-12)
    assert logging.getLogger("mne").level == level
    # the default low-passes at a third of the decimated rate (50 / 3 Hz) first, with MNE's own filter, and a
    # band-pass asked for is MNE's band-pass of the whole recording: no aliasing warning either way
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        antialiased = targets(epochs={"tmin": -0.2, "tmax": 0.8, "decim": 4})
        band = targets(epochs={"tmin": -0.2, "tmax": 0.8, "decim": 4}, filter={"l_freq": 1.0, "h_freq": 12.0})
    reference = raw.copy().filter(None, 200 / 4 / 3, verbose="error")
    np.testing.assert_allclose(antialiased, _hand_targets(reference, facts["onsets"], 4, windows), rtol=1e-5,
                               atol=1e-12)
    reference = raw.copy().filter(1.0, 12.0, verbose="error")
    np.testing.assert_allclose(band, _hand_targets(reference, facts["onsets"], 4, windows), rtol=1e-5, atol=1e-12)
    assert not np.allclose(band, antialiased, atol=1e-8)


def _with_a_blink(planted, folder):
    """The planted study's config with a BAD_blink annotation from 100.0 to 101.0 s in sub-01's recording: the
    epochs (-0.2 to 0.8 s) of the words at 99.5, 100, 100.5 and 101 s overlap it."""
    import mne
    import yaml

    source, config_path, _ = planted
    raw = mne.io.read_raw(source / "sub-01_raw.fif", preload=True, verbose="error")
    raw.set_annotations(mne.Annotations([100.0, 150.0], [1.0, 0.5], ["BAD_blink", "speech"]))
    raw.save(folder / "sub-01_raw.fif", verbose="error")
    settings = yaml.safe_load(config_path.read_text())
    settings["subjects"]["sub-01"] = {"raw": str(folder / "sub-01_raw.fif"), "words": str(source / "sub-01_words.tsv")}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_epochs_overlapping_bad_annotations_are_dropped_and_counted(planted, tmp_path, caplog):
    from encoding.words._study import with_every_word

    folder, config_path, facts = planted
    path = _with_a_blink(planted, tmp_path)
    with caplog.at_level(logging.WARNING, logger="encoding.words._meg"):
        target = prepare(load_words_config(path))[1]["sub-01"]
    assert "dropped 4 of 400 word epochs that overlap BAD annotations" in caplog.text
    assert np.flatnonzero(~target.kept).tolist() == [197, 198, 199, 200]      # the "speech" annotation is no BAD
    full = prepare(load_words_config(config_path))[1]["sub-01"]
    np.testing.assert_array_equal(target.Y, full.Y[target.kept])
    assert len(target.segments) == 396
    X, _ = model_features(facts["amplitude"], facts["number"])
    fit = with_every_word(fit_words(X[target.kept], target.Y, target.segments, n_permutations=0), target.kept)
    assert fit.word_error.shape[0] == 400 and np.isnan(fit.word_error[197:201]).all()
    assert np.isfinite(fit.word_error[target.kept]).all()


def test_compare_tests_the_kept_words_of_a_subject_with_dropped_epochs(planted, tmp_path):
    """Words whose epochs a BAD annotation dropped are left out of compare's tests, held-out and descriptive alike:
    the held-out test segments (2 and 3, words 200-399) keep 199 words (word 200 dropped), every segment 396."""
    from encoding.words._compare import compare_fits
    from encoding.words._fit import test_segment_labels
    from encoding.words._study import with_every_word

    _, subjects = prepare(load_words_config(_with_a_blink(planted, tmp_path)))
    target = subjects["sub-01"]
    A, B = model_features(planted[2]["amplitude"], planted[2]["number"])
    for test, inference, n_words in ((test_segment_labels("half", target.segments), "held-out", 199),
                                     ([], "descriptive", 396)):
        fits = {("sub-01", name, 0): with_every_word(fit_words(X[target.kept], target.Y, target.segments,
                                                               target.groups, n_permutations=0, test_segments=test),
                                                     target.kept)
                for name, X in (("a", A), ("b", B))}
        table, _, _ = compare_fits(fits, subjects, ("a", "b"), {"a": 0, "b": 0}, "all", n_permutations=50, block=10)
        assert (table["inference"] == inference).all() and (table["n_words"] == n_words).all()
        assert np.isfinite(table["p_ttest"]).all()


def test_foldwise_r_is_unbiased_under_the_null_where_pooled_r_is_below_zero():
    """Random features on white noise: the pooled r (each fold its own alpha per target) lies below zero,
    the mean over folds does not; the permutation test uses the pooled r and stays conservative."""
    rng = np.random.default_rng(0)
    n_words, n_targets = 400, 300
    X, Y = rng.standard_normal((n_words, 8)), rng.standard_normal((n_words, n_targets, 1))
    segments = np.repeat(np.arange(4), n_words // 4)
    fit = fit_words(X, Y, segments, alphas=np.logspace(-1, 5, 13), n_permutations=200, permutation_block=10)
    assert fit.r.mean() == pytest.approx(-0.040, abs=0.01)
    assert abs(fit.r_foldwise.mean()) < 0.01
    assert (fit.p < 0.05).mean() <= 0.05           # 3.3 % of 300 null targets: not liberal
    # with a planted signal both say the same
    Y[:, :10, 0] += X[:, :1]
    planted = fit_words(X, Y, segments, alphas=np.logspace(-1, 5, 13), n_permutations=0)
    np.testing.assert_allclose(planted.r_foldwise[:10], planted.r[:10], atol=0.03)
    assert planted.r[:10].min() > 0.6


def test_sensor_x_time_clusters_find_the_planted_cluster_of_a_over_b(planted):
    from encoding.words._compare import compare_fits
    from encoding.words._fit import test_segment_labels

    folder, config_path, facts = planted
    A, B = model_features(facts["amplitude"], facts["number"])       # B lacks the feature on number words
    _, subjects = prepare(load_words_config(config_path))
    target = subjects["sub-01"]
    test = test_segment_labels("half", target.segments)             # the default: segments 2 and 3
    fits = {("sub-01", name, 0): fit_words(X, target.Y, target.segments, target.groups, n_permutations=0,
                                           test_segments=test)
            for name, X in (("a", A), ("b", B))}
    table, clusters, _ = compare_fits(fits, subjects, ("a", "b"), {"a": 0, "b": 0}, "all", n_permutations=200,
                                      block=10)
    assert test == [2, 3] and (table["inference"] == "held-out").all() and (clusters["test_segments"] == "2 3").all()
    winning = clusters[clusters["p"] < 0.05]
    # the one significant cluster is the planted one, found in the 200 held-out words (20 blocks): 300-500 ms,
    # 6 of its 7 sensors (neighbours by the montage's adjacency) and P7, their neighbour; 13 cells, p = 0.005
    assert len(winning) == 1 and winning["test"].iloc[0] == "sensors x time" and winning["sign"].iloc[0] == 1
    sensors = set(winning["sensors"].iloc[0].split())
    assert len(sensors & set(PLANTED)) >= 6 and len(sensors - set(PLANTED)) <= 1
    assert (winning["start"].iloc[0], winning["stop"].iloc[0]) == (0.3, 0.5) and winning["n_cells"].iloc[0] >= 12
    assert winning["p"].iloc[0] <= 0.01


def test_block_wise_sign_flips_keep_false_clusters_near_the_nominal_rate():
    """20 nulls: per-word differences autocorrelated over words (AR 0.5 in the responses and in both models'
    predictions); sign flips of single words find a false cluster in 11 of 20 nulls, of blocks of 10 words
    in 2 of 20 (nominal 1)."""
    import mne

    from encoding.words._compare import block_sums, cluster_test_sensors_time
    from words_meg_planted import simulate

    adjacency, _ = mne.channels.find_ch_adjacency(simulate(20)[0].info, "eeg")
    segments = np.repeat(np.arange(4), 100)
    false = {1: 0, 10: 0}
    for k in range(20):
        rng = np.random.default_rng(100 + k)
        y = ar_over_words(400, (32, 6), 0.5, rng)
        differences = y * (ar_over_words(400, (1, 1), 0.5, rng) - ar_over_words(400, (1, 1), 0.5, rng))
        for block in false:
            _, clusters = cluster_test_sensors_time(block_sums(differences, segments, block), adjacency, 200, seed=k)
            false[block] += any(p < 0.05 for _, p, _ in clusters)
    assert false[10] <= 3 and false[1] >= 8


def test_contrast_mining_finds_where_a_beats_b_and_one_models_worst_words_do_not(planted):
    """B lacks the planted feature on number words (a quarter of the words): ranking by B's error minus
    A's puts them in the held-out half's group A at 0.80 precision; B's own worst words at 0.48."""
    from encoding.words import word_groups
    from encoding.words._diverge import _holds_minus_not, contrast_errors, word_errors

    folder, config_path, facts = planted
    A, B = model_features(facts["amplitude"], facts["number"])
    _, subjects = prepare(load_words_config(config_path))
    target = subjects["sub-01"]
    groups = {"all": np.arange(len(CHANNELS)), "planted": np.array([CHANNELS.index(c) for c in PLANTED])}
    fits = {("sub-01", name, 0): fit_words(X, target.Y, target.segments, groups, n_permutations=0)
            for name, X in (("a", A), ("b", B))}
    sentence_of = np.arange(len(facts["words"])) // 8
    number = facts["number"]

    def precision(errors):
        table = word_groups(errors, sentence_of, 25, seed=0)
        validation = table[(table["split"] == "validation") & (table["group"] != "")]
        top = validation.loc[validation["group"] == "A", "word_index"].to_numpy()
        return number[top].mean(), validation

    contrast = contrast_errors(fits, subjects, ("a", "b"), {"a": 0, "b": 0}, [0.3, 0.5], "planted")
    assert precision(contrast)[0] == pytest.approx(0.80)
    assert precision(word_errors(fits, subjects, "b", 0, [0.3, 0.5], "planted"))[0] == pytest.approx(0.48)
    # the held-out check of a hypothesis: an oracle "is a number word" holds where A beats B
    _, validation = precision(contrast)
    holds = number[validation["word_index"].to_numpy()][None]
    assert _holds_minus_not(holds, validation["error"].to_numpy())[0] > 1.0
