"""Per-word hidden states of a causal language model, each word read in its preceding context.

A story is a text; its words are its whitespace-separated tokens, in order (the word-onset table of a
recording lists the same words). For word i the model reads a context that *ends with the word*: the
word's sentence up to the word, after ``size`` whole preceding sentences (``unit="sentences"``), or
the ``size`` preceding words (``unit="words"``), as the story spells them (punctuation and line breaks
kept). Nothing after the word is read, so the state is what the model has when the word arrives, as in
word-by-word reading studies (Caucheteux & King 2022; Toneva & Wehbe 2019 feed preceding windows of
words the same way). The word's state per layer (embedding output = layer 0, as in the features store)
is its last token's (``last_token``, the state that has seen the whole word) or the mean over its
tokens (``token_mean``).

Features are cached in a features store (``features/store.py``): one run ``story`` with one row per
word, under an instruction named for the context rule (``sentences-1``, ``words-20``) whose prompt
records the rule and the SHA-256 of the story text, so a store never mixes rules or texts; each row's
``text`` is the exact context the model read. Rows are appended to a part file first
(``extractors/parts.py``): a killed extraction resumes at the first missing word and the store equals
an uninterrupted run's.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.errors import InputError
from features.store import FeatureStore, check_parameters

from .models import model_revision
from .parts import PartWriter, consolidate, done_in_parts, part_path
from .words import _span_tokens, load_text_model

log = logging.getLogger(__name__)

# Bump when a change here changes the numbers written.
EXTRACTOR_VERSION = "1"
POOLINGS = {"last_token": "the hidden state of the word's last token",
            "token_mean": "the mean hidden state over the word's tokens"}
UNITS = ("sentences", "words")
RUN = "story"
# a sentence ends with . ! ? or an ellipsis, possibly followed by closing quotes or brackets
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")


@dataclass(frozen=True)
class ContextRule:
    """What a word is read with.

    Attributes
    ----------
    unit : {"sentences", "words"}
    size : int
        Whole sentences before the word's own sentence, or words before the word.
    max_tokens : int
        Longest input; a longer context loses its first tokens (the word itself is always kept).
    bos : bool
        Put the tokenizer's beginning-of-sequence token first (GPT-2's ``<|endoftext|>``), so the
        first word of a context is not read as the start of the model's whole input stream.
    """

    unit: str = "sentences"
    size: int = 1
    max_tokens: int = 512
    bos: bool = True

    def __post_init__(self):
        if self.unit not in UNITS:
            raise InputError(f"context: field 'unit' is {self.unit!r}; known: {', '.join(UNITS)}.")
        if int(self.size) < 0 or int(self.max_tokens) < 2:
            raise InputError(f"context: fields 'size' and 'max_tokens' must be >= 0 and >= 2, found {self.size} "
                             f"and {self.max_tokens}.")

    @property
    def name(self) -> str:
        """The store instruction these features live under."""
        return f"{self.unit}-{int(self.size)}"

    def describe(self) -> str:
        what = (f"the word's sentence up to the word, after {self.size} preceding sentence(s)"
                if self.unit == "sentences" else f"the word after its {self.size} preceding word(s)")
        return (f"context: {what}; at most {self.max_tokens} tokens (the first ones dropped); "
                f"bos token first: {bool(self.bos)}")


def story_words(text):
    """Words of a story and the sentence each belongs to.

    Parameters
    ----------
    text : str

    Returns
    -------
    spans : list of (start, stop)
        Character span of each whitespace-separated word.
    sentence_of : array of int of shape (n_words,)
        0 for the first sentence; a sentence ends after a word ending in . ! ? (closing quotes allowed).
    """
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    ends = np.array([bool(_SENTENCE_END.search(text[a:b])) for a, b in spans], dtype=int)
    sentence_of = np.concatenate([[0], np.cumsum(ends)[:-1]]) if spans else np.zeros(0, int)
    return spans, sentence_of.astype(int)


def word_contexts(text, rule, spans=None, sentence_of=None):
    """The text each word is read with, and the word's character span in it.

    Returns
    -------
    list of (context, (start, stop)), one per word
    """
    if spans is None:
        spans, sentence_of = story_words(text)
    sentence_of = np.asarray(sentence_of)
    first_word_of = {}
    for i, s in enumerate(sentence_of.tolist()):
        first_word_of.setdefault(s, i)
    out = []
    for i, (start, stop) in enumerate(spans):
        if rule.unit == "sentences":
            first = first_word_of[max(int(sentence_of[i]) - int(rule.size), 0)]
        else:
            first = max(i - int(rule.size), 0)
        begin = spans[first][0]
        out.append((text[begin:stop], (start - begin, stop - begin)))
    return out


def _encode(tokenizer, context, span, rule):
    """Token ids (bos first when asked, cut to max_tokens from the left) and the word's token indices."""
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), np.asarray(encoded["offset_mapping"]).reshape(-1, 2)
    tokens = _span_tokens(offsets, span, np.ones(len(ids), int))
    bos = [tokenizer.bos_token_id] if rule.bos and tokenizer.bos_token_id is not None else []
    keep = int(rule.max_tokens) - len(bos)
    if len(ids) - tokens[0] > keep:
        raise InputError(f"context: field 'max_tokens' is {rule.max_tokens}, fewer than the "
                         f"{len(ids) - tokens[0]} tokens of the word {context[span[0]:span[1]]!r}.")
    cut = max(len(ids) - keep, 0)
    return bos + ids[cut:], tokens - cut + len(bos)


def context_word_features(contexts, tokenizer, model, rule=ContextRule(), pooling="last_token", batch_size=16):
    """Hidden states of every layer for each word in its context.

    Parameters
    ----------
    contexts : list of (context, (start, stop))
        From :func:`word_contexts`.
    tokenizer, model : from :func:`extractors.words.load_text_model` (a causal LM's base model)
    rule : ContextRule
    pooling : {"last_token", "token_mean"}
    batch_size : int
        Consecutive contexts per forward pass (padded on the right, which a causal model never attends to).

    Returns
    -------
    features : float32 array of shape (n_layers + 1, n_words, hidden)
    """
    import torch

    if pooling not in POOLINGS:
        raise InputError(f"pooling: field 'pooling' is {pooling!r}; known: {', '.join(POOLINGS)}.")
    encoded = [_encode(tokenizer, context, span, rule) for context, span in contexts]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    # batches of consecutive words: a word's batch mates, and so its bits, do not depend on what was
    # computed before (a resumed extraction gives the numbers of an uninterrupted one)
    for first in range(0, len(encoded), batch_size):
        batch = encoded[first:first + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (row, _) in enumerate(batch):
            ids[b, :len(row)] = torch.tensor(row)
            mask[b, :len(row)] = 1
        with torch.no_grad():
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           output_hidden_states=True).hidden_states
        hidden = torch.stack(hidden, 1).float().cpu().numpy()   # (batch, n_layers + 1, n_tokens, hidden)
        for b, (_, tokens) in enumerate(batch):
            out.append(hidden[b][:, tokens[-1]] if pooling == "last_token" else hidden[b][:, tokens].mean(1))
    return np.stack(out, 1).astype(np.float32)


def text_digest(text) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def store_prompt(rule, text) -> str:
    """The instruction prompt recorded in the store: the rule and the story text's digest."""
    return f"{rule.describe()}\nstory text sha256: {text_digest(text)} ({len(text)} characters)"


def store_parameters(source, pooling, device="cpu", dtype="float32") -> dict:
    """The store's compared parameters (see features/store.py)."""
    import torch
    import transformers

    return {"model_id": str(source), "model_revision": model_revision(source), "family": "causal-lm-words",
            "pooling": pooling, "dtype": dtype, "extractor_version": EXTRACTOR_VERSION,
            "device_type": str(device).split(":")[0],
            "library_versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


def ensure_word_features(store_path, source, text, rule=ContextRule(), pooling="last_token", device="cpu",
                         dtype="float32", batch_size=16, story_file="", progress=True) -> Path:
    """Make sure ``store_path`` holds every word's features of ``text`` under ``rule``; compute what is missing.

    Parameters
    ----------
    store_path : str or Path
        The features store, e.g. ``features/gpt2-xl.last_token.h5``.
    source : str or Path
        Hugging Face id or local model folder.
    text : str
        The story.
    rule, pooling, device, dtype, batch_size : see :func:`context_word_features`
    story_file : str
        Recorded as the run's ``stimulus_file``.

    Returns
    -------
    Path of the store; read it with ``FeatureStore(path).read_layer(rule.name, "story", k)``.
    """
    from tqdm import tqdm

    store_path = Path(store_path)
    parameters = store_parameters(source, pooling, device, dtype)
    prompt = store_prompt(rule, text)
    contexts = word_contexts(text, rule)
    if not contexts:
        raise InputError(f"{story_file or 'story'}: field 'text' holds no words.")
    consolidate(store_path, parameters)   # rows a killed run left in part files
    pending = _pending(store_path, parameters, rule, prompt, contexts, batch_size)
    if not pending:
        return store_path
    log.info("%s: %d of %d words to compute with %s (%s)", store_path, len(pending), len(contexts), source,
             rule.name)
    tokenizer, model = load_text_model(source, device, None if dtype == "float32" else dtype)
    runs = {RUN: {"order": 0, "stimulus_file": str(story_file), "n_clips": len(contexts)}}
    provenance = {"context_rule": rule.describe(), "batch_size": int(batch_size)}
    pending = set(pending)
    bar = tqdm(total=len(pending), desc=f"{Path(str(source)).name} words", unit="word", disable=not progress)
    with PartWriter(part_path(store_path, 0), parameters, provenance, runs) as writer:
        # whole batches of the story, so that a word's numbers never depend on where a killed run stopped
        for first in range(0, len(contexts), batch_size):
            index = range(first, min(first + batch_size, len(contexts)))
            if not pending.intersection(index):
                continue
            features = context_word_features([contexts[i] for i in index], tokenizer, model, rule, pooling,
                                             batch_size)
            for j, i in enumerate(index):
                if i in pending:
                    writer.append(rule.name, prompt, RUN, len(contexts), i, list(features[:, j]), contexts[i][0])
            bar.update(len(pending.intersection(index)))
    bar.close()
    consolidate(store_path, parameters)
    return store_path


def _pending(store_path, parameters, rule, prompt, contexts, batch_size):
    """Word indices not yet in the store, after checking that it holds this rule, text and model."""
    done = np.zeros(len(contexts), bool)
    if store_path.exists():
        with FeatureStore(store_path) as store:
            check_parameters(store.parameters, parameters, store_path)
            written = store.parameters.get("batch_size")
            if written is not None and int(written) != int(batch_size):
                # batch mates change the last bits of a word's states: one store, one batch size
                raise InputError(f"{store_path}: field 'batch_size' was written as {written}, this run asks for "
                                 f"{batch_size}; use the same extraction.batch_size or another features_dir.")
            if rule.name in store.instructions():
                if store.prompt(rule.name) != prompt:
                    raise InputError(f"{store_path}: field '{rule.name}' holds features of another story text or "
                                     f"context rule ({store.prompt(rule.name)!r}); use another features_dir or "
                                     f"delete the store.")
                mask = store.done(rule.name, RUN)
                if len(mask) != len(contexts):
                    raise InputError(f"{store_path}: field '{rule.name}/{RUN}' has {len(mask)} words, the story "
                                     f"has {len(contexts)}.")
                done |= mask
    done[[clip for inst, run, clip in done_in_parts(store_path) if inst == rule.name and run == RUN]] = True
    return np.flatnonzero(~done).tolist()


def read_word_features(store_path, rule, layer):
    """Features of one layer, float32 array of shape (n_words, hidden)."""
    with FeatureStore(store_path) as store:
        return store.read_layer(rule.name, RUN, layer)


def stored_layers(store_path, rule):
    with FeatureStore(store_path) as store:
        return store.layers(rule.name, RUN)
