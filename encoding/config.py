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
    "stimuli": None,            # movie files (a folder, one file per stimulus run): extract missing features first
    "extraction": {},           # settings of extractors.run.ensure_features (tr, frames, pooling, device, ...)
    "model_paths": {},          # model name -> local folder of its weights (instead of the Hugging Face id)
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
    "memory_gb": 2.0,           # working memory of the ridge solver beyond its inputs; sets targets per batch
    "pca_components": None,     # reduce each layer to this many principal components (fitted on training runs)
    "flatmap": True,            # true: the default maps; false: none; or a list of encoding.flatmap MAPS
    "n_permutations": 1000,     # block permutations of each target's test r; 0 = no permutation test
    "permutation_block": 10,    # TRs per permuted block (longer than the hemodynamic response)
    "permutation_tail": "normal",  # p beyond the count's resolution from a normal null fit; "none": counts only
    "fdr_q": 0.05,              # Benjamini-Hochberg level for "significant"
    "ceiling_threshold": 0.05,  # normalized r only where the noise ceiling of r exceeds this
    "noise_ceiling": {"method": "auto", "extrapolation": "spearman_brown", "n_bootstrap": 100,
                      "max_subsets": 20},
    "n_bootstrap": 1000,        # resamples of the layer-hierarchy intervals
    "seed": 0,                  # permutations, bootstraps and subsets
    "work_dir": None,           # finished fits, kept for resuming; default: <out>.work beside the output folder
    "workers": None,            # fit on a local Dask cluster of this many single-threaded worker processes
    "scheduler": None,          # fit on an existing Dask cluster at this address (tcp://host:8786)
}
NESTED_KEYS = {"trim": {"start", "end"}, "rois": {"atlas", "lut", "names", "levels"},
               "noise_ceiling": {"method", "extrapolation", "n_bootstrap", "max_subsets"},
               "extraction": {"tr", "family", "frames", "window", "align", "pooling", "max_new_tokens", "dtype",
                              "device", "trust_remote_code", "partial", "batch_instructions", "video_max_pixels"}}
# nested mappings whose keys a config may give in part; the others fill in from DEFAULTS
MERGED_KEYS = ("noise_ceiling",)
CEILING_METHODS = ("auto", "repeat", "split_half", "cross_subject", "none")
DEFAULT_FLATMAPS = ("noise_ceiling", "normalized_r", "best_layer", "best_instruction", "unique_variance")


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
    config.update({k: ({**DEFAULTS[k], **(v or {})} if k in MERGED_KEYS else v) for k, v in raw.items()})
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    _check_analysis_values(config, path)
    # absolute, so paths relative to the config's folder resolve the same from any working directory
    config["config_file"] = str(path.resolve())
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


def _check_analysis_values(config, path):
    """Values of the statistics keys: one sentence naming the key when one is out of range."""
    checks = [
        ("n_permutations", isinstance(config["n_permutations"], int) and config["n_permutations"] >= 0,
         "a whole number >= 0"),
        ("permutation_block", isinstance(config["permutation_block"], int) and config["permutation_block"] >= 1,
         "a whole number of TRs >= 1"),
        ("permutation_tail", config["permutation_tail"] in ("normal", "none"), "normal or none"),
        ("fdr_q", isinstance(config["fdr_q"], (int, float)) and 0 < config["fdr_q"] < 1, "a number in (0, 1)"),
        ("ceiling_threshold", isinstance(config["ceiling_threshold"], (int, float))
         and 0 <= config["ceiling_threshold"] < 1, "a number in [0, 1)"),
        ("n_bootstrap", isinstance(config["n_bootstrap"], int) and config["n_bootstrap"] >= 1, "a whole number >= 1"),
        ("noise_ceiling.method", config["noise_ceiling"]["method"] in CEILING_METHODS,
         f"one of {', '.join(CEILING_METHODS)}"),
        ("noise_ceiling.extrapolation", config["noise_ceiling"]["extrapolation"] in ("spearman_brown", "exponential"),
         "spearman_brown or exponential"),
    ]
    for key, ok, expected in checks:
        if not ok:
            value = config
            for part in key.split("."):
                value = value[part]
            raise InputError(f"{path}: field '{key}' expected {expected}, found {value!r}.")


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
