"""The layer-by-ROI heatmap."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_layer_roi_heatmap(table, title=None, output_file=None, value="mean_test_r"):
    """Heatmap of one (subject, model, instruction) slice of alignment.csv.

    Rows are layers (0 = embedding output at the top), columns ROIs in atlas order; a white dot
    marks each ROI's layer chosen by cross-validation.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rois = list(dict.fromkeys(table["roi"]))
    layers = sorted(table["layer"].unique())
    grid = table.pivot(index="layer", columns="roi", values=value).reindex(index=layers, columns=rois)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(rois), 1.2 + 0.32 * len(layers)))
    limit = np.nanmax(np.abs(grid.values)) if np.isfinite(grid.values).any() else 1.0
    image = ax.imshow(grid.values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    best = table[table["best_layer_by_cv"]]
    ax.scatter([rois.index(r) for r in best["roi"]], [layers.index(k) for k in best["layer"]],
               s=18, c="white", edgecolors="black", linewidths=0.6)
    ax.set_xticks(range(len(rois)), rois, rotation=60, ha="right")
    ax.set_yticks(range(len(layers)), layers)
    ax.set_xlabel("ROI")
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax, label=f"{value.replace('_', ' ')} (held-out runs)")
    # the note sits in the title: a legend beside the colorbar would cover its label
    ax.set_title((f"{title}\n" if title else "") + "white dot: layer chosen by CV", fontsize=9)
    fig.tight_layout()
    if output_file:
        fig.savefig(output_file, dpi=120)
    return fig
