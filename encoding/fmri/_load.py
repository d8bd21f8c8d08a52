"""One entry point per direction: a run entry in, an array out; a result map out to a file.

Formats are registered by name in the two tables below; adding one means one module and one
row per table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from features.errors import InputError

from ._arrays import load_hdf5, load_npy, save_array_map
from ._cifti import load_cifti, save_cifti_map
from ._gifti import load_gifti_pair, save_gifti_map
from ._nifti import load_nifti, save_nifti_map
from ._space import TargetSpace
from ._text import load_text, save_text_map

_LOADERS = {
    "nifti": load_nifti,
    "gifti": load_gifti_pair,
    "cifti": load_cifti,
    "hdf5": load_hdf5,
    "npy": load_npy,
    "text": load_text,
}
_SAVERS = {
    "nifti": save_nifti_map,
    "gifti": save_gifti_map,
    "cifti": save_cifti_map,
    "hdf5": save_array_map,
    "npy": save_array_map,
    "text": save_text_map,
}
# Checked in order: the CIFTI double suffixes end in ".nii" too.
_FORMAT_BY_SUFFIX = (
    (".dtseries.nii", "cifti"), (".dscalar.nii", "cifti"), (".dlabel.nii", "cifti"),
    (".ptseries.nii", "cifti"), (".pscalar.nii", "cifti"), (".dconn.nii", "cifti"),
    (".nii.gz", "nifti"), (".nii", "nifti"),
    (".h5", "hdf5"), (".hdf5", "hdf5"), (".hdf", "hdf5"),
    (".npy", "npy"), (".npz", "npy"),
    (".gii", "gifti"),
    (".txt", "text"), (".dat", "text"), (".csv", "text"), (".tsv", "text"),
)
# Fields that only make sense for some formats; given to another, they are a mistake.
_FIELD_FORMATS = {"mask": {"nifti"}, "dataset": {"hdf5", "npy"}, "names": {"text"},
                  "left": {"gifti"}, "right": {"gifti"}}


def load_run(run: Mapping, base_dir=".") -> tuple[np.ndarray, TargetSpace]:
    """Load one fMRI run as a float32 array of shape ``(n_TR, n_targets)``.

    Parameters
    ----------
    run : mapping
        One run entry of a config, one of::

            {"path": "x.nii.gz", "mask": "brainmask.nii.gz"}    # 4D NIfTI + binary mask
            {"left": "x.L.func.gii", "right": "x.R.func.gii"}   # GIFTI pair, left then right
            {"path": "x.dtseries.nii"}                           # CIFTI-2 dense time series
            {"path": "x.h5", "dataset": "name"}                  # HDF5 dataset (n_TR, n_targets)
            {"path": "x.npy"}                                    # NPY (n_TR, n_targets)
            {"path": "x.txt", "names": ["LATL", ...]}            # text/CSV/TSV, a row per TR

        ``"format"`` (nifti, gifti, cifti, hdf5, npy, text) forces the loader, otherwise the file
        extension decides. ``"tr"``, ``"stimulus_run"``, ``"name"`` and any other key are
        accepted and ignored here. ``"dataset"`` may be omitted when the file holds one array.
    base_dir : str or Path
        Folder relative paths are resolved against (usually the config's folder).

    Returns
    -------
    data : array of shape (n_TR, n_targets), float32
    space : TargetSpace
        What the columns are, and what :func:`save_map` needs to write maps back.

    Raises
    ------
    InputError
        For any mistake in the entry or the files, naming the file and the field.
    """
    if not isinstance(run, Mapping):
        raise InputError(f"run entry {run!r}: expected a mapping with a 'path' (or 'left' and "
                         f"'right') field, found a {type(run).__name__}.")
    file_format = _run_format(run)
    data, space = _LOADERS[file_format](run, Path(base_dir))
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 1:
        raise InputError(f"{space.source}: expected a 2D array (n_TR, n_targets) with at least "
                         f"2 time points and 1 target, found shape {data.shape}.")
    return data, space


def save_map(values, space: TargetSpace, output_file, names=None) -> Path:
    """Write a per-target map in the space's native format, for the user's viewer.

    Parameters
    ----------
    values : array of shape (n_targets,) or (n_maps, n_targets)
        One value per target (NaN where a target was excluded), or several maps.
    space : TargetSpace
        The space of the runs the values were computed on.
    output_file : str or Path
        Where to write; the native suffix is added if missing: ``.nii.gz`` (volume, through
        the masker's ``inverse_transform``), ``.dscalar.nii`` (CIFTI), ``.L.func.gii`` and
        ``.R.func.gii`` (GIFTI pair), ``.npy`` (HDF5/NPY arrays).
    names : sequence of str, optional
        One name per map, stored where the format has names: CIFTI map names, GIFTI data array
        ``Name`` metadata (NIfTI and arrays have none).

    Returns
    -------
    Path
        The file written; for a GIFTI pair the left one (the right one lies beside it).
    """
    return _SAVERS[space.file_format](values, space, output_file, names=names)


def _run_format(run: Mapping) -> str:
    """Pick the loader: the 'format' field if given, else the file name, then cross-check."""
    label = run.get("path") or run.get("left") or "run entry"
    file_format = run.get("format")
    if file_format is None:
        file_format = _format_from_name(run, label)
    file_format = str(file_format).lower()
    if file_format not in _LOADERS:
        raise InputError(f"{label}: expected the 'format' field to be one of "
                         f"{', '.join(_LOADERS)}, found {file_format!r}.")
    for field, formats in _FIELD_FORMATS.items():
        if run.get(field) is not None and file_format not in formats:
            raise InputError(f"{label}: expected no '{field}' field for a {file_format} run "
                             f"(it belongs to {' or '.join(sorted(formats))} runs), found one.")
    if file_format == "gifti" and run.get("path") is not None:
        raise InputError(f"{label}: expected a GIFTI run as a 'left' and a 'right' file, "
                         f"found a single 'path'.")
    return file_format


def _format_from_name(run: Mapping, label) -> str:
    if run.get("path") is None:
        if run.get("left") is not None or run.get("right") is not None:
            return "gifti"
        raise InputError(f"run entry {dict(run)!r}: expected a 'path' field (or 'left' and "
                         f"'right' for a GIFTI pair), found neither.")
    name = str(run["path"]).lower()
    for suffix, file_format in _FORMAT_BY_SUFFIX:
        if name.endswith(suffix):
            return file_format
    raise InputError(f"{label}: expected a file ending in .nii.gz, .nii, .dtseries.nii, "
                     f".h5, .npy, .npz, .txt, .csv or .tsv in the 'path' field (or a 'format' field), "
                     f"found {Path(name).suffix or 'no extension'}.")
