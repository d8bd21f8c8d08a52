"""The RSA run config: a YAML file whose keys are checked, plus command-line overrides.

Every key is listed in DEFAULTS; any other key is an error naming the file, so a typo never
falls back to a default silently. Paths are relative to the config's folder; "{cache}" works as
in the encoding config.
"""
import copy
import os
from pathlib import Path


from features.errors import InputError

from ..config import check_known_keys, parse_list, read_config_file
from ._compare import COMPARISONS
from ._inference import PARTIAL_KINDS
from ._rdm import METRICS

DEFAULTS = {
    "name": None,              # names the output folder when --out is not given
    "out": None,               # output folder; default results/<name>
    "cache_dir": None,         # "{cache}" in paths
    "features_dir": None,      # holds one store per model: <features_dir>/<model>.h5
    "models": [],              # stores to read
    "embeddings": {},          # name -> embedding TSV/HDF5 or similarity HDF5 ({path, dataset}); model RDMs as given
    "instructions": "all",     # instruction groups of the stores: a name, a comma list, a list or "all"
    "layers": "all",           # "all", a list of indices or "0,4,8"
    "events": None,            # TSV of item events (onset, duration, item, run); None: items are the store's rows
    "items": None,             # item names to keep, in this order (default: all, by first event)
    "tr": None,                # seconds per feature row (default: the store's 'tr' attribute)
    "metric": "correlation",   # model RDMs: correlation | cosine | euclidean
    "brain_metric": "correlation",  # brain RDMs: correlation | cosine | euclidean | crossnobis
    "comparison": "spearman",  # spearman | kendall_tau_a | pearson
    "controls": {},            # name -> .npy square RDM, or .tsv/.csv with an 'item' column and numeric columns
    "partial": "partial",      # with controls: partial | semipartial (controls removed from the model RDM only)
    "n_permutations": 1000,    # Mantel test per subject (items permuted)
    "n_bootstrap": 1000,       # item bootstrap per subject; subject bootstrap for the group rows
    "ci": 0.95,
    "random_state": 0,
    "hrf_model": "spm",        # item GLM on fMRI runs
    "shrinkage": "auto",       # crossnobis noise covariance: "auto" (Schäfer-Strimmer) or a number in [0, 1]
    "detrend": True,
    "zscore": True,
    "subjects": {},            # subject -> {patterns: {path, dataset}, residuals: {...}} or {runs: [...]}
    "rois": {"atlas": "all"},  # all | parcels | glasser_groups | glasser | atlas file | YAML/JSON {roi: [targets]}
}
CHOICES = {"metric": METRICS, "brain_metric": METRICS + ("crossnobis",), "comparison": COMPARISONS,
           "partial": PARTIAL_KINDS}


def load_rsa_config(path, overrides=None):
    """Read and check an RSA config.

    Parameters
    ----------
    path : str or Path
    overrides : dict or None
        Command-line values; None values are ignored.

    Returns
    -------
    config : dict with every key of DEFAULTS, plus ``config_file``.
    """
    path = Path(path)
    raw = read_config_file(path)
    check_known_keys(raw, DEFAULTS, path)
    config = copy.deepcopy(DEFAULTS)
    config.update(raw)
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config["config_file"] = str(path.resolve())   # relative paths resolve the same from any working directory
    config["name"] = config["name"] or path.stem
    config["cache_dir"] = str(Path(os.path.expanduser(
        config["cache_dir"] or os.environ.get("MLLM_ENCODING_CACHE", "~/.cache/mllm-encoding"))))
    _check_values(config, path)
    return config


def _check_values(config, path):
    for key, known in CHOICES.items():
        if config[key] not in known:
            raise InputError(f"{path}: field '{key}' is {config[key]!r}; known: {', '.join(known)}.")
    for key in ("n_permutations", "n_bootstrap"):
        if not isinstance(config[key], int) or config[key] < 0:
            raise InputError(f"{path}: field '{key}' must be a non-negative whole number, found {config[key]!r}.")
    if not 0 < float(config["ci"]) < 1:
        raise InputError(f"{path}: field 'ci' must lie between 0 and 1, found {config['ci']!r}.")
    if config["controls"] and config["comparison"] == "kendall_tau_a":
        raise InputError(f"{path}: field 'comparison' is kendall_tau_a, which has no partial form; use spearman "
                         f"or pearson with 'controls'.")
    if not isinstance(config["controls"] or {}, dict):
        raise InputError(f"{path}: field 'controls' must map names to RDM files.")
    if not isinstance(config["embeddings"] or {}, dict):
        raise InputError(f"{path}: field 'embeddings' must map names to embedding or similarity files.")
    if not parse_list(config["models"]) and not config["embeddings"]:
        raise InputError(f"{path}: field 'models' is empty (and no 'embeddings' are given).")
    if not isinstance(config["subjects"], dict) or not config["subjects"]:
        raise InputError(f"{path}: field 'subjects' must map subject names to their patterns or runs.")
