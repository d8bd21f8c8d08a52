"""Run configuration: a YAML file whose keys are checked, plus command-line overrides.

Every key the engine understands is listed in DEFAULTS with its default; any other key is an
error naming the file, so a typo never silently falls back to a default.
"""
import copy
import os
from pathlib import Path

import numpy as np
import yaml

from features.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"

DEFAULTS = {
    "name": None,               # names the output folder when --out is not given
    "out": None,                # output folder; default results/<name>
    "demo": None,               # mapping of demo settings: generate the embedded demo data first
    "cache_dir": None,          # "{cache}" in paths; default $MLLM_ENCODING_CACHE or ~/.cache/mllm-encoding
    "features_dir": None,       # holds one store per model: <features_dir>/<model>.h5
    "models": [],               # names of models (stores) to fit
    "instructions": "caption",  # a name, a comma list, a list or "all"
    "instruction_files": [],    # user YAML instruction sets added to the built-in ones
    "layers": "all",            # "all", a list of indices or "0,4,8"
    "subjects": {},             # subject -> {"runs": [run, ...]}; see encoding.fmri.load_run
    "runs": None,               # a place for a YAML anchor that subjects reuse; not read otherwise
    "test_runs": [],            # stimulus runs held out for testing (scored only)
    "cv_folds": None,           # None = leave one training run out
    "delays": [1, 2, 3, 4, 5],  # FIR delays in TRs, applied within each run
    "alphas": {"logspace": [-2, 6, 17]},
    "trim": {"start": 0, "end": 0},
    "detrend": True,
    "zscore": True,
    "tr_tolerance": 2,          # feature rows vs fMRI TRs that may differ per run before it is an error
    "rois": {"atlas": "glasser_groups"},
    "joint": [],                # banded fits: [{"name": ..., "bands": [{"model", "instruction", "layer"}]}]
    "banded_iterations": 50,
    "backend": "numpy",
    "n_targets_batch": 20000,
    "flatmap": True,
}
NESTED_KEYS = {"trim": {"start", "end"}, "rois": {"atlas", "lut", "names"}}


def load_config(path=None, overrides=None):
    """Read a YAML config, check its keys, apply overrides and expand paths.

    Parameters
    ----------
    path : str, Path or None
        None reads ``configs/default.yaml`` (the embedded demo).
    overrides : dict or None
        Values from the command line; None values are ignored.

    Returns
    -------
    config : dict with every key of DEFAULTS, plus ``config_file``.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise InputError(f"{path}: config file not found.")
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of config keys, found {type(raw).__name__}.")
    _check_keys(raw, path)
    config = copy.deepcopy(DEFAULTS)
    config.update(raw)
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config["config_file"] = str(path)
    config["name"] = config["name"] or path.stem
    config["cache_dir"] = str(Path(os.path.expanduser(
        config["cache_dir"] or os.environ.get("MLLM_ENCODING_CACHE", "~/.cache/mllm-encoding"))))
    config["alphas"] = parse_alphas(config["alphas"], path)
    return config


def _check_keys(raw, path):
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise InputError(f"{path}: unknown config key '{unknown[0]}'; known keys: {', '.join(DEFAULTS)}.")
    for key, allowed in NESTED_KEYS.items():
        extra = sorted(set(raw.get(key) or {}) - allowed)
        if extra:
            raise InputError(f"{path}: unknown config key '{key}.{extra[0]}'; known: {', '.join(sorted(allowed))}.")


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
    text = str(value).format(cache=config["cache_dir"], **fields)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def parse_list(value):
    """"a,b" or ["a", "b"] -> ["a", "b"]; None -> []."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)
