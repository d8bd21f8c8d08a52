"""What the columns of a loaded run are, and what is needed to write a result map back.

``kind`` names the space in the field's words:

- ``"volume"``: voxels inside a NIfTI brain mask, in the mask's C order (``masker`` is set).
- ``"fsaverage3"`` ... ``"fsaverage6"``, ``"fsaverage"`` (fsaverage7, 163842 vertices per
  hemisphere), ``"fsLR164k"`` (163842 per hemisphere in a file named ``space-fsLR``),
  ``"fsLR32k"`` (32492 per hemisphere): a GIFTI pair, every vertex of the left mesh then every
  vertex of the right mesh (``n_vertices`` is set).
- CIFTI-2 (``brain_models`` is set): the mesh name of its surfaces, so ``"fsLR32k"`` both for
  the 91282 grayordinates (32k cortex without the medial wall, then subcortical voxels) and for
  the 59412 cortex-only ones; ``"volume"`` for voxels only.
- ``"surface"``: a mesh of unknown size (left and right differ or match no known mesh).
- ``"parcels"``: columns of an HDF5/NPY array or a text table; nothing is known about them but their
  count (and, for a text table, their names).

``kind`` names the mesh, not the column layout: ``"fsLR32k"`` is 64984 columns from a GIFTI
pair, 91282 or 59412 from CIFTI. ``n_targets`` (and ``file_format``) tell them apart, as the
built-in atlas does, and :func:`check_same_space` refuses to mix them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from features.errors import InputError

if TYPE_CHECKING:
    from nibabel.cifti2.cifti2_axes import BrainModelAxis
    from nilearn.maskers import NiftiMasker

MESH_BY_VERTICES = {
    642: "fsaverage3",
    2562: "fsaverage4",
    10242: "fsaverage5",
    40962: "fsaverage6",
    163842: "fsaverage",
    32492: "fsLR32k",
}


def mesh_name(n_vertices: int, file_name: str = "") -> str:
    """Name the standard mesh with ``n_vertices`` per hemisphere, or ``"surface"`` if none.

    fsaverage and fsLR-164k both have 163842 vertices; only the file name (BIDS ``space-fsLR``)
    can tell them apart.
    """
    if n_vertices == 163842 and "fslr" in file_name.lower():
        return "fsLR164k"
    return MESH_BY_VERTICES.get(n_vertices, "surface")


@dataclass(frozen=True)
class TargetSpace:
    """What the columns of a loaded run are.

    Attributes
    ----------
    kind : str
        The space in the field's words (see the module docstring for the full list).
    n_targets : int
        Number of columns (voxels, vertices, grayordinates or parcels).
    file_format : str
        ``"nifti"``, ``"gifti"``, ``"cifti"``, ``"hdf5"`` or ``"npy"``: how maps are written back.
    source : str
        The file this space was read from, for messages.
    masker : nilearn.maskers.NiftiMasker or None
        Fitted masker of a volume run; ``inverse_transform`` turns values into a NIfTI image.
    brain_models : nibabel BrainModelAxis or None
        Grayordinates of a CIFTI run, reused to write ``.dscalar.nii`` maps.
    n_vertices : tuple of (int, int) or None
        Vertices of the left and right hemisphere of a GIFTI pair.
    names : tuple of str or None
        The targets' names where the file gives them (a text table's header or its run entry's
        ``names``): the ROIs of ``rois.atlas: parcels`` when ``rois.names`` is not set.
    """

    kind: str
    n_targets: int
    file_format: str
    source: str = field(default="", compare=False)
    masker: NiftiMasker | None = field(default=None, compare=False, repr=False)
    brain_models: BrainModelAxis | None = field(default=None, compare=False, repr=False)
    n_vertices: tuple[int, int] | None = None
    names: tuple[str, ...] | None = field(default=None, compare=False)

    def describe(self) -> str:
        """One line saying what the columns are, for logs and reports."""
        if self.masker is not None:
            shape = "x".join(str(n) for n in self.masker.mask_img_.shape)
            detail = f"{self.n_targets} voxels inside a {shape} brain mask (NIfTI)"
        elif self.brain_models is not None:
            n_surface = int(self.brain_models.surface_mask.sum())
            detail = (f"{self.n_targets} grayordinates, {n_surface} surface vertices and "
                      f"{self.n_targets - n_surface} voxels (CIFTI-2)")
        elif self.n_vertices is not None:
            left, right = self.n_vertices
            detail = f"{self.n_targets} vertices, {left} left and {right} right (GIFTI pair)"
        else:
            named = f": {', '.join(self.names)}" if self.names and len(self.names) <= 12 else ""
            detail = f"{self.n_targets} columns of an array ({self.file_format.upper()}){named}"
        source = f" from {self.source}" if self.source else ""
        return f"{self.kind}: {detail}{source}"


def check_same_space(spaces: Sequence[TargetSpace], files: Sequence) -> TargetSpace:
    """Check that the runs of one subject share their targets, and return that space.

    Parameters
    ----------
    spaces : sequence of TargetSpace
        One per run, as returned by :func:`load_run`.
    files : sequence of str or Path
        One label per run (its file), named in the message.

    Returns
    -------
    TargetSpace
        The space of the first run.

    Raises
    ------
    InputError
        When a run has a different kind or number of targets, or the same count in a different
        layout (another mask, other grayordinates, other hemisphere sizes).
    """
    if len(spaces) != len(files) or not spaces:
        raise InputError(f"runs: expected one file label per space and at least one run, "
                         f"found {len(spaces)} spaces and {len(files)} labels.")
    reference = spaces[0]
    for space, label in zip(spaces[1:], files[1:]):
        difference = _layout_difference(reference, space)
        if difference is not None:
            raise InputError(
                f"{label}: expected the same targets as {files[0]} ({reference.n_targets} "
                f"targets, {reference.kind}), found {difference}.")
    return reference


def _layout_difference(reference: TargetSpace, space: TargetSpace) -> str | None:
    """Say how ``space`` differs from ``reference``, or None when they are the same targets."""
    if (space.kind, space.n_targets, space.n_vertices) != (
            reference.kind, reference.n_targets, reference.n_vertices):
        return f"{space.n_targets} targets, {space.kind}"
    if reference.brain_models is not None and space.brain_models is not None:
        if reference.brain_models != space.brain_models:
            return f"{space.n_targets} grayordinates laid out differently"
    if reference.masker is not None and space.masker is not None:
        if not _same_mask(reference.masker.mask_img_, space.masker.mask_img_):
            return f"{space.n_targets} voxels of a different brain mask"
    return None


def _same_mask(a, b) -> bool:
    return (a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-3)
            and np.array_equal(np.asanyarray(a.dataobj) != 0, np.asanyarray(b.dataobj) != 0))
