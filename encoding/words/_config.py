"""The word-by-word MEG study config: a YAML file whose keys are checked, plus command-line overrides.

Every key, its type, default, range and meaning is defined once, in :class:`WordsConfig` and its sections
(the same pydantic style as ``encoding._schema``); DEFAULTS and NESTED are built from them. Any other key
is an error naming the file, so a typo never falls back to a default silently, and a bad value is the
encoding config's one sentence naming the file and the key. Paths are relative to the config's folder;
"{cache}" and "{subject}" work as in the encoding config.
"""
import copy
import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import Field, StrictBool, StrictInt, StrictStr

from extractors.words import is_local_source
from features.errors import InputError

from ..config import (Count, Layers, Names, Number, Positive, Section, at_least, between, cache_folder,
                      check_known_keys, check_nested_keys, check_section, defaults, keep_given, parse_alphas,
                      parse_layers, parse_list, read_config_file, resolve_path, resolve_runs, sections, setting)

POOLINGS = ("last_token", "token_mean")
Frequency = Optional[Annotated[Number, between(0, float("inf"))]]
TestSegments = Optional[Union[Literal["half", "last"], Count, Annotated[list[Count], Field(min_length=1)]]]


class Context(Section):
    unit: Literal["sentences", "words"] = setting("sentences", "what each word is read with: its sentences or its "
                                                               "preceding words", "sentences or words")
    size: Positive = setting(1, "how many sentences (or words) before the word", "a whole number >= 1")
    max_tokens: Positive = setting(512, "tokens of context at most", "a whole number >= 1")
    bos: StrictBool = setting(True, "begin each context with the model's BOS token", "true or false")


class WordExtraction(Section):
    device: StrictStr = setting("cpu", "cpu, cuda, ...", "a device name")
    dtype: StrictStr = setting("float32", "float32, bfloat16 or float16", "a dtype name")
    batch_size: Positive = setting(16, "contexts per forward pass", "a whole number >= 1")


class Epochs(Section):
    # no baseline by default: in continuous speech the 200 ms before a word hold the previous word's
    # response, and subtracting it leaks that response (and whatever predicts it) into every window
    tmin: Number = setting(-0.2, "epoch start, seconds from word onset", "a number of seconds")
    tmax: Number = setting(0.8, "epoch end, seconds from word onset", "a number of seconds")
    baseline: Any = setting(None, "MNE's baseline: null (none) or [start, end] in seconds")
    decim: Positive = setting(1, "keep every n-th sample", "a whole number >= 1")
    picks: Any = setting("data", "MNE's picks: the channels kept")


class Filter(Section):
    l_freq: Frequency = setting(None, "MNE's band-pass: high-pass edge in Hz (null: none)",
                                "a frequency in Hz > 0 or null")
    h_freq: Frequency = setting(None, "low-pass edge in Hz (null: none)", "a frequency in Hz > 0 or null")
    antialias: StrictBool = setting(True, "low-pass before decimating", "true or false")


class Windows(Section):
    start: Number = setting(0.0, "first target window's start, seconds after word onset", "a number of seconds")
    stop: Number = setting(0.5, "last target window's end", "a number of seconds")
    width: Annotated[Number, between(0, float("inf"))] = setting(0.025, "width of each window",
                                                                 "a number of seconds > 0")


class Compare(Section):
    models: Optional[Names] = setting(None, "the two models compared (default: the first two)",
                                      "a list of model names")
    layers: dict[str, Any] = setting({}, "model -> layer compared (default: the best by the inner-CV score of "
                                         "its test model, on the training segments)", "a mapping of model to layer")
    windows: Any = setting(None, "the windows compared (default: all)")
    sensor_group: StrictStr = setting("all", "the sensor group compared", "a sensor group name")
    n_permutations: Count = setting(1000, "cluster permutations", "a whole number >= 0")
    threshold: Optional[Number] = setting(None, "cluster-forming threshold (default: MNE's)", "a number or null")
    # the outer folds' terms depend on one another (fold k's weights are fitted on the other folds'
    # responses), so a valid within-subject test needs words that one model, trained without them, predicts
    test_segments: TestSegments = setting(
        "half", "held-out segments of each subject that the within-subject tests use, predicted by one model "
                "trained on the other segments (at least two): half (the later half, rounded down), last, a "
                "segment's 0-based place in reading order or a list of them; null: none, the within-subject "
                "rows are descriptive", "half, last, null, or segment places (whole numbers >= 0)")


class Diverge(Section):
    model: Optional[StrictStr] = setting(None, "the model whose errors are mined (default: the first)", "a model name")
    layer: Optional[StrictInt] = setting(None, "its layer (default: the CV-best)", "a layer index")
    windows: Any = setting(None, "the windows whose errors are summed (default: all)")
    sensor_group: StrictStr = setting("all", "the sensor group whose errors are summed", "a sensor group name")
    k: Annotated[StrictInt, at_least(2)] = setting(50, "worst- and best-predicted words taken", "a whole number >= 2")
    prompt_k: Positive = setting(15, "of them, words shown to the proposer", "a whole number >= 1")
    n_rounds: Count = setting(3, "proposal rounds", "a whole number >= 0")
    n_hypotheses: Positive = setting(10, "hypotheses asked for per round", "a whole number >= 1")
    hypotheses: Optional[Union[StrictStr, list[StrictStr]]] = setting(
        None, "hypotheses to test besides the proposed ones: a list, or a text file of them", "a list or a file")
    proposer: Optional[StrictStr] = setting(None, "Hugging Face id or folder of a causal LM, or an "
                                                  "OpenAI-compatible endpoint (used only when given)",
                                            "a model or an endpoint")
    proposer_model: StrictStr = setting("default", "the 'model' field sent to an HTTP endpoint", "a name")
    proposer_timeout: Annotated[Number, between(0, float("inf"))] = setting(120, "seconds the proposer may take",
                                                                            "a number of seconds > 0")
    max_new_tokens: Positive = setting(200, "tokens the proposer writes per answer", "a whole number >= 1")
    verifier: StrictStr = setting("minilm", "minilm, a sentence-embedding model, zero-shot:<NLI model> or "
                                            "lm:<causal LM folder>", "a verifier name")
    verifier_input: Literal["sentence", "word"] = setting("sentence", "what the verifier reads: the sentence "
                                                                      "or the word", "sentence or word")
    n_permutations: Positive = setting(2000, "permutations of each hypothesis's validity", "a whole number >= 1")


class WordsConfig(Section):
    """Every key of an ``encoding.words`` config, in the order the reference lists them."""
    name: Optional[StrictStr] = setting(None, "names the output folders when --out is not given", "a name")
    out: Optional[StrictStr] = setting(None, "output folder of `run` (default `results/<name>`); compare/diverge "
                                             "add a suffix", "a folder")
    work_dir: Optional[StrictStr] = setting(None, "finished fits, kept for resuming (default `<out>.work`)",
                                            "a folder")
    cache_dir: Optional[StrictStr] = setting(None, "`{cache}` in paths", "a folder")
    features_dir: Optional[StrictStr] = setting(None, "word-feature stores `<features_dir>/<model>.<pooling>.h5` "
                                                      "(default `features/`)", "a folder")
    models: Union[Names, dict[str, StrictStr]] = setting(
        [], "Hugging Face ids or local folders, or {name: id or folder}", "a list of models or a mapping")
    layers: Layers = setting("all", "`all`, a list of indices or a comma list (0 = embedding output)",
                             "'all' or layer indices")
    pooling: Literal[POOLINGS] = setting("last_token", "the word's state from its tokens: last_token, token_mean",
                                         f"one of {', '.join(POOLINGS)}")
    context: Context = setting({}, "what each word is read with")
    extraction: WordExtraction = setting({}, "how the word states are computed")
    story: Optional[StrictStr] = setting(None, "the story as a text file (default: the words of the first "
                                               "subject's tables)", "a file")
    subjects: dict[str, Any] = setting({}, "subject -> {runs: [{raw or epochs, words, ...}, ...]} or one run's keys",
                                       "a mapping of subject names to their recordings and word tables")
    epochs: Epochs = setting({}, "the epochs cut around each word")
    filter: Filter = setting({}, "MNE's band-pass, and a low-pass before decimating")
    windows: Windows = setting({}, "target windows after word onset, in seconds")
    segments: Annotated[StrictInt, at_least(3)] = setting(
        4, "CV over story segments: this many contiguous parts when a subject has one run", "a whole number >= 3")
    cv_folds: Optional[StrictInt] = setting(None, "inner folds over the training segments (null: leave one "
                                                  "segment out)", "a whole number or null")
    # checked by encoding.config.parse_alphas
    alphas: Any = setting({"logspace": [-2, 6, 17]}, "ridge penalties: {logspace: [start, stop, n]} or a list")
    n_permutations: Count = setting(1000, "block permutations of each sensor x window's r; 0 = none",
                                    "a whole number >= 0")
    permutation_block: Positive = setting(10, "consecutive words per permuted block (adjacent epochs overlap in "
                                              "time)", "a whole number >= 1")
    fdr_q: Annotated[Number, between(0, 1)] = setting(0.05, "Benjamini-Hochberg level for 'significant'",
                                                      "a number in (0, 1)")
    sensor_groups: Union[StrictStr, dict[str, Any]] = setting(
        "channel_types", "channel_types, vectorview, {name: [channel names]}",
        "channel_types, vectorview or a mapping of group to channel names")
    seed: StrictInt = setting(0, "seed of permutations", "a whole number")
    figures: StrictBool = setting(True, "false: no PNGs (tables and scores only)", "true or false")
    compare: Compare = setting({}, "settings of `compare`")
    diverge: Diverge = setting({}, "settings of `diverge`")


NESTED = {key: defaults(section) for key, section in sections(WordsConfig).items()}
DEFAULTS = {**defaults(WordsConfig), **copy.deepcopy(NESTED)}
RUN_KEYS = ("raw", "epochs", "words", "dataset", "sfreq", "tmin", "ch_names", "ch_types", "info", "events")


def load_words_config(path, overrides=None):
    """Read and check a word-by-word MEG study config.

    Parameters
    ----------
    path : str or Path
    overrides : dict or None
        Command-line values; None values are ignored. Nested keys as ``"diverge.proposer"``.

    Returns
    -------
    config : dict with every key of DEFAULTS (nested mappings filled in), plus ``config_file``.
    """
    path = Path(path)
    raw = read_config_file(path)
    check_known_keys(raw, DEFAULTS, path)
    check_nested_keys(raw, WordsConfig, path, known_order=list)
    config = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key in NESTED:
            if not isinstance(value or {}, dict):
                raise InputError(f"{path}: field '{key}' must be a mapping of {', '.join(NESTED[key])}.")
            value = {**NESTED[key], **(value or {})}
        config[key] = value
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        head, _, tail = key.partition(".")
        if tail:
            config[head][tail] = value
        else:
            config[key] = value
    config["config_file"] = str(path.resolve())
    config["name"] = config["name"] or path.stem
    check_section({k: config[k] for k in DEFAULTS}, WordsConfig, path)
    config["cache_dir"] = cache_folder(config["cache_dir"])
    config["alphas"] = parse_alphas(config["alphas"], path)
    config["models"] = model_sources(config["models"], path)
    config["subjects"] = _subject_runs(config["subjects"], path)
    _check_values(config, path)
    keep_given(config, ("features_dir", "story", "models", "layers", "subjects", "diverge", "compare"))
    config["layers"] = parse_layers(config["layers"], config["config_file"])
    if config["compare"]["models"] is not None:
        config["compare"]["models"] = parse_list(config["compare"]["models"])
    return resolve_paths(config)


def resolve_paths(config):
    """The paths of a words config resolved, in place (as ``encoding.config.resolve_paths`` does for
    encoding.run's): ``features_dir``, ``story``, ``diverge.hypotheses`` when a file, each run's ``words``,
    ``raw``, ``epochs`` and ``info`` (``{subject}`` filled), and each model that is a folder (beside the config,
    or spelled as a folder; a Hub id stays an id).

    Returns
    -------
    config : the same dict
    """
    base = base_dir(config)
    here = partial(resolve_path, config=config, base=base)
    config["features_dir"] = here(config["features_dir"] or "features")
    if config["story"]:
        config["story"] = here(config["story"])
    if isinstance(config["diverge"]["hypotheses"], str) and config["diverge"]["hypotheses"]:
        config["diverge"]["hypotheses"] = here(config["diverge"]["hypotheses"])
    config["subjects"] = resolve_runs(config["subjects"], ("words", "raw", "epochs", "info"), config, base)
    # a folder beside the config wins over a Hub id of the same spelling (and over the name minilm)
    config["models"] = {name: (here(source) if Path(here(source)).is_dir() or is_local_source(source) else source)
                        for name, source in config["models"].items()}
    return config


def model_name(source):
    """A short store name for a Hub id or folder: ``gpt2-xl``, ``openai-community--gpt2``, ``gpt2-socialiqa``."""
    text = str(source).rstrip("/")
    name = Path(text).name if is_local_source(text) else text.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "model"


def model_sources(value, path="config"):
    """``{name: source}`` from a mapping, a list or a comma list of Hub ids / folders."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    sources = parse_list(value)
    names = [model_name(s) for s in sources]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: field 'models' gives two models the name {names[0]!r}; give them as a mapping "
                         f"{{name: id or folder}}.")
    return dict(zip(names, sources))


def _subject_runs(subjects, path):
    """Each subject as ``{"runs": [run, ...]}``; a subject given as one run's keys becomes one run."""
    if not isinstance(subjects, dict) or not subjects:
        raise InputError(f"{path}: field 'subjects' must map subject names to their recordings and word tables.")
    out = {}
    for subject, entry in subjects.items():
        if not isinstance(entry, dict):
            raise InputError(f"{path}: field 'subjects.{subject}' must be a mapping with 'runs' or 'raw'/'epochs'.")
        runs = entry["runs"] if "runs" in entry else [entry]
        if not isinstance(runs, list) or not runs:
            raise InputError(f"{path}: field 'subjects.{subject}.runs' must be a non-empty list.")
        for i, run in enumerate(runs):
            where = f"subjects.{subject}.runs[{i}]"
            if not isinstance(run, dict):
                raise InputError(f"{path}: field '{where}' must be a mapping.")
            unknown = sorted(set(run) - set(RUN_KEYS))
            if unknown:
                raise InputError(f"{path}: unknown key '{where}.{unknown[0]}'; known: {', '.join(RUN_KEYS)}.")
            if ("raw" in run) == ("epochs" in run):
                raise InputError(f"{path}: field '{where}' needs exactly one of 'raw' and 'epochs'.")
            if "words" not in run:
                raise InputError(f"{path}: field '{where}.words' is missing: the word-onset table of the run.")
        out[str(subject)] = {"runs": runs}
    return out


def _check_values(config, path):
    """What relates two keys (each value alone is checked against :class:`WordsConfig`)."""
    if not config["models"]:
        raise InputError(f"{path}: field 'models' is empty.")
    windows = config["windows"]
    if not float(windows["stop"]) > float(windows["start"]):
        raise InputError(f"{path}: field 'windows' needs width > 0 and stop > start, found {windows}.")
    epochs = config["epochs"]
    if not float(epochs["tmax"]) > float(epochs["tmin"]):
        raise InputError(f"{path}: field 'epochs' needs tmax > tmin and decim >= 1, found {epochs}.")
    filtering = config["filter"]
    if None not in (filtering["l_freq"], filtering["h_freq"]) and not filtering["l_freq"] < filtering["h_freq"]:
        raise InputError(f"{path}: field 'filter' needs l_freq < h_freq, found {filtering}.")


def windows_of(config):
    """The target windows as a list of (start, stop) seconds, half-open."""
    start, stop, width = (float(config["windows"][k]) for k in ("start", "stop", "width"))
    n = int(round((stop - start) / width))
    if n < 1 or abs(start + n * width - stop) > 1e-9 * max(1.0, abs(stop)):
        raise InputError(f"{config['config_file']}: field 'windows' expects (stop - start) to be a whole number of "
                         f"widths, found start {start}, stop {stop}, width {width}.")
    return [(round(start + i * width, 9), round(start + (i + 1) * width, 9)) for i in range(n)]



def chosen_windows(windows, span, where):
    """The target windows inside ``span`` (start, stop seconds; None: all), as a boolean mask.

    ``where`` names the command and the config field in the error, e.g. ``"compare: field 'windows'"``.
    """
    if span is None:
        return np.ones(len(windows), bool)
    start, stop = (float(v) for v in span)
    mask = np.array([a >= start - 1e-9 and b <= stop + 1e-9 for a, b in windows])
    if not mask.any():
        raise InputError(f"{where} [{start}, {stop}] s holds none of the target windows.")
    return mask


def base_dir(config):
    return Path(config["config_file"]).parent


def output_folder(config, suffix=""):
    out = config["out"] or Path("results") / config["name"]
    return Path(str(out) + suffix)
