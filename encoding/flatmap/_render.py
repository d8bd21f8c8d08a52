"""Draw the maps of an output folder on flat cortex, as PNG and/or SVG."""
import logging
from pathlib import Path

import yaml

from features.errors import InputError

from ..outputs.scores_file import ScoresFile
from ..plotting import plot_flatmap
from ..rois import Volume, paint_parcels
from ._maps import MAPS, best_instruction_maps, ceiling_maps, layer_maps, partition_maps
from ._surfaces import check_drawable, project_rois, project_volume

log = logging.getLogger(__name__)


def _space(scores, subject):
    attrs = scores.attrs(subject)
    kind = attrs.get("space_kind") or str(attrs.get("space", "")).split(":")[0]
    volume = None
    if kind == "volume":
        if f"{subject}/mask" not in scores:
            raise InputError(f"{scores.path}: field '{subject}/mask' is missing; rerun the analysis with this "
                             f"version to draw volume results.")
        volume = Volume(scores.read(f"{subject}/mask").astype(bool), scores.attrs(f"{subject}/mask")["affine"])
    return kind, volume


def _collect(scores, subject, kind, selection):
    if kind in ("r", "normalized_r", "best_layer", "significant"):
        return layer_maps(scores, subject, kind, selection["models"], selection["instructions"], selection["layer"],
                          selection["threshold"], selection["ceiling_threshold"], selection["only_significant"])
    if kind == "best_instruction":
        return best_instruction_maps(scores, subject, selection["models"], selection["threshold"],
                                     selection["only_significant"])
    if kind in ("unique_variance", "shared_variance"):
        return partition_maps(scores, subject, kind, selection["joints"])
    return ceiling_maps(scores, subject)


def _on_surface(target_map, kind, volume, surface, parcellation):
    """(values, space) to draw: projected or painted as the data's space needs."""
    values, piecewise = target_map.values, target_map.categorical
    if kind == "parcels":
        if parcellation is None:
            raise InputError("--parcellation: parcel results need the label file their parcels come from "
                             "(a .dlabel.nii, an annot/label.gii pair or a NIfTI label volume).")
        values, kind, volume = paint_parcels(values, parcellation)
        piecewise = True    # one value per parcel: sample the parcel, never a blend across its border
    if kind == "volume":
        surface = surface or "fsaverage5"
        return project_volume(values, volume, surface, piecewise), surface
    if surface not in (None, kind):
        raise InputError(f"--surface: {kind} results are drawn on {kind}, found {surface!r}; only volume "
                         f"results are projected.")
    return values, kind


def _outlines(scores, subject, kind, volume, surface):
    """The subject's ROIs as indices of what is drawn: projected once for volumes, none for parcels."""
    rois = scores.read_rois(subject)
    if kind == "parcels":
        return None     # each parcel is its own ROI: outlines would hide the map
    if kind == "volume":
        return project_rois(rois, volume, surface or "fsaverage5")
    return rois


def render_flatmaps(folder, maps=("r",), subjects=None, models=None, instructions=None, joints=None, layer="best",
                    surface=None, formats=("png",), threshold=None, ceiling_threshold=None, parcellation=None,
                    outlines=True, only_significant=True, output_dir=None, skip_missing=False):
    """Draw the chosen maps of every selected subject, model and instruction of an output folder.

    Parameters
    ----------
    folder : str or Path
        Output folder of ``python -m encoding.run`` (reads scores.h5 and config.yaml).
    maps : sequence of str
        Any of ``MAPS``.
    subjects, models, instructions, joints : sequence of str, optional
        Restrict to these; default all.
    layer : "best" or int
        For r, normalized_r and significant: each target's CV-best layer, or one layer.
    surface : str, optional
        Volume results: fsaverage5 (default), fsaverage6 or fsaverage. Others: their own mesh.
    formats : sequence of {"png", "svg"}
    threshold : float, optional
        FDR level of ``significant`` and of the masks of categorical maps; default the config's fdr_q.
    ceiling_threshold : float, optional
        Ceiling below which normalized r is not drawn; default the config's ceiling_threshold.
    parcellation : path or (left, right) paths, optional
        Label file(s) to paint parcel results on.
    outlines : bool
        Outline and name the analysis's ROIs (not for parcels).
    only_significant : bool
        Categorical maps (best layer/instruction) only where the target is significant.
    output_dir : str or Path, optional
        Default ``<folder>/flatmaps``.
    skip_missing : bool
        Skip a map the folder cannot provide (no ceiling, no joint fit) instead of an error.

    Returns
    -------
    list of Path written
    """
    folder = Path(folder)
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    selection = dict(models=models, instructions=instructions, joints=joints, layer=layer,
                     threshold=float(threshold if threshold is not None else config.get("fdr_q", 0.05)),
                     ceiling_threshold=float(ceiling_threshold if ceiling_threshold is not None
                                             else config.get("ceiling_threshold", 0.05)),
                     only_significant=only_significant)
    unknown = [m for m in maps if m not in MAPS]
    if unknown:
        raise InputError(f"--map: unknown map '{unknown[0]}'; known: {', '.join(MAPS)}.")
    output_dir = Path(output_dir or folder / "flatmaps")
    written = []
    with ScoresFile(folder / "scores.h5") as scores:
        for subject in [s for s in scores.subjects() if not subjects or s in subjects]:
            kind, volume = _space(scores, subject)
            rois = None
            for map_kind in maps:
                found = _collect(scores, subject, map_kind, selection)
                if not found and not skip_missing:
                    raise InputError(f"{folder / 'scores.h5'}: field '{map_kind}' has nothing to draw for "
                                     f"{subject} ({_why_missing(map_kind)}).")
                if found and outlines and rois is None:
                    rois = _outlines(scores, subject, kind, volume, surface)
                for target_map in found:
                    written += _draw(target_map, kind, volume, surface, parcellation, rois, formats, output_dir)
    log.info("wrote %d flatmap file(s) to %s", len(written), output_dir)
    return written


def _draw(target_map, kind, volume, surface, parcellation, rois, formats, output_dir):
    values, space = _on_surface(target_map, kind, volume, surface, parcellation)
    check_drawable(space, target_map.name)
    paths = [output_dir / f"{target_map.name}.{fmt}" for fmt in formats]
    figure = plot_flatmap(values, space, output_file=paths[0], title=target_map.title,
                          roi_outlines=rois or None, **target_map.style)
    for path in paths[1:]:
        figure.savefig(path, dpi=200, bbox_inches="tight")
    return paths


def _why_missing(kind):
    return {"normalized_r": "no noise ceiling: needs a repeated test run or two or more subjects",
            "significant": "no permutations: set n_permutations above 0",
            "best_instruction": "needs an analysis over several instructions",
            "unique_variance": "no two-band joint fit in the config's 'joint'",
            "shared_variance": "no two-band joint fit in the config's 'joint'",
            "noise_ceiling": "no noise ceiling: needs a repeated test run or two or more subjects"}.get(kind, "")
