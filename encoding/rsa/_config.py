"""The RSA run config: a YAML file whose keys are checked, plus command-line overrides.

Every key, its type, default, range and meaning is defined once, in :class:`RsaConfig` (the same
pydantic style as ``encoding._schema``); DEFAULTS is built from it. Any other key is an error naming the
file, so a typo never falls back to a default silently, and a bad value is the encoding config's one
sentence naming the file and the key. Paths are relative to the config's folder; "{cache}" works as in
the encoding config.
"""
import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import StrictBool, StrictInt, StrictStr

from features.errors import InputError

from ..config import (Count, Layers, Names, Number, Section, between, cache_folder, check_known_keys, check_section,
                      defaults, keep_given, parse_layers, parse_list, read_config_file, resolve_path, resolve_rois,
                      setting)
from ._compare import COMPARISONS
from ._inference import PARTIAL_KINDS
from ._rdm import METRICS

BRAIN_METRICS = METRICS + ("crossnobis",)


class RsaConfig(Section):
    """Every key of an ``encoding.rsa`` config, in the order the reference lists them."""
    name: Optional[StrictStr] = setting(None, "names the output folder when --out is not given", "a name")
    out: Optional[StrictStr] = setting(None, "output folder (default `results/<name>`)", "a folder")
    cache_dir: Optional[StrictStr] = setting(None, "`{cache}` in paths", "a folder")
    features_dir: Optional[StrictStr] = setting(None, "holds one store per model: `<features_dir>/<model>.h5`",
                                                "a folder")
    models: Names = setting([], "stores to read", "a list of model names")
    embeddings: Optional[dict[str, Any]] = setting(
        {}, "name -> embedding TSV/HDF5 or similarity HDF5 ({path, dataset}); model RDMs as given",
        "a mapping of names to embedding or similarity files")
    instructions: Names = setting("all", "instruction groups of the stores: a name, a comma list, a list or `all`",
                                  "a name, a comma list or a list")
    layers: Layers = setting(
        "all", "`all`, a list of indices or a comma list", "'all' or layer indices")
    events: Optional[StrictStr] = setting(None, "TSV of item events (onset, duration, item, run); none: items are "
                                                "the store's rows", "a file")
    items: Optional[list[Union[StrictStr, StrictInt]]] = setting(
        None, "item names to keep, in this order (default: all, by first event)", "a list of item names")
    tr: Optional[Number] = setting(None, "seconds per feature row (default: the store's 'tr' attribute)",
                                   "a number of seconds")
    metric: Literal[METRICS] = setting("correlation", "model RDMs: " + ", ".join(METRICS),
                                       f"one of {', '.join(METRICS)}")
    brain_metric: Literal[BRAIN_METRICS] = setting("correlation", "brain RDMs: " + ", ".join(BRAIN_METRICS),
                                                   f"one of {', '.join(BRAIN_METRICS)}")
    comparison: Literal[COMPARISONS] = setting("spearman", ", ".join(COMPARISONS),
                                               f"one of {', '.join(COMPARISONS)}")
    controls: Optional[dict[str, Any]] = setting(
        {}, "name -> .npy square RDM, or .tsv/.csv with an 'item' column and numeric columns",
        "a mapping of names to RDM files")
    partial: Literal[PARTIAL_KINDS] = setting(
        "partial", "with controls: partial, semipartial (controls removed from the model RDM only)",
        f"one of {', '.join(PARTIAL_KINDS)}")
    n_permutations: Count = setting(1000, "Mantel test per subject (items permuted)", "a whole number >= 0")
    n_bootstrap: Count = setting(1000, "item bootstrap per subject; subject bootstrap for the group rows",
                                 "a whole number >= 0")
    ci: Annotated[Number, between(0, 1)] = setting(0.95, "coverage of the bootstrap intervals", "a number in (0, 1)")
    random_state: Optional[StrictInt] = setting(0, "seed of permutations and bootstraps", "a whole number")
    hrf_model: Optional[StrictStr] = setting("spm", "item GLM on fMRI runs (nilearn's hrf_model)", "a name")
    # checked where it is used (``_brain._shrinkage``), which names the same key
    shrinkage: Any = setting("auto", "crossnobis noise covariance: `auto` (Schäfer-Strimmer) or a number in [0, 1]")
    detrend: StrictBool = setting(True, "linear detrend of each fMRI run", "true or false")
    zscore: StrictBool = setting(True, "z-score each fMRI run in time", "true or false")
    subjects: dict[str, Any] = setting({}, "subject -> {patterns: {path, dataset}, residuals: {...}} or "
                                           "{runs: [...]}", "a mapping of subject names to their patterns or runs")
    rois: Optional[dict[str, Any]] = setting(
        {"atlas": "all"}, "all, parcels, glasser_groups, glasser, atlas file, YAML/JSON {roi: [targets]}",
        "a mapping with 'atlas'")


DEFAULTS = defaults(RsaConfig)


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
    _check_values(config, path)
    config["cache_dir"] = cache_folder(config["cache_dir"])
    keep_given(config, ("features_dir", "models", "instructions", "layers", "events", "embeddings", "controls",
                        "subjects", "rois"))
    config["models"] = parse_list(config["models"])
    if config["instructions"] not in ("all", ["all"], None):
        config["instructions"] = parse_list(config["instructions"])
    config["layers"] = parse_layers(config["layers"], config["config_file"])
    return resolve_paths(config)


def resolve_paths(config):
    """The paths of an RSA config resolved, in place (as ``encoding.config.resolve_paths`` does for
    encoding.run's): ``features_dir``, ``events``, ``embeddings``, ``controls``, each subject's ``patterns``,
    ``residuals`` and run files (``{subject}`` filled), and the files of ``rois``.

    Returns
    -------
    config : the same dict
    """
    base = Path(config["config_file"]).parent

    def here(entry, **fields):       # a path, or {path, dataset, ...}
        if isinstance(entry, dict) and entry.get("path"):
            return {**entry, "path": resolve_path(entry["path"], config, base, **fields)}
        return resolve_path(entry, config, base, **fields) if isinstance(entry, str) else entry

    config["features_dir"] = here(config.get("features_dir") or "features")
    if config.get("events"):
        config["events"] = here(config["events"])
    for key in ("embeddings", "controls"):
        if isinstance(config.get(key), dict):
            config[key] = {name: here(entry) for name, entry in config[key].items()}
    subjects = {}
    for subject, spec in (config.get("subjects") or {}).items():
        if isinstance(spec, dict):
            spec = {**spec, **{key: here(spec[key], subject=subject) for key in ("patterns", "residuals")
                               if key in spec}}
            if isinstance(spec.get("runs"), list):
                spec["runs"] = [here(run, subject=subject) for run in spec["runs"]]
        subjects[subject] = spec
    config["subjects"] = subjects
    if isinstance(config.get("rois"), dict):
        config["rois"] = resolve_rois(config["rois"], config, base, names=("all",))
    return config


def _check_values(config, path):
    """Each value against :class:`RsaConfig`, then what relates two keys."""
    check_section({k: config[k] for k in DEFAULTS}, RsaConfig, path)
    if config["controls"] and config["comparison"] == "kendall_tau_a":
        raise InputError(f"{path}: field 'comparison' is kendall_tau_a, which has no partial form; use spearman "
                         f"or pearson with 'controls'.")
    if not parse_list(config["models"]) and not config["embeddings"]:
        raise InputError(f"{path}: field 'models' is empty (and no 'embeddings' are given).")
    if not config["subjects"]:
        raise InputError(f"{path}: field 'subjects' must map subject names to their patterns or runs.")
