"""CIFTI-2 dense time series (grayordinates), maps written back as dense scalars, and read back per vertex."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.cifti2.cifti2_axes import (BrainModelAxis, LabelAxis, ParcelsAxis, ScalarAxis,
                                        SeriesAxis)

from features.errors import InputError

from ._paths import map_rows, reason, resolve_file, strip_suffixes
from ._space import TargetSpace, mesh_name

# Names users know the other CIFTI files by, so the message says what they gave instead.
_CIFTI_TYPES = {
    (ScalarAxis, BrainModelAxis): "dscalar",
    (LabelAxis, BrainModelAxis): "dlabel",
    (BrainModelAxis, BrainModelAxis): "dconn",
    (SeriesAxis, ParcelsAxis): "ptseries",
    (ScalarAxis, ParcelsAxis): "pscalar",
    (ParcelsAxis, ParcelsAxis): "pconn",
}


@contextmanager
def quiet_pixdim():
    """Silence nibabel's pixdim messages while a CIFTI file loads.

    A CIFTI-2 file's NIfTI-2 header carries no voxel sizes (HCP's own files have zero pixdims), and
    nibabel logs two lines about it at every load, one per run, which buries the useful log.
    """
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_cifti(run: Mapping, base_dir: Path) -> tuple[np.ndarray, TargetSpace]:
    """Load a ``.dtseries.nii`` as ``(n_TR, n_grayordinates)`` in the file's column order."""
    path = resolve_file(run, "path", base_dir, "a CIFTI-2 .dtseries.nii file")
    try:
        with quiet_pixdim():
            image = nib.load(path)
    except Exception as error:  # nibabel raises many types for files it cannot parse
        raise InputError(f"{path}: expected a CIFTI-2 dense time series in the 'path' field, "
                         f"found a file nibabel cannot read ({reason(error)}).") from error
    if not isinstance(image, nib.Cifti2Image):
        raise InputError(f"{path}: expected a CIFTI-2 dense time series in the 'path' field, "
                         f"found a {type(image).__name__} without CIFTI-2 axes.")
    axes = [image.header.get_axis(i) for i in range(image.ndim)]
    if len(axes) != 2 or not (isinstance(axes[0], SeriesAxis)
                              and isinstance(axes[1], BrainModelAxis)):
        found = _CIFTI_TYPES.get(tuple(type(a) for a in axes),
                                 " x ".join(type(a).__name__ for a in axes))
        raise InputError(f"{path}: expected a CIFTI-2 dense time series (BrainModelAxis x "
                         f"SeriesAxis), found a {found} file.")
    brain_models = axes[1]
    data = np.asarray(image.dataobj, dtype=np.float32)
    space = TargetSpace(kind=_cifti_kind(brain_models), n_targets=len(brain_models),
                        file_format="cifti", source=str(path), brain_models=brain_models)
    return data, space


def save_cifti_map(values, space: TargetSpace, output_file, names=None) -> Path:
    """Write ``(n_targets,)`` or ``(n_maps, n_targets)`` as a ``.dscalar.nii`` on the run's
    grayordinates; the maps are named ``names`` (one per map, what wb_view lists), by default
    after the file (``r2``, or ``r2_0``, ``r2_1``...)."""
    rows = map_rows(values, space.n_targets, output_file)
    path = strip_suffixes(output_file, (".dscalar.nii", ".dtseries.nii", ".nii"))
    if names is None:
        names = [path.name] if len(rows) == 1 else [f"{path.name}_{i}" for i in range(len(rows))]
    if len(names) != len(rows):
        raise InputError(f"{output_file}: expected one name per map ({len(rows)}), found {len(names)}.")
    image = nib.Cifti2Image(rows, header=(ScalarAxis(names), space.brain_models))
    # Workbench reads the file type from the intent code, not from the file name.
    image.nifti_header.set_intent("ConnDenseScalar")
    path = path.with_name(path.name + ".dscalar.nii")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


CORTEX = {"left": "CIFTI_STRUCTURE_CORTEX_LEFT", "right": "CIFTI_STRUCTURE_CORTEX_RIGHT"}


def cifti_to_vertices(cifti, map_index=0) -> tuple[np.ndarray, np.ndarray]:
    """One map of a dense CIFTI file as values per vertex of the left and right cortical meshes.

    A ``.dscalar.nii`` holds one value per grayordinate: cortex vertices without the medial wall,
    then subcortical voxels. Surface plots (nilearn's ``plot_surf_stat_map``) want one value per
    mesh vertex, so each cortex's grayordinates are put back at their vertex indices (the file's own
    brain models say which) and the medial wall and subcortex are left out.

    Parameters
    ----------
    cifti : str, Path or nibabel.Cifti2Image
        A dense CIFTI file: a map of ``python -m encoding.run`` (``*_statmap.dscalar.nii``), any
        ``.dscalar.nii`` or a ``.dtseries.nii``.
    map_index : int, default=0
        Which map (row) of the file.

    Returns
    -------
    left, right : arrays of float of shape (n_vertices_left,), (n_vertices_right,)
        32492 each on fsLR-32k; NaN at vertices without a grayordinate (the medial wall).
    """
    source = "the image" if isinstance(cifti, nib.Cifti2Image) else str(cifti)
    if isinstance(cifti, nib.Cifti2Image):
        image = cifti
    else:
        with quiet_pixdim():
            image = nib.load(str(cifti))
    if not isinstance(image, nib.Cifti2Image) or not isinstance(image.header.get_axis(1), BrainModelAxis):
        found = (_CIFTI_TYPES.get(tuple(type(image.header.get_axis(i)) for i in range(image.ndim)), "CIFTI-2")
                 + " file without grayordinates" if isinstance(image, nib.Cifti2Image) else type(image).__name__)
        raise InputError(f"{source}: expected a dense CIFTI-2 file (.dscalar.nii or .dtseries.nii), found a {found}.")
    brain_models = image.header.get_axis(1)
    n_maps = image.shape[0]
    if not -n_maps <= map_index < n_maps:
        raise InputError(f"{source}: field 'map_index' expected one of the file's {n_maps} maps (0 to "
                         f"{n_maps - 1}), found {map_index}.")
    values = np.asarray(image.dataobj[map_index], dtype=float)
    sides = {}
    for structure, part, model in brain_models.iter_structures():
        for side, name in CORTEX.items():
            if structure == name:
                on_mesh = np.full(model.nvertices[name], np.nan)
                on_mesh[model.vertex] = values[part]
                sides[side] = on_mesh
    missing = [name for side, name in CORTEX.items() if side not in sides]
    if missing:
        present = ", ".join(str(structure) for structure, _, _ in brain_models.iter_structures())
        raise InputError(f"{source}: expected grayordinates on both cortices, found no {' or '.join(missing)} "
                         f"(structures: {present}).")
    return sides["left"], sides["right"]


def _cifti_kind(brain_models: BrainModelAxis) -> str:
    """Name the mesh of the grayordinates; see :mod:`encoding.fmri._space` for the vocabulary."""
    meshes = {mesh_name(n) for n in brain_models.nvertices.values()}
    if not meshes:
        return "volume"
    return meshes.pop() if len(meshes) == 1 else "surface"
