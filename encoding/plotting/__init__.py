"""Figures of encoding results; every function returns a matplotlib Figure and opens no window."""

from .flatmap import plot_flatmap

__all__ = ["plot_flatmap"]
