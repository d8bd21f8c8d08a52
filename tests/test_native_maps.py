"""Native maps (issue 14): every map of a real analysis, written in the input's own space, read back with
nibabel (or pandas), equals scores.h5 value for value on the input's grid, for the four layouts of
tests/native_layouts.py; nilearn's plotting draws the NIfTI and GIFTI ones."""
import json

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits
import yaml

from encoding.fmri import load_run
from encoding.outputs.native_maps import SMALLEST_Q, space_from_scores, write_native_maps
from encoding.outputs.scores_file import ScoresFile
from encoding.run import main
from features.errors import InputError
from native_layouts import LAYOUTS, SUBJECT, write_layout_study


@pytest.fixture(autouse=True)
def one_blas_thread():
    """These arrays are small: with several BLAS threads on a shared 2-core machine, OpenBLAS spends
    more time waiting than working (a 0.3 s banded fit took 40 s)."""
    with threadpool_limits(1):
        yield

EXPECTED_STATS = {"r", "bestlayer", "depth", "normalizedr", "neglog10q", "bestinstruction", "uniquevariance",
                  "layerweight"}


@pytest.fixture(scope="module", params=LAYOUTS)
def analysed(request, tmp_path_factory):
    """One layout analysed by the CLI, which writes its maps in the runs' own space (listed in maps.tsv)."""
    folder = tmp_path_factory.mktemp(request.param)
    config = write_layout_study(folder, request.param)
    out = folder / "out"
    assert main(["--config", str(config), "--out", str(out), "--quiet"]) == 0
    spec = yaml.safe_load(config.read_text())
    _, space = load_run(spec["subjects"][SUBJECT]["runs"][0], folder)
    written = sorted(out / name for name in pd.read_csv(out / "maps.tsv", sep="\t")["filename"])
    assert written and all(path.is_file() for path in written)
    return request.param, folder, out, space, written


def _expected(scores, row, config):
    """The values a map must hold, straight from the scores.h5 datasets its maps.tsv row names."""
    key = f"{row.subject}/{row.model}/{row.instruction}"
    if row.desc == "layerweights":                 # the layer-weights fit's depth and test r
        return scores[f"{key}/layer_weights/{'preferred_depth' if row.stat == 'depth' else 'test_r'}"][()]
    if row.stat == "layerweight":
        labels = json.loads(scores[f"{key}/layer_weights"].attrs["band_labels"])
        return scores[f"{key}/layer_weights/weights"][()][labels.index(row.desc)]
    if row.stat == "r":
        return scores[f"{key}/best_layer_test_r"][()]
    if row.stat in ("bestlayer", "depth"):
        best = scores[f"{key}/best_layer"][()].astype(float)
        best[best < 0] = np.nan
        return best if row.stat == "bestlayer" else best / (scores[f"{row.subject}/{row.model}"].attrs["n_layers"] - 1)
    if row.stat == "normalizedr":
        r, ceiling = scores[f"{key}/best_layer_test_r"][()], scores[f"{row.subject}/noise_ceiling/ceiling"][()]
        return np.where(ceiling > config["ceiling_threshold"], r / ceiling, np.nan)
    if row.stat == "neglog10q":
        return -np.log10(np.maximum(scores[f"{key}/best_layer_q_perm"][()], SMALLEST_Q))
    if row.stat == "bestinstruction":
        best = scores[f"{row.subject}/{row.model}/best_instruction"][()].astype(float)
        best[best < 0] = np.nan
        return best
    partition = scores[f"{row.subject}/joint/{row.joint}/partition"]
    part = "unique_a" if row.desc == partition.attrs["band_a"] else "unique_b"
    return partition[part][()]


def _read_back(path, layout, space, scores, description):
    """A written map as values per target of the data, checking it lies on the input's grid."""
    if layout == "volume":
        image = nib.load(path)
        mask = scores[f"{SUBJECT}/mask"][()].astype(bool)
        reference = space.masker.mask_img_
        assert image.shape == reference.shape and np.allclose(image.affine, reference.affine)
        data = np.asanyarray(image.dataobj)
        assert np.all(data[~mask] == 0)
        return data[mask]
    if layout == "cifti":
        image = nib.load(path)
        assert image.header.get_axis(1) == space.brain_models
        assert list(image.header.get_axis(0).name) == [description]
        return np.asarray(image.dataobj)[0]
    if layout == "gifti":
        halves = [nib.load(str(path).replace("hemi-L", f"hemi-{h}")) for h in "LR"]
        assert [h.meta["AnatomicalStructurePrimary"] for h in halves] == ["CortexLeft", "CortexRight"]
        assert [h.darrays[0].data.size for h in halves] == list(space.n_vertices)
        assert halves[0].darrays[0].meta["Name"] == description
        return np.concatenate([h.darrays[0].data for h in halves])
    table = pd.read_csv(path, sep="\t", na_values="n/a")
    assert table["index"].tolist() == list(range(space.n_targets))
    return table[table.columns[3 if "network" in table else 2]].to_numpy(np.float32)


def test_every_map_round_trips_to_the_scores_on_the_input_grid(analysed):
    layout, folder, out, space, written = analysed
    index = pd.read_csv(out / "maps.tsv", sep="\t", keep_default_na=False)
    assert {out / f for f in index["filename"]} == set(written)
    config = yaml.safe_load((out / "config.yaml").read_text())
    first = {"gifti": "hemi-L", "parcels": ".tsv"}.get(layout, "")
    rows = index[index["filename"].str.contains(first, regex=False)]
    assert set(rows["stat"]) == EXPECTED_STATS
    with h5py.File(out / "scores.h5") as scores:
        for row in rows.itertuples():
            expected = np.asarray(_expected(scores, row, config), np.float32)
            np.testing.assert_array_equal(_read_back(out / row.filename, layout, space, scores, row.description),
                                          expected,
                                          err_msg=row.filename)


def test_names_are_bids_derivatives_with_the_inputs_space(analysed):
    layout, _, out, _, written = analysed
    space = {"volume": "space-MNI152NLin2009cAsym_res-2_", "gifti": "hemi-L_space-fsaverage5_",
             "cifti": "space-fsLR_den-91k_",
             "parcels": "space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_"}[layout]
    extension = {"volume": ".nii.gz", "gifti": ".func.gii", "cifti": ".dscalar.nii", "parcels": ".tsv"}[layout]
    name = f"sub-01_{space}model-toy_task-caption_stat-r_desc-bestlayer_statmap{extension}"
    assert out / "sub-01" / "func" / name in written
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "mllm-encoding"
    assert description["GeneratedBy"][0]["Config"]["name"] == layout


def test_parcel_maps_are_painted_on_the_parcellation(analysed):
    layout, folder, out, _, _ = analysed
    if layout != "parcels":
        pytest.skip("parcels only")
    labels = np.asarray(nib.load(folder / "Schaefer2018_1000Parcels_7Networks_order_FSLMNI152_2mm.nii.gz").dataobj)
    name = "sub-01_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_model-toy_task-caption_stat-r_" \
           "desc-bestlayer_statmap"
    painted = np.asarray(nib.load(out / "sub-01" / "func" / f"{name}.nii.gz").dataobj)
    table = pd.read_csv(out / "sub-01" / "func" / f"{name}.tsv", sep="\t", na_values="n/a")
    with h5py.File(out / "scores.h5") as scores:
        r = scores["sub-01/toy/caption/best_layer_test_r"][()]
    np.testing.assert_array_equal(painted[labels > 0], r[labels[labels > 0] - 1])
    assert table["name"].iloc[0] == "7Networks_LH_Vis_1" and table["network"].iloc[0] == "Vis"
    assert table["network"].tolist() == [name.split("_")[2] for name in table["name"]]


def test_nilearn_plots_the_volume_and_surface_maps(analysed, tmp_path):
    layout, _, out, _, written = analysed
    if layout not in ("volume", "gifti"):
        pytest.skip("nilearn draws NIfTI volumes and GIFTI surfaces")
    from nilearn import plotting

    path = next(p for p in written if "task-caption_stat-r_desc-bestlayer" in p.name)
    picture = tmp_path / "map.png"
    if layout == "volume":
        plotting.plot_stat_map(str(path), output_file=str(picture), display_mode="ortho")
    else:
        from nilearn.datasets import load_fsaverage

        mesh = load_fsaverage("fsaverage5")["inflated"].parts["left"]
        plotting.plot_surf_stat_map(mesh, str(path), hemi="left", output_file=str(picture))
    assert picture.stat().st_size > 10_000


def test_a_second_write_refuses_to_overwrite_and_changes_nothing(analysed):
    layout, folder, out, space, written = analysed
    before = {p: p.read_bytes() for p in written[:3]}
    with ScoresFile(out / "scores.h5") as scores:
        with pytest.raises(InputError, match="native map already exists"):
            write_native_maps(out, scores, SUBJECT, space)
        rebuilt = space_from_scores(scores, SUBJECT)
    assert {p: p.read_bytes() for p in before} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".maps-")]
    assert rebuilt == space and rebuilt.file_format == space.file_format
