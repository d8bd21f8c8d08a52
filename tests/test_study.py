"""A tiny study end to end through the CLI: NIfTI runs, a label atlas, a features store.

Three ROIs of a small volume are driven by different planted layers of a 4-layer store; the
analysis must recover each ROI's layer, equal himalaya's own RidgeCV on the same arrays, and
write every output the contract names, refusing to overwrite it.
"""
import json
import re

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from himalaya.ridge import RidgeCV
from himalaya.scoring import r2_score
from scipy.signal import detrend
from sklearn.model_selection import LeaveOneGroupOut

from encoding.run import main
from features.delays import delay_run
from features.store import FeatureStore

PLANTED = {"visual": 0, "middle": 2, "language": 3}       # ROI -> layer driving it
N_RUNS, N_TRS, HIDDEN, N_LAYERS, SHAPE = 5, 80, 6, 4, (4, 4, 3)
DELAYS = [1, 2, 3]
PROMPT = "Caption the video in a short sentence."


def _write_study(folder, seed=0):
    rng = np.random.default_rng(seed)
    layers = rng.standard_normal((N_RUNS, N_LAYERS, N_TRS, HIDDEN)).astype(np.float32)
    with FeatureStore(folder / "features" / "toy.h5", "a", {"model_id": "toy", "tr": 2.0}) as store:
        for run in range(N_RUNS):
            store.create_run("caption", f"run-{run + 1}", N_TRS, [HIDDEN] * N_LAYERS, PROMPT)
            store.write_clips("caption", f"run-{run + 1}", slice(None), list(layers[run]))
    labels = np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3 + 1     # 16 voxels per ROI
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(labels.astype(np.int16), affine), folder / "atlas.nii.gz")
    (folder / "atlas.tsv").write_text("index\tname\n1\tvisual\n2\tmiddle\n3\tlanguage\n")
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), affine), folder / "mask.nii.gz")
    weights = {roi: rng.standard_normal((HIDDEN * len(DELAYS), 16)) for roi in PLANTED}
    runs = []
    for run in range(N_RUNS):
        bold = np.zeros(SHAPE + (N_TRS,), np.float32)
        for i, (roi, layer) in enumerate(PLANTED.items()):
            signal = delay_run(layers[run, layer], DELAYS) @ weights[roi]
            bold[labels == i + 1] = (signal + 2.0 * rng.standard_normal(signal.shape) + 50).T
        bold[0, 0, 0] = 7.0                                       # a constant voxel: excluded, scored NaN
        nib.save(nib.Nifti1Image(bold, affine), folder / f"sub-01_run-{run + 1}_bold.nii.gz")
        runs.append({"path": f"sub-01_run-{run + 1}_bold.nii.gz", "mask": "mask.nii.gz",
                     "stimulus_run": f"run-{run + 1}", "tr": 2.0})
    config = {"name": "toy", "features_dir": "features", "models": ["toy"], "instructions": "caption",
              "subjects": {"sub-01": {"runs": runs}}, "test_runs": ["run-5"], "delays": DELAYS,
              "alphas": {"logspace": [-1, 4, 11]}, "rois": {"atlas": "atlas.nii.gz", "lut": "atlas.tsv"}, "flatmap": False}
    (folder / "study.yaml").write_text(yaml.safe_dump(config))
    return folder / "study.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    config = _write_study(folder)
    out = folder / "out"
    assert main(["--config", str(config), "--out", str(out), "--quiet"]) == 0
    return folder, config, out


def test_cli_writes_every_output(study):
    _, _, out = study
    for name in ["scores.h5", "alignment.csv", "best_layers.csv", "report.md", "config.yaml", "versions.json",
                 "layer_roi_sub-01_toy_caption.png"]:
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "alignment.csv")
    assert len(table) == N_LAYERS * len(PLANTED)
    assert set(table.columns) >= {"subject", "model", "instruction", "layer", "roi", "n_targets", "mean_test_r",
                                  "median_test_r", "mean_test_r2", "mean_cv_score"}
    assert "himalaya" in json.loads((out / "versions.json").read_text())
    assert PROMPT in (out / "report.md").read_text()


def test_recovers_planted_preferred_layer_per_roi(study):
    _, _, out = study
    best = pd.read_csv(out / "best_layers.csv").set_index("roi")["best_layer"].to_dict()
    assert best == PLANTED


def test_constant_voxel_is_excluded_and_scored_nan(study):
    _, _, out = study
    with h5py.File(out / "scores.h5") as scores:
        valid = scores["sub-01/valid"][()]
        test_r = scores["sub-01/toy/caption/layer_0/test_r"][()]
    assert valid.sum() == valid.size - 1 and not valid[0]
    assert np.isnan(test_r[0]) and np.isfinite(test_r[1:]).all()


def test_scores_equal_himalaya_ridgecv_on_the_pipeline_arrays(study):
    folder, _, out = study
    mask = np.ones(SHAPE, bool)
    layer = 2
    X, Y, groups = [], [], []
    with FeatureStore(folder / "features" / "toy.h5") as store:
        for run in range(N_RUNS):
            x = store.read_layer("caption", f"run-{run + 1}", layer).astype(np.float64)
            X.append(delay_run((x - x.mean(0)) / x.std(0), DELAYS))      # z-scored per run, then delayed
            y = nib.load(folder / f"sub-01_run-{run + 1}_bold.nii.gz").get_fdata()[mask].T[:, 1:]
            y = detrend(y, axis=0)
            Y.append(y / y.std(0))
            groups.append(np.full(N_TRS, run))
    X_train, Y_train, g = np.concatenate(X[:4]), np.concatenate(Y[:4]), np.concatenate(groups[:4])
    reference = RidgeCV(alphas=np.logspace(-1, 4, 11), cv=list(LeaveOneGroupOut().split(X_train, groups=g)),
                        solver_params=dict(score_func=r2_score)).fit(X_train.astype(np.float32),
                                                                     Y_train.astype(np.float32))
    prediction = reference.predict(X[4].astype(np.float32))
    r = [np.corrcoef(prediction[:, j], Y[4][:, j])[0, 1] for j in range(Y[4].shape[1])]
    with h5py.File(out / "scores.h5") as scores:
        ours = {name: scores[f"sub-01/toy/caption/layer_{layer}/{name}"][()][1:] for name in ("alpha", "test_r")}
    np.testing.assert_array_equal(ours["alpha"], reference.best_alphas_)
    np.testing.assert_allclose(ours["test_r"], r, atol=1e-4)


def test_second_run_refuses_to_overwrite_and_keeps_the_folder(study, capsys):
    _, config, out = study
    before = (out / "alignment.csv").read_bytes()
    assert main(["--config", str(config), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "alignment.csv").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--instruction", "dance"], "unknown instruction 'dance'.*caption"),
    (["--model", "gpt"], "unknown model 'gpt'.*toy"),
    (["--subjects", "sub-09"], "unknown subject 'sub-09'"),
])
def test_unknown_names_list_the_known_ones(study, tmp_path, capsys, args, message):
    _, config, _ = study
    assert main(["--config", str(config), "--out", str(tmp_path / "o"), *args]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_unknown_config_key_is_an_error_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nalphass: [1, 2]\n")
    assert main(["--config", str(bad)]) == 2
    assert "bad.yaml: unknown config key 'alphass'" in capsys.readouterr().err


def test_tr_count_mismatch_names_both_counts(study, tmp_path, capsys):
    folder, config, _ = study
    spec = yaml.safe_load(config.read_text())
    short = nib.load(folder / "sub-01_run-2_bold.nii.gz")
    nib.save(nib.Nifti1Image(short.get_fdata()[..., :70].astype(np.float32), short.affine), tmp_path / "short.nii.gz")
    spec["subjects"]["sub-01"]["runs"][1]["path"] = str(tmp_path / "short.nii.gz")
    spec["features_dir"] = str(folder / "features")
    spec["rois"] = {"atlas": str(folder / "atlas.nii.gz"), "lut": str(folder / "atlas.tsv")}
    for run in spec["subjects"]["sub-01"]["runs"]:
        run["mask"] = str(folder / "mask.nii.gz")
        if not run["path"].startswith("/"):
            run["path"] = str(folder / run["path"])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    assert main(["--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "short.nii.gz: has 70 TRs but" in err and "has 80 feature rows" in err
    assert not (tmp_path / "o").exists()


def test_run_tr_other_than_the_features_tr_is_an_error(study, tmp_path, capsys):
    folder, config, _ = study
    spec = yaml.safe_load(config.read_text())
    spec["subjects"]["sub-01"]["runs"][0]["tr"] = 1.49
    bad = folder / "tr.yaml"
    bad.write_text(yaml.safe_dump(spec))
    assert main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "sub-01_run-1_bold.nii.gz: field 'tr' is 1.49 s but" in capsys.readouterr().err


def test_pca_with_every_component_is_a_rotation_and_leaves_the_scores_unchanged(study, tmp_path):
    """`pca_components` reaches the ridge engine: with as many components as delayed features (a rotation
    of the design, to which ridge is invariant), the alphas and scores are those of the plain fit."""
    folder, config, out = study
    settings = yaml.safe_load(config.read_text())
    settings["pca_components"] = HIDDEN * len(DELAYS)
    (folder / "study_pca.yaml").write_text(yaml.safe_dump(settings))
    assert main(["--config", str(folder / "study_pca.yaml"), "--out", str(tmp_path / "pca"), "--quiet"]) == 0
    with h5py.File(out / "scores.h5") as plain, h5py.File(tmp_path / "pca" / "scores.h5") as rotated:
        for layer in range(N_LAYERS):
            key = f"sub-01/toy/caption/layer_{layer}"
            np.testing.assert_array_equal(rotated[f"{key}/alpha"][()][1:], plain[f"{key}/alpha"][()][1:])
            np.testing.assert_allclose(rotated[f"{key}/test_r"][()][1:], plain[f"{key}/test_r"][()][1:], atol=1e-4)


def test_under_a_launcher_only_rank_0_writes_and_the_numbers_are_one_process_numbers(study):
    """torchrun with two processes: the fits split their targets and gather them, one output folder appears
    (no temporary folder is left), the table is printed once, and every number equals the one-process run."""
    pytest.importorskip("torch.distributed.run")
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    folder, config, out = study
    launched = folder / "launched"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    before = sorted(path.name for path in folder.iterdir())
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "encoding.run",
                           "--config", str(config), "--out", str(launched)],
                          env=env, cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Best layer per ROI") == 1
    # the output folder and the work folder of its fits, nothing else (no temporary folder is left)
    assert sorted(path.name for path in folder.iterdir()) == sorted(before + ["launched", "launched.work"])
    assert sorted(path.name for path in launched.iterdir()) == sorted(path.name for path in out.iterdir())
    one, two = pd.read_csv(out / "alignment.csv"), pd.read_csv(launched / "alignment.csv")
    assert list(two.columns) == list(one.columns) and len(two) == len(one)
    numbers = one.select_dtypes("number").columns
    np.testing.assert_allclose(two[numbers].to_numpy(float), one[numbers].to_numpy(float), rtol=1e-5, atol=1e-6)
    assert two.drop(columns=numbers).equals(one.drop(columns=numbers))
    with h5py.File(out / "scores.h5") as a, h5py.File(launched / "scores.h5") as b:
        np.testing.assert_array_equal(b["sub-01/toy/caption/layer_2/alpha"][()], a["sub-01/toy/caption/layer_2/alpha"][()])
