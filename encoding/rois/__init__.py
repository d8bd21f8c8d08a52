"""Regions of interest as dicts of ROI name -> target indices.

Built in: the Glasser HCP-MMP1.0 atlas on fsLR32k grayordinates and the paper's ROI groups
(``glasser_groups.yaml``). User atlases: FreeSurfer annot, GIFTI label, CIFTI dlabel, NIfTI.
"""

from ._atlas_files import load_atlas
from ._glasser import glasser_rois, load_glasser_groups
from ._roi_dicts import drop_empty, parcel_rois
from ._spaces import grayordinates_to_mesh_vertices, rois_for_space

__all__ = [
    "drop_empty",
    "glasser_rois",
    "grayordinates_to_mesh_vertices",
    "load_atlas",
    "load_glasser_groups",
    "parcel_rois",
    "rois_for_space",
]
