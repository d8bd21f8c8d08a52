"""One fit as a unit of work: its spec, its fingerprint, and the function that computes it anywhere.

A spec is a small JSON-able mapping (no arrays): what to fit (a layer of one model and instruction,
or a banded fit over several), from which files (the subject's cached responses, the features
stores), with which settings. Its ``inputs`` are everything that changes the numbers: the
responses' and ROIs' content hash, each band's store parameters and layer content hash, the prompt,
delays, trim, alphas, folds, solver settings, permutations, seed, the fit format and the versions of
the libraries that compute; the fingerprint is their digest. Paths are not inputs, so a work folder
or a features folder that moves keeps its fits.

:func:`compute_fit` reads only files (the driver ships no arrays), fits, runs the block-permutation
test and writes the fit file atomically; it is what a Dask worker, the in-process loop and every
process under torchrun run.
"""
import json
import logging
from pathlib import Path

import numpy as np

from features.errors import InputError
from features.store import FeatureStore

from ..design import layer_design, stack
from ..layer_weights import band_depths, band_designs, band_label, fit_layer_weights, weight_samples
from ..outputs.scores_file import ScoresFile
from ..ridge import fit_banded_ridge, fit_ridge, fit_threads, limited_threads, reduce_features
from ..stats import block_permutations, fdr_bh, permutation_test
from ._work import FIT_FORMAT, atomic_path, digest, package_version, publish, read_subject_cache

log = logging.getLogger(__name__)

#: Settings of the config that change the numbers of a fit.
FIT_SETTINGS = ("delays", "trim", "alphas", "cv_folds", "backend", "n_targets_batch", "memory_gb", "pca_components",
                "n_permutations", "permutation_block", "permutation_tail", "seed")
#: Libraries whose versions change the numbers of every fit.
FIT_LIBRARIES = ("numpy", "scipy", "himalaya")
#: Libraries that compute only on some backends: backend prefix -> library.
BACKEND_LIBRARIES = {"torch": "torch", "cupy": "cupy"}


def code_versions(backend="numpy"):
    """The versions a fit's numbers depend on: the engine's and its fit format, numpy, scipy and himalaya, and
    the library of the backend when it is not numpy (torch for torch and torch_cuda), so that installing torch
    beside a numpy-backend sweep keeps its fits."""
    from importlib import metadata
    versions = {"fit_format": FIT_FORMAT, "mllm-encoding": package_version()}
    libraries = FIT_LIBRARIES + tuple(lib for prefix, lib in BACKEND_LIBRARIES.items() if backend.startswith(prefix))
    for name in libraries:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def fit_settings(config, joint=False, layer_weights=None):
    """The settings of the config that change a fit's numbers; ``layer_weights``: a layer-weights fit's own
    (its search, the layers of each band and the store's layer count)."""
    settings = {key: config[key] for key in FIT_SETTINGS}
    settings["alphas"] = [float(a) for a in np.asarray(config["alphas"])]
    if layer_weights is not None:
        settings["layer_weights"] = layer_weights
    if joint:
        settings["banded_iterations"] = config["banded_iterations"]
        if config.get("banded_search", "random") != "random":   # absent from fits made before the key existed
            settings["banded_search"] = config["banded_search"]
    return json.loads(json.dumps(settings, default=str))


def make_spec(kind, key, subject, subject_cache, subject_hash, bands, config, code, band_only=False,
              layer_weights=None):
    """A fit spec (module docstring) and its fingerprint.

    Parameters
    ----------
    kind : {"layer", "joint", "layer_weights"}
    key : str
        Where the fit goes in scores.h5 (``sub/model/instruction/layer_k``, ``sub/joint/name`` or
        ``sub/model/instruction/layer_weights``).
    bands : list of dict
        Per feature space: model, store (path), store_parameters, instruction, prompt, layer, layer_hash (a
        layer-weights fit: one per layer).
    band_only : bool
        A single-band fit that only a variance partition reads (not a row of the layer sweep).
    layer_weights : dict, optional
        A layer-weights fit's settings (``encoding.layer_weights``), with ``bands`` (the layers of each band)
        and ``n_layers`` (the store's layer count, for depths).
    """
    inputs = {"kind": kind, "key": key, "subject_hash": subject_hash, "band_only": band_only,
              "bands": [{k: v for k, v in band.items() if k != "store"} for band in bands],
              "settings": fit_settings(config, joint=kind == "joint", layer_weights=layer_weights), "code": code}
    return {**inputs, "subject": subject, "subject_cache": str(subject_cache),
            "stores": [str(band["store"]) for band in bands], "fingerprint": digest(inputs)}


def changed_inputs(old, new):
    """Dotted names of the inputs that differ between two specs of one key (for the log)."""
    changed = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                walk(a.get(name), b.get(name), f"{prefix}{name}.")
        elif a != b:
            changed.append(prefix.rstrip("."))
    walk({k: old.get(k) for k in ("subject_hash", "bands", "settings", "code")},
         {k: new.get(k) for k in ("subject_hash", "bands", "settings", "code")}, "")
    return changed


def compute_fit(spec, fit_file, write=True, threads=None, max_threads=None, progress=False):
    """Fit one spec and write its fit file (``fit_file``, atomically); returns the fingerprint.

    Under a launcher every process calls this (the ridge fits split their targets across processes and
    gather them); only the one with ``write`` writes. ``threads``: BLAS/torch threads of the fit and its
    permutation test (None: chosen from the fit's size, ``ridge._threads``), at most ``max_threads`` (a Dask
    worker's or a launched process's share of the machine). Threads change no number a fit file holds beyond
    float rounding, so they are not part of the fingerprint. ``progress``: a bar inside a banded fit.
    """
    from himalaya.backend import set_backend

    settings = spec["settings"]
    set_backend(settings["backend"], on_error="raise")
    data, rois, _, _ = read_subject_cache(spec["subject_cache"], with_space=False)
    # a target NaN or constant only in a test run is fitted; its test rows enter as zeros and are scored NaN
    Y = [np.nan_to_num(b[:, data.valid]) if i in data.test else b[:, data.valid] for i, b in enumerate(data.bold)]
    untestable = data.untestable[data.valid]
    Y_train, run_of_row = stack(Y, data.train)
    groups = data.cv_groups(run_of_row)
    Y_test, _ = stack(Y, data.test)
    Xs_train, Xs_test, scales = _designs(spec, data)
    alphas = np.asarray(settings["alphas"])
    threads = fit_threads(Y_train.shape[0], sum(X.shape[1] for X in Xs_train), threads)
    threads = min(threads, max_threads) if max_threads else threads
    fit_args = dict(alphas=alphas, n_folds=settings["cv_folds"], n_targets_batch=settings["n_targets_batch"],
                    Y_in_cpu=settings["backend"] == "torch_cuda", threads=threads)
    permutations = None
    if spec["kind"] == "layer" and settings["n_permutations"] and not spec["band_only"]:
        permutations = block_permutations([Y[i].shape[0] for i in data.test], settings["permutation_block"],
                                          settings["n_permutations"], settings["seed"], warn=False)
    if spec["kind"] == "layer":
        result = untested(fit_ridge(Xs_train[0], Y_train, groups, Xs_test[0], Y_test, **fit_args,
                                    memory_gb=settings["memory_gb"], pca_components=settings["pca_components"],
                                    return_prediction=permutations is not None), untestable)
    elif spec["kind"] == "layer_weights":
        result = untested(_fit_layer_weights(spec, Xs_train, Y_train, groups, Xs_test, Y_test, fit_args, progress),
                          untestable)
    else:
        result = untested(fit_banded_ridge(Xs_train, Y_train, groups, Xs_test, Y_test,
                                           n_iter=settings["banded_iterations"],
                                           search=settings.get("banded_search", "random"),
                                           memory_gb=settings["memory_gb"], progress=progress, **fit_args), untestable)
    if not write:
        return spec["fingerprint"]
    fit_file = Path(fit_file)
    tmp = atomic_path(fit_file)
    with ScoresFile(tmp, "w") as scores:
        key = spec["key"]
        attrs = {"n_features": int(Xs_train[0].shape[1])} if spec["kind"] == "layer" else {
            "bands": json.dumps([{k: band[k] for k in ("model", "instruction", "layer")} for band in spec["bands"]])}
        if spec["kind"] == "layer_weights":
            attrs = _layer_weights_attrs(settings["layer_weights"], result, scales)
        scores.write_fit(key, result, data.valid, **attrs)
        for name in ("weights", "preferred_depth"):
            if name in result.extra:
                scores.write_array(key, name, result.extra[name], data.valid)
        if permutations is not None:
            column = np.cumsum(data.valid) - 1   # ROI indices count all targets; the tested arrays the valid ones
            with limited_threads(threads):
                tested = permutation_test(Y_test, result.extra["test_prediction"], permutations,
                                          {roi: column[index] for roi, index in rois.items()},
                                          settings["permutation_tail"])
            scores.write_array(key, "p_perm", tested.p, data.valid)
            scores.write_array(key, "q_perm", fdr_bh(tested.p), data.valid)
            scores.attrs(key)["roi_p"] = json.dumps({roi: float(p) for roi, p in tested.roi_p.items()})
        scores.attrs("/").update(spec=json.dumps(spec), fingerprint=spec["fingerprint"])
    publish(tmp, fit_file)
    return spec["fingerprint"]


def _designs(spec, data):
    """Each band's stacked training and test design. A layer-weights fit reads each layer (reduced to its
    principal components on the training rows when asked) and returns its bands' designs, each scaled to the
    bands' mean trace, with the scales (``encoding.layer_weights.band_designs``); other fits return scales None."""
    settings = spec["settings"]
    weights = settings.get("layer_weights") if spec["kind"] == "layer_weights" else None
    pca = (weights or {}).get("pca_components")
    Xs_train, Xs_test = [], []
    for band, store_path in zip(spec["bands"], spec["stores"]):
        with FeatureStore(store_path) as store:
            X = layer_design(store, band["instruction"], band["layer"], data, settings["delays"], settings["trim"])
        X_train, X_test = stack(X, data.train)[0], stack(X, data.test)[0]
        del X
        if pca:
            if not 1 <= pca <= min(X_train.shape):
                raise InputError(f"{store_path}: field 'layer_weights.pca_components' expected 1..{min(X_train.shape)} "
                                 f"(the training TRs and delayed features of layer {band['layer']}), found {pca}.")
            X_train, X_test, _ = reduce_features(X_train, X_test, int(pca))
        Xs_train.append(X_train)
        Xs_test.append(X_test)
    if weights is None:
        return Xs_train, Xs_test, None

    layers = [band["layer"] for band in spec["bands"]]
    return band_designs(dict(zip(layers, Xs_train)), dict(zip(layers, Xs_test)), weights["bands"])


def _fit_layer_weights(spec, Xs_train, Y_train, groups, Xs_test, Y_test, fit_args, progress):
    """The banded fit over a model's layers (``encoding.layer_weights``) with its weight samples."""
    settings = spec["settings"]
    weights = settings["layer_weights"]
    gammas = weight_samples(len(weights["bands"]), weights["search"], weights["ratios"], weights["n_iter"],
                            settings["seed"])
    args = {k: v for k, v in fit_args.items() if k != "Y_in_cpu"}
    return fit_layer_weights(Xs_train, Y_train, groups, Xs_test, Y_test, band_depths(weights["bands"],
                             weights["n_layers"]), gammas, memory_gb=settings["memory_gb"], progress=progress, **args)


def _layer_weights_attrs(weights, result, scales):
    """What a layer-weights fit's group says about itself: its bands, their depths and scales, its samples."""
    return {"band_layers": json.dumps(weights["bands"]), "band_labels": json.dumps([band_label(b) for b in
                                                                                     weights["bands"]]),
            "band_depths": band_depths(weights["bands"], weights["n_layers"]), "band_scales": np.asarray(scales),
            "n_layers": int(weights["n_layers"]), "search": weights["search"],
            "n_samples": int(len(result.extra["band_weight_samples"]))}


def untested(result, untestable):
    """Test scores of the targets a test run cannot score (NaN or constant there) set to NaN."""
    for name in ("test_r", "test_r2", "test_r2_split"):
        values = getattr(result, name)
        if values is not None:
            values = np.array(values, dtype=np.float32)
            values[..., untestable] = np.nan
            setattr(result, name, values)
    return result
