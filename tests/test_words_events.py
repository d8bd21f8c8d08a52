"""Word embeddings in context from the real MiniLM, Lanczos resampling of events to the TR grid,
event features through delays and ridge, and time-resolved fitting window by window."""
import numpy as np
import pandas as pd
import pytest

from encoding.ridge import fit_ridge
from encoding.timeresolved import fit_time_resolved, time_resolved_table, window_means
from extractors.words import place_word, save_word_store, word_embeddings
from features.delays import delay_run
from features.errors import InputError
from features.events import event_features, event_row_weights, lanczos_kernel, lanczos_resample, read_events
from features.store import FeatureStore

TEMPLATES = ("Someone mentioned the {word}.", "I thought about the <word> today.")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers")
    from extractors.words import load_text_model, minilm_folder

    try:
        folder = minilm_folder()
    except InputError as err:
        pytest.skip(str(err))
    return load_text_model(folder)


def _cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_minilm_word_embeddings_have_one_row_per_layer_and_word(minilm):
    tokenizer, model = minilm
    embeddings = word_embeddings(["cat", "dog", "carburetor"], tokenizer, model, TEMPLATES)
    # 6 transformer layers + the embedding output, hidden size 384.
    assert embeddings.shape == (7, 3, 384)
    assert embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    # Words in the same template get their own vectors at every layer (the word's tokens, not the sentence).
    assert all(_cosine(embeddings[k, 0], embeddings[k, 1]) < 0.99 for k in range(7))
    # Semantic sanity at the last layer: a cat is closer to a dog than to a carburetor.
    last = embeddings[-1]
    assert _cosine(last[0], last[1]) > _cosine(last[0], last[2])


def test_minilm_word_embeddings_are_deterministic_and_average_the_templates(minilm):
    tokenizer, model = minilm
    first = word_embeddings(["cat", "carburetor"], tokenizer, model, TEMPLATES)
    again = word_embeddings(["cat", "carburetor"], tokenizer, model, TEMPLATES)
    assert np.array_equal(first, again)
    per_template = [word_embeddings(["cat", "carburetor"], tokenizer, model, (t,)) for t in TEMPLATES]
    assert np.allclose(first, np.mean(per_template, axis=0), atol=1e-5)


def test_word_store_rows_are_the_words_in_order(tmp_path):
    embeddings = np.random.default_rng(0).standard_normal((3, 4, 8)).astype(np.float32)
    save_word_store(tmp_path / "words.h5", ["a", "b", "c", "d"], embeddings, "toy", TEMPLATES)
    with FeatureStore(tmp_path / "words.h5") as store:
        assert store.layers("words", "words") == [0, 1, 2]
        assert np.array_equal(store.read_layer("words", "words", 2), embeddings[2])
        assert store.read_text("words", "words") == ["a", "b", "c", "d"]
        assert store.prompt("words") == "\n".join(TEMPLATES)


def test_words_command_writes_a_minilm_store_that_rsa_reads(tmp_path, minilm):
    from extractors.words import main

    (tmp_path / "words.txt").write_text("cat\ndog\ncarburetor\n")
    assert main(["--words", str(tmp_path / "words.txt"), "--out", str(tmp_path / "minilm.h5")]) == 0
    with FeatureStore(tmp_path / "minilm.h5") as store:
        assert store.layers("words", "words") == list(range(7))
        assert store.read_layer("words", "words", 6).shape == (3, 384)
        assert store.read_text("words", "words") == ["cat", "dog", "carburetor"]
    assert main(["--words", str(tmp_path / "missing.txt,  "), "--out", str(tmp_path / "x.h5"),
                 "--templates", "no placeholder"]) == 2


def test_place_word_gives_the_character_span_of_the_word():
    sentence, (start, stop) = place_word("Someone mentioned the <word>.", "New York")
    assert sentence == "Someone mentioned the New York."
    assert sentence[start:stop] == "New York"
    with pytest.raises(InputError, match="template"):
        place_word("No placeholder here.", "cat")


def test_lanczos_resampling_recovers_a_sinusoid_at_tr_rate():
    tr, rate, frequency = 2.0, 50.0, 0.04      # 0.04 Hz is below the TR's Nyquist of 0.25 Hz
    times = np.arange(0, 400, 1 / rate)
    new_times = np.arange(200) * tr
    resampled = lanczos_resample(np.sin(2 * np.pi * frequency * times), times, new_times)
    truth = np.sin(2 * np.pi * frequency * new_times)
    inside = slice(5, -5)                      # away from the edges, where the kernel is cut
    assert np.corrcoef(resampled[inside], truth[inside])[0, 1] > 0.99
    # Dense samples add up: the gain is 1 / (2 * cutoff * dt) = rate * tr.
    assert np.std(resampled[inside]) / np.std(truth[inside]) == pytest.approx(rate * tr, rel=0.02)


def test_lanczos_resampling_of_an_impulse_train_is_the_sum_of_shifted_kernels():
    tr = 1.5
    on_trs = np.zeros(48)
    on_trs[[6, 9, 20, 21, 34]] = 1
    out = lanczos_resample(np.ones(5), np.flatnonzero(on_trs) * tr, np.arange(48) * tr)
    # At the TR's Nyquist cutoff the kernel is zero at every other TR: impulses on TRs come back unchanged.
    assert np.allclose(out, on_trs, atol=1e-12)
    # An impulse half way between TRs 10 and 11 is shared equally, with the three-lobe kernel's weights.
    half = lanczos_resample([1.0], [10.5 * tr], np.arange(20) * tr)
    assert half[10] == pytest.approx(half[11])
    assert half[10] == pytest.approx(np.sinc(0.5) * np.sinc(0.5 / 3))
    assert half[12] == pytest.approx(np.sinc(1.5) * np.sinc(1.5 / 3))
    assert half[14] == 0 and half[6] == 0                 # 3.5 TRs away: beyond three lobes
    assert lanczos_kernel(0.0, 0.5) == 1


def test_event_row_weights_are_the_fraction_of_each_event_in_each_tr():
    events = pd.DataFrame({"onset": [1.0, 3.0], "duration": [2.0, 0.0]})
    weights = event_row_weights(events, 4, 2.0)
    assert np.allclose(weights, [[0.5, 0.5, 0, 0], [0, 1, 0, 0]])


def test_word_events_through_lanczos_delays_and_ridge_recover_a_planted_response():
    rng = np.random.default_rng(1)
    tr, n_trs, n_runs, n_features = 2.0, 200, 4, 4
    weights = rng.standard_normal((n_features * 3, 10))
    X, Y = [], []
    for _ in range(n_runs):
        onsets = np.sort(rng.uniform(0, n_trs * tr, 300))
        events = pd.DataFrame({"onset": onsets, "duration": 0.3, "word": "w"})
        features = event_features(events, rng.standard_normal((300, n_features)), n_trs, tr)
        delayed = delay_run(features, (1, 2, 3))
        delayed = (delayed - delayed.mean(0)) / delayed.std(0)
        signal = delayed @ weights
        X.append(delayed)
        Y.append(signal / signal.std(0) + 0.5 * rng.standard_normal(signal.shape))
    runs = np.repeat(np.arange(n_runs - 1), n_trs)
    scores = fit_ridge(np.vstack(X[:-1]), np.vstack(Y[:-1]), runs, X[-1], Y[-1])
    # Prediction = signal, so r = 1 / sqrt(1 + 0.5^2) = 0.89.
    assert np.mean(scores.test_r) == pytest.approx(1 / np.sqrt(1.25), abs=0.03)


def test_read_events_names_the_file_and_the_missing_field(tmp_path):
    path = tmp_path / "words.tsv"
    pd.DataFrame({"onset": [0.5], "word": ["cat"]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match=r"words\.tsv: field 'duration'"):
        read_events(path)


def test_window_means_average_the_samples_of_each_window():
    times = np.arange(10) * 0.1
    epochs = np.broadcast_to(np.arange(10.0), (2, 3, 10))
    Y = window_means(epochs, times, [(0.0, 0.3), (0.5, 1.0)])
    assert Y.shape == (2, 3, 2)
    assert np.allclose(Y[..., 0], 1) and np.allclose(Y[..., 1], 7)


def test_time_resolved_fit_finds_the_planted_sensor_and_window():
    rng = np.random.default_rng(2)
    n_samples, n_features, n_sensors, n_windows = 600, 8, 5, 6
    X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    Y = rng.standard_normal((n_samples, n_sensors, n_windows)).astype(np.float32)
    signal = X @ rng.standard_normal(n_features)
    Y[:, 3, 4] += signal / signal.std()                 # sensor 3 carries the features in window 4 only
    runs = np.repeat(np.arange(6), 100)
    train = runs < 5
    scores = fit_time_resolved(X[train], Y[train], runs[train], X[~train], Y[~train], alphas=np.logspace(-1, 4, 11))
    assert scores.test_r.shape == (n_sensors, n_windows)
    assert np.unravel_index(np.argmax(scores.test_r), scores.test_r.shape) == (3, 4)
    assert scores.test_r[3, 4] == pytest.approx(1 / np.sqrt(2), abs=0.1)
    others = np.delete(scores.test_r.ravel(), 3 * n_windows + 4)
    assert np.abs(others).max() < 0.25
    table = time_resolved_table(scores)
    assert len(table) == n_sensors * n_windows and table.loc[table["test_r"].idxmax(), "window"] == 4
