"""One analysis, end to end: stores and fMRI in, one output folder out.

The folder is written under a temporary name and renamed when complete, so a failed or killed
run never leaves something that looks finished, and an existing folder is replaced only with
``overwrite``.
"""
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import yaml
from himalaya.backend import set_backend
from tqdm import tqdm

from features.errors import InputError
from features.store import FeatureStore
from instructions import resolve

from .config import DEFAULTS, expand_path, parse_list
from .design import layer_design, load_subject, split_runs, stack
from .outputs.alignment import best_layer_table, mark_best_layers, roi_rows, to_frame
from .outputs.figures import plot_layer_roi_heatmap
from .outputs.report import write_report
from .outputs.scores_file import ScoresFile
from .ridge import fit_banded_ridge, fit_ridge
from .roi_sets import rois_for_subject
from .versions import library_versions

log = logging.getLogger(__name__)


def output_folder(config):
    return Path(config["out"] or Path("results") / config["name"])


def run_analysis(config, overwrite=False):
    """Fit every (model, instruction, layer) for every subject and write the output folder.

    Returns
    -------
    out : Path of the finished folder
    """
    out = output_folder(config)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: output folder already exists; pass --overwrite to replace it or --out to "
                         f"choose another.")
    _set_backend(config["backend"])
    if config["demo"] is not None:
        from .demo.build import ensure_demo
        ensure_demo(config["cache_dir"], config["demo"] or {})
    stores = open_stores(config)
    instructions = _instructions(config, stores)
    layers = {model: _layers(config, store, instructions) for model, store in stores.items()}

    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _write_inputs(partial, config)
        rows = []
        with ScoresFile(partial / "scores.h5", "w") as scores:
            scores.write_root(_jsonable(config), library_versions())
            for subject in _subjects(config):
                rows += _fit_subject(config, subject, stores, instructions, layers, scores, partial)
        table = mark_best_layers(to_frame(rows, dict.fromkeys(r["roi"] for r in rows)))
        table.to_csv(partial / "alignment.csv", index=False)
        best = best_layer_table(table)
        best.to_csv(partial / "best_layers.csv", index=False)
        log.info("wrote %s and %s", partial / "alignment.csv", partial / "best_layers.csv")
        figures = _heatmaps(table, partial)
        write_report(partial, config, instructions, table, best, figures)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        for store in stores.values():
            store.close()
    log.info("finished: %s", out)
    return out, best


def _set_backend(name):
    if name not in ("numpy", "torch", "torch_cuda", "cupy"):
        raise InputError(f"--backend: unknown backend '{name}'; known: numpy, torch, torch_cuda, cupy.")
    try:
        set_backend(name, on_error="raise")
    except Exception as err:  # himalaya raises various errors for a missing torch or CUDA
        raise InputError(f"--backend: '{name}' is not usable on this machine ({err}).") from None


def open_stores(config):
    """One FeatureStore per requested model from ``<features_dir>/<model>.h5``."""
    folder = expand_path(config["features_dir"] or "features", config, Path(config["config_file"]).parent)
    models = parse_list(config["models"])
    available = sorted(p.stem for p in folder.glob("*.h5")) if folder.is_dir() else []
    if not models:
        raise InputError(f"{config['config_file']}: field 'models' is empty; stores in {folder}: "
                         f"{', '.join(available) or 'none'}.")
    unknown = [m for m in models if m not in available]
    if unknown:
        raise InputError(f"--model: unknown model '{unknown[0]}' (no features store {folder / unknown[0]}.h5); "
                         f"known: {', '.join(available) or 'none'}.")
    stores = {}
    for model in models:
        stores[model] = FeatureStore(folder / f"{model}.h5")
        log.info("read features store %s (%s)", stores[model].path, ", ".join(stores[model].instructions()))
    return stores


def _instructions(config, stores):
    names = config["instructions"]
    extra = parse_list(config["instruction_files"])
    if names == "all" or names == ["all"]:
        names = sorted(set.intersection(*(set(s.instructions()) for s in stores.values())))
    prompts = resolve(names, extra_files=extra)
    for model, store in stores.items():
        for name, prompt in prompts.items():
            if name not in store.instructions():
                raise InputError(f"{store.path}: field '{name}' does not exist; this store holds "
                                 f"{', '.join(store.instructions())}.")
            if store.prompt(name) != prompt:
                raise InputError(f"{store.path}: field '{name}' was computed with the prompt "
                                 f"{store.prompt(name)!r}, not {prompt!r}.")
    return prompts


def _layers(config, store, instructions):
    first = next(iter(instructions))
    stored = store.layers(first, store.runs(first)[0])
    wanted = config["layers"]
    if wanted in ("all", None, ["all"]):
        return stored
    wanted = [int(k) for k in parse_list(wanted)]
    missing = [k for k in wanted if k not in stored]
    if missing:
        raise InputError(f"{store.path}: --layers asks for layer {missing[0]}, stored layers are "
                         f"{stored[0]}..{stored[-1]}.")
    return wanted


def _subjects(config):
    if not config["subjects"]:
        raise InputError(f"{config['config_file']}: field 'subjects' is empty.")
    return list(config["subjects"])


def _fit_subject(config, subject, stores, instructions, layers, scores, out):
    feature_rows = {}
    for store in stores.values():
        for name in instructions:
            for run in store.runs(name):
                feature_rows.setdefault(run, []).append(
                    (str(store.path), int(store.done(name, run).size), store.parameters.get("tr")))
    data = load_subject(config, subject, feature_rows)
    train, test = split_runs(data, config["test_runs"])
    if (~data.valid).any():
        log.warning("%s: %d of %d targets are NaN or constant in some run; excluded and scored NaN",
                    subject, int((~data.valid).sum()), data.n_targets)
    rois, dropped = rois_for_subject(config, data)
    if dropped:
        log.warning("%s: ROI(s) with no valid targets, skipped: %s", subject, ", ".join(dropped))
    scores.write_subject(subject, data.valid, [data.run_names[i] for i in train],
                         [data.run_names[i] for i in test], data.files, data.space.describe(), config["cv_folds"])
    Y = [b[:, data.valid] for b in data.bold]
    Y_train, run_ids = stack(Y, train)
    Y_test, _ = stack(Y, test)
    fit_args = dict(alphas=config["alphas"], n_folds=config["cv_folds"],
                    n_targets_batch=config["n_targets_batch"], Y_in_cpu=config["backend"] == "torch_cuda")
    rows = []
    jobs = [(m, i, k) for m in stores for i in instructions for k in layers[m]]
    for model, instruction, layer in tqdm(jobs, desc=f"{subject} ridge per layer", unit="layer"):
        X = layer_design(stores[model], instruction, layer, data, config["delays"], config["trim"])
        X_train, _ = stack(X, train)
        X_test, _ = stack(X, test)
        result = fit_ridge(X_train, Y_train, run_ids, X_test, Y_test, **fit_args)
        key = f"{subject}/{model}/{instruction}/layer_{layer}"
        scores.write_fit(key, result, data.valid, n_features=X_train.shape[1])
        full = {name: scores.read(key, name) for name in ("test_r", "test_r2", "cv_score")}
        rows += roi_rows(subject, model, instruction, layer, max(layers[model]) + 1, full, rois)
    for model in stores:
        for instruction in instructions:
            key = f"{subject}/{model}/{instruction}"
            _, best_r = scores.write_best_layer(key, layers[model], data.valid)
            _flatmap(config, data, best_r, out / f"flatmap_{subject}_{model}_{instruction}.png",
                     f"{subject} · {model} · {instruction}: test r at the CV-best layer", rois)
    for joint in config["joint"]:
        _fit_joint(config, joint, subject, data, stores, train, test, Y_train, run_ids, Y_test, scores, fit_args)
    log.info("%s: wrote %d layer fits to %s", subject, len(jobs), out / "scores.h5")
    return rows


def _fit_joint(config, joint, subject, data, stores, train, test, Y_train, run_ids, Y_test, scores, fit_args):
    bands = joint.get("bands", []) if isinstance(joint, dict) else []
    if len(bands) < 2 or any(not {"model", "instruction", "layer"} <= set(b) for b in bands):
        raise InputError(f"{config['config_file']}: field 'joint' entries need a name and two or more bands, each "
                         f"with model, instruction and layer.")
    Xs = []
    for band in bands:
        if band["model"] not in stores:
            raise InputError(f"{config['config_file']}: field 'joint.bands.model' names '{band['model']}', which is "
                             f"not among the models of this run ({', '.join(stores)}).")
        Xs.append(layer_design(stores[band["model"]], band["instruction"], int(band["layer"]), data,
                               config["delays"], config["trim"]))
    Xs_train = [stack(X, train)[0] for X in Xs]
    Xs_test = [stack(X, test)[0] for X in Xs]
    result = fit_banded_ridge(Xs_train, Y_train, run_ids, Xs_test, Y_test, n_iter=config["banded_iterations"],
                              **fit_args)
    name = joint.get("name") or "+".join(f"{b['model']}:{b['layer']}" for b in bands)
    scores.write_fit(f"{subject}/joint/{name}", result, data.valid, bands=json.dumps(bands))
    log.info("%s: banded fit '%s' over %d bands written", subject, name, len(bands))


def _flatmap(config, data, values, output_file, title, rois):
    if not config["flatmap"]:
        return
    from .plotting import plot_flatmap
    try:
        plot_flatmap(values, data.space.kind, output_file=output_file, title=title, cmap="inferno",
                     vmin=0, colorbar_label="test r", roi_outlines=rois)
    except InputError as err:
        log.warning("no flatmap for this space: %s", err)
        return
    log.info("wrote %s", output_file)


def _heatmaps(table, out):
    import matplotlib.pyplot as plt
    files = []
    for (subject, model, instruction), part in table.groupby(["subject", "model", "instruction"], sort=False):
        path = out / f"layer_roi_{subject}_{model}_{instruction}.png"
        fig = plot_layer_roi_heatmap(part, f"{subject} · {model} · {instruction}", path)
        plt.close(fig)
        files.append(path.name)
    log.info("wrote %d layer x ROI heatmaps", len(files))
    return files


def _write_inputs(out, config):
    with open(out / "config.yaml", "w") as handle:
        yaml.safe_dump(_jsonable(config), handle, sort_keys=False)
    (out / "versions.json").write_text(json.dumps(library_versions(), indent=2))


def _jsonable(config):
    clean = {k: config[k] for k in list(DEFAULTS) + ["config_file"] if k in config}
    clean["alphas"] = [float(a) for a in np.asarray(config["alphas"])]
    return json.loads(json.dumps(clean, default=str))
