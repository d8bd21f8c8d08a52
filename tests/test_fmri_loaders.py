"""Every fMRI loader round-trips a file written with the format's own library, maps go back to
the user's format, per-run cleaning recovers a planted signal, and bad input is one sentence."""

import h5py
import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2.cifti2_axes import BrainModelAxis, ScalarAxis, SeriesAxis

from encoding.fmri import (TargetSpace, check_same_space, find_bad_targets, load_run,
                           preprocess_run, save_map)
from features.errors import InputError

RNG = np.random.default_rng(0)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def write_nifti_run(folder, n_tr=6, shape=(4, 5, 3)):
    data = RNG.standard_normal(shape + (n_tr,)).astype(np.float32)
    mask = RNG.random(shape) > 0.5
    nib.save(nib.Nifti1Image(data, AFFINE), folder / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), folder / "mask.nii.gz")
    return data, mask


def write_gifti(path, series, structure=None):
    """One 1D darray per time point, as fMRIPrep writes ``.func.gii``."""
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure} if structure else {})
    image = nib.gifti.GiftiImage(meta=meta)
    for row in series:
        image.add_gifti_data_array(nib.gifti.GiftiDataArray(row.astype(np.float32)))
    nib.save(image, path)


def cifti_brain_models():
    left = BrainModelAxis.from_surface(np.array([0, 7, 31000]), 32492, "CortexLeft")
    right = BrainModelAxis.from_surface(np.array([3, 4]), 32492, "CortexRight")
    return left + right


def write_cifti_run(path, n_tr=7, tr=1.49):
    brain_models = cifti_brain_models()
    data = RNG.standard_normal((n_tr, len(brain_models))).astype(np.float32)
    series = SeriesAxis(start=0, step=tr, size=n_tr)
    nib.save(nib.Cifti2Image(data, header=(series, brain_models)), path)
    return data


# --- loaders round-trip ---------------------------------------------------------------------

# nilearn 0.14 warns about its own default standardize=False when transform is called.
@pytest.mark.filterwarnings("ignore:boolean values for 'standardize':FutureWarning")
def test_nifti_run_is_the_voxels_inside_the_mask_in_c_order(tmp_path):
    data, mask = write_nifti_run(tmp_path)
    run = {"path": "bold.nii.gz", "mask": "mask.nii.gz", "tr": 2.0, "stimulus_run": "s01e01a"}
    loaded, space = load_run(run, base_dir=tmp_path)
    assert loaded.dtype == np.float32 and loaded.shape == (6, mask.sum())
    assert np.allclose(loaded, data[mask].T)
    assert np.allclose(loaded, space.masker.transform(tmp_path / "bold.nii.gz"))
    assert (space.kind, space.n_targets, space.file_format) == ("volume", mask.sum(), "nifti")


def test_gifti_pair_columns_are_left_vertices_then_right(tmp_path):
    left, right = RNG.standard_normal((5, 12)), RNG.standard_normal((5, 9))
    write_gifti(tmp_path / "x.L.func.gii", left, "CortexLeft")
    write_gifti(tmp_path / "x.R.func.gii", right, "CortexRight")
    loaded, space = load_run({"left": "x.L.func.gii", "right": "x.R.func.gii"}, tmp_path)
    assert np.allclose(loaded, np.hstack([left, right]))
    assert (space.kind, space.n_vertices, space.n_targets) == ("surface", (12, 9), 21)


def test_gifti_single_2d_darray_is_read_as_vertices_by_time(tmp_path):
    series = RNG.standard_normal((4, 10)).astype(np.float32)
    for hemi in "LR":
        image = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(series.T.copy())])
        nib.save(image, tmp_path / f"x.{hemi}.func.gii")
    loaded, _ = load_run({"left": "x.L.func.gii", "right": "x.R.func.gii"}, tmp_path)
    assert np.allclose(loaded, np.hstack([series, series]))


@pytest.mark.parametrize("n_vertices, kind", [(10242, "fsaverage5"), (32492, "fsLR32k")])
def test_gifti_mesh_is_inferred_from_vertices_per_hemisphere(tmp_path, n_vertices, kind):
    for hemi in "LR":
        write_gifti(tmp_path / f"x.{hemi}.func.gii", np.zeros((2, n_vertices)))
    _, space = load_run({"left": "x.L.func.gii", "right": "x.R.func.gii"}, tmp_path)
    assert (space.kind, space.n_targets) == (kind, 2 * n_vertices)


def test_cifti_dtseries_round_trips_and_names_its_space(tmp_path):
    data = write_cifti_run(tmp_path / "run.dtseries.nii")
    loaded, space = load_run({"path": "run.dtseries.nii"}, tmp_path)
    assert np.allclose(loaded, data)
    assert (space.kind, space.n_targets, space.file_format) == ("fsLR32k", 5, "cifti")
    assert space.brain_models == cifti_brain_models()


def test_cifti_with_subcortical_voxels_counts_surface_vertices_and_voxels(tmp_path):
    voxels = BrainModelAxis.from_mask(np.ones((2, 1, 1), bool), affine=AFFINE,
                                      name="ThalamusLeft")
    brain_models = cifti_brain_models() + voxels
    series = SeriesAxis(start=0, step=2.0, size=3)
    nib.save(nib.Cifti2Image(np.zeros((3, 7), np.float32), header=(series, brain_models)),
             tmp_path / "run.dtseries.nii")
    _, space = load_run({"path": "run.dtseries.nii"}, tmp_path)
    assert space.kind == "fsLR32k" and "5 surface vertices and 2 voxels" in space.describe()


def test_hdf5_dataset_round_trips_by_key_and_alone(tmp_path):
    runs = {"ses-001_task-s01e02a": RNG.standard_normal((8, 1000)),
            "ses-001_task-s01e02b": RNG.standard_normal((9, 1000))}
    with h5py.File(tmp_path / "sub-01.h5", "w") as h5file:
        for key, data in runs.items():
            h5file[key] = data
    with h5py.File(tmp_path / "one.h5", "w") as h5file:
        h5file["group/only"] = runs["ses-001_task-s01e02a"]
    loaded, space = load_run({"path": "sub-01.h5", "dataset": "ses-001_task-s01e02b"}, tmp_path)
    assert np.allclose(loaded, runs["ses-001_task-s01e02b"])
    assert (space.kind, space.n_targets) == ("parcels", 1000)
    alone, _ = load_run({"path": "one.h5"}, tmp_path)
    assert np.allclose(alone, runs["ses-001_task-s01e02a"])


def test_npy_round_trips_and_format_field_overrides_extension(tmp_path):
    data = RNG.standard_normal((10, 4))
    np.save(tmp_path / "run.npy", data)
    (tmp_path / "run.npy").rename(tmp_path / "run.bin")
    loaded, space = load_run({"path": "run.bin", "format": "npy", "name": "r1"}, tmp_path)
    assert np.allclose(loaded, data) and space.file_format == "npy"


# --- maps back to the user's format ----------------------------------------------------------

def test_volume_map_written_as_nifti_remasks_to_the_same_values(tmp_path):
    _, mask = write_nifti_run(tmp_path)
    _, space = load_run({"path": "bold.nii.gz", "mask": "mask.nii.gz"}, tmp_path)
    values = RNG.standard_normal(space.n_targets)
    path = save_map(values, space, tmp_path / "out" / "r2")
    assert path.name == "r2.nii.gz"
    written = nib.load(path)
    assert np.allclose(written.affine, AFFINE)
    assert np.allclose(np.asanyarray(written.dataobj)[mask], values)
    assert np.all(np.asanyarray(written.dataobj)[~mask] == 0)


def test_cifti_map_written_as_dscalar_reloads_equal(tmp_path):
    write_cifti_run(tmp_path / "run.dtseries.nii")
    _, space = load_run({"path": "run.dtseries.nii"}, tmp_path)
    values = RNG.standard_normal(space.n_targets)
    path = save_map(values, space, tmp_path / "r2.dscalar.nii")
    written = nib.load(path)
    assert path.name == "r2.dscalar.nii" and isinstance(written.header.get_axis(0), ScalarAxis)
    assert written.header.get_axis(1) == space.brain_models
    assert np.allclose(written.get_fdata()[0], values)


def test_gifti_map_written_as_pair_reloads_equal(tmp_path):
    for hemi, n in (("L", 6), ("R", 4)):
        write_gifti(tmp_path / f"x.{hemi}.func.gii", RNG.standard_normal((3, n)))
    _, space = load_run({"left": "x.L.func.gii", "right": "x.R.func.gii"}, tmp_path)
    values = RNG.standard_normal(10)
    left_path = save_map(values, space, tmp_path / "r2.func.gii")
    assert left_path.name == "r2.L.func.gii"
    halves = [nib.load(tmp_path / f"r2.{hemi}.func.gii") for hemi in "LR"]
    assert [h.meta["AnatomicalStructurePrimary"] for h in halves] == ["CortexLeft", "CortexRight"]
    assert np.allclose(np.concatenate([h.darrays[0].data for h in halves]), values)


def test_parcel_map_written_as_npy_reloads_equal(tmp_path):
    np.save(tmp_path / "run.npy", RNG.standard_normal((5, 7)))
    _, space = load_run({"path": "run.npy"}, tmp_path)
    values = RNG.standard_normal((3, 7))
    path = save_map(values, space, tmp_path / "scores")
    assert np.allclose(np.load(path), values)


# --- per-run cleaning -------------------------------------------------------------------------

def test_trimming_removes_exactly_the_first_and_last_rows():
    data = np.arange(40, dtype=float).reshape(10, 4) + RNG.standard_normal((10, 4))
    trimmed = preprocess_run(data, trim_start=3, trim_end=2, detrend=False, zscore=False)
    assert np.allclose(trimmed, data[3:8])


def test_detrend_and_zscore_recover_a_planted_sinusoid_under_a_ramp():
    time = np.arange(300)
    # Whole cycles of a cosine are orthogonal to a line, so detrending leaves them intact.
    sinusoid = np.cos(2 * np.pi * time / 30.0)
    data = np.column_stack([500 + 0.8 * time + 3 * sinusoid, -20 - 0.1 * time + sinusoid])
    cleaned = preprocess_run(data)
    assert np.allclose(cleaned.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(cleaned.std(axis=0), 1, atol=1e-5)
    for column in cleaned.T:
        assert np.corrcoef(column, sinusoid)[0, 1] > 0.999


def test_constant_nan_and_pure_ramp_targets_come_out_all_nan_and_are_flagged():
    data = RNG.standard_normal((20, 6))
    data[:, 1] = 7.0
    data[4, 3] = np.nan
    data[:, 5] = 2.0 + 0.5 * np.arange(20)
    cleaned = preprocess_run(data)
    assert np.isnan(cleaned[:, [1, 3, 5]]).all()
    assert np.isfinite(cleaned[:, [0, 2, 4]]).all()
    assert find_bad_targets([cleaned]).tolist() == [False, True, False, True, False, True]


def test_find_bad_targets_flags_a_target_bad_in_any_one_run():
    first, second = RNG.standard_normal((8, 5)), RNG.standard_normal((6, 5))
    first[:, 0] = 1.0
    second[2, 4] = np.inf
    assert find_bad_targets([first, second]).tolist() == [True, False, False, False, True]


# --- bad input is one sentence naming the file ----------------------------------------------

def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="sub-01_run-2.dtseries.nii"):
        load_run({"path": "sub-01_run-2.dtseries.nii"}, tmp_path)


def test_3d_nifti_where_4d_expected_is_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 3), np.float32), AFFINE), tmp_path / "t1w.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), AFFINE), tmp_path / "mask.nii.gz")
    with pytest.raises(InputError, match=r"t1w\.nii\.gz: expected a 4D NIfTI"):
        load_run({"path": "t1w.nii.gz", "mask": "mask.nii.gz"}, tmp_path)


def test_mask_on_another_grid_is_refused(tmp_path):
    write_nifti_run(tmp_path)
    nib.save(nib.Nifti1Image(np.ones((4, 5, 4), np.uint8), AFFINE), tmp_path / "big.nii.gz")
    with pytest.raises(InputError, match=r"big\.nii\.gz: .*\(4, 5, 3\), found shape \(4, 5, 4\)"):
        load_run({"path": "bold.nii.gz", "mask": "big.nii.gz"}, tmp_path)


def test_nifti_without_mask_is_refused(tmp_path):
    write_nifti_run(tmp_path)
    with pytest.raises(InputError, match=r"bold\.nii\.gz: expected a 'mask' field"):
        load_run({"path": "bold.nii.gz"}, tmp_path)


def test_missing_hdf5_key_lists_the_available_keys(tmp_path):
    with h5py.File(tmp_path / "sub-01.h5", "w") as h5file:
        h5file["run-1"] = np.zeros((3, 2))
        h5file["run-2"] = np.zeros((3, 2))
    with pytest.raises(InputError, match=r"sub-01\.h5: .*'run-3'.*'run-1', 'run-2'"):
        load_run({"path": "sub-01.h5", "dataset": "run-3"}, tmp_path)
    with pytest.raises(InputError, match=r"sub-01\.h5: expected a 'dataset' field"):
        load_run({"path": "sub-01.h5"}, tmp_path)


def test_npy_with_three_dimensions_is_refused(tmp_path):
    np.save(tmp_path / "run.npy", np.zeros((4, 5, 6)))
    with pytest.raises(InputError, match=r"run\.npy: expected a 2D array .*\(4, 5, 6\)"):
        load_run({"path": "run.npy"}, tmp_path)


def test_gifti_pair_with_different_time_points_is_refused(tmp_path):
    write_gifti(tmp_path / "x.L.func.gii", np.zeros((5, 3)))
    write_gifti(tmp_path / "x.R.func.gii", np.zeros((4, 3)))
    with pytest.raises(InputError, match=r"x\.R\.func\.gii: .*x\.L\.func\.gii.*\(5\), found 4"):
        load_run({"left": "x.L.func.gii", "right": "x.R.func.gii"}, tmp_path)


def test_swapped_hemispheres_are_refused(tmp_path):
    write_gifti(tmp_path / "x.L.func.gii", np.zeros((2, 3)), "CortexLeft")
    write_gifti(tmp_path / "x.R.func.gii", np.zeros((2, 3)), "CortexRight")
    with pytest.raises(InputError, match=r"x\.R\.func\.gii: expected CortexLeft"):
        load_run({"left": "x.R.func.gii", "right": "x.L.func.gii"}, tmp_path)


def test_dscalar_given_as_run_is_named_for_what_it_is(tmp_path):
    image = nib.Cifti2Image(np.zeros((1, 5), np.float32),
                            header=(ScalarAxis(["r2"]), cifti_brain_models()))
    nib.save(image, tmp_path / "sub-01_run-2.dtseries.nii")
    with pytest.raises(InputError, match=r"sub-01_run-2\.dtseries\.nii: expected a CIFTI-2 dense"
                                         r" time series .*found a dscalar file\."):
        load_run({"path": "sub-01_run-2.dtseries.nii"}, tmp_path)


def test_unknown_extension_and_unknown_format_are_refused(tmp_path):
    (tmp_path / "run.mat").write_bytes(b"")
    with pytest.raises(InputError, match=r"run\.mat: expected a file ending in"):
        load_run({"path": "run.mat"}, tmp_path)
    with pytest.raises(InputError, match=r"run\.mat: expected the 'format' field .* 'matlab'"):
        load_run({"path": "run.mat", "format": "matlab"}, tmp_path)


def test_single_time_point_is_refused(tmp_path):
    np.save(tmp_path / "run.npy", np.zeros((1, 5)))
    with pytest.raises(InputError, match=r"run\.npy: expected a 2D array .*\(1, 5\)"):
        load_run({"path": "run.npy"}, tmp_path)


def test_runs_with_different_target_counts_name_both_files_and_counts():
    spaces = [TargetSpace("parcels", 1000, "hdf5"), TargetSpace("parcels", 400, "hdf5")]
    expected = r"run-2\.h5: .*run-1\.h5 \(1000 targets, parcels\), found 400"
    with pytest.raises(InputError, match=expected):
        check_same_space(spaces, ["run-1.h5", "run-2.h5"])
    assert check_same_space(spaces[:1] * 2, ["run-1.h5", "run-3.h5"]) == spaces[0]


def test_volume_runs_with_equal_sized_but_different_masks_are_refused(tmp_path):
    write_nifti_run(tmp_path)
    mask = np.asanyarray(nib.load(tmp_path / "mask.nii.gz").dataobj)
    nib.save(nib.Nifti1Image(mask[::-1].copy(), AFFINE), tmp_path / "flipped.nii.gz")
    spaces = [load_run({"path": "bold.nii.gz", "mask": name}, tmp_path)[1]
              for name in ("mask.nii.gz", "flipped.nii.gz")]
    assert spaces[0].n_targets == spaces[1].n_targets  # only the layout differs
    with pytest.raises(InputError, match=r"run-2: .*run-1 .*different brain mask"):
        check_same_space(spaces, ["run-1", "run-2"])
