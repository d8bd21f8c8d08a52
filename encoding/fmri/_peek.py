"""The space and the size of a run entry from its files' headers, without reading its data.

Checks that depend on the space (is there a built-in atlas for it?) can then fail before any run is
loaded: a NIfTI run is a volume, a CIFTI run's space comes from its brain models (nibabel reads the
header only), a GIFTI pair's mesh from the vertex count in the first data array's XML attributes (the
first kilobytes of the left file), HDF5/NPY arrays are parcels. A sweep's dry run plans with
:func:`run_shape`, whose counts equal what :func:`load_run` returns for the same entry.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from features.errors import InputError

from ._cifti import _cifti_kind, quiet_pixdim
from ._load import _run_format
from ._paths import reason, resolve_file
from ._space import mesh_name
from ._text import text_shape

_DIM0 = re.compile(rb"<DataArray[^>]*\bDim0=\"(\d+)\"")
_HEADER_BYTES = 1 << 16


def peek_space(run: Mapping, base_dir=".") -> tuple[str, str]:
    """``(kind, file)`` of one run entry, ``kind`` as :class:`TargetSpace` names it.

    Parameters
    ----------
    run : mapping
        A run entry as :func:`load_run` takes it.
    base_dir : str or Path
        Folder relative paths are resolved against.

    Returns
    -------
    kind : str
        "volume", "parcels", a mesh name ("fsLR32k", "fsaverage5", ...) or "surface".
    file : str
        The file it was read from, for messages.
    """
    base_dir = Path(base_dir)
    file_format = _run_format(run)
    if file_format == "nifti":
        return "volume", str(resolve_file(run, "path", base_dir, "a 4D NIfTI image"))
    if file_format in ("hdf5", "npy", "text"):
        return "parcels", str(resolve_file(run, "path", base_dir, "an array file"))
    if file_format == "cifti":
        path = resolve_file(run, "path", base_dir, "a CIFTI-2 .dtseries.nii file")
        try:
            with quiet_pixdim():
                brain_models = nib.load(path).header.get_axis(1)
        except Exception as error:  # nibabel raises many types for files it cannot parse
            raise InputError(f"{path}: expected a CIFTI-2 dense time series in the 'path' field, found a file "
                             f"whose header nibabel cannot read ({reason(error)}).") from error
        return _cifti_kind(brain_models), str(path)
    left = resolve_file(run, "left", base_dir, "the left-hemisphere .func.gii file")
    right = resolve_file(run, "right", base_dir, "the right-hemisphere .func.gii file")
    sizes = [_gifti_vertices(path) for path in (left, right)]
    kind = mesh_name(sizes[0], left.name) if sizes[0] == sizes[1] else "surface"
    return kind, str(left)


def _gifti_vertices(path: Path) -> int:
    """Vertices of a .func.gii: the first data array's Dim0 (GIFTI stores vertices first)."""
    with open(path, "rb") as handle:
        match = _DIM0.search(handle.read(_HEADER_BYTES))
    if match:
        return int(match.group(1))
    try:                      # an unusual header layout: parse the whole file
        return int(nib.load(path).darrays[0].data.shape[0])
    except Exception as error:  # nibabel raises many types for files it cannot parse
        raise InputError(f"{path}: expected a GIFTI file, found a file nibabel cannot read "
                         f"({reason(error)}).") from error


def run_shape(run: Mapping, base_dir=".") -> tuple[int, int]:
    """(n_TR, n_targets) of one run entry, from headers (NIfTI, CIFTI, HDF5, NPY) or the GIFTI and text files."""
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
            left, right = (resolve_file(run, side, base_dir, f"the {side}-hemisphere .func.gii file")
                           for side in ("left", "right"))
            return len(nib.load(left).darrays), _gifti_vertices(left) + _gifti_vertices(right)
        if file_format == "text":
            return text_shape(run, base_dir)
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
