"""The features stores a config's ``transcript`` section builds before fitting (``extractors.transcript``).

For each model of ``models``: a ``transcript.tables`` entry becomes a one-layer store of that per-TR table;
``word_rate`` is counted from the word table; any other name is a language model that reads the words
(``minilm`` offline, else ``model_paths``' folder or the name as a Hugging Face id). Each stimulus run's
length is its first fMRI run's, read from the file; the TR is that run's ``tr``. A store that exists with
the same parameters is reused; one written with others is an error naming it.
"""
import logging
from pathlib import Path

from extractors.transcript import parse_context, write_transcript_store
from features.errors import InputError

from .fmri import run_shape

log = logging.getLogger(__name__)

#: the config's fields :func:`ensure_transcript_stores` reads (``encoding.config.fields``)
TRANSCRIPT_FIELDS = ("transcript", "features_dir", "model_paths", "models", "subjects", "config_file")


def ensure_transcript_stores(config):
    """Build or reuse ``<features_dir>/<model>.h5`` for every model of ``models`` from ``transcript``."""
    settings = config["transcript"]
    # every path resolved by load_config
    words = Path(settings["words"]) if settings.get("words") else None
    tables = {name: Path(path) for name, path in (settings.get("tables") or {}).items()}
    folder = Path(config["features_dir"])
    lengths, tr = run_lengths(config)
    paths = config["model_paths"] or {}
    for model in config["models"]:
        if model not in tables and words is None:
            raise InputError(f"{config['config_file']}: field 'transcript.words' is needed to build the store of "
                             f"model '{model}' (or list it in 'transcript.tables').")
        source = Path(paths[model]) if model in paths else model
        store = write_transcript_store(folder / f"{model}.h5", words, tr, lengths, str(source),
                                       float(settings.get("onset_offset") or 0), settings.get("run", "run-1"),
                                       parse_context(settings.get("context", "words:20")),
                                       settings.get("pooling", "last_token"), tables.get(model),
                                       batch_size=int(settings.get("batch_size", 16)))
        log.info("features store %s is ready", store)


def run_lengths(config):
    """TRs per stimulus run (its first fMRI run's, from the file) and the TR of the first run."""
    base = Path(config["config_file"]).resolve().parent
    lengths, tr = {}, None
    for subject, spec in config["subjects"].items():
        for run in (spec or {}).get("runs") or []:
            if not isinstance(run, dict) or "stimulus_run" not in run:
                continue                    # load_subject says what is wrong with it
            stimulus = str(run["stimulus_run"])
            tr = tr or run.get("tr")
            if stimulus not in lengths:
                lengths[stimulus] = run_shape(run, base)[0]
    if tr is None:
        raise InputError(f"{config['config_file']}: field 'subjects' gives no run with a 'tr'; the transcript's "
                         f"stores need the TR.")
    return lengths, float(tr)
