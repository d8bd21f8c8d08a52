"""Every map an analysis draws, in the space the runs came in, named the BIDS-derivatives way.

Per subject, model and instruction (values read from ``scores.h5``, see ``scores_file``):

=====================  ==========================================================  =======================
``stat`` / ``desc``    values                                                      from scores.h5
=====================  ==========================================================  =======================
r / bestlayer          test r at each target's CV-best layer                       best_layer_test_r
bestlayer              the CV-best layer (NaN where unfitted)                      best_layer
depth                  that layer / (layers in the store - 1): 0 embedding, 1 last best_layer, n_layers
normalizedr / bestlayer  test r over the noise ceiling (NaN at or below the         best_layer_test_r,
                       config's ceiling_threshold), with a ceiling only            noise_ceiling/ceiling
neglog10q / bestlayer  -log10 q of the block-permutation test, best-layer family   best_layer_q_perm
                       (q floored at ``SMALLEST_Q``, so the map stays finite)
=====================  ==========================================================  =======================

with the layer-weights analysis (``encoding.layer_weights``): ``stat-depth_desc-layerweights`` (the weight-averaged
depth), ``stat-r_desc-layerweights`` (the banded fit's test r) and ``stat-layerweight_desc-<band>``, one map per
band (``layer3``, or ``layers4to7`` for a group), its weight, the bands summing to 1 per target;
per subject and model with two or more instructions: ``stat-bestinstruction`` (the index of the CV-best
instruction, its names in ``maps.tsv``'s levels); per two-band joint fit: ``joint-<name>_stat-uniquevariance
_desc-<band>``, each band's unique test R² (``partition/unique_a``, ``unique_b``).

Formats, by the runs' format (``encoding.fmri.save_map``): NIfTI on the input's voxel grid and affine
(the fitted masker's ``inverse_transform``); CIFTI ``.dscalar.nii`` on the input's brain models with the
map named; GIFTI ``hemi-L``/``hemi-R`` ``.func.gii`` pairs with AnatomicalStructurePrimary and the map's
name; parcels as a TSV (one row per parcel: index, name, network when known, value) and, with
``rois.parcellation`` (or ``parcellation=``), that label image painted. File names: ``_bids``.

Files are written into a hidden folder inside the output folder and moved into place once all are
written; an existing map is never replaced unless asked (``overwrite``).
"""
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from features.errors import InputError

from ..config import resolve_rois
from ..fmri import TargetSpace, quiet_pixdim, save_gifti_pair, save_map
from ..roi_sets import parcel_names, roi_networks
from ..rois import atlas_size, paint_parcels
from ..stats import normalize_r
from ._bids import dataset_description, input_entities, label, map_name, write_json

log = logging.getLogger(__name__)
INDEX_FILE = "maps.tsv"
DESCRIPTION_FILE = "dataset_description.json"
_NOT_FITS = ("valid", "rois", "mask", "joint", "noise_ceiling")
#: q-values below this (normal-tail p-values that underflowed to 0) are written as this, -log10 = 37.9
SMALLEST_Q = float(np.finfo(np.float32).tiny)


@dataclass
class NativeMap:
    """One per-target map of one subject, ready to write."""
    entities: dict           # model, task, joint, stat, desc
    values: np.ndarray       # (n_targets,) float32, NaN where there is no value
    description: str         # the map's name inside CIFTI/GIFTI files and in maps.tsv
    source: str              # the scores.h5 datasets it comes from
    levels: dict = None      # categorical maps: value -> label


def subject_maps(scores, subject, ceiling_threshold=0.05):
    """Every map of one subject in ``scores`` (module docstring).

    Parameters
    ----------
    scores : ScoresFile
    subject : str
    ceiling_threshold : float
        Normalized r only where the ceiling of r exceeds it.

    Returns
    -------
    list of NativeMap
    """
    maps = []
    ceiling_key = f"{subject}/noise_ceiling/ceiling"
    ceiling = scores.read(ceiling_key) if ceiling_key in scores else None
    for model in [k for k in scores.keys(subject) if k not in _NOT_FITS]:
        n_layers = scores.attrs(f"{subject}/{model}").get("n_layers")
        for instruction in [k for k in scores.keys(f"{subject}/{model}") if not k.startswith("best_instruction")]:
            maps += _layer_maps(scores, f"{subject}/{model}/{instruction}", model, instruction, n_layers, ceiling,
                                ceiling_threshold)
        if f"{subject}/{model}/best_instruction" in scores:
            maps.append(_best_instruction_map(scores, f"{subject}/{model}", model))
    if f"{subject}/joint" in scores:
        for joint in scores.keys(f"{subject}/joint"):
            maps += _partition_maps(scores, f"{subject}/joint/{joint}/partition", joint)
    return maps


def _layer_maps(scores, key, model, instruction, n_layers, ceiling, threshold):
    base = {"model": model, "task": instruction}
    where = f"{model} · {instruction}"
    r = scores.read(key, "best_layer_test_r").astype(np.float32)
    best = scores.read(key, "best_layer").astype(np.float32)
    best[best < 0] = np.nan
    maps = [NativeMap({**base, "stat": "r", "desc": "bestlayer"}, r, f"{where}: test r at the CV-best layer",
                      f"{key}/best_layer_test_r"),
            NativeMap({**base, "stat": "bestlayer"}, best, f"{where}: CV-best layer", f"{key}/best_layer")]
    if n_layers and n_layers > 1:
        maps.append(NativeMap({**base, "stat": "depth"}, (best / (n_layers - 1)).astype(np.float32),
                              f"{where}: depth of the CV-best layer (0 embedding output, 1 last layer)",
                              f"{key}/best_layer / (n_layers - 1)"))
    if ceiling is not None:
        maps.append(NativeMap({**base, "stat": "normalizedr", "desc": "bestlayer"},
                              normalize_r(r, ceiling, threshold).astype(np.float32),
                              f"{where}: test r / noise ceiling at the CV-best layer (ceiling > {threshold:g})",
                              f"{key}/best_layer_test_r / noise_ceiling/ceiling"))
    if f"{key}/best_layer_q_perm" in scores:
        # a normal-tail p far beyond float range is 0: drawn at float32's smallest q, never as infinity
        q = np.maximum(scores.read(key, "best_layer_q_perm"), SMALLEST_Q)
        neglog = (-np.log10(q)).astype(np.float32)
        maps.append(NativeMap({**base, "stat": "neglog10q", "desc": "bestlayer"}, neglog,
                              f"{where}: -log10 q of the permutation test at the CV-best layer (best-layer family)",
                              f"{key}/best_layer_q_perm"))
    if f"{key}/layer_weights" in scores:
        maps += _layer_weight_maps(scores, f"{key}/layer_weights", base, where)
    return maps


def _layer_weight_maps(scores, key, base, where):
    """The layer-weights fit's preferred depth and held-out r, and each band's weight, one map per band."""
    maps = [NativeMap({**base, "stat": "depth", "desc": "layerweights"}, scores.read(key, "preferred_depth"),
                      f"{where}: layer-weighted depth (band weights x depth, 0 embedding output, 1 last layer)",
                      f"{key}/preferred_depth"),
            NativeMap({**base, "stat": "r", "desc": "layerweights"}, scores.read(key, "test_r"),
                      f"{where}: test r of the banded fit over all layers", f"{key}/test_r")]
    weights = scores.read(key, "weights")
    for band, (name, values) in enumerate(zip(json.loads(scores.attrs(key)["band_labels"]), weights)):
        maps.append(NativeMap({**base, "stat": "layerweight", "desc": name}, values.astype(np.float32),
                              f"{where}: weight of {name} in the banded fit over all layers (bands sum to 1)",
                              f"{key}/weights[{band}]"))
    return maps


def _best_instruction_map(scores, key, model):
    best = scores.read(key, "best_instruction").astype(np.float32)
    best[best < 0] = np.nan
    names = json.loads(scores.attrs(f"{key}/best_instruction")["instructions"])
    return NativeMap({"model": model, "stat": "bestinstruction"}, best,
                     f"{model}: CV-best instruction ({', '.join(f'{i} {n}' for i, n in enumerate(names))})",
                     f"{key}/best_instruction", dict(enumerate(names)))


def _partition_maps(scores, key, joint):
    if key not in scores:
        return []
    attrs = scores.attrs(key)
    return [NativeMap({"joint": joint, "stat": "uniquevariance", "desc": attrs[band]},
                      scores.read(key, part).astype(np.float32),
                      f"{joint}: unique test R² of {attrs[band]}", f"{key}/{part}")
            for part, band in (("unique_a", "band_a"), ("unique_b", "band_b"))]


def write_native_maps(out_folder, scores, subject, space=None, parcellation=None, overwrite=False):
    """Write every map of one subject in its runs' own format and space, with BIDS-derivatives names.

    Parameters
    ----------
    out_folder : str or Path
        The analysis's output folder (or its partial folder while it is being written). Maps go to
        ``sub-<label>/func/``; ``maps.tsv`` and ``dataset_description.json`` to the folder itself.
    scores : ScoresFile
        The analysis's scores (open for reading or writing); its root holds the config.
    subject : str
    space : encoding.fmri.TargetSpace, optional
        The space of the subject's runs (``SubjectData.space``); default: rebuilt from scores.h5 and the
        run files it names (:func:`space_from_scores`).
    parcellation : path or (left, right) paths, optional
        Parcel data: the label image to paint; default the config's ``rois.parcellation``.
    overwrite : bool
        Replace maps already there (otherwise an existing map is an InputError and nothing is written).

    Returns
    -------
    list of Path written
    """
    out_folder = Path(out_folder)
    config = _resolved_rois(json.loads(scores.attrs()["config"]))
    space = space or space_from_scores(scores, subject)
    parcellation = parcellation if parcellation is not None else _config_parcellation(config)
    maps = subject_maps(scores, subject, float(config.get("ceiling_threshold", 0.05)))
    base = {"sub": subject, **input_entities(space)}
    staging = out_folder / f".maps-{label(subject)}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    rows = []
    try:
        for native in maps:
            entities = {**base, **native.entities}
            written = _write_map(native, entities, space, staging, scores, subject, config, parcellation)
            rows += [_index_row(path.relative_to(staging), subject, native) for path in written]
        final = _move_into_place(staging, out_folder, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _update_index(out_folder, subject, rows)
    write_description(out_folder, scores, overwrite=True)
    log.info("%s: wrote %d native maps (%s) to %s", subject, len(final), space.file_format, out_folder)
    return final


def _write_map(native, entities, space, folder, scores, subject, config, parcellation):
    """Write one map; returns the paths written (two for a GIFTI pair, TSV and painted image for parcels)."""
    folder = folder / f"sub-{label(subject)}" / "func"
    if space.file_format == "nifti":
        return [save_map(native.values, space, folder / map_name(entities, ""))]
    if space.file_format == "cifti":
        return [save_map(native.values, space, folder / map_name(entities, ".dscalar.nii"),
                         names=[native.description])]
    if space.file_format == "gifti":
        return save_gifti_pair(native.values, space, [folder / map_name({**entities, "hemi": h}, ".func.gii")
                                                      for h in "LR"], names=[native.description])
    written = [_write_tsv(native, folder / map_name(entities, ".tsv"), scores, subject, config)]
    if parcellation is not None:
        written += _write_painted(native, entities, folder, parcellation)
    return written


def _write_tsv(native, path, scores, subject, config):
    """One row per parcel: index, name, network (when known), value (and its level for categorical maps)."""
    names, networks = _parcel_labels(scores, subject, config, native.values.size)
    table = pd.DataFrame({"index": np.arange(len(names)), "name": names})
    if networks:
        table["network"] = [networks.get(name, "n/a") for name in names]
    table[native.entities["stat"]] = native.values
    if native.levels:
        table["level"] = [native.levels.get(int(v), "n/a") if np.isfinite(v) else "n/a" for v in native.values]
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.9g")
    return path


def _parcel_labels(scores, subject, config, n):
    """Parcel names (``rois.names``, else one-target ROIs' names, else parcel_0001...) and their networks.

    Networks: the ROIs when each parcel belongs to one (a parcel -> network atlas), else ``roi_networks``.
    """
    rois = scores.read_rois(subject)
    names = parcel_names(config, n)
    if (config.get("rois") or {}).get("names") is None:        # parcels: each ROI names its target
        for roi, index in rois.items():
            if len(index) == 1:
                names[int(index[0])] = roi
    owner = {}
    for roi, index in rois.items():
        for i in index:
            owner.setdefault(int(i), []).append(roi)
    if owner and all(len(v) == 1 for v in owner.values()) and any(len(i) > 1 for i in rois.values()):
        return names, {names[i]: roi[0] for i, roi in owner.items()}
    return names, roi_networks(config, names)


def _write_painted(native, entities, folder, parcellation):
    """The parcel values painted on their label image, in that image's own space and format."""
    painted, kind, volume = paint_parcels(native.values, parcellation)
    pair = isinstance(parcellation, (list, tuple))
    first = Path(parcellation[0] if pair else parcellation)
    if volume is not None:
        data = np.zeros(volume.mask.shape, np.float32)
        data[volume.mask] = painted
        named = {**entities, **input_entities(TargetSpace("volume", int(volume.mask.sum()), "nifti", str(first)))}
        path = folder / map_name(named, ".nii.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, volume.affine), path)
        return [path]
    if not pair:        # a .dlabel.nii: its own grayordinates
        brain_models = nib.load(str(first)).header.get_axis(1)
        target = TargetSpace(kind, painted.size, "cifti", str(first), brain_models=brain_models)
        return [save_map(painted, target, folder / map_name({**entities, **input_entities(target)}, ".dscalar.nii"),
                         names=[native.description])]
    n_left = atlas_size(first)[0]
    target = TargetSpace(kind, painted.size, "gifti", str(first), n_vertices=(n_left, painted.size - n_left))
    named = {**entities, **input_entities(target)}
    return save_gifti_pair(painted, target, [folder / map_name({**named, "hemi": h}, ".func.gii") for h in "LR"],
                           names=[native.description])


def _resolved_rois(config):
    """The config scores.h5 recorded (as given) with the files of ``rois`` resolved as load_config resolves
    them (against the config's folder)."""
    if isinstance(config.get("rois"), dict):
        config["rois"] = resolve_rois(config["rois"], config, Path(config.get("config_file", "config")).parent)
    return config


def _config_parcellation(config):
    """``rois.parcellation`` of the config (resolved by :func:`_resolved_rois`), None if not given."""
    rois = config.get("rois") or {}
    value = rois.get("parcellation") if isinstance(rois, dict) else None
    if value is None:
        return None
    return [Path(v) for v in value] if isinstance(value, list) else Path(value)


def _move_into_place(staging, out_folder, overwrite):
    """Move every staged file to its place; an existing one is an error unless ``overwrite``."""
    staged = sorted(p for p in staging.rglob("*") if p.is_file())
    targets = [out_folder / p.relative_to(staging) for p in staged]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: native map already exists; pass overwrite=True to replace it "
                         f"({len(existing)} such files).")
    for source, target in zip(staged, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    return targets


def _index_row(relative, subject, native):
    return {"filename": str(relative), "subject": subject, "model": native.entities.get("model", ""),
            "instruction": native.entities.get("task", ""), "joint": native.entities.get("joint", ""),
            "stat": native.entities["stat"], "desc": native.entities.get("desc", ""),
            "description": native.description, "levels": json.dumps(native.levels) if native.levels else "",
            "source": f"scores.h5:{native.source}"}


def _update_index(out_folder, subject, rows):
    """maps.tsv: this subject's rows replaced, the other subjects' kept."""
    path = out_folder / INDEX_FILE
    table = pd.DataFrame(rows)
    if path.is_file():
        old = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        table = pd.concat([old[old["subject"] != subject], table], ignore_index=True)
    table.to_csv(path, sep="\t", index=False)


def write_description(out_folder, scores, overwrite=False):
    """``dataset_description.json``: BIDS derivatives, GeneratedBy with this package's version and the config."""
    path = Path(out_folder) / DESCRIPTION_FILE
    if path.exists() and not overwrite:
        return path
    config = json.loads(scores.attrs()["config"])
    versions = json.loads(scores.attrs()["versions"])
    write_json(path, dataset_description(config.get("name") or Path(out_folder).name,
                                         versions.get("mllm-encoding", "unknown"), config, versions.get("git_commit")))
    return path


def space_from_scores(scores, subject):
    """The TargetSpace of a subject's runs, rebuilt from scores.h5 (and a CIFTI run's header).

    Volumes: the stored mask and affine; CIFTI: the brain models of the first run file; GIFTI pairs: the
    vertex counts of the stored space description; parcels: their count.
    """
    attrs = scores.attrs(subject)
    kind, n_targets = attrs["space_kind"], int(attrs["n_targets"])
    source = json.loads(attrs["files"])[0]
    description = str(attrs["space"])
    if f"{subject}/mask" in scores:
        from nilearn.maskers import NiftiMasker

        mask = nib.Nifti1Image(scores.read(f"{subject}/mask").astype(np.uint8),
                               scores.attrs(f"{subject}/mask")["affine"])
        return TargetSpace(kind, n_targets, "nifti", source, masker=NiftiMasker(mask_img=mask).fit())
    if "(CIFTI-2)" in description:
        if not Path(source).is_file():
            raise InputError(f"{source}: field 'files' of {scores.path} names the CIFTI run whose grayordinates the "
                             f"maps need, and it no longer exists; pass the run's space instead.")
        with quiet_pixdim():
            brain_models = nib.load(source).header.get_axis(1)
        return TargetSpace(kind, n_targets, "cifti", source, brain_models=brain_models)
    pair = re.search(r"(\d+) left and (\d+) right", description)
    if pair:
        return TargetSpace(kind, n_targets, "gifti", source, n_vertices=(int(pair.group(1)), int(pair.group(2))))
    return TargetSpace(kind, n_targets, "hdf5", source)
