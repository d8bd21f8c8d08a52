"""The figures: per-subject flatmaps of the best layer, layer x ROI heatmaps, and the layer hierarchy and
flatmaps drawn through their own command lines' functions."""
import logging

from features.errors import InputError

from ..config import flatmap_kinds
from ..flatmap import render_flatmaps
from ..hierarchy import hierarchy_analysis
from ..outputs.figures import plot_layer_roi_heatmap
from ..plotting import plot_flatmap
from ..ridge import launcher_world

log = logging.getLogger(__name__)


def draw_flatmap(flatmap, data, values, output_file, title, rois):
    """A subject's best-layer map on its flat surface, when the config's ``flatmap`` asks for maps."""
    if not flatmap or launcher_world()[0] > 0:   # ranks above 0 draw nothing (run_analysis)
        return
    try:
        plot_flatmap(values, data.space.kind, output_file=output_file, title=title, cmap="inferno",
                     vmin=0, colorbar_label="test r", roi_outlines=rois)
    except InputError as err:
        log.warning("no flatmap for this space: %s", err)
        return
    log.info("wrote %s", output_file)


def heatmaps(table, out, networks=None, fdr_q=0.05):
    import matplotlib.pyplot as plt
    files = []
    for (subject, model, instruction), part in table.groupby(["subject", "model", "instruction"], sort=False):
        path = out / f"layer_roi_{subject}_{model}_{instruction}.png"
        fig = plot_layer_roi_heatmap(part, f"{subject} · {model} · {instruction}", path, networks=networks,
                                     fdr_q=fdr_q)
        plt.close(fig)
        files.append(path.name)
    log.info("wrote %d layer x ROI heatmaps", len(files))
    return files


def hierarchy_and_flatmaps(out, flatmap):
    """The layer hierarchy and the flatmaps (the config's ``flatmap``), through the same functions as their command
    lines."""
    hierarchy_analysis(out)
    kinds = flatmap_kinds(flatmap)
    try:
        if kinds:
            render_flatmaps(out, kinds, skip_missing=True)
    except InputError as err:
        # a space without a flat mesh must not cost the fits: the maps can be drawn later
        log.warning("no flatmaps for this space (%s); python -m encoding.flatmap draws them later", err)
