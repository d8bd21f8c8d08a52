"""Figures of encoding results; every function returns a matplotlib Figure and opens no window."""

from ._colorbar import colorbar_extend
from .flatmap import plot_flatmap

__all__ = ["colorbar_extend", "plot_flatmap"]
