"""GIFTI pairs (one file per hemisphere), as fMRIPrep writes surface time series."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from features.errors import InputError

from ._paths import map_rows, reason, resolve_file, strip_suffixes
from ._space import TargetSpace, mesh_name

_HEMISPHERES = (("left", "L", "CortexLeft"), ("right", "R", "CortexRight"))
_MESH_INTENTS = {nib.nifti1.intent_codes.code[name]
                 for name in ("NIFTI_INTENT_POINTSET", "NIFTI_INTENT_TRIANGLE")}


def load_gifti_pair(run: Mapping, base_dir: Path) -> tuple[np.ndarray, TargetSpace]:
    """Load a left/right GIFTI pair as ``(n_TR, n_left + n_right)``, left vertices first."""
    blocks, paths = [], []
    for field, _, structure in _HEMISPHERES:
        path = resolve_file(run, field, base_dir, f"the {field}-hemisphere .func.gii file")
        blocks.append(_read_hemisphere(path, field, structure))
        paths.append(path)
    (left, right), (left_path, right_path) = blocks, paths
    if left.shape[0] != right.shape[0]:
        raise InputError(f"{right_path}: expected as many time points in the 'right' field as "
                         f"{left_path.name} has in 'left' ({left.shape[0]}), "
                         f"found {right.shape[0]}.")
    n_vertices = (left.shape[1], right.shape[1])
    kind = mesh_name(n_vertices[0], left_path.name) if n_vertices[0] == n_vertices[1] \
        else "surface"
    space = TargetSpace(kind=kind, n_targets=sum(n_vertices), file_format="gifti",
                        source=f"{left_path} + {right_path.name}", n_vertices=n_vertices)
    return np.concatenate([left, right], axis=1), space


def save_gifti_map(values, space: TargetSpace, output_file, names=None) -> Path:
    """Write ``<stem>.L.func.gii`` and ``<stem>.R.func.gii``, one darray per map.

    Returns
    -------
    Path
        The left file; the right one lies beside it with ``.R`` for ``.L``.
    """
    stem = strip_suffixes(output_file, (".func.gii", ".shape.gii", ".gii"))
    return save_gifti_pair(values, space, [stem.with_name(f"{stem.name}.{letter}.func.gii")
                                           for _, letter, _ in _HEMISPHERES], names)[0]


def save_gifti_pair(values, space: TargetSpace, paths, names=None) -> list[Path]:
    """Write the left and right vertices of ``(n_targets,)`` or ``(n_maps, n_targets)`` to two files.

    Parameters
    ----------
    values : array of shape (n_targets,) or (n_maps, n_targets)
    space : TargetSpace
        A GIFTI pair's space (``n_vertices`` is set).
    paths : sequence of two str or Path
        The left and the right file, as named (BIDS names put the hemisphere in ``hemi-L``).
    names : sequence of str, optional
        One per map: each data array's ``Name`` metadata, which Workbench lists as the map name.

    Returns
    -------
    list of the two Paths written
    """
    rows = map_rows(values, space.n_targets, paths[0])
    if names is not None and len(names) != len(rows):
        raise InputError(f"{paths[0]}: expected one name per map ({len(rows)}), found {len(names)}.")
    n_left = space.n_vertices[0]
    written = []
    for (_, _, structure), block, path in zip(_HEMISPHERES, (rows[:, :n_left], rows[:, n_left:]), paths):
        # Workbench and nilearn read the hemisphere from this key.
        image = nib.gifti.GiftiImage(
            meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure}))
        for i, row in enumerate(block):
            meta = nib.gifti.GiftiMetaData({"Name": str(names[i])}) if names is not None else None
            image.add_gifti_data_array(nib.gifti.GiftiDataArray(
                row, intent="NIFTI_INTENT_NONE", datatype="NIFTI_TYPE_FLOAT32", meta=meta))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, path)
        written.append(path)
    return written


def _read_hemisphere(path: Path, field: str, structure: str) -> np.ndarray:
    """Return one hemisphere as float32 ``(n_TR, n_vertices)``."""
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many types for files it cannot parse
        raise InputError(f"{path}: expected a GIFTI file in the '{field}' field, found a file "
                         f"nibabel cannot read ({reason(error)}).") from error
    if not isinstance(image, nib.gifti.GiftiImage):
        raise InputError(f"{path}: expected a GIFTI file in the '{field}' field, "
                         f"found a {type(image).__name__}.")
    darrays = image.darrays
    if not darrays or any(d.intent in _MESH_INTENTS for d in darrays):
        found = "a surface mesh (.surf.gii)" if darrays else "no data arrays"
        raise InputError(f"{path}: expected a functional GIFTI (.func.gii) with one data array "
                         f"per time point in the '{field}' field, found {found}.")
    _check_hemisphere(image, path, field, structure)
    if len(darrays) == 1 and darrays[0].data.ndim == 2:
        # GIFTI stores vertices along the first dimension.
        return np.ascontiguousarray(darrays[0].data.T, dtype=np.float32)
    shapes = sorted({d.data.shape for d in darrays})
    if len(shapes) != 1 or len(shapes[0]) != 1:
        raise InputError(f"{path}: expected in the '{field}' field one 1D data array per time "
                         f"point, all of one length, or a single 2D array, found shapes "
                         f"{shapes[:3]}.")
    return np.stack([d.data for d in darrays]).astype(np.float32, copy=False)


def _check_hemisphere(image, path: Path, field: str, structure: str) -> None:
    """Refuse a right hemisphere given as 'left' (or back), when the file says which it is."""
    other = "CortexRight" if structure == "CortexLeft" else "CortexLeft"
    labels = {meta.get("AnatomicalStructurePrimary")
              for meta in (image.meta, image.darrays[0].meta)}
    if other in labels:
        raise InputError(f"{path}: expected {structure} in the '{field}' field, found a file "
                         f"whose AnatomicalStructurePrimary is {other}.")
