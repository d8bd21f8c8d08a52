"""Which ROIs an analysis summarises: the built-in Glasser groups, a user atlas, or parcels."""
import logging
from pathlib import Path

import numpy as np
import yaml

from features.errors import InputError

from .config import expand_path
from .rois import drop_empty, load_atlas, parcel_rois, rois_for_space

log = logging.getLogger(__name__)
ATLAS_CHOICES = ("glasser_groups", "glasser", "parcels", "<path to .annot/.label.gii/.dlabel.nii/NIfTI labels>",
                 "<path to a YAML/JSON mapping ROI name -> target indices>")


def rois_for_subject(config, data):
    """ROI name -> target indices for one subject's space, without ROIs that have no valid target.

    Returns
    -------
    rois : dict
    dropped : list of ROI names that had no valid targets
    """
    spec = config["rois"] or {}
    atlas = spec.get("atlas", "glasser_groups") if isinstance(spec, dict) else spec
    space = data.space
    if atlas in ("glasser_groups", "glasser"):
        rois = rois_for_space(space.kind, space.n_targets, groups=atlas == "glasser_groups")
        if not rois:
            raise InputError(f"{config['config_file']}: field 'rois.atlas' is '{atlas}', which exists only on fsLR-32k, "
                             f"but {data.files[0]} is {space.kind}; name a user atlas or 'parcels'.")
    elif atlas == "parcels":
        rois = parcel_rois(space.n_targets, spec.get("names") if isinstance(spec, dict) else None)
    elif isinstance(atlas, str) and atlas.endswith((".yaml", ".yml", ".json")):
        rois = _roi_index_file(expand_path(atlas, config, Path(config["config_file"]).parent), space.n_targets)
    else:
        base = Path(config["config_file"]).parent
        path = ({k: expand_path(v, config, base) for k, v in atlas.items()} if isinstance(atlas, dict)
                else expand_path(atlas, config, base))
        lut = spec.get("lut") if isinstance(spec, dict) else None
        rois = load_atlas(path, n_targets=space.n_targets, masker=space.masker,
                          lut=expand_path(lut, config, base) if lut else None)
    rois, dropped = drop_empty(rois, data.valid)
    log.info("%s: %d ROIs from atlas %s", data.subject, len(rois), atlas)
    return rois, dropped


def _roi_index_file(path, n_targets):
    """ROI name -> target indices from a YAML/JSON mapping (for arrays of parcels or any target order)."""
    if not path.is_file():
        raise InputError(f"{path}: ROI file not found (field 'rois.atlas').")
    mapping = yaml.safe_load(path.read_text()) or {}
    if not isinstance(mapping, dict):
        raise InputError(f"{path}: field 'rois.atlas' expected a mapping of ROI name to target indices.")
    rois = {}
    for name, index in mapping.items():
        try:
            rois[str(name)] = np.asarray(index, dtype=np.int64).ravel()
        except (TypeError, ValueError):
            raise InputError(f"{path}: field '{name}' expected a list of target indices, found {index!r}.") from None
        if rois[str(name)].size and not (0 <= rois[str(name)].min() and rois[str(name)].max() < n_targets):
            raise InputError(f"{path}: field '{name}' holds target indices outside 0..{n_targets - 1}.")
    return rois
