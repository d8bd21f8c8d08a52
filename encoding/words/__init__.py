"""Word-by-word MEG encoding: language-model word states predict sensor x window responses after each
word's onset, two models are compared word by word and over time, and the words a model predicts worst
are described by hypotheses a proposer model writes and a verifier model checks.

MEG is read through MNE-Python (``_meg``), word features come from ``extractors.words_in_context``, the
fits use the engine's ridge (``encoding.ridge``) and statistics (``encoding.stats``). Command line:
``python -m encoding.words run|compare|diverge --config study.yaml``.
"""
from ._compare import cluster_test_over_time, compare_fits, paired_word_tests
from ._config import load_words_config, windows_of
from ._diverge import hypothesis_validity, word_groups
from ._fit import WordFit, fit_words, held_out_predictions
from ._meg import read_run, sensor_groups, word_targets
from ._proposer import HTTPProposer, LocalProposer, parse_hypotheses, proposer_prompt
from ._story import match_story, normalize_word, read_word_table, segment_labels
from ._verifier import EmbeddingVerifier, LMVerifier, ZeroShotVerifier, marked_sentence

__all__ = ["EmbeddingVerifier", "HTTPProposer", "LMVerifier", "LocalProposer", "WordFit", "ZeroShotVerifier",
           "cluster_test_over_time", "compare_fits", "fit_words", "held_out_predictions", "hypothesis_validity",
           "load_words_config", "marked_sentence", "match_story", "normalize_word", "paired_word_tests",
           "parse_hypotheses", "proposer_prompt", "read_run", "read_word_table", "segment_labels", "sensor_groups",
           "windows_of", "word_groups", "word_targets"]
