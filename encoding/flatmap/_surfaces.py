"""From a target space to a surface with a flat mesh: as is, projected from a volume, or painted.

- Surface data (fsLR32k, fsaverage5, and fsaverage6/fsaverage when nilearn's meshes are on disk)
  are drawn on their own mesh.
- Volume data (voxels in a brain mask, MNI space) are unmasked and sampled onto fsaverage with
  nilearn's ``vol_to_surf`` between the white and pial surfaces: linear interpolation for
  continuous maps, the most frequent value for categorical ones and painted parcels; only voxels
  inside the mask (and with a value) are sampled, so vertices away from the data stay unpainted.
- Parcel data (one column per parcel) are painted on a parcellation file (``encoding.rois.paint_parcels``): the
  k-th area of the file, in label order (left hemisphere first for a pair), carries the k-th parcel's value.
"""
import warnings
from functools import lru_cache

import nibabel as nib
import numpy as np

from features.errors import InputError

from ..plotting import TARGET_COUNTS
from ..rois import LOCAL_MESHES, local_fsaverage_mesh

DRAWABLE = tuple(TARGET_COUNTS)
VOLUME_SURFACES = ("fsaverage5", "fsaverage6", "fsaverage")
_NO_VALUE = -9999.0   # a category code no map uses: "no voxel with a value here"


@lru_cache(maxsize=None)
def _meshes(surface, kind):
    """Left and right (coordinates, faces) of a pial or white fsaverage mesh."""
    if surface in LOCAL_MESHES:
        return [local_fsaverage_mesh(surface, kind, side) for side in ("left", "right")]
    from nilearn.datasets import load_fsaverage

    parts = load_fsaverage("fsaverage5")["pial" if kind == "pial" else "white_matter"].parts
    return [(parts[side].coordinates, parts[side].faces) for side in ("left", "right")]


def project_volume(values, volume, surface="fsaverage5", categorical=False):
    """Sample volume values onto both hemispheres of an fsaverage mesh.

    Parameters
    ----------
    values : array of shape (n_voxels_in_mask,)
    volume : encoding.rois.Volume
    surface : {"fsaverage5", "fsaverage6", "fsaverage"}
    categorical : bool
        Labels (layers, instructions, ROI membership) and piecewise-constant values (parcels): the
        most frequent sample, never a blend across a border.

    Returns
    -------
    on_surface : array of shape (2 * n_vertices,), NaN where no sampled voxel has a value
    """
    from nilearn.surface import vol_to_surf

    if surface not in VOLUME_SURFACES:
        raise InputError(f"--surface: volumes are projected to one of {VOLUME_SURFACES}, found {surface!r}.")
    values = np.asarray(values, dtype=np.float32)
    has_value = volume.mask.copy()
    has_value[volume.mask] = np.isfinite(values)
    if not has_value.any():
        return np.full(TARGET_COUNTS[surface][0], np.nan)
    sides = []
    for pial, white in zip(_meshes(surface, "pial"), _meshes(surface, "white")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # vertices with no voxel inside: NaN, as wanted
            sides.append(_categories_to_surface(values, volume, pial, white) if categorical
                         else vol_to_surf(volume.image(np.nan_to_num(values)), pial, inner_mesh=white,
                                          mask_img=nib.Nifti1Image(has_value.astype(np.uint8), volume.affine)))
    return np.concatenate(sides).astype(float)


def _categories_to_surface(values, volume, pial, white):
    """Most frequent category among a vertex's samples, voxels without one counting as "none".

    nilearn's most-frequent sampling fails on vertices with no sample inside a mask, so "outside
    the data" is sampled as a category of its own: a vertex whose samples are mostly outside stays
    unpainted, as linear sampling leaves it.
    """
    from nilearn.surface import vol_to_surf

    data = np.full(volume.mask.shape, _NO_VALUE, dtype=np.float32)
    data[volume.mask] = np.where(np.isfinite(values), values, _NO_VALUE)
    sampled = vol_to_surf(nib.Nifti1Image(data, volume.affine), pial, inner_mesh=white,
                          interpolation="nearest_most_frequent")
    return np.where(sampled == _NO_VALUE, np.nan, sampled)


def project_rois(rois, volume, surface="fsaverage5"):
    """ROI target indices of volume data -> vertex indices of an fsaverage mesh pair (for outlines)."""
    projected = {}
    for name, index in rois.items():
        inside = np.zeros(int(volume.mask.sum()))
        inside[index] = 1.0
        projected[name] = np.flatnonzero(project_volume(inside, volume, surface, categorical=True) > 0.5)
    return projected


def check_drawable(space_kind, source):
    if space_kind not in DRAWABLE:
        raise InputError(f"{source}: field 'space' is {space_kind}, which has no flat mesh here; drawable: "
                         f"{', '.join(DRAWABLE)}, volumes (projected to fsaverage) and parcels with --parcellation.")
