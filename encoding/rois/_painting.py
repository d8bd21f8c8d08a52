"""Parcel values painted on their parcellation file, and how many targets such a file describes.

The k-th area of the file, in label order (left hemisphere first for a pair), carries the k-th parcel's value.
"""
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from features.errors import InputError

from ..fmri import MESH_BY_VERTICES
from ._atlas_files import load_atlas


@dataclass
class Volume:
    """Where volume values live: a boolean brain mask and its affine."""

    mask: np.ndarray
    affine: np.ndarray

    def image(self, values):
        """A NIfTI image of the values, 0 outside the mask (NaN there would leak into linear samples)."""
        data = np.zeros(self.mask.shape, dtype=np.float32)
        data[self.mask] = values
        return nib.Nifti1Image(data, self.affine)


def atlas_size(path):
    """Number of targets a parcellation file describes, and the space they are in."""
    name = Path(path).name.lower()
    if name.endswith(".dlabel.nii"):
        n = nib.load(str(path)).shape[-1]
        return n, "fsLR32k"
    if name.endswith(".annot"):
        n = nib.freesurfer.read_annot(str(path))[0].size
    elif name.endswith(".label.gii"):
        n = nib.load(str(path)).darrays[0].data.size
    else:
        return None, "volume"
    return n, MESH_BY_VERTICES.get(n, "surface")


def paint_parcels(values, parcellation):
    """Values per parcel -> values per target of the parcellation's space.

    Parameters
    ----------
    values : array of shape (n_parcels,)
    parcellation : str or Path, or a pair (left, right) of .annot / .label.gii files
        A CIFTI .dlabel.nii (fsLR32k), an annot/label.gii pair (fsaverage*), or a NIfTI label
        volume (MNI; projected afterwards). Its k-th area in label order is parcel k.

    Returns
    -------
    painted : array of shape (n_targets_of_the_parcellation,)
    space_kind : str ("fsLR32k", "fsaverage5", ..., or "volume")
    volume : Volume or None
    """
    pair = isinstance(parcellation, (list, tuple))
    if pair and len(parcellation) != 2:
        raise InputError(f"--parcellation: expected one file or a left and a right file, found {len(parcellation)}.")
    paths = [Path(p) for p in (parcellation if pair else [parcellation])]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: field '--parcellation' expected an existing label file, found none.")
    areas = (load_atlas({"left": paths[0], "right": paths[1]}, hemi="split") if pair
             else load_atlas(paths[0]))
    values = np.asarray(values, dtype=float)
    if len(areas) != values.size:
        raise InputError(f"{paths[0]}: field 'areas' expected one area per parcel of the data ({values.size}), "
                         f"found {len(areas)}.")
    sizes = [atlas_size(p) for p in paths]
    kind = sizes[0][1]
    volume = None
    if kind == "volume":
        image = nib.load(str(paths[0]))
        volume = Volume(np.ones(image.shape[:3], bool), image.affine)
        n_targets = int(np.prod(image.shape[:3]))
    else:
        n_targets = sum(n for n, _ in sizes)
        kind = kind if pair or kind == "fsLR32k" else MESH_BY_VERTICES.get(n_targets // 2, "surface")
    painted = np.full(n_targets, np.nan)
    for value, index in zip(values, areas.values()):
        painted[index] = value
    if volume is not None:
        # the voxels of some parcel, NaN where that parcel has no value: 0 is a value, not "no parcel"
        inside = np.zeros(n_targets, bool)
        inside[np.concatenate([np.asarray(i) for i in areas.values()])] = True
        volume.mask = inside.reshape(volume.mask.shape)
        painted = painted[inside]
    return painted, kind, volume
