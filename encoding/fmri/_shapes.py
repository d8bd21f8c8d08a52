"""A run's size, (n_TR, n_targets), from its files' headers: what a sweep's dry run plans with, loading no data.

The counts equal what :func:`encoding.fmri.load_run` returns for the same entry (tests compare them);
a NIfTI run's targets are its mask's voxels, a GIFTI pair's the vertices of both hemispheres.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from features.errors import InputError

from ._load import _run_format
from ._paths import reason, resolve_file


def run_shape(run: Mapping, base_dir=".") -> tuple[int, int]:
    """(n_TR, n_targets) of one run entry, from headers (NIfTI, CIFTI, HDF5, NPY) or the GIFTI files."""
    base_dir = Path(base_dir)
    file_format = _run_format(run)
    try:
        if file_format == "nifti":
            image = nib.load(resolve_file(run, "path", base_dir, "a 4D NIfTI image"))
            mask = nib.load(resolve_file(run, "mask", base_dir, "the binary brain mask every 4D NIfTI run needs"))
            return int(image.shape[-1]), int((np.asanyarray(mask.dataobj) != 0).sum())
        if file_format == "cifti":
            shape = nib.load(resolve_file(run, "path", base_dir, "a CIFTI-2 .dtseries.nii file")).shape
            return int(shape[0]), int(shape[1])
        if file_format == "gifti":
            sizes = [nib.load(resolve_file(run, side, base_dir, f"the {side}-hemisphere .func.gii file"))
                     for side in ("left", "right")]
            return len(sizes[0].darrays), int(sum(image.darrays[0].data.size for image in sizes))
        path = resolve_file(run, "path", base_dir, "an array file")
        if file_format == "hdf5":
            with h5py.File(path, "r") as handle:
                names = []
                handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
                key = run.get("dataset") or (names[0] if len(names) == 1 else None)
                if key not in handle:
                    raise InputError(f"{path}: field 'dataset' must name one of {', '.join(names)}.")
                return tuple(int(n) for n in handle[key].shape)
        if str(path).endswith(".npz"):
            with np.load(path) as archive:
                key = run.get("dataset") or archive.files[0]
                return tuple(int(n) for n in archive[key].shape)
        return tuple(int(n) for n in np.load(path, mmap_mode="r").shape)
    except InputError:
        raise
    except Exception as error:  # nibabel, h5py and numpy raise many types for unreadable files
        where = run.get("path") or run.get("left")
        raise InputError(f"{where}: field 'path' names a file whose header cannot be read ({reason(error)}).") from None
