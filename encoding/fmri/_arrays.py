"""Runs stored as plain arrays ``(n_TR, n_targets)``: HDF5 datasets and NPY/NPZ files.

The Algonauts 2025 release ships one HDF5 file per subject with one dataset per run
(Schaefer-1000 parcels), so a run names its file and its ``dataset``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from features.errors import InputError

from ._paths import map_rows, reason, resolve_file, strip_suffixes
from ._space import TargetSpace

_LISTED_KEYS = 8


def load_hdf5(run: Mapping, base_dir: Path) -> tuple[np.ndarray, TargetSpace]:
    """Load ``run["dataset"]`` of an HDF5 file (optional when the file holds one dataset)."""
    path = resolve_file(run, "path", base_dir, "an HDF5 file")
    try:
        h5file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: expected an HDF5 file in the 'path' field, found a file "
                         f"h5py cannot open ({reason(error)}).") from error
    with h5file:
        names = []
        h5file.visititems(lambda name, obj: names.append(name)
                          if isinstance(obj, h5py.Dataset) else None)
        key = _pick_key(run.get("dataset"), names, path)
        data = h5file[key][()]
    return _as_run_array(data, path, key, "hdf5")


def load_npy(run: Mapping, base_dir: Path) -> tuple[np.ndarray, TargetSpace]:
    """Load an ``.npy`` array, or ``run["dataset"]`` of an ``.npz`` archive."""
    path = resolve_file(run, "path", base_dir, "an .npy file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        # NumPy reports any unreadable file as pickled data; pickles are refused for safety.
        raise InputError(f"{path}: expected a plain NumPy .npy or .npz array in the 'path' "
                         f"field, found a file NumPy cannot read without unpickling.") from error
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return _as_run_array(loaded, path, None, "npy")
    with loaded:
        key = _pick_key(run.get("dataset"), list(loaded.files), path)
        return _as_run_array(loaded[key], path, key, "npy")


def save_array_map(values, space: TargetSpace, output_file, names=None) -> Path:
    """Write ``(n_targets,)`` or ``(n_maps, n_targets)`` as float32 ``.npy``."""
    rows = map_rows(values, space.n_targets, output_file)
    path = strip_suffixes(output_file, (".npy",))
    path = path.with_name(path.name + ".npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, rows if len(rows) > 1 else rows[0])
    return path


def _pick_key(key, names: list[str], path: Path) -> str:
    """Return the dataset to read, or say which ones the file holds."""
    listed = ", ".join(repr(n) for n in names[:_LISTED_KEYS])
    if len(names) > _LISTED_KEYS:
        listed += f" and {len(names) - _LISTED_KEYS} more"
    if key is None:
        if len(names) == 1:
            return names[0]
        raise InputError(f"{path}: expected a 'dataset' field naming one of its "
                         f"{len(names)} datasets ({listed or 'none'}), found none.")
    key = str(key).strip("/")
    if key not in names:
        raise InputError(f"{path}: expected the 'dataset' field {key!r} to name a dataset "
                         f"in the file, found only {listed or 'no datasets'}.")
    return key


def _as_run_array(data, path: Path, key, file_format: str) -> tuple[np.ndarray, TargetSpace]:
    source = f"{path} (dataset {key!r})" if key is not None else str(path)
    if not np.issubdtype(np.asarray(data).dtype, np.number):
        raise InputError(f"{source}: expected a numeric array (n_TR, n_targets), "
                         f"found dtype {np.asarray(data).dtype}.")
    data = np.ascontiguousarray(data, dtype=np.float32)
    n_targets = data.shape[-1] if data.ndim else 0
    return data, TargetSpace(kind="parcels", n_targets=n_targets, file_format=file_format,
                             source=source)
