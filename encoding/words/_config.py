"""The word-by-word MEG study config: a YAML file whose keys are checked, plus command-line overrides.

Every key is listed in DEFAULTS (nested ones in NESTED); any other key is an error naming the file, so
a typo never falls back to a default silently. Paths are relative to the config's folder; "{cache}"
and "{subject}" work as in the encoding config.
"""
import copy
import os
import re
from pathlib import Path

from extractors.words import is_local_source
from features.errors import InputError

from ..config import check_known_keys, parse_alphas, parse_list, read_config_file

DEFAULTS = {
    "name": None,              # names the output folders when --out is not given
    "out": None,               # output folder of `run`; default results/<name>; compare/diverge add a suffix
    "work_dir": None,          # finished fits, kept for resuming; default <out>.work
    "cache_dir": None,         # "{cache}" in paths
    "features_dir": None,      # word-feature stores <features_dir>/<model>.<pooling>.h5; default features/
    "models": [],              # Hugging Face ids or local folders, or {name: id or folder}
    "layers": "all",           # "all", a list of indices or "0,12,24" (0 = embedding output)
    "pooling": "last_token",   # last_token | token_mean: the word's state from its tokens
    "context": {},             # {unit: sentences | words, size, max_tokens, bos}: what each word is read with
    "extraction": {},          # {device, dtype, batch_size}
    "story": None,             # the story as a text file; default: the words of the first subject's tables
    "subjects": {},            # subject -> {runs: [{raw | epochs, words, ...}, ...]} or one run's keys
    "epochs": {},              # {tmin, tmax, baseline, decim, picks}
    "filter": {},              # {l_freq, h_freq, antialias}: MNE's band-pass, and a low-pass before decimating
    "windows": {},             # {start, stop, width}: target windows after word onset, in seconds
    "segments": 4,             # CV over story segments: this many contiguous parts when a subject has one run
    "cv_folds": None,          # inner folds over the training segments; None = leave one segment out
    "alphas": {"logspace": [-2, 6, 17]},
    "n_permutations": 1000,    # block permutations of each sensor x window's r; 0 = none
    "permutation_block": 10,   # consecutive words per permuted block (adjacent epochs overlap in time)
    "fdr_q": 0.05,
    "sensor_groups": "channel_types",  # channel_types | vectorview | {name: [channel names]}
    "seed": 0,
    "figures": True,           # false: no PNGs (tables and scores only)
    "compare": {},             # {models, layers, windows, sensor_group, n_permutations, threshold}
    "diverge": {},             # see NESTED["diverge"]
}
NESTED = {
    "context": {"unit": "sentences", "size": 1, "max_tokens": 512, "bos": True},
    "extraction": {"device": "cpu", "dtype": "float32", "batch_size": 16},
    # no baseline by default: in continuous speech the 200 ms before a word hold the previous word's
    # response, and subtracting it leaks that response (and whatever predicts it) into every window
    "epochs": {"tmin": -0.2, "tmax": 0.8, "baseline": None, "decim": 1, "picks": "data"},
    "filter": {"l_freq": None, "h_freq": None, "antialias": True},
    "windows": {"start": 0.0, "stop": 0.5, "width": 0.025},
    "compare": {"models": None, "layers": {}, "windows": None, "sensor_group": "all", "n_permutations": 1000,
                "threshold": None},
    "diverge": {"model": None, "layer": None, "windows": None, "sensor_group": "all", "k": 50, "prompt_k": 15,
                "n_rounds": 3, "n_hypotheses": 10, "hypotheses": None, "proposer": None, "proposer_model": "default",
                "proposer_timeout": 120, "max_new_tokens": 200, "verifier": "minilm",
                "verifier_input": "sentence", "n_permutations": 2000},
}
RUN_KEYS = ("raw", "epochs", "words", "dataset", "sfreq", "tmin", "ch_names", "ch_types", "info", "events")
POOLINGS = ("last_token", "token_mean")


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
    config = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key in NESTED:
            if not isinstance(value or {}, dict):
                raise InputError(f"{path}: field '{key}' must be a mapping of {', '.join(NESTED[key])}.")
            extra = sorted(set(value or {}) - set(NESTED[key]))
            if extra:
                raise InputError(f"{path}: unknown config key '{key}.{extra[0]}'; known: {', '.join(NESTED[key])}.")
            value = {**NESTED[key], **(value or {})}
        config[key] = value
    for key in NESTED:
        if key not in raw:
            config[key] = copy.deepcopy(NESTED[key])
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
    config["cache_dir"] = str(Path(os.path.expanduser(
        config["cache_dir"] or os.environ.get("MLLM_ENCODING_CACHE", "~/.cache/mllm-encoding"))))
    config["alphas"] = parse_alphas(config["alphas"], path)
    config["models"] = model_sources(config["models"], path)
    config["subjects"] = _subject_runs(config["subjects"], path)
    _check_values(config, path)
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
    if not config["models"]:
        raise InputError(f"{path}: field 'models' is empty.")
    if config["pooling"] not in POOLINGS:
        raise InputError(f"{path}: field 'pooling' is {config['pooling']!r}; known: {', '.join(POOLINGS)}.")
    for key, minimum in (("n_permutations", 0), ("permutation_block", 1), ("segments", 3)):
        if not isinstance(config[key], int) or config[key] < minimum:
            raise InputError(f"{path}: field '{key}' must be a whole number >= {minimum}, found {config[key]!r}.")
    if not 0 < float(config["fdr_q"]) < 1:
        raise InputError(f"{path}: field 'fdr_q' must lie in (0, 1), found {config['fdr_q']!r}.")
    windows = config["windows"]
    if not (float(windows["width"]) > 0 and float(windows["stop"]) > float(windows["start"])):
        raise InputError(f"{path}: field 'windows' needs width > 0 and stop > start, found {windows}.")
    epochs = config["epochs"]
    if not float(epochs["tmax"]) > float(epochs["tmin"]) or int(epochs["decim"]) < 1:
        raise InputError(f"{path}: field 'epochs' needs tmax > tmin and decim >= 1, found {epochs}.")
    filtering = config["filter"]
    for key in ("l_freq", "h_freq"):
        if filtering[key] is not None and not (isinstance(filtering[key], (int, float)) and filtering[key] > 0):
            raise InputError(f"{path}: field 'filter.{key}' must be a frequency in Hz > 0 or null, found "
                             f"{filtering[key]!r}.")
    if None not in (filtering["l_freq"], filtering["h_freq"]) and not filtering["l_freq"] < filtering["h_freq"]:
        raise InputError(f"{path}: field 'filter' needs l_freq < h_freq, found {filtering}.")
    if not isinstance(filtering["antialias"], bool):
        raise InputError(f"{path}: field 'filter.antialias' must be true or false, found {filtering['antialias']!r}.")
    diverge = config["diverge"]
    if not isinstance(diverge["k"], int) or diverge["k"] < 2:
        raise InputError(f"{path}: field 'diverge.k' must be a whole number >= 2, found {diverge['k']!r}.")
    if not isinstance(diverge["n_permutations"], int) or diverge["n_permutations"] < 1:
        raise InputError(f"{path}: field 'diverge.n_permutations' must be a whole number >= 1, found "
                         f"{diverge['n_permutations']!r}.")
    if diverge["verifier_input"] not in ("sentence", "word"):
        raise InputError(f"{path}: field 'diverge.verifier_input' is {diverge['verifier_input']!r}; known: "
                         f"sentence, word.")


def windows_of(config):
    """The target windows as a list of (start, stop) seconds, half-open."""
    start, stop, width = (float(config["windows"][k]) for k in ("start", "stop", "width"))
    n = int(round((stop - start) / width))
    if n < 1 or abs(start + n * width - stop) > 1e-9 * max(1.0, abs(stop)):
        raise InputError(f"{config['config_file']}: field 'windows' expects (stop - start) to be a whole number of "
                         f"widths, found start {start}, stop {stop}, width {width}.")
    return [(round(start + i * width, 9), round(start + (i + 1) * width, 9)) for i in range(n)]


def base_dir(config):
    return Path(config["config_file"]).parent


def output_folder(config, suffix=""):
    out = config["out"] or Path("results") / config["name"]
    return Path(str(out) + suffix)
