"""User atlases read from label files: FreeSurfer annot, GIFTI label, CIFTI dlabel, NIfTI volume.

Each reader turns its file into one integer label key per target plus a key -> name table;
``load_atlas`` turns that into ROI name -> target indices. Key 0 and the names FreeSurfer,
Workbench and Schaefer use for "no area" are never ROIs.
"""

from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from features.errors import InputError

_NOT_AN_AREA = {"", "???", "unknown", "medial_wall", "background"}
FORMATS = (".annot", ".label.gii", ".dlabel.nii", ".nii", ".nii.gz")


def _is_area(key, name):
    lowered = name.strip().lower()
    # Schaefer annots call their key 0 "Background+FreeSurfer_Defined_Medial_Wall"
    return key != 0 and lowered not in _NOT_AN_AREA and "medial_wall" not in lowered


def _rois_from_keys(keys, names, offset=0):
    """ROI name -> indices (plus offset) of the targets that carry each key that is an area."""
    # one stable sort instead of a full scan per label: volumes have ~1e6 voxels and ~1e3 labels
    order = np.argsort(keys, kind="stable")
    unique, starts = np.unique(keys[order], return_index=True)
    rois = {}
    for key, idx in zip(unique.tolist(), np.split(order, starts[1:])):
        name = names.get(key, f"label_{key}")
        if key < 0 or not _is_area(key, name):
            continue
        idx = idx.astype(np.int64) + offset
        # two keys with one name (or one name in both hemispheres) make one ROI
        rois[name] = np.union1d(rois[name], idx) if name in rois else idx
    return rois


def _format_of(path):
    """The atlas format of a file, from its name."""
    lowered = path.name.lower()
    for suffix in (".annot", ".label.gii", ".dlabel.nii", ".nii.gz", ".nii"):
        if lowered.endswith(suffix):
            return suffix
    raise InputError(
        f"{path}: field 'atlas' expected a file ending in one of {FORMATS}, found {path.name!r}."
    )


def _read_annot(path):
    keys, _, names = nib.freesurfer.read_annot(str(path))
    # keys index the colour table; -1 marks vertices outside every entry
    return keys, {i: n.decode() if isinstance(n, bytes) else str(n) for i, n in enumerate(names)}


def _read_label_gifti(path):
    img = nib.load(str(path))
    if not img.darrays:
        raise InputError(f"{path}: field 'darrays' expected one label array, found none.")
    keys = np.asarray(img.darrays[0].data).astype(np.int64).ravel()
    return keys, {int(k): str(v) for k, v in img.labeltable.get_labels_as_dict().items()}


def _read_dlabel(path, n_targets):
    """Keys per target of a CIFTI dlabel, in the target order the data implies.

    The data are either CIFTI with the same grayordinates (its columns as they are), cortex-only
    data (its leading surface columns), or a GIFTI pair (mesh vertices, left mesh first).
    """
    img = nib.load(str(path))
    label_axis, models = img.header.get_axis(0), img.header.get_axis(1)
    columns = np.asarray(img.dataobj)[0].astype(np.int64)
    names = {int(k): str(v[0]) for k, v in label_axis.label[0].items()}
    n_surface = int(models.surface_mask.sum())
    n_vertices = sum(models.nvertices.values())
    if n_targets is None or n_targets == len(models):
        return columns, names
    if n_targets == n_surface and models.surface_mask[:n_surface].all():
        return columns[:n_surface], names
    if n_targets == n_vertices:
        keys, offset = np.zeros(n_vertices, dtype=np.int64), 0
        for structure, columns_of, model in models.iter_structures():
            if structure in models.nvertices:
                keys[offset + model.vertex] = columns[columns_of]
                offset += models.nvertices[structure]
        return keys, names
    raise InputError(
        f"{path}: field 'n_targets' expected {len(models)} grayordinates, {n_surface} cortex "
        f"grayordinates or {n_vertices} mesh vertices, found {n_targets} targets in the data."
    )


def _read_lut(path):
    """Key -> name from a TSV (BIDS dseg: columns index, name) or FreeSurfer-style LUT."""
    names, columns = {}, (0, 1)
    for line in Path(path).read_text().splitlines():
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields or line.lstrip().startswith("#"):
            continue
        if not fields[columns[0]].strip().lstrip("-").isdigit():
            header = [f.strip().lower() for f in fields]
            if "index" not in header or "name" not in header:
                raise InputError(
                    f"{path}: field 'header' expected columns index and name, found {header}."
                )
            columns = (header.index("index"), header.index("name"))
            continue
        if len(fields) <= max(columns):
            raise InputError(f"{path}: field 'name' expected a name after index, found {line!r}.")
        names[int(fields[columns[0]])] = fields[columns[1]].strip()
    return names


def _read_label_volume(path, masker, lut):
    """Keys of a NIfTI label volume per masked voxel (masker) or per voxel in C order."""
    img = nib.load(str(path))
    if masker is not None:
        mask_img = getattr(masker, "mask_img_", None)
        if mask_img is None:
            raise InputError(
                f"{path}: field 'masker' expected a fitted NiftiMasker, found an unfitted one."
            )
        if img.shape[:3] != mask_img.shape[:3] or not np.allclose(img.affine, mask_img.affine):
            from nilearn.image import resample_to_img

            # nearest neighbour keeps labels whole; mask voxels outside the atlas become 0
            img = resample_to_img(img, mask_img, interpolation="nearest",
                                  force_resample=True, copy_header=True)
    data = np.asarray(img.dataobj)
    data = data.reshape(data.shape[:3]) if data.ndim == 4 and data.shape[3] == 1 else data
    if data.ndim != 3:
        raise InputError(f"{path}: field 'shape' expected a 3D label volume, found {data.shape}.")
    if not np.array_equal(data, np.round(data)):
        raise InputError(f"{path}: field 'data' expected integer labels, found fractional values.")
    if masker is None:
        keys = data.ravel()
    else:
        keys = data[np.asarray(mask_img.dataobj).astype(bool)]
    return keys.astype(np.int64), _read_lut(lut) if lut is not None else {}


def _read_one(path, n_targets, masker, lut):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: field 'atlas' expected an existing file, found none.")
    kind = _format_of(path)
    if lut is not None and kind not in (".nii", ".nii.gz"):
        raise InputError(
            f"{path}: field 'lut' expected only with a NIfTI label volume, found {lut}."
        )
    if kind == ".annot":
        return _read_annot(path)
    if kind == ".label.gii":
        return _read_label_gifti(path)
    if kind == ".dlabel.nii":
        return _read_dlabel(path, n_targets)
    return _read_label_volume(path, masker, lut)


def _check_count(path, n_found, n_targets):
    if n_targets is not None and n_found != n_targets:
        raise InputError(
            f"{path}: field 'n_targets' expected the atlas's {n_found} targets, "
            f"found {n_targets} targets in the data."
        )


def _load_pair(paths, n_targets, hemi):
    """A left/right pair of surface atlases; right indices come after all left vertices."""
    if set(paths) != {"left", "right"}:
        raise InputError(
            f"{dict(paths)}: field 'atlas' expected keys 'left' and 'right', found {sorted(paths)}."
        )
    rois, offset = {}, 0
    for side in ("left", "right"):
        if _format_of(Path(paths[side])) not in (".annot", ".label.gii"):
            raise InputError(
                f"{paths[side]}: field 'atlas' expected a .annot or .label.gii per hemisphere, "
                f"found {Path(paths[side]).name!r}."
            )
        keys, names = _read_one(paths[side], None, None, None)
        for name, idx in _rois_from_keys(keys, names, offset).items():
            name = f"{side[0].upper()}_{name}" if hemi == "split" else name
            # a name used in both hemispheres ("precentral") becomes one bilateral ROI
            rois[name] = np.union1d(rois[name], idx) if name in rois else idx
        offset += len(keys)
    _check_count(paths["left"], offset, n_targets)
    return rois


def load_atlas(path, n_targets=None, masker=None, lut=None, hemi="both"):
    """ROIs of a user atlas file, as indices into the targets of the fMRI data.

    Parameters
    ----------
    path : str or Path or dict
        One atlas file: FreeSurfer ``.annot``, GIFTI ``.label.gii``, CIFTI ``.dlabel.nii`` or a
        NIfTI label volume (``.nii``/``.nii.gz``, integer labels). A surface pair is a dict
        ``{"left": ..., "right": ...}`` of ``.annot`` or ``.label.gii`` files; right-hemisphere
        indices are offset by the number of left vertices, as in a concatenated GIFTI pair.
    n_targets : int, optional
        Number of targets of the data; a mismatch is an ``InputError``. A dlabel maps onto data
        with its own grayordinates, its cortex columns only, or the 2 x n mesh vertices.
    masker : nilearn.maskers.NiftiMasker, optional
        Fitted masker of volume data: labels are resampled (nearest) to its mask and indices
        count masked voxels. Without it, indices count all voxels in C order.
    lut : str or Path, optional
        Names for a NIfTI volume's labels: TSV with columns ``index`` and ``name`` (BIDS dseg)
        or a FreeSurfer-style LUT (index name ...). Labels without a name are "label_<k>".
    hemi : {"both", "split"}, default="both"
        For a pair: "both" merges names found in both hemispheres, "split" prefixes "L_"/"R_".

    Returns
    -------
    rois : dict of str to array of int
        Label name -> sorted target indices. Key 0, "???", "Unknown", "Medial_Wall" and
        "Background" labels are left out.
    """
    if hemi not in ("both", "split"):
        raise InputError(f"{path}: field 'hemi' expected 'both' or 'split', found {hemi!r}.")
    if isinstance(path, Mapping):
        return _load_pair(path, n_targets, hemi)
    keys, names = _read_one(path, n_targets, masker, lut)
    _check_count(path, len(keys), n_targets)
    return _rois_from_keys(keys, names)
