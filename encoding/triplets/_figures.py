"""Human-readable views of an embedding: each dimension's top items, as a table and a figure."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._items import load_image


def top_items(embedding, names, k=10):
    """The ``k`` items with the largest weight on each dimension.

    Parameters
    ----------
    embedding : array of shape (n_items, n_dims)
    names : sequence of str
    k : int

    Returns
    -------
    DataFrame with columns dimension (1-based, in the embedding's order), rank (1-based), item, weight.
    """
    embedding = np.asarray(embedding)
    rows = []
    for d in range(embedding.shape[1]):
        order = np.argsort(-embedding[:, d], kind="stable")[:k]
        rows += [{"dimension": d + 1, "rank": r + 1, "item": names[i], "weight": float(embedding[i, d])}
                 for r, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["dimension", "rank", "item", "weight"])


def plot_top_items(embedding, names, images=None, k=6, columns=5, output_file=None):
    """One panel per dimension with its top items: their names (and weights), or their images.

    Parameters
    ----------
    embedding : array of shape (n_items, n_dims)
    names : sequence of str
    images : sequence of image paths or None
        One per item; with images each dimension is a row of ``k`` thumbnails.
    k : int
        Items per dimension.
    columns : int
        Panels per row (names only).
    output_file : str or Path, optional
        Where to save the figure (PNG, SVG, PDF by suffix).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    table = top_items(embedding, names, k)
    n_dims = int(np.shape(embedding)[1])
    if images is not None:
        fig = _image_rows(plt, table, n_dims, k, images, {n: i for i, n in enumerate(names)})
    else:
        rows = -(-n_dims // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 0.2 * (k + 2) * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for d, part in table.groupby("dimension"):
            ax = axes.flat[d - 1]
            ax.set_title(f"dimension {d}", fontsize=9, loc="left")
            text = "\n".join(f"{row.item}  ({row.weight:.2f})" for row in part.itertuples())
            ax.text(0, 1, text, va="top", ha="left", fontsize=8, transform=ax.transAxes)
    fig.tight_layout()
    if output_file is not None:
        fig.savefig(output_file, dpi=120)
    return fig


def _image_rows(plt, table, n_dims, k, images, index):
    fig, axes = plt.subplots(n_dims, k, figsize=(1.3 * k, 1.45 * n_dims), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for d, part in table.groupby("dimension"):
        for r, row in enumerate(part.itertuples()):
            ax = axes[d - 1, r]
            image = load_image(images[index[row.item]])
            image.thumbnail((128, 128))
            ax.imshow(np.asarray(image))
            ax.set_title(row.item, fontsize=6)
        axes[d - 1, 0].text(-0.1, 0.5, f"{d}", transform=axes[d - 1, 0].transAxes, ha="right", va="center")
    return fig
