"""Figures of encoding results; every function returns a matplotlib Figure and opens no window."""

from ._colorbar import colorbar_extend
from ._colors import distinct_colors
from ._flat_meshes import TARGET_COUNTS
from .flatmap import plot_flatmap

__all__ = ["TARGET_COUNTS", "colorbar_extend", "distinct_colors", "plot_flatmap"]
