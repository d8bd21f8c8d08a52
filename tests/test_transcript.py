"""Words with their times to a features store at the TR (``extractors.transcript``), with any causal LM from a
folder: the stored rows are the words' hidden states in their preceding context, Lanczos-resampled to the TR
grid, here recomputed independently (the kernel written out with numpy's sinc)."""
import numpy as np
import pandas as pd
import pytest

from encoding.config import REPO_ROOT
from extractors.transcript import main, read_transcript
from extractors.words_in_context import ContextRule, context_word_features, word_contexts
from extractors.words import load_text_model
from features.store import FeatureStore

from words_meg_study import build_tiny_gpt2, one_torch_thread  # noqa: F401

WORDS = REPO_ROOT / "encoding" / "datasets" / "alice" / "words.csv"


@pytest.fixture
def table(tmp_path):
    words = pd.read_csv(WORDS).head(120)          # the story's first 120 words, about 45 s
    words["run"] = "story"
    path = tmp_path / "words.tsv"
    words.to_csv(path, sep="\t", index=False)
    return path


def _lanczos_rows(onsets, values, n_trs, tr, window=3):
    """sum over words of sinc(x) sinc(x / window) * value, x = (t tr - onset) / tr, zero beyond the window."""
    x = (np.arange(n_trs)[:, None] * tr - np.asarray(onsets)[None]) / tr
    weights = np.where(np.abs(x) < window, np.sinc(x) * np.sinc(x / window), 0.0)
    return weights @ values


def test_a_causal_lm_folder_gives_each_words_state_resampled_to_the_trs(tmp_path, table, one_torch_thread):  # noqa: F811
    model = build_tiny_gpt2(tmp_path / "gpt2")
    store = tmp_path / "features" / "gpt2.h5"
    n_trs = 30
    assert main(["--words", str(table), "--model", str(model), "--context", "words:5", "--tr", "2", "--n-trs",
                 str(n_trs), "--onset-offset", "-20", "--out", str(store)]) == 0
    words = read_transcript(table, onset_offset=-20)
    rule = ContextRule(unit="words", size=5)
    tokenizer, lm = load_text_model(model)
    per_word = context_word_features(word_contexts(" ".join(words["word"]), rule), tokenizer, lm, rule)
    with FeatureStore(store) as features:
        assert features.instructions() == ["none"] and features.runs("none") == ["story"]
        assert features.layers("none", "story") == [0, 1, 2]            # embedding output + 2 layers
        assert features.parameters["transcript"]["context"] == rule.describe()
        for layer in (0, 2):
            expected = _lanczos_rows(words["onset"], per_word[layer].astype(np.float64), n_trs, 2.0)
            np.testing.assert_allclose(features.read_layer("none", "story", layer), expected, rtol=1e-5,
                                       atol=1e-5 * np.abs(expected).max())


def test_a_store_of_another_context_is_refused_by_name(tmp_path, table, capsys, one_torch_thread):  # noqa: F811
    model = build_tiny_gpt2(tmp_path / "gpt2")
    store = tmp_path / "gpt2.h5"
    common = ["--words", str(table), "--model", str(model), "--tr", "2", "--n-trs", "30", "--onset-offset", "-20",
              "--out", str(store)]
    assert main(common + ["--context", "words:5"]) == 0
    assert main(common + ["--context", "words:8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    written, asked = err.split(" but this run asks for ")
    assert written.startswith(f"error: {store}: field 'transcript' was written as")
    assert "its 5 preceding word(s)" in written and "its 8 preceding word(s)" in asked


def test_a_word_table_without_times_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("word,onset\nAlice,1.0\nwas,abc\n")
    assert main(["--words", str(bad), "--model", "word_rate", "--tr", "2", "--n-trs", "10", "--out",
                 str(tmp_path / "s.h5")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {bad}: field 'offset' (or 'duration') is missing; columns found: word, onset.")
    bad.write_text("word,onset,offset\nAlice,1.0,1.2\nwas,abc,2.0\n")
    assert main(["--words", str(bad), "--model", "word_rate", "--tr", "2", "--n-trs", "10", "--out",
                 str(tmp_path / "s.h5")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {bad}: field 'onset' must hold numbers of seconds; row 2 holds 'abc'.")
    assert not (tmp_path / "s.h5").exists()
