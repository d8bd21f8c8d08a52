"""4D NIfTI runs read through a binary brain mask; maps written back with the fitted masker."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from features.errors import InputError

from ._paths import map_rows, reason, resolve_file, strip_suffixes
from ._space import TargetSpace

# The mask and the run may store their affines with float32 rounding (qform vs sform).
_AFFINE_TOLERANCE_MM = 1e-3


def load_nifti(run: Mapping, base_dir: Path) -> tuple[np.ndarray, TargetSpace]:
    """Load a 4D NIfTI run as ``(n_TR, n_voxels)``, voxels inside the mask in C order.

    The columns are ordered as nilearn's ``NiftiMasker.transform`` orders them, so the masker
    stored in the returned space maps results back with ``inverse_transform``.
    """
    path = resolve_file(run, "path", base_dir, "a 4D NIfTI image")
    mask_path = resolve_file(run, "mask", base_dir,
                             "the binary brain mask every 4D NIfTI run needs")
    image = _read_nifti(path, "path")
    if image.ndim != 4:
        raise InputError(f"{path}: expected a 4D NIfTI image (x, y, z, time) in the 'path' "
                         f"field, found a {image.ndim}D image of shape {image.shape}.")
    mask_image = _read_nifti(mask_path, "mask")
    mask = _binary_mask(mask_image, mask_path)
    if mask.shape != image.shape[:3]:
        raise InputError(f"{mask_path}: expected a mask on the voxel grid of {path.name} "
                         f"{image.shape[:3]}, found shape {mask.shape}.")
    if not np.allclose(mask_image.affine, image.affine, atol=_AFFINE_TOLERANCE_MM):
        raise InputError(f"{mask_path}: expected the same affine (voxel-to-world) as "
                         f"{path.name}, found a different one, so the mask is in another space.")
    # Boolean indexing walks the mask in C order, exactly as nilearn's apply_mask does.
    data = np.asanyarray(image.dataobj)[mask]
    data = np.ascontiguousarray(data.T, dtype=np.float32)
    space = TargetSpace(kind="volume", n_targets=data.shape[1], file_format="nifti",
                        source=str(path), masker=_fitted_masker(mask, mask_image.affine))
    return data, space


def save_nifti_map(values, space: TargetSpace, output_file, names=None) -> Path:
    """Write ``(n_targets,)`` as a 3D image or ``(n_maps, n_targets)`` as a 4D image, on the run's
    voxel grid with its affine (``names`` is not stored: NIfTI has no per-volume names)."""
    rows = map_rows(values, space.n_targets, output_file)
    image = space.masker.inverse_transform(rows if len(rows) > 1 else rows[0])
    path = strip_suffixes(output_file, (".nii.gz", ".nii"))
    path = path.with_name(path.name + ".nii.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def _read_nifti(path: Path, field: str):
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many types for files it cannot parse
        raise InputError(f"{path}: expected a NIfTI image in the '{field}' field, found a file "
                         f"nibabel cannot read ({reason(error)}).") from error
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass, CIFTI-2 is not
        raise InputError(f"{path}: expected a NIfTI image in the '{field}' field, found a "
                         f"{type(image).__name__} (set 'format' or fix the file name).")
    return image


def _binary_mask(mask_image, mask_path: Path) -> np.ndarray:
    """Return the mask as a 3D boolean array; a probabilistic or empty mask is an error."""
    shape = mask_image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(f"{mask_path}: expected a 3D mask in the 'mask' field, "
                         f"found a {len(mask_image.shape)}D image of shape {mask_image.shape}.")
    values = np.asanyarray(mask_image.dataobj).reshape(shape)
    n_values = len(np.unique(values))
    if n_values > 2:
        raise InputError(f"{mask_path}: expected a binary mask (two values) in the 'mask' "
                         f"field, found {n_values} distinct values; threshold it first.")
    mask = values != 0
    if not mask.any():
        raise InputError(f"{mask_path}: expected a mask with at least one voxel inside, "
                         f"found an empty mask.")
    return mask


def _fitted_masker(mask: np.ndarray, affine: np.ndarray):
    # nilearn takes seconds to import and parcel-only users never need it.
    from nilearn.maskers import NiftiMasker

    mask_image = nib.Nifti1Image(mask.astype(np.uint8), affine)
    return NiftiMasker(mask_img=mask_image).fit()
