"""bench/verifier_power.py plants what it claims: the words it marks as the category are exactly the story's
emotion words, and in the planted study (only there) their effect-1 response is four standard deviations of
the model's read-out (2 uV at C3 after the gain of 0.5), whatever the features say."""
import sys
from pathlib import Path

import mne
import numpy as np
import pytest

from encoding.demo.words_meg import EMOTIONS, FIRST_ONSET, SFREQ, SOA
from words_meg_study import build_tiny_gpt2, one_torch_thread  # noqa: F401

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.mark.parametrize("planted", [True, False])
def test_the_bench_plants_a_four_sd_response_on_exactly_the_emotion_words(tmp_path, planted):
    from verifier_power import simulate_study

    tiny = build_tiny_gpt2(tmp_path / "tiny")
    path, emotion = simulate_study(tmp_path / "study", tiny, seed=3, planted=planted, n_sentences=30)
    text = (path.parent / "story.txt").read_text()
    words = text.split()
    np.testing.assert_array_equal(emotion, [w.strip(".") in EMOTIONS for w in words])
    assert emotion.sum() == text.count(" felt such ") > 0       # one emotion word in each emotion sentence
    raw = mne.io.read_raw_fif(path.parent / "sub-01_raw.fif", verbose="error")
    c3 = raw.get_data(picks=["C3"])[0] * 1e6
    onsets = FIRST_ONSET + SOA * np.arange(len(words))
    # effect 1: 200-300 ms, 20 samples of unit-variance white noise (mean's sd 0.22) plus the planted response
    mean = np.array([c3[round((t + 0.2) * SFREQ):round((t + 0.3) * SFREQ)].mean() for t in onsets])
    if planted:
        np.testing.assert_allclose(np.abs(mean[emotion]), 2.0, atol=0.8)
    else:
        assert np.median(np.abs(mean[emotion])) < 1.0
