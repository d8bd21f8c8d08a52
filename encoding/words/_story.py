"""The story and its word-onset tables: read, matched word by word, cut into CV segments.

A word-onset table (TSV/CSV) has one row per word shown, in reading order: ``word`` and, for a raw
recording, ``onset`` in seconds from the recording's first sample (optional: ``duration``,
``segment``). A subject's runs' tables, concatenated, must spell the story's words in order; a word
is compared without surrounding punctuation and case, so a table that strips punctuation still
matches a story text that keeps it.
"""
import re
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError
from features.events import read_events

_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def read_word_table(path, need_onset=True):
    """One run's word table, rows in the file's order (reading order), ``word`` as str."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: word-onset table not found.")
    separator = "," if path.suffix == ".csv" else "\t"
    try:
        table = pd.read_csv(path, sep=separator, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable word-onset table ({str(err).splitlines()[0]}).") from None
    if "word" not in table.columns:
        raise InputError(f"{path}: field 'word' is missing; columns found: {', '.join(map(str, table.columns))}.")
    if need_onset:
        # the same checks as every events table (numbers of seconds), without re-sorting the reading order
        read_events(path, required=("onset",))
        if table["onset"].isna().any() or not np.all(np.diff(table["onset"].to_numpy(float)) > 0):
            raise InputError(f"{path}: field 'onset' must increase strictly from row to row (reading order).")
    if len(table) == 0:
        raise InputError(f"{path}: field 'word' holds no rows.")
    table["word"] = table["word"].astype(str)
    return table


def normalize_word(word):
    """The word without surrounding punctuation, case-folded: how tables and story are compared."""
    return _EDGE_PUNCTUATION.sub("", str(word)).casefold()


def match_story(story_words, story_file, tables):
    """Check that the tables, concatenated, spell the story's words.

    Parameters
    ----------
    story_words : list of str
        The story's words in order.
    story_file : str
        Named in the message.
    tables : list of (path, DataFrame)

    Raises
    ------
    InputError naming the table, the row and both words at the first difference.
    """
    position = 0
    for path, table in tables:
        for row, word in enumerate(table["word"]):
            if position >= len(story_words):
                raise InputError(f"{path}: field 'word' row {row + 1} ({word!r}) goes past the end of the story "
                                 f"{story_file}, which has {len(story_words)} words.")
            if normalize_word(word) != normalize_word(story_words[position]):
                raise InputError(f"{path}: field 'word' row {row + 1} is {word!r} but word {position + 1} of the "
                                 f"story {story_file} is {story_words[position]!r}; the table does not follow "
                                 f"the story text.")
            position += 1
    if position != len(story_words):
        raise InputError(f"{tables[-1][0]}: field 'word' ends after {position} words, the story {story_file} has "
                         f"{len(story_words)}.")


def segment_labels(run_lengths, sentence_of, n_segments, table_segments=None):
    """CV segment of each word.

    Several runs: the run. One run: its table's ``segment`` column when given, else ``n_segments``
    contiguous parts of near-equal length, each starting at a sentence start (so no sentence is split
    between a training and a test segment).

    Parameters
    ----------
    run_lengths : list of int
        Words per run.
    sentence_of : array of int of shape (n_words,)
    n_segments : int
    table_segments : array of shape (n_words,) or None

    Returns
    -------
    segments : array of int of shape (n_words,), 0 .. n_segments - 1 in reading order
    """
    if len(run_lengths) > 1:
        return np.repeat(np.arange(len(run_lengths)), run_lengths)
    if table_segments is not None:
        _, labels = np.unique(np.asarray(table_segments).astype(str), return_inverse=True)
        first_seen = {label: i for i, label in reversed(list(enumerate(labels.tolist())))}
        order = {label: rank for rank, label in enumerate(sorted(first_seen, key=first_seen.get))}
        return np.array([order[label] for label in labels.tolist()])
    n_words = run_lengths[0]
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], np.asarray(sentence_of)])) != 0)
    cuts = []
    for k in range(1, n_segments):
        target = k * n_words / n_segments
        cut = int(starts[np.argmin(np.abs(starts - target))])
        # a story with few sentence ends: cut mid-sentence rather than merge segments
        cuts.append(cut if cut not in cuts and 0 < cut < n_words else int(round(target)))
    return np.searchsorted(np.array(sorted(set(cuts))), np.arange(n_words), side="right")
