"""A planted continuous-speech EEG study for the field's-rules tests: words every 500 ms (the previous
word's late response lies in the 200 ms before each onset), 32 channels of the 10-20 montage at 200 Hz,
slow (1/f-like) noise that makes neighbouring words' residuals alike, and a planted response on seven
left-temporal sensors at 300-500 ms after each word that follows one feature of the word.

Model features are built here, not by a language model: model A carries the planted feature of the word
and, as a language model's state in context does, of the previous word; model B carries it for no word
of the planted category (the "number words"). Nothing in it is a finding about brains.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SFREQ = 200.0
SOA = 0.5
CHANNELS = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
            "CP5", "CP1", "CP2", "CP6", "TP9", "P7", "P3", "Pz", "P4", "P8", "TP10", "O1", "Oz", "O2", "FT9", "FT10"]
PLANTED = ["F7", "FC5", "T7", "C3", "CP5", "TP9", "FT9"]      # left temporal, neighbours of one another
EFFECT = (0.3, 0.5)


def ar_over_words(n, shape, phi, rng):
    """AR(1) over words (phi 0: white noise): neighbouring words alike (slow noise, shared context)."""
    e = rng.standard_normal((n, *shape))
    out = np.empty_like(e)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + np.sqrt(1 - phi ** 2) * e[i]
    return out


def planted_words(n_words, share=0.25, seed=0):
    """Words (every 8th ends a sentence) and the mask of the planted category (number words)."""
    rng = np.random.default_rng(seed)
    number = rng.random(n_words) < share
    words = [("seven" if n else "word") + ("." if (i + 1) % 8 == 0 else "") for i, n in enumerate(number)]
    return words, number


def simulate(n_words=400, gain=0.6, seed=0, slow_noise=1.0, effect=True):
    """Raw EEG (mne.io.RawArray, volts), onsets, the planted amplitude per word and the number-word mask."""
    import mne
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    words, number = planted_words(n_words, seed=seed)
    onsets = 1.0 + SOA * np.arange(n_words)
    amplitude = rng.standard_normal(n_words)
    n_samples = int((onsets[-1] + 2.0) * SFREQ)
    white = rng.standard_normal((len(CHANNELS), n_samples))
    slow = lfilter([1.0], [1.0, -0.995], rng.standard_normal((len(CHANNELS), n_samples)), axis=1)
    data = white + slow_noise * slow / slow.std()
    if effect:
        for onset, a in zip(onsets, amplitude):
            samples = slice(int(round((onset + EFFECT[0]) * SFREQ)), int(round((onset + EFFECT[1]) * SFREQ)))
            for name in PLANTED:
                data[CHANNELS.index(name), samples] += gain * a
    raw = mne.io.RawArray(data * 1e-6, mne.create_info(CHANNELS, SFREQ, "eeg"), verbose="error")
    builtin = mne.channels.get_builtin_montages()
    raw.set_montage("colin27_1020" if "colin27_1020" in builtin else "standard_1020", verbose="error")
    return raw, onsets, words, amplitude, number


def model_features(amplitude, number, seed=0, n_noise=6):
    """(model A, model B) features: A holds the word's and the previous word's planted amplitude (its
    context); B is A without the planted amplitude on number words."""
    rng = np.random.default_rng(seed + 100)
    previous = np.concatenate([[0.0], amplitude[:-1]])
    noise = rng.standard_normal((len(amplitude), n_noise))
    a = np.column_stack([amplitude, previous, noise])
    b = a.copy()
    b[number, 0] = rng.standard_normal(int(number.sum()))
    return a.astype(np.float32), b.astype(np.float32)


def write(folder, epochs=None, n_words=400, seed=0, **simulation):
    """Raw FIF, word table and config in ``folder``; returns (config path, facts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw, onsets, words, amplitude, number = simulate(n_words, seed=seed, **simulation)
    raw.save(folder / "sub-01_raw.fif", overwrite=True, verbose="error")
    pd.DataFrame({"onset": onsets, "word": words}).to_csv(folder / "sub-01_words.tsv", sep="\t", index=False)
    config = {"models": {"a": "unused"}, "windows": {"start": 0.0, "stop": 0.6, "width": 0.1}, "segments": 4,
              "epochs": {"tmin": -0.2, "tmax": 0.8, **(epochs or {})}, "n_permutations": 200,
              "subjects": {"sub-01": {"raw": "sub-01_raw.fif", "words": "sub-01_words.tsv"}}}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, {"raw": raw, "onsets": onsets, "words": words, "amplitude": amplitude, "number": number}
