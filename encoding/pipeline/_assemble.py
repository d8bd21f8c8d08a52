"""Assembling scores.h5 from the finished fits, one subject at a time: layer fits and their ROI rows,
best-layer and best-instruction maps, joint fits with their variance partitions, layer-weights fits."""
import json
import logging

import numpy as np

from .. import layer_weights
from ..outputs.alignment import roi_rows
from ..partition import VariancePartition, roi_partition_rows
from ..stats import block_permutations, fdr_bh
from ._ceilings import FIELDS as CEILING_FIELDS
from ._ceilings import repeat_ceiling
from ._figures import draw_flatmap

log = logging.getLogger(__name__)

#: the config's fields the assembly reads (``encoding.config.fields``)
FIELDS = ("cv_folds", "fdr_q", "n_permutations", "permutation_block", "flatmap", *CEILING_FIELDS)


def assemble_subject(settings, name, subject, specs, work, scores, stores, instructions, layers, n_layers, partial):
    """One subject's part of scores.h5 from its finished fits: layer fits, best-layer/instruction maps,
    repeat ceilings, joint fits and their variance partitions. ``settings`` holds :data:`FIELDS`.

    Returns
    -------
    rows : list of alignment rows
    partitions : list of variance-partition rows
    weighted : list of layer_weights.csv rows
    test_set : dict test run -> responses (n_TR, n_targets), for the cross-subject ceiling
    """
    data, rois = subject.data, subject.rois
    if (~data.valid).any():
        log.warning("%s: %d of %d targets are NaN or constant in some training run; excluded and scored NaN",
                    name, int((~data.valid).sum()), data.n_targets)
    if data.untestable.any():
        log.warning("%s: %d targets are NaN or constant in a test run only (%s); fitted, their test scores are NaN",
                    name, int(data.untestable.sum()), ", ".join(data.run_names[i] for i in data.test))
    if subject.dropped:
        log.warning("%s: ROI(s) with no valid targets, skipped: %s", name, ", ".join(subject.dropped))
    _write_subject(scores, name, data, data.train, data.test, rois, settings["cv_folds"])
    n_permutations, exact = 0, False
    if settings["n_permutations"]:
        # the permutations every fit used (drawn again in each fit from the same seed); the cap is logged here
        permutations = block_permutations([data.bold[i].shape[0] for i in data.test], settings["permutation_block"],
                                          settings["n_permutations"], settings["seed"])
        n_permutations, exact = permutations.n_permutations, permutations.exact
    scores.attrs(name).update(n_permutations=n_permutations, permutations_exact=exact)
    rows = []
    for spec in specs:
        if spec["kind"] != "layer" or spec["band_only"]:
            continue
        band = spec["bands"][0]
        key = scores.copy_fit(work.fit_path(spec["fingerprint"]), spec["key"])
        full = {field: scores.read(key, field) for field in ("test_r", "test_r2", "cv_score")}
        roi_p = None
        if f"{key}/q_perm" in scores:
            full["q_perm"] = scores.read(key, "q_perm")
            roi_p = json.loads(scores.attrs(key)["roi_p"])
        rows += roi_rows(name, band["model"], band["instruction"], band["layer"], n_layers[band["model"]], full,
                         rois, roi_p, n_permutations, settings["fdr_q"])
    _best_maps(settings["flatmap"], scores, name, data, stores, instructions, layers, n_layers, rois, partial)
    repeat_ceiling(settings, scores, name, data, data.test)
    partitions = []
    band_only = {spec["key"]: work.fit_path(spec["fingerprint"]) for spec in specs if spec.get("band_only")}
    for spec in specs:
        if spec["kind"] == "joint":
            partitions += _assemble_joint(spec, work, scores, rois, band_only)
    weighted = []
    for spec in specs:
        if spec["kind"] == "layer_weights":
            weighted += _assemble_layer_weights(spec, work, scores, rois)
    log.info("%s: %d fits assembled", name, len(specs))
    return rows, partitions, weighted, _test_responses(data, data.test)


def _test_responses(data, test):
    """Test run name -> responses (n_TR, n_targets), NaN for invalid targets; repeats ("#2") left out."""
    responses = {}
    for i in test:
        if "#" not in data.run_names[i]:
            full = np.full((data.bold[i].shape[0], data.n_targets), np.nan, dtype=np.float32)
            full[:, data.valid] = data.bold[i][:, data.valid]
            responses[data.run_names[i]] = full
    return responses


def _write_subject(scores, subject, data, train, test, rois, cv_folds):
    scores.write_subject(subject, data.valid, [data.run_names[i] for i in train],
                         [data.run_names[i] for i in test], data.files, data.space.describe(), cv_folds,
                         space_kind=data.space.kind, test_run_lengths=[data.bold[i].shape[0] for i in test])
    scores.write_rois(subject, rois)
    if data.space.masker is not None:
        mask_img = data.space.masker.mask_img_
        scores.write_mask(subject, np.asarray(mask_img.dataobj) != 0, mask_img.affine)


def _best_maps(flatmap, scores, subject, data, stores, instructions, layers, n_layers, rois, out):
    """Per target: the CV-best layer of each (model, instruction), and the CV-best instruction."""
    for model in stores:
        scores.attrs(f"{subject}/{model}")["n_layers"] = n_layers[model]
        for instruction in instructions[model]:
            key = f"{subject}/{model}/{instruction}"
            _, best_r = scores.write_best_layer(key, layers[model], data.valid)
            draw_flatmap(flatmap, data, best_r, out / f"flatmap_{subject}_{model}_{instruction}.png",
                     f"{subject} · {model} · {instruction}: test r at the CV-best layer", rois)
        if len(instructions[model]) >= 2:
            _best_instruction(scores, f"{subject}/{model}", list(instructions[model]))


def _best_instruction(scores, key, instructions):
    """The instruction whose CV-best layer has the highest CV score, per target (-1 if unfitted)."""
    cv = np.stack([scores.read(f"{key}/{i}", "best_layer_cv_score") for i in instructions])
    fitted = np.isfinite(cv).all(0)
    pick = np.argmax(np.where(np.isfinite(cv), cv, -np.inf), axis=0)
    columns = np.arange(pick.size)
    scores.write_array(key, "best_instruction", np.where(fitted, pick, -1),
                       instructions=json.dumps(instructions))
    for name in ("test_r", "p_perm"):
        if all(f"{key}/{i}/best_layer_{name}" in scores for i in instructions):
            stacked = np.stack([scores.read(f"{key}/{i}", f"best_layer_{name}") for i in instructions])
            scores.write_array(key, f"best_instruction_{name}", np.where(fitted, stacked[pick, columns], np.nan))
    if f"{key}/best_instruction_p_perm" in scores:   # the best-instruction map is a family of its own
        scores.write_array(key, "best_instruction_q_perm", fdr_bh(scores.read(key, "best_instruction_p_perm")))


def _assemble_joint(spec, work, scores, rois, band_only):
    """A banded fit into scores.h5 and, for two bands, its variance partition against the single-band fits
    (the layer sweep's, or a band-only fit of the work folder)."""
    import h5py

    key = scores.copy_fit(work.fit_path(spec["fingerprint"]), spec["key"])
    subject, joint_name = spec["subject"], spec["key"].rsplit("/", 1)[1]
    bands = spec["bands"]
    log.info("%s: banded fit '%s' over %d bands", subject, joint_name, len(bands))
    if len(bands) != 2:
        return []
    single = []
    for band in bands:
        band_key = f"{subject}/{band['model']}/{band['instruction']}/layer_{band['layer']}"
        if band_key in scores:
            single.append(scores.read(band_key, "test_r2"))
        else:
            with h5py.File(band_only[band_key], "r") as handle:
                single.append(handle[f"{band_key}/test_r2"][()])
    partition = VariancePartition(scores.read(key, "test_r2"), *single)
    labels = [f"{b['model']}:{b['instruction']}:layer_{b['layer']}" for b in bands]
    for part, values in {"r2_a": partition.r2_a, "r2_b": partition.r2_b, **partition.parts()}.items():
        scores.write_array(f"{key}/partition", part, values.astype(np.float32))
    scores.attrs(f"{key}/partition").update(band_a=labels[0], band_b=labels[1])
    return roi_partition_rows(partition, rois, subject=subject, joint=joint_name, band_a=labels[0],
                              band_b=labels[1])


def _assemble_layer_weights(spec, work, scores, rois):
    """A layer-weights fit into scores.h5 beside the layer sweep it is compared with; its layer_weights.csv rows
    (``encoding.layer_weights.roi_rows``)."""
    key = scores.copy_fit(work.fit_path(spec["fingerprint"]), spec["key"])
    sweep = key.rsplit("/", 1)[0]
    attrs = scores.attrs(key)
    bands = json.loads(attrs["band_layers"])
    log.info("%s: layer weights over %d bands of %s (%d samples)", spec["subject"], len(bands), sweep,
             attrs["n_samples"])
    fit = {name: scores.read(key, name) for name in ("weights", "preferred_depth", "test_r", "cv_score")}
    best = {name: scores.read(sweep, name) for name in ("best_layer", "best_layer_test_r", "best_layer_cv_score")}
    model, instruction = spec["bands"][0]["model"], spec["bands"][0]["instruction"]
    return layer_weights.roi_rows(spec["subject"], model, instruction, fit, best, rois, bands,
                                  np.asarray(attrs["band_depths"]), int(attrs["n_layers"]))
