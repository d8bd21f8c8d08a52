"""A simulated word-by-word reading study, written the way a user's data are: a tiny random-weight GPT-2
saved as a model folder, a story text, an EEG/MEG raw FIF written by MNE with its word-onset table, and
a study config.

The response is planted from the tiny model's own word features (layer ``PLANTED_LAYER``, computed by
the same extractor the study runs, so the study reads them back from its features store): effect 1 on
sensors C3, C4 and P3 in the 200-300 ms window, effect 2 on F8 in 400-500 ms, white noise elsewhere.
Words of one semantic class (emotions) get an unrelated response of their own in effect 1's window:
the model cannot predict them, which the divergence tests mine.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from conftest_extractors import byte_tokenizer  # noqa: E402

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
HYPOTHESES = ["are about emotions or feelings", "are about food", "are animals", "are household objects or tools",
              "are places or buildings"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Width-32 models gain nothing from a second thread, and on a loaded 2-core machine the two threads'
    synchronisation makes each small matrix product tens of times slower; restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_tiny_gpt2(folder, seed=0, n_positions=256, width=32):
    """A two-layer GPT-2 (width 32 by default) with random weights and a byte-level tokenizer, saved to
    ``folder``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = byte_tokenizer(["<|endoftext|>"], bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                               pad_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=width, n_layer=2, n_head=2, n_positions=n_positions,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


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


def write_study(folder, model_folder, n_sentences=120, seed=0, config_extra=None, emotions_unpredictable=True,
                other_models=None, n_subjects=1):
    """Write story, raw FIFs (one per subject, each its own noise), word tables and config into ``folder``.

    Returns
    -------
    config path, and the study's facts: words, classes, onsets, planted-layer features
    """
    from extractors.words_in_context import ContextRule, ensure_word_features, read_word_features

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text, classes = story(n_sentences, seed=seed)
    (folder / "story.txt").write_text(text)
    store = ensure_word_features(folder / "features" / "tiny.last_token.h5", model_folder, text, ContextRule(),
                                 "last_token", progress=False)
    features = read_word_features(store, ContextRule(), PLANTED_LAYER)
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
    config = {"story": "story.txt", "models": {"tiny": str(model_folder), **(other_models or {})},
              "features_dir": "features", "out": str(folder / "results"), "layers": "all",
              "epochs": {"tmin": -0.2, "tmax": 0.5, "baseline": [-0.2, 0.0], "decim": 2},
              "windows": {"start": 0.0, "stop": 0.5, "width": 0.1}, "segments": 4, "n_permutations": 500,
              "permutation_block": 6, "alphas": {"logspace": [-1, 5, 13]},
              "sensor_groups": {"effect_1": list(EFFECT_1["sensors"]), "effect_2": list(EFFECT_2["sensors"])},
              "subjects": subjects, **(config_extra or {})}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, {"words": words, "classes": classes, "onsets": onsets, "features": features}
