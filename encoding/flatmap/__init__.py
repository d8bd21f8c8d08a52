"""Flatmaps of an output folder's per-target maps: ``python -m encoding.flatmap <folder> --map ...``.

Maps: test r, normalized r, best layer, best instruction, unique/shared variance, significance
mask, noise ceiling; on fsLR-32k, fsaverage5, fsaverage6/fsaverage (meshes on disk), volumes
projected to fsaverage, parcels painted on their parcellation (``encoding.rois.paint_parcels``). Drawing is
``encoding.plotting.plot_flatmap``; this package decides what to draw and where.
"""
from ._maps import MAPS, TargetMap
from ._render import render_flatmaps
from ._surfaces import project_volume

__all__ = ["MAPS", "TargetMap", "project_volume", "render_flatmaps"]
