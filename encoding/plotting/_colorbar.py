"""Colorbars that say when the colours are clipped."""
import numpy as np


def colorbar_extend(values, vmin, vmax):
    """Which ends of the colour range the finite values pass: "neither", "min", "max" or "both".

    Values outside ``[vmin, vmax]`` are drawn in the end colours; the colorbar's arrow at that end
    tells the reader that the colour stands for "this or beyond", not for the end value.

    Parameters
    ----------
    values : array
    vmin, vmax : float

    Returns
    -------
    extend : str, for ``Figure.colorbar(..., extend=extend)``
    """
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    below = bool(finite.size) and finite.min() < vmin
    above = bool(finite.size) and finite.max() > vmax
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[below, above]
