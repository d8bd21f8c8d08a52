"""Colours that tell categories apart."""
import matplotlib
import numpy as np


def distinct_colors(n):
    """``n`` colours, no two alike: tab10 up to 10, tab20 up to 20, then spread over turbo.

    Returns
    -------
    list of RGB(A) tuples
    """
    if n <= 10:
        return list(matplotlib.colormaps["tab10"].colors[:n])
    if n <= 20:
        return list(matplotlib.colormaps["tab20"].colors[:n])
    # past 20 a qualitative map would repeat colors; spread a rainbow instead
    return [tuple(c) for c in matplotlib.colormaps["turbo"](np.linspace(0, 1, n))]
