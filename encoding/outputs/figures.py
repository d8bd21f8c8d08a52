"""The layer-by-ROI heatmap, readable from a dozen ROIs to a thousand parcels.

Up to ``MAX_LABELLED_ROIS`` ROIs: one column per ROI, each labelled. More (a Schaefer-1000 or Glasser-360
parcellation): with networks known (``rois.networks``, a built-in atlas's, or Schaefer-style names) the
ROIs are ordered by network and the axis names the networks; without, one overview of every ROI (a
labelled tick every few ROIs) and pages of ``MAX_LABELLED_ROIS`` labelled ROIs in a folder beside it
(``<name>_pages/<name>_page-01.png``, ...). The figure is never wider than ``MAX_WIDTH_IN`` inches.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..plotting import colorbar_extend  # noqa: E402
from ..rois import networks_from_names  # noqa: E402

MAX_LABELLED_ROIS = 60
MAX_WIDTH_IN = 16.0
DPI = 120
_MAX_TICKS = 40


def plot_layer_roi_heatmap(table, title=None, output_file=None, value="mean_test_r", networks=None,
                           max_rois=MAX_LABELLED_ROIS, fdr_q=0.05):
    """Heatmap of one (subject, model, instruction) slice of alignment.csv.

    Rows are layers (0 = embedding output at the top), columns ROIs in atlas order (by network when there
    are more than ``max_rois`` and networks are known); a dot marks each ROI's layer chosen by
    cross-validation where the ROI's mean r at that layer is significant (``q_perm`` < ``fdr_q``, the roi
    family). Cross-validation picks a layer in every ROI, noise included; unmarked, a noise ROI does not
    read as a finding. Without a permutation test (no ``q_perm``) every CV choice is marked and the
    title says they are untested.

    Parameters
    ----------
    table : DataFrame
        Rows of alignment.csv with columns layer, roi, ``value`` and best_layer_by_cv.
    title : str, optional
    output_file : str or Path, optional
        Where the figure goes; pages of a long ROI list go beside it (module docstring).
    value : str
        The column drawn.
    networks : dict ROI -> network, optional
        Default: read from Schaefer-style ROI names when they are.
    max_rois : int
        ROIs that one figure labels one by one.
    fdr_q : float
        q-value below which a CV-best layer is marked.

    Returns
    -------
    matplotlib.figure.Figure (for many ROIs without networks: the overview; the pages are closed)
    """
    rois = list(dict.fromkeys(table["roi"]))
    if len(rois) <= max_rois:
        return _heatmap(table, rois, title, output_file, value, fdr_q, labels=rois)
    networks = networks or networks_from_names(rois)
    if networks:
        ordered = sorted(rois, key=_network_order(rois, networks))
        return _heatmap(table, ordered, title, output_file, value, fdr_q,
                        groups=[networks.get(r, "other") for r in ordered])
    if output_file is not None:
        _pages(table, rois, title, Path(output_file), value, max_rois, fdr_q)
    where = f" in {Path(output_file).stem}_pages/" if output_file is not None else ""
    return _heatmap(table, rois, f"{title or ''} (all {len(rois)} ROIs; pages of {max_rois}{where})".strip(),
                    output_file, value, fdr_q, labels=rois, stride=int(np.ceil(len(rois) / _MAX_TICKS)))


def _pages(table, rois, title, output_file, value, max_rois, fdr_q):
    """Pages of ``max_rois`` labelled ROIs, in ``<stem>_pages/`` beside the overview."""
    folder = output_file.with_name(f"{output_file.stem}_pages")
    folder.mkdir(parents=True, exist_ok=True)
    for page, start in enumerate(range(0, len(rois), max_rois)):
        chunk = rois[start:start + max_rois]
        figure = _heatmap(table[table["roi"].isin(chunk)], chunk,
                          f"{title or ''} (ROIs {start + 1}-{start + len(chunk)} of {len(rois)})".strip(),
                          folder / f"{output_file.stem}_page-{page + 1:02d}.png", value, fdr_q, labels=chunk)
        plt.close(figure)


def _network_order(rois, networks):
    """Sort key: networks in order of first appearance, ROIs in atlas order within each."""
    first = {}
    for roi in rois:
        first.setdefault(networks.get(roi, "other"), len(first))
    position = {roi: i for i, roi in enumerate(rois)}
    return lambda roi: (first[networks.get(roi, "other")], position[roi])


def _marked(table, fdr_q):
    """The CV-best rows to mark, and the title's note on what a mark means."""
    best = table[table["best_layer_by_cv"].astype(bool)]
    if "q_perm" not in best or not best["q_perm"].notna().any():
        return best, "layer chosen by CV, not tested for significance (no permutations)"
    return best[best["q_perm"] < fdr_q], f"layer chosen by CV where significant (ROI mean r, q < {fdr_q:g})"


def _heatmap(table, rois, title, output_file, value, fdr_q, labels=None, groups=None, stride=1):
    layers = sorted(table["layer"].unique())
    grid = table.pivot_table(index="layer", columns="roi", values=value, aggfunc="first")
    grid = grid.reindex(index=layers, columns=rois)
    width = min(MAX_WIDTH_IN, 1.0 + 0.55 * len(rois)) if labels is not None and stride == 1 else MAX_WIDTH_IN
    fig, ax = plt.subplots(figsize=(max(width, 4.0), 1.8 + 0.32 * len(layers)))
    values = grid.to_numpy(float)
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    best, meaning = _marked(table, fdr_q)
    column = {roi: i for i, roi in enumerate(rois)}
    best = best[best["roi"].isin(column)]
    many = len(rois) > MAX_LABELLED_ROIS
    # a thousand white dots would hide the colours: many ROIs get a small black mark each
    ax.scatter([column[r] for r in best["roi"]], [layers.index(k) for k in best["layer"]], s=1.5 if many else 18,
               c="black" if many else "white", edgecolors="black", linewidths=0 if many else 0.6, marker=".")
    if groups is not None:
        _label_groups(ax, groups)
    else:
        ticks = list(range(0, len(rois), stride))
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=60, ha="right", fontsize=8 if many else None)
        ax.set_xlabel("ROI" if stride == 1 else f"ROI (every {stride}th named)")
    ax.set_yticks(range(len(layers)), layers)
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax, label=f"{value.replace('_', ' ')} (held-out runs)", fraction=0.03, pad=0.01,
                 extend=colorbar_extend(values, -limit, limit))
    # the note sits in the title: a legend beside the colorbar would cover its label
    ax.set_title((f"{title}\n" if title else "") + ("black mark" if many else "white dot") + f": {meaning}",
                 fontsize=9)
    fig.tight_layout()
    if output_file:
        fig.savefig(output_file, dpi=DPI)
    return fig


def _label_groups(ax, groups):
    """One tick per network at the middle of its block, white lines between blocks."""
    bounds = [0] + [i for i in range(1, len(groups)) if groups[i] != groups[i - 1]] + [len(groups)]
    for edge in bounds[1:-1]:
        ax.axvline(edge - 0.5, color="white", linewidth=1.2)
    centres = [(a + b - 1) / 2 for a, b in zip(bounds[:-1], bounds[1:])]
    names = [f"{groups[a]} ({b - a})" for a, b in zip(bounds[:-1], bounds[1:])]
    ax.set_xticks(centres, names, rotation=45, ha="right")
    ax.set_xlabel(f"ROIs by network ({len(groups)} ROIs)")
