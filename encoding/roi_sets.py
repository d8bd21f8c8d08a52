"""Which ROIs an analysis summarises: the built-in Glasser groups, a user atlas, or parcels."""
import logging
from pathlib import Path

from features.errors import InputError

from .config import expand_path
from .rois import drop_empty, load_atlas, parcel_rois, rois_for_space

log = logging.getLogger(__name__)
ATLAS_CHOICES = ("glasser_groups", "glasser", "parcels", "<path to .annot/.label.gii/.dlabel.nii/NIfTI labels>")


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
