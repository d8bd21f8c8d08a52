"""A word-by-word study as units of work: the story, each subject's targets, each model's word features,
and one fit per (subject, model, layer), kept in a work folder so the same command resumes.

Work folder (``<out>.work`` unless ``work_dir`` says otherwise)::

    fits/<fingerprint>.npz      one finished fit (the arrays of ``WordFit``), named by the content digest
                                (``encoding.sweep.content_digest``) of everything that changes its numbers:
                                the targets' and the features' contents, the segments, the sensor groups and
                                every fit setting

A fit file is written under a temporary name and renamed when complete (the sweep's ``atomic_path`` and
``publish``), so a killed run leaves only whole fits, which the next run reuses, and temporary files, which
the next run removes; a fit of other settings has another name and is never reused. A fit file holds no
per-sensor r terms (n_words x sensors x windows, by far the largest arrays: about 0.37 GB a fit for 306
sensors, 20 windows and a 10,000-word story, so hundreds of GB over every layer of a study). Only the model
comparison needs them, for the two layers it compares: :func:`sensor_terms` computes them again then, from the
same inputs: the held-out test words' by the fit's test model alone, every word's by the whole fit (its
permutations left out: they do not change the terms). A fit file written before held them; they are read from
it.
"""
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from extractors.words import model_source
from extractors.words_in_context import (ContextRule, ensure_word_features, read_word_features, story_words,
                                         stored_layers)
from features.errors import InputError

from ..pipeline import select_layers
from ..sweep import atomic_path, content_digest, publish, remove_stale_temporaries
from ._config import output_folder, windows_of
from ._fit import WordFit, fit_words, held_out_sensor_terms, test_segment_labels
from ._meg import read_run, sensor_groups, word_targets
from ._story import match_story, read_word_table, segment_labels
from ._verifier import marked_sentence

log = logging.getLogger(__name__)

#: Bumped when the meaning of a fit file's numbers changes.
FIT_VERSION = 4


@dataclass
class Story:
    text: str
    file: str
    words: list          # the words as the story spells them
    sentence_of: np.ndarray
    spans: list

    def sentence(self, i):
        """The sentence that holds word i."""
        index = np.flatnonzero(self.sentence_of == self.sentence_of[i])
        return self.text[self.spans[index[0]][0]:self.spans[index[-1]][1]]

    def marked_sentence(self, i):
        """The sentence that holds word i, word i in [brackets]: what a verifier judges."""
        index = np.flatnonzero(self.sentence_of == self.sentence_of[i])
        start = self.spans[index[0]][0]
        return marked_sentence(self.sentence(i), self.spans[i][0] - start, self.spans[i][1] - start)


@dataclass
class SubjectTargets:
    """One subject: sensor x window targets of the story words whose epochs were kept, with their CV segments."""
    Y: np.ndarray        # (n_kept, n_sensors, n_windows)
    segments: np.ndarray  # (n_kept,)
    info: object         # mne.Info of the target channels (positions for topographies)
    groups: dict         # sensor group name -> channel indices
    windows: list
    kept: np.ndarray = None   # (n_words,) bool: the word's epoch was kept (False: it overlapped a BAD annotation)


def load_story(config):
    """The story from its text file, or from the first subject's word tables when none is given."""
    if config["story"]:
        path = Path(config["story"])          # paths resolved by load_words_config
        if not path.is_file():
            raise InputError(f"{path}: story text not found (field 'story').")
        text, name = path.read_text(encoding="utf-8"), str(path)
    else:
        subject, entry = next(iter(config["subjects"].items()))
        tables = [read_word_table(Path(run["words"]), False) for run in entry["runs"]]
        text, name = " ".join(w for t in tables for w in t["word"]), "the word tables of " + subject
    spans, sentence_of = story_words(text)
    if not spans:
        raise InputError(f"{name}: field 'story' holds no words.")
    return Story(text, name, [text[a:b] for a, b in spans], sentence_of, spans)


def load_subject(config, subject, story):
    """Epochs of a subject's runs (checked against the story) as targets."""
    runs = [read_run(run, config) for run in config["subjects"][subject]["runs"]]
    match_story(story.words, story.file, [(r.table_path, r.table) for r in runs])
    names = [r.epochs.ch_names for r in runs]
    if any(n != names[0] for n in names):
        raise InputError(f"{runs[-1].source}: field 'ch_names' differs from {runs[0].source}; every run of "
                         f"{subject} needs the same channels.")
    windows = windows_of(config)
    Y = np.concatenate([word_targets(r.epochs, windows) for r in runs])
    kept = np.concatenate([r.kept for r in runs])
    table_segments = runs[0].table["segment"].to_numpy() if len(runs) == 1 and "segment" in runs[0].table else None
    segments = segment_labels([len(r.table) for r in runs], story.sentence_of, config["segments"], table_segments)
    info = runs[0].epochs.info
    return SubjectTargets(Y, segments[kept], info, sensor_groups(config["sensor_groups"], info), windows, kept)


def context_rule(config):
    c = config["context"]
    return ContextRule(str(c["unit"]), int(c["size"]), int(c["max_tokens"]), bool(c["bos"]))


def feature_store(config, model):
    return Path(config["features_dir"]) / f"{model}.{config['pooling']}.h5"


def ensure_features(config, model, story):
    """The model's word features of the story, computing the missing words (resume-safe)."""
    if model not in config["models"]:
        raise InputError(f"--models: unknown model '{model}'; known: {', '.join(config['models'])}.")
    source = config["models"][model]
    # load_words_config made a folder (beside the config, or one spelled as a folder) an absolute path
    source = source if Path(source).is_absolute() else str(model_source(source))
    extraction = config["extraction"]
    return ensure_word_features(feature_store(config, model), source, story.text, context_rule(config),
                                config["pooling"], extraction["device"], extraction["dtype"],
                                int(extraction["batch_size"]), story_file=story.file)


def model_layers(config, store):
    """The layers of a words store fitted: ``config["layers"]`` among those it holds."""
    return select_layers(config["layers"], stored_layers(store, context_rule(config)), store, config["config_file"])


def work_folder(config):
    """The work folder (module docstring), without the temporary files of killed runs."""
    folder = Path(config["work_dir"]) if config["work_dir"] else Path(str(output_folder(config)) + ".work")
    (folder / "fits").mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder / "fits")
    return folder


def fit_study(config, story, subjects, models, progress=True):
    """Every (subject, model, layer) fit, reusing finished ones from the work folder.

    Parameters
    ----------
    subjects : dict of subject -> SubjectTargets
    models : list of model names (keys of ``config["models"]``)

    Returns
    -------
    fits : dict of (subject, model, layer) -> WordFit
    layers : dict of model -> list of layers
    """
    fits_dir = work_folder(config) / "fits"
    settings = {"alphas": np.asarray(config["alphas"]).tolist(), "cv_folds": config["cv_folds"],
                "n_permutations": config["n_permutations"], "permutation_block": config["permutation_block"],
                "seed": config["seed"], "test_segments": config["compare"]["test_segments"],
                "version": FIT_VERSION}
    # the held-out test segments of each subject (compare's tests), checked before any model is loaded
    test = {s: test_segment_labels(config["compare"]["test_segments"], target.segments,
                                   f"{config['config_file']}: field 'compare.test_segments' ({s})")
            for s, target in subjects.items()}
    stores = {model: ensure_features(config, model, story) for model in models}
    layers = {model: model_layers(config, stores[model]) for model in models}
    jobs = [(s, m, k) for s in subjects for m in models for k in layers[m]]
    fits = {}
    for subject, model, layer in tqdm(jobs, desc="word fits", unit="fit", disable=not progress or len(jobs) < 4):
        target = subjects[subject]
        source = (stores[model], context_rule(config), layer)
        X = read_word_features(*source)
        kept = _kept(target, len(X))
        key = content_digest([settings, target.Y, target.segments,
                              {g: i.tolist() for g, i in target.groups.items()}, X, *([] if kept.all() else [kept])])
        path = fits_dir / f"{key}.npz"
        # compare's per-sensor terms, computed again from the store when asked (X is not kept in memory)
        again = {"refit": partial(_on_stored_layer, _fit_layer, source, target, config, test[subject]),
                 "refit_test": partial(_on_stored_layer, _test_layer_terms, source, target, config, test[subject])}
        if path.is_file():
            fit = _read_fit(path, **again)
        else:
            fit = _fit_layer(X, target, config, test[subject])
            _write_fit(path, fit)
            log.info("fitted %s / %s / layer %d: max r %.3f", subject, model, layer, np.nanmax(fit.r))
            fit = _as_read(fit, path, **again)
        fits[subject, model, layer] = fit
    return fits, layers


def _kept(target, n_words):
    """The story words whose epochs were kept (all when none was dropped)."""
    return target.kept if target.kept is not None else np.ones(n_words, bool)


def _on_stored_layer(function, source, *args, **kwargs):
    """``function(X, *args, **kwargs)`` on the layer's word features read from ``source`` (store, rule, layer)."""
    return function(read_word_features(*source), *args, **kwargs)


def _fit_layer(X, target, config, test, n_permutations=None):
    """One (subject, model, layer) fit on every story word; ``n_permutations`` (default the config's) 0 skips the
    test, which the per-word terms do not use."""
    kept = _kept(target, len(X))
    permutations = config["n_permutations"] if n_permutations is None else n_permutations
    return with_every_word(fit_words(X[kept], target.Y, target.segments, target.groups, config["alphas"],
                                     config["cv_folds"], permutations, config["permutation_block"], config["seed"],
                                     test_segments=test), kept)


def _test_layer_terms(X, target, config, test):
    """The held-out test words' per-sensor r terms of one fit, from its test model alone (``held_out_sensor_terms``)."""
    return held_out_sensor_terms(X[_kept(target, len(X))], target.Y, target.segments, test, config["alphas"],
                                 config["cv_folds"])


def with_every_word(fit, kept):
    """The fit's per-word arrays on every story word, NaN for the words whose epochs were dropped."""
    if kept.all():
        return fit
    for name in ("word_error", "word_r_terms", "sensor_r_terms"):
        full = np.full((kept.size, *getattr(fit, name).shape[1:]), np.nan, np.float32)
        full[kept] = getattr(fit, name)
        setattr(fit, name, full)
    return fit


#: Per-sensor arrays a work file does not hold; compare computes them again (:func:`sensor_terms`).
SENSOR_FIELDS = ("sensor_r_terms", "test_sensor_r_terms")


def _write_fit(path, fit):
    tmp = atomic_path(path)
    with open(tmp, "wb") as handle:
        np.savez(handle, groups=np.array(fit.extra["groups"]),
                 **{name: getattr(fit, name) for name in WordFit.FIELDS if name not in SENSOR_FIELDS})
    publish(tmp, path)


def _read_fit(path, refit=None, refit_test=None):
    """The fit of a work file (:func:`_as_read`)."""
    with np.load(path, allow_pickle=False) as data:
        fit = WordFit(**{name: data[name] for name in WordFit.FIELDS if name not in SENSOR_FIELDS},
                      extra={"groups": data["groups"].tolist()})
    return _as_read(fit, path, refit, refit_test)


def _as_read(fit, path, refit=None, refit_test=None):
    """``fit`` as its work file ``path`` gives it: without per-sensor r terms, which ``refit``
    (``refit(n_permutations=0)``: the same fit computed again) and ``refit_test`` (``refit_test()``: its held-out
    test terms from the test model alone) give to :func:`sensor_terms`. A fit just computed is kept so, not read
    back."""
    for name in SENSOR_FIELDS:
        setattr(fit, name, None)
    fit.extra = {"groups": list(fit.extra["groups"]), "file": path, "refit": refit, "refit_test": refit_test}
    return fit


def sensor_terms(fit, name="sensor_r_terms"):
    """The fit's per-word r terms at every sensor (n_words, n_sensors, n_windows; ``test_sensor_r_terms``:
    the test words'): the fit's own, else from a work file written when files held them, else computed again
    by the fit's ``refit`` (module docstring)."""
    if getattr(fit, name) is not None:
        return getattr(fit, name)
    with np.load(fit.extra["file"], allow_pickle=False) as data:
        if name in data.files:
            return data[name]
    if name == "test_sensor_r_terms" and len(fit.test_segments) and fit.extra.get("refit_test") is not None:
        return fit.extra["refit_test"]()         # the test model alone: the outer folds are not read
    if fit.extra.get("refit") is None:
        raise InputError(f"{fit.extra['file']}: field '{name}' is not in this fit file and nothing says how the fit "
                         f"was made; run the study's command to compute it.")
    return getattr(fit.extra["refit"](n_permutations=0), name)


def best_layer(fits, subjects, model, layers, score="cv_score"):
    """The layer with the highest inner-CV score (mean over sensors, windows and subjects): chosen on
    training data only. ``score``: the outer folds' (``cv_score``) or the held-out test model's
    (``test_cv_score``)."""
    scores = [np.mean([np.nanmean(getattr(fits[s, model, k], score)) for s in subjects]) for k in layers]
    return layers[int(np.nanargmax(scores))]
