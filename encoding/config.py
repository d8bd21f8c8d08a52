"""Run configuration: a YAML file or a mapping whose keys are checked, plus command-line overrides.

Every key the engine understands is defined once, with its type, default and meaning, in the schema
(``encoding._schema.EncodingConfig``); DEFAULTS is built from it. Any other key is an error naming the
file, so a typo never silently falls back to a default, and a value of the wrong type or range is one
sentence naming the key. A mapping given from Python is checked the same way, with the same sentences.

The config is read once: :func:`load_config` (and the rsa and words studies' loaders) resolve every path
(``{cache}``, ``~``, relative to the config's folder, ``{subject}`` in a subject's run files) and parse every
list, so the stages read them as they are; the values as given are kept beside (:func:`as_given`) for
what the outputs record and the resume fingerprints hash.
"""
import copy
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import yaml
from pydantic import ValidationError

from features.errors import InputError

from . import _schema
# the schema's building blocks, public for the side studies' own schemas (encoding.rsa, encoding.words, triplets)
from ._schema import (Count, Layers, Names, Number, Positive, Section, at_least, between, defaults,  # noqa: F401
                      render_config_reference, sections, setting)
from .rois import BUILTIN_ATLASES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
#: what a config given as a mapping is called in messages (it has no file name)
MAPPING_LABEL = "<config mapping>"

DEFAULTS = _schema.defaults()
NESTED_KEYS = {key: set(section.model_fields) for key, section in _schema.sections().items()}
# nested mappings whose keys a config may give in part; the others fill in from DEFAULTS
MERGED_KEYS = ("noise_ceiling", "transcript")
CEILING_METHODS = _schema.CEILING_METHODS
#: the file fields of a run in ``subjects``, resolved by load_config
RUN_FILE_FIELDS = ("path", "mask", "left", "right")
DEFAULT_FLATMAPS = ("noise_ceiling", "normalized_r", "best_layer", "best_instruction", "unique_variance")


def load_config(source=None, overrides=None, base_dir=None):
    """Read a config (a YAML file or a mapping), check its keys and values, apply overrides, resolve paths.

    Parameters
    ----------
    source : str, Path, mapping or None
        A YAML file, or the config itself as a mapping (from a notebook). None reads
        ``configs/default.yaml`` (the embedded demo).
    overrides : dict or None
        Values from the command line; None values are ignored.
    base_dir : str or Path or None
        For a mapping: the folder its relative paths are read from (default: the working directory).
        A file's relative paths are read from the file's folder.

    Returns
    -------
    config : dict with every key of DEFAULTS, plus ``config_file`` (for a mapping, ``<base_dir>/<config
    mapping>``: messages name it and paths resolve against its folder) and ``given``. Paths are resolved
    (:func:`resolve_paths`; ``features_dir`` defaults to ``features`` beside the config), ``models`` and
    ``instruction_files`` are lists, ``layers`` is "all" or a list of indices.
    """
    raw, label, config_file = _read(source, base_dir)
    _check_keys(raw, label)
    _check_keys({k: None for k in overrides or {}}, "overrides")
    config = copy.deepcopy(DEFAULTS)
    config.update({k: ({**DEFAULTS[k], **(v or {})} if k in MERGED_KEYS else copy.deepcopy(v)) for k, v in raw.items()})
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    check_values(config, label)
    config["config_file"] = config_file
    config["name"] = config["name"] or (Path(label).stem if label != MAPPING_LABEL else "analysis")
    config["cache_dir"] = cache_folder(config["cache_dir"])
    config["alphas"] = parse_alphas(config["alphas"], label)
    if isinstance(config["test_runs"], (str, int)):
        config["test_runs"] = parse_list(str(config["test_runs"]))
    keep_given(config, ("features_dir", "stimuli", "work_dir", "model_paths", "transcript", "rois", "subjects",
                        "models", "instruction_files", "layers"))
    config["models"] = parse_list(config["models"])
    config["instruction_files"] = parse_list(config["instruction_files"])
    config["layers"] = parse_layers(config["layers"], config["config_file"])
    return resolve_paths(config)


def resolve_paths(config):
    """The paths of a config (``encoding.run``'s, or one it wrote) resolved, in place: ``{cache}`` filled, ``~``
    expanded, a relative path read from the config's folder (``work_dir``: from the working directory), and
    ``{subject}`` in a subject's run files filled with its name. Built-in atlas names stay names.

    Parameters
    ----------
    config : dict with ``config_file`` and ``cache_dir``

    Returns
    -------
    config : the same dict
    """
    base = Path(config["config_file"]).parent
    config["features_dir"] = resolve_path(config.get("features_dir") or "features", config, base)
    for key in ("stimuli", "work_dir"):
        if config.get(key):
            config[key] = resolve_path(config[key], config, base if key == "stimuli" else None)
    config["model_paths"] = {m: resolve_path(p, config, base) for m, p in (config.get("model_paths") or {}).items()}
    config["instruction_files"] = [resolve_path(p, config, base) for p in config.get("instruction_files") or []]
    transcript = config.get("transcript")
    if isinstance(transcript, dict):
        if transcript.get("words"):
            transcript["words"] = resolve_path(transcript["words"], config, base)
        transcript["tables"] = {m: resolve_path(p, config, base) for m, p in (transcript.get("tables") or {}).items()}
    if isinstance(config.get("rois"), dict):
        config["rois"] = resolve_rois(config["rois"], config, base)
    config["subjects"] = resolve_runs(config.get("subjects"), RUN_FILE_FIELDS, config, base)
    return config


def resolve_rois(rois, config, base, names=()):
    """A ``rois`` mapping with its files resolved (``atlas`` unless a built-in name or one of ``names``, ``lut``,
    ``names`` when a file, ``networks``, ``parcellation``, ``levels`` when a file); shared by encoding.run's and
    encoding.rsa's configs."""
    rois = dict(rois)
    atlas = rois.get("atlas")
    if isinstance(atlas, dict):
        rois["atlas"] = {k: resolve_path(v, config, base) for k, v in atlas.items()}
    elif isinstance(atlas, str) and atlas not in ("auto", "parcels", *BUILTIN_ATLASES, *names):
        rois["atlas"] = resolve_path(atlas, config, base)
    for key in ("lut", "names", "networks", "levels"):
        if isinstance(rois.get(key), str):
            rois[key] = resolve_path(rois[key], config, base)
    if isinstance(rois.get("parcellation"), (list, tuple)):
        rois["parcellation"] = [resolve_path(v, config, base) for v in rois["parcellation"]]
    elif isinstance(rois.get("parcellation"), str):
        rois["parcellation"] = resolve_path(rois["parcellation"], config, base)
    return rois


def resolve_runs(subjects, file_fields, config, base):
    """``subjects`` with the named file fields of each run (a mapping in ``runs``) resolved, ``{subject}`` filled;
    entries of another shape are left as they are for the stage that reads them to name."""
    if not isinstance(subjects, dict):
        return subjects
    resolved = {}
    for subject, spec in subjects.items():
        runs = spec.get("runs") if isinstance(spec, dict) else None
        if isinstance(runs, list):
            spec = {**spec, "runs": [{k: (resolve_path(v, config, base, subject=subject) if k in file_fields else v)
                                      for k, v in run.items()} if isinstance(run, dict) else run for run in runs]}
        resolved[subject] = spec
    return resolved


def resolve_path(value, config, base, **fields):
    """One path of a config resolved (:func:`expand_path`), as a string: what every loader stores."""
    return str(expand_path(value, config, base, **fields))


def fields(config, keys):
    """The part of a config that one stage reads, as a read-only mapping: a stage handed this cannot read another
    field, nor replace one (``sweep``'s ``fit_settings`` hands a fit its settings the same way).

    Parameters
    ----------
    config : dict
    keys : sequence of str
        The stage's fields (its module's ``FIELDS``).

    Returns
    -------
    MappingProxyType
    """
    return MappingProxyType({key: config[key] for key in keys})


def keep_given(config, keys):
    """Keep the values of ``keys`` as the config gave them (``config["given"]``) before a loader resolves them:
    outputs record them and resume fingerprints hash them, as they did before paths were resolved at load."""
    config["given"] = copy.deepcopy({key: config[key] for key in keys if key in config})


def as_given(config):
    """The config with the values its loader resolved as they were given (see :func:`keep_given`), without
    ``given``: what config.yaml and scores.h5 record. A mapping changed since (a subject left out by --subjects,
    a model added on the command line) keeps its current entries, each as given where it was."""
    given = config.get("given") or {}
    out = {k: v for k, v in config.items() if k != "given"}
    for key, value in given.items():
        current = config.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = {k: value[k] if k in value else current[k] for k in current}
        else:
            out[key] = value
    return out


def parse_layers(value, path="config"):
    """``layers`` as "all" or a list of layer indices; one sentence for anything else."""
    if value in ("all", None, ["all"]):
        return "all"
    try:
        layers = [int(k) for k in parse_list([value] if isinstance(value, int) else value)]
    except (TypeError, ValueError):
        raise InputError(f"--layers: expected 'all' or a comma list of layer indices such as 0,8,16, found "
                         f"{value!r} (config key 'layers' in {path}).") from None
    if not layers:
        raise InputError(f"--layers: expected 'all' or a comma list of layer indices, found {value!r}.")
    return layers


def _read(source, base_dir):
    """(raw mapping, label for messages, config_file) of a file or a mapping."""
    if isinstance(source, Mapping):
        folder = Path(base_dir or os.getcwd()).expanduser().resolve()
        return dict(source), MAPPING_LABEL, str(folder / MAPPING_LABEL)
    path = Path(source) if source else DEFAULT_CONFIG
    # absolute, so paths relative to the config's folder resolve the same from any working directory
    return read_config_file(path), str(path), str(path.resolve())


def read_config_file(path):
    """The mapping of a YAML config file; one sentence for a missing file, bad YAML or a non-mapping.

    Shared by every command's config (encoding.run, encoding.rsa, encoding.words).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found.")
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of config keys, found {type(raw).__name__}.")
    return raw


def check_known_keys(raw, known, path):
    """InputError naming the first key of ``raw`` that ``known`` does not list."""
    unknown = sorted(str(k) for k in set(raw) - set(known))
    if unknown:
        raise InputError(f"{path}: unknown config key '{unknown[0]}'; known keys: {', '.join(known)}.")


def _check_keys(raw, path):
    check_known_keys(raw, DEFAULTS, path)
    check_nested_keys(raw, _schema.EncodingConfig, path)


def check_values(config, path="config"):
    """Every value against the schema: one sentence naming the first key whose value is wrong.

    Parameters
    ----------
    config : dict
        Every key of DEFAULTS (defaults merged in).
    path : str
        The file (or mapping label) named in the message.
    """
    check_section({k: config[k] for k in DEFAULTS}, _schema.EncodingConfig, path)


def check_section(values, schema, path, flags=False):
    """``values`` against a schema (``encoding._schema.Section``): InputError, one sentence naming the file
    and the first key whose value is wrong, "<path>: field '<key>' expected <expected>, found <value>.".

    Parameters
    ----------
    values : mapping
        The keys of the schema (a study's config, or a command's flags by their argparse names).
    schema : Section class
    path : str
        The file, mapping label or command named in the message.
    flags : bool
        Name the key as its command-line flag (``--n-triplets``).
    """
    try:
        schema.model_validate(dict(values))
    except ValidationError as err:
        # of a union's errors (``layer_weights``: not a bool, or a bad key of the mapping) the deepest names the key
        first = err.errors()[0]["loc"][0]
        keys = max((_schema.field_path(e["loc"], schema) for e in err.errors() if e["loc"][0] == first), key=len)
        value = values
        for key in keys:
            value = value[key] if isinstance(value, Mapping) else value
        name = "--" + keys[0].replace("_", "-") if flags else ".".join(keys)
        raise InputError(f"{path}: field '{name}' expected {_schema.expected(keys, schema)}, "
                         f"found {value!r}.") from None


def check_nested_keys(raw, schema, path, known_order=sorted):
    """InputError naming the first key of a nested section (``epochs.tmn``) that its section lacks."""
    for key, section in _schema.sections(schema).items():
        given = raw.get(key) or {}
        if not isinstance(given, Mapping):
            continue                # check_section says what the key expected
        allowed = list(section.model_fields)
        extra = sorted(str(k) for k in set(given) - set(allowed))
        if extra:
            raise InputError(f"{path}: unknown config key '{key}.{extra[0]}'; known: "
                             f"{', '.join(known_order(allowed))}.")


def cache_folder(value=None):
    """The folder ``{cache}`` stands for: ``value`` (``cache_dir``), else $MLLM_ENCODING_CACHE, else
    ~/.cache/mllm-encoding; ``~`` expanded."""
    return str(Path(os.path.expanduser(value or os.environ.get("MLLM_ENCODING_CACHE", "~/.cache/mllm-encoding"))))


def flatmap_kinds(value):
    """The ``flatmap`` key as the maps drawn besides the headline r map: () when false."""
    if value is True or value is None:
        return DEFAULT_FLATMAPS
    if value is False:
        return ()
    return tuple(parse_list(value))


def parse_alphas(value, path="config"):
    """``{"logspace": [start, stop, num]}`` or a list of positive numbers -> float array."""
    if isinstance(value, dict) and set(value) == {"logspace"}:
        start, stop, num = value["logspace"]
        return np.logspace(start, stop, int(num))
    alphas = np.asarray(value, dtype=float).ravel()
    if alphas.size == 0 or np.any(alphas <= 0):
        raise InputError(f"{path}: field 'alphas' must be positive numbers or {{logspace: [a, b, n]}}.")
    return alphas


def expand_path(value, config, base_dir=None, **fields):
    """Fill ``{cache}``, ``{subject}``, ``{run}``... in a path and resolve it against base_dir."""
    try:
        text = str(value).format(cache=config["cache_dir"], **fields)
    except (KeyError, IndexError, ValueError) as err:
        known = ", ".join("{" + name + "}" for name in ("cache", *fields))
        raise InputError(f"{config.get('config_file', 'config')}: path {str(value)!r} holds a placeholder it cannot "
                         f"fill ({err}); known: {known}.") from None
    path = Path(os.path.expanduser(text))
    if not path.is_absolute() and base_dir is not None:
        # "configs/../data/x" as "data/x": paths are named in messages and tables
        path = Path(os.path.normpath(Path(base_dir) / path))
    return path


def parse_list(value):
    """"a,b" or ["a", "b"] -> ["a", "b"]; None -> []."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)
