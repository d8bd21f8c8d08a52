"""fMRI runs in, ``(n_TR, n_targets)`` arrays out, and per-target maps back to the user's format.

Loaders deal with files (4D NIfTI + mask, GIFTI pairs, CIFTI-2 dtseries, HDF5/NPY arrays, text tables); the
engine downstream only sees float32 arrays and a :class:`TargetSpace` saying what the columns
are. Every mistake in a run entry or a file raises :class:`features.errors.InputError`.
"""

from ._cifti import cifti_to_vertices, quiet_pixdim
from ._gifti import save_gifti_pair
from ._load import load_run, save_map
from ._peek import peek_space, run_shape
from ._preprocess import find_bad_targets, preprocess_run
from ._space import MESH_BY_VERTICES, TargetSpace, check_same_space, mesh_name

__all__ = [
    "MESH_BY_VERTICES",
    "TargetSpace",
    "check_same_space",
    "cifti_to_vertices",
    "find_bad_targets",
    "load_run",
    "mesh_name",
    "peek_space",
    "preprocess_run",
    "quiet_pixdim",
    "run_shape",
    "save_gifti_pair",
    "save_map",
]
