"""Figures of encoding results; every function returns a matplotlib Figure and opens no window."""

from ._colorbar import colorbar_extend
from ._colors import distinct_colors
from .flatmap import plot_flatmap

__all__ = ["colorbar_extend", "distinct_colors", "plot_flatmap"]
