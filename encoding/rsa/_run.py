"""One RSA analysis, end to end: stores, events and brain data in, one output folder out.

The folder holds ``rsa.csv`` (the tidy layer x ROI table), ``rdms.h5`` (every model and brain RDM,
to inspect or reuse), ``config.yaml`` and ``versions.json``. It is written under a temporary name
and renamed when complete, so a killed run never leaves something that looks finished.
"""
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from features.errors import InputError
from features.events import read_events

from ..config import as_given
from ..outputs.alignment import add_fdr, to_frame
from ..outputs.folder import atomic_folder, refuse_existing
from ..pipeline import open_stores, output_folder, select_layers
from ..versions import library_versions
from ._brain import brain_rdms
from ._embeddings import item_matrix_rdm, read_item_matrix
from ._maps import group_row, subject_row
from ._patterns import feature_item_patterns, item_order
from ._rdm import pattern_rdm

log = logging.getLogger(__name__)


def run_rsa(config, overwrite=False):
    """Compute every model RDM (model x instruction x layer) and brain RDM (subject x ROI), compare
    them and write the output folder.

    Returns
    -------
    out : Path of the finished folder
    table : DataFrame, the rows of ``rsa.csv``
    """
    out = output_folder(config["out"], config["name"])
    refuse_existing(out, overwrite)
    stores = open_stores(config["features_dir"], config["models"], config["config_file"]) if config["models"] else {}
    try:
        events = _events(config)
        items = _items(config, stores, events)
        controls = _control_rdms(config, items)
        models = {**_model_rdms(config, stores, items, events), **_embedding_rdms(config, items)}
        brains = {subject: brain_rdms(config, subject, items, events) for subject in config["subjects"]}
    finally:
        for store in stores.values():
            store.close()
    table = _table(config, models, brains, controls)
    with atomic_folder(out, overwrite) as partial:
        table.to_csv(partial / "rsa.csv", index=False)
        _write_rdms(partial / "rdms.h5", items, models, brains, controls)
        (partial / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(as_given(config), default=str)),
                                                            sort_keys=False))
        (partial / "versions.json").write_text(json.dumps(library_versions(), indent=2))
    log.info("wrote %s (%d rows)", out / "rsa.csv", len(table))
    return out, table


def _events(config):
    if not config["events"]:
        return None
    path = Path(config["events"])
    events = read_events(path, required=("onset", "duration", "item", "run"))
    events["item"], events["run"] = events["item"].astype(str), events["run"].astype(str)
    log.info("read %s: %d events of %d items", path, len(events), events["item"].nunique())
    return events


def _items(config, stores, events):
    """Item names: from the events table, or the rows of the first store (named by their text)."""
    if events is not None:
        return item_order(events, config["items"])
    if not stores:   # embeddings only: the items of the first one
        name, entry = next(iter(config["embeddings"].items()))
        names = read_item_matrix(*_embedding_source(config, name, entry))[0]
        return names if config["items"] is None else [str(i) for i in config["items"]]
    store = next(iter(stores.values()))
    names = _row_names(store, _instructions(config, store)[0])
    if config["items"] is None:
        return names
    missing = [i for i in config["items"] if str(i) not in names]
    if missing:
        raise InputError(f"{store.path}: field 'text' names no row {missing[0]!r}, which the config's 'items' lists.")
    return [str(i) for i in config["items"]]


def _row_names(store, instruction):
    """One name per stored row over the instruction's runs: its text (e.g. the word), else run:row."""
    names = []
    for run in store.runs(instruction):
        names += [t if t else f"{run}:{i}" for i, t in enumerate(store.read_text(instruction, run))]
    return names if len(set(names)) == len(names) else [f"{n}#{i}" for i, n in enumerate(names)]


def _instructions(config, store):
    wanted = config["instructions"]
    if wanted in ("all", ["all"], None):
        return store.instructions()
    names = wanted
    for name in names:
        if name not in store.instructions():
            raise InputError(f"{store.path}: field '{name}' does not exist; instructions stored: "
                             f"{', '.join(store.instructions())}.")
    return names


def _model_rdms(config, stores, items, events):
    """{(model, instruction, layer): (rdm (n_items, n_items), n_layers)} from each store."""
    models = {}
    for model, store in stores.items():
        for instruction in _instructions(config, store):
            stored = store.layers(instruction, store.runs(instruction)[0])
            layers = select_layers(config["layers"], stored, store.path, config["config_file"])
            n_layers = len(stored)
            for layer in tqdm(layers, desc=f"{model}/{instruction} model RDMs", unit="layer", disable=len(layers) < 4):
                patterns = _layer_patterns(config, store, instruction, layer, items, events)
                models[model, instruction, layer] = (pattern_rdm(patterns, config["metric"]), n_layers)
    log.info("computed %d model RDMs over %d items", len(models), len(items))
    return models


def _embedding_source(config, name, entry):
    """(path, dataset) of one ``embeddings`` entry: a path, or ``{path, dataset}``."""
    entry = entry if isinstance(entry, dict) else {"path": entry}
    if not entry.get("path"):
        raise InputError(f"{config['config_file']}: field 'embeddings.{name}' needs a 'path'.")
    return Path(entry["path"]), entry.get("dataset")


def _embedding_rdms(config, items):
    """{(name, "none", 0): (rdm, 1)} for every embedding or similarity file the config gives."""
    rdms = {}
    for name, entry in (config["embeddings"] or {}).items():
        path, dataset = _embedding_source(config, name, entry)
        rdms[name, "none", 0] = (item_matrix_rdm(path, items, config["metric"], dataset), 1)
        log.info("read %s: the model RDM of '%s'", path, name)
    return rdms


def _layer_patterns(config, store, instruction, layer, items, events):
    rows = {run: store.read_layer(instruction, run, layer) for run in store.runs(instruction)}
    if events is not None:
        tr = config["tr"] or store.parameters.get("tr")
        if not tr:
            raise InputError(f"{store.path}: field 'tr' is not recorded; give the seconds per feature row as 'tr' "
                             f"in the config.")
        return feature_item_patterns(rows, events, items, float(tr))
    stacked = np.concatenate(list(rows.values()))
    names = _row_names(store, instruction)
    if len(names) != stacked.shape[0]:
        raise InputError(f"{store.path}: field '{instruction}' has {stacked.shape[0]} rows, the items number "
                         f"{len(names)}; every store must hold the same items.")
    position = {name: i for i, name in enumerate(names)}
    missing = [i for i in items if i not in position]
    if missing:
        raise InputError(f"{store.path}: field 'text' names no row {missing[0]!r}; every store must hold the same "
                         f"items.")
    return stacked[[position[i] for i in items]]


def _control_rdms(config, items):
    """{name: rdm (n_items, n_items)} from .npy RDMs or tables of item ratings."""
    controls = {}
    for name, value in (config["controls"] or {}).items():
        path = Path(value)
        if not path.is_file():
            raise InputError(f"{path}: control RDM file not found (field 'controls.{name}').")
        if path.suffix == ".npy":
            rdm = np.load(path, allow_pickle=False)
            if rdm.shape != (len(items), len(items)):
                raise InputError(f"{path}: field 'controls.{name}' expected a ({len(items)}, {len(items)}) RDM in "
                                 f"item order, found shape {rdm.shape}.")
        else:
            table = pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t")
            if "item" not in table.columns:
                raise InputError(f"{path}: field 'item' is missing; a ratings table needs an item column.")
            table = table.assign(item=table["item"].astype(str)).set_index("item")
            missing = [i for i in items if i not in table.index]
            if missing:
                raise InputError(f"{path}: field 'item' has no row for {missing[0]!r}.")
            rdm = pattern_rdm(table.loc[items].select_dtypes("number").to_numpy(float), config["metric"])
        controls[name] = np.asarray(rdm, dtype=float)
    return controls


def _table(config, models, brains, controls):
    """Rows per (subject, model, instruction, layer, roi), then group rows over subjects."""
    settings = {k: config[k] for k in ("comparison", "partial", "n_permutations", "n_bootstrap", "ci")}
    control_rdms = list(controls.values())
    extra = {"comparison": config["comparison"], "model_metric": config["metric"],
             "brain_metric": config["brain_metric"], "controls": ",".join(controls) or "none",
             "partial": config["partial"] if controls else "none"}
    rows, group = [], []
    cells = [(m, s, roi) for m in models for s in brains for roi in brains[s]]
    for cell, ((model, instruction, layer), subject, roi) in enumerate(tqdm(cells, desc="RSA cells", unit="cell")):
        model_rdm, n_layers = models[model, instruction, layer]
        brain_rdm, n_targets = brains[subject][roi]
        key = {"subject": subject, "model": model, "instruction": instruction, "layer": layer,
               "depth": layer / max(n_layers - 1, 1), "roi": roi, "n_targets": n_targets, **extra}
        rows.append(subject_row(key, brain_rdm, model_rdm, control_rdms, settings, [config["random_state"], cell]))
    subjects = list(brains)
    shared = [roi for roi in brains[subjects[0]] if all(roi in brains[s] for s in subjects)]
    if len(subjects) > 1:
        by_key = {(r["model"], r["instruction"], r["layer"], r["subject"], r["roi"]): r for r in rows}
        for cell, ((model, instruction, layer), roi) in enumerate((k, roi) for k in models for roi in shared):
            model_rdm = models[model, instruction, layer][0]
            per_subject = [by_key[model, instruction, layer, s, roi] for s in subjects]
            key = {**per_subject[0], "n_targets": int(np.mean([r["n_targets"] for r in per_subject]))}
            group.append(group_row(key, np.array([brains[s][roi][0] for s in subjects]),
                                   [r["score"] for r in per_subject], model_rdm, control_rdms, settings,
                                   [config["random_state"], len(cells) + cell]))
    roi_order = dict.fromkeys(roi for s in subjects for roi in brains[s])
    return add_fdr(to_frame(rows + group, roi_order), "p_value", "q_value")


def _write_rdms(path, items, models, brains, controls):
    """Every RDM the table was computed from: /model/<model>/<instruction>/layer_<k>,
    /brain/<subject>/<roi>, /control/<name>; item names in the file's ``items`` attribute."""
    with h5py.File(path, "w") as h5:
        h5.attrs["items"] = json.dumps(items)
        for (model, instruction, layer), (rdm, _) in models.items():
            h5[f"model/{model}/{instruction}/layer_{layer}"] = rdm
        for subject, rois in brains.items():
            for roi, (rdm, _) in rois.items():
                h5[f"brain/{subject}/{roi.replace('/', '_')}"] = rdm
        for name, rdm in controls.items():
            h5[f"control/{name}"] = rdm
