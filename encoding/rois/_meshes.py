"""fsaverage6 and fsaverage (fsaverage7) meshes, read where nilearn keeps its downloads; nothing is downloaded.

The built-in atlases place their spheres on these meshes' mid-thickness surfaces (``_builtin``), and the flatmaps
draw on their flat surfaces and project volumes through their pial and white ones (``encoding.plotting``,
``encoding.flatmap``).
"""
import os
from pathlib import Path

import numpy as np

from features.errors import InputError

# meshes found on disk only; fsaverage7 is kept by nilearn under the name "fsaverage"
LOCAL_MESHES = {"fsaverage6": "fsaverage6", "fsaverage": "fsaverage"}


def nilearn_data_dirs():
    """Folders where nilearn keeps downloaded datasets, in the order nilearn looks."""
    dirs = []
    for variable in ("NILEARN_DATA", "NILEARN_SHARED_DATA"):
        dirs += [Path(d).expanduser() for d in os.environ.get(variable, "").split(os.pathsep) if d]
    return dirs + [Path("~/nilearn_data").expanduser()]


def local_fsaverage_mesh(space_kind, surface, side):
    """(coordinates, faces) of a downloaded fsaverage6/fsaverage mesh, or a clear error.

    Parameters
    ----------
    space_kind : {"fsaverage6", "fsaverage"}
    surface : {"flat", "pial", "white", ...}
    side : {"left", "right"}
    """
    from nilearn.surface import load_surf_mesh

    name = LOCAL_MESHES[space_kind]
    for folder in nilearn_data_dirs():
        for suffix in (".gii.gz", ".gii"):
            path = folder / name / f"{surface}_{side}{suffix}"
            if path.is_file():
                mesh = load_surf_mesh(str(path))
                return np.asarray(mesh.coordinates, dtype=float), np.asarray(mesh.faces)
    raise InputError(
        f"{space_kind}: field '{surface}_{side}' expected nilearn's {name} meshes on disk (searched "
        f"{', '.join(str(d / name) for d in nilearn_data_dirs())}), found none; download them once with "
        f"python -c \"from nilearn.datasets import fetch_surf_fsaverage; fetch_surf_fsaverage('{name}')\" "
        f"or draw on fsaverage5."
    )
