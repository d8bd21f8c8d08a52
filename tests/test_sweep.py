"""The study-scale sweep (issue 13): every fit persisted as it finishes, the same command resumes, Dask workers
give the in-process numbers, and a work folder of other settings is never mixed in.

The study: reference_recipe's (hidden states with offsets, a repeated training movie, a short test run),
two layers, a banded fit over both, three subjects sharing the files: 9 fits. Every command runs in a
process of its own with one BLAS thread, as a Dask worker does: the number of threads changes float
rounding, so runs are compared at equal thread counts.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from encoding.run import main
from reference_recipe import write_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    written = write_study(folder / "study", hidden=10, n_targets=80, two_layers=True)
    spec = yaml.safe_load(written.config.read_text())
    runs = spec["subjects"]["sub-01"]["runs"]
    spec["subjects"] = {f"sub-0{i}": {"runs": runs} for i in (1, 2, 3)}
    spec.update(n_permutations=200, banded_iterations=5,
                joint=[{"name": "both", "bands": [{"model": "offset", "instruction": "caption", "layer": 0},
                                                  {"model": "offset", "instruction": "caption", "layer": 1}]}])
    written.config.write_text(yaml.safe_dump(spec))
    reference = folder / "reference"
    # in a process of its own, one BLAS thread as in a Dask worker: thread counts change float rounding
    done = subprocess.run(_command(written.config, reference, "--quiet"), env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return written.config, reference


def _datasets(path):
    with h5py.File(path) as handle:
        found = {}
        handle.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                          else None)
    return found


def assert_same_outputs(a, b):
    """scores.h5 equal dataset by dataset (values, dtype, shape), and the tables equal."""
    first, second = _datasets(Path(a) / "scores.h5"), _datasets(Path(b) / "scores.h5")
    assert sorted(first) == sorted(second)
    for name, values in first.items():
        assert values.dtype == second[name].dtype and values.shape == second[name].shape, name
        np.testing.assert_array_equal(values, second[name], err_msg=name)
    for table in ("alignment.csv", "best_layers.csv", "variance_partition.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(Path(a) / table), pd.read_csv(Path(b) / table))


def _command(config, out, *extra):
    return [sys.executable, "-m", "encoding.run", "--config", str(config), "--out", str(out), *extra]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def test_fits_are_kept_in_the_work_folder_and_a_rerun_reuses_every_one(study, tmp_path, caplog):
    config, reference = study
    fits = sorted((reference.parent / "reference.work" / "fits").glob("*.h5"))
    assert len(fits) == 9
    with caplog.at_level("INFO"):
        assert main(["--config", str(config), "--out", str(reference), "--overwrite"]) == 0
    assert "9 of 9 fits already done" in caplog.text
    assert sorted((reference.parent / "reference.work" / "fits").glob("*.h5")) == fits


@pytest.mark.slow
def test_two_local_dask_workers_give_the_in_process_numbers(study, tmp_path):
    pytest.importorskip("dask.distributed")
    config, reference = study
    out = tmp_path / "dask"
    done = subprocess.run(_command(config, out, "--workers", "2", "--quiet"), env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_outputs(reference, out)


@pytest.mark.slow
def test_a_driver_killed_at_random_moments_resumes_to_the_uninterrupted_numbers(study, tmp_path):
    config, reference = study
    out = tmp_path / "killed"
    fits = tmp_path / "killed.work" / "fits"
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(3):
        process = subprocess.Popen(_command(config, out, "--quiet"), env=_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        before = len(list(fits.glob("*.h5"))) if fits.is_dir() else 0
        while time.time() < deadline and process.poll() is None:     # until this run has added a fit, at least
            if fits.is_dir() and len(list(fits.glob("*.h5"))) > before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kept.append(len(list(fits.glob("*.h5"))))
    assert not out.exists() or (out / "scores.h5").is_file()
    done = subprocess.run(_command(config, out, "--overwrite"), env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reused = int(re.search(r"(\d+) of 9 fits already done", done.stderr).group(1))
    assert reused == kept[-1] and 0 < kept[0] <= kept[-1] <= 9
    assert not list(fits.glob(".*tmp-*"))            # a half-written fit never survives the next run
    assert_same_outputs(reference, out)


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_has_its_fit_rerun_and_the_numbers_unchanged(study, tmp_path):
    pytest.importorskip("dask.distributed")
    import psutil

    config, reference = study
    out = tmp_path / "worker-killed"
    fits = tmp_path / "worker-killed.work" / "fits"
    driver = subprocess.Popen(_command(config, out, "--workers", "2", "--quiet"), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and driver.poll() is None:
        if fits.is_dir() and list(fits.glob("*.h5")):
            workers = [p for p in psutil.Process(driver.pid).children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline())]
            if workers:
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-3000:]
    assert killed is not None
    assert_same_outputs(reference, out)


def test_changed_alphas_refit_everything_and_a_changed_flatmap_nothing(study, tmp_path, caplog):
    config, reference = study
    spec = yaml.safe_load(config.read_text())
    work = reference.parent / "reference.work"
    variant = tmp_path / "flatmap.yaml"
    variant.write_text(yaml.safe_dump({**spec, "flatmap": ["r"], "features_dir": str(config.parent / "features"),
                                       "subjects": _absolute(spec, config)}))
    with caplog.at_level("INFO"):
        assert main(["--config", str(variant), "--out", str(tmp_path / "f"), "--work-dir", str(work)]) == 0
    assert "9 of 9 fits already done" in caplog.text
    caplog.clear()
    variant.write_text(yaml.safe_dump({**spec, "alphas": {"logspace": [-1, 4, 11]},
                                       "features_dir": str(config.parent / "features"),
                                       "subjects": _absolute(spec, config)}))
    with caplog.at_level("INFO"):
        assert main(["--config", str(variant), "--out", str(tmp_path / "a"), "--work-dir", str(work)]) == 0
    assert "0 of 9 fits already done" in caplog.text
    assert "9 fits were computed with another 'settings.alphas'" in caplog.text
    assert len(list((work / "fits").glob("*.h5"))) == 18


def test_the_grid_search_refits_the_joint_fits_alone_and_refuses_three_bands(study, tmp_path, caplog, capsys):
    config, reference = study
    spec = yaml.safe_load(config.read_text())
    work = reference.parent / "reference.work"
    paths = {"features_dir": str(config.parent / "features"), "subjects": _absolute(spec, config)}
    variant = tmp_path / "grid.yaml"
    variant.write_text(yaml.safe_dump({**spec, **paths, "banded_search": "grid"}))
    with caplog.at_level("INFO"):
        assert main(["--config", str(variant), "--out", str(tmp_path / "g"), "--work-dir", str(work)]) == 0
    assert "6 of 9 fits already done" in caplog.text   # the layer fits; the 3 joint fits are new
    with h5py.File(tmp_path / "g" / "scores.h5") as grid, h5py.File(reference / "scores.h5") as random:
        for subject in ("sub-01", "sub-02", "sub-03"):
            ours, theirs = grid[f"{subject}/joint/both"], random[f"{subject}/joint/both"]
            np.testing.assert_array_equal(grid[f"{subject}/offset/caption/layer_0/test_r"][()],
                                          random[f"{subject}/offset/caption/layer_0/test_r"][()])
            assert ours["test_r"].shape == theirs["test_r"].shape
            # 5 ratios and the two bands alone against 5 random samples: the same fit quality
            assert abs(np.nanmean(ours["cv_score"][()]) - np.nanmean(theirs["cv_score"][()])) < 0.02
    three = {**spec, **paths, "banded_search": "grid",
             "joint": [{"name": "three", "bands": [{"model": "offset", "instruction": "caption", "layer": k}
                                                   for k in (0, 1, 0)]}]}
    variant.write_text(yaml.safe_dump(three))
    capsys.readouterr()
    assert main(["--config", str(variant), "--out", str(tmp_path / "t"), "--work-dir", str(work)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {variant}: field 'banded_search' is grid, which searches two bands' weight ratio; joint fit "
        f"'three' has 3 bands (use random).")
    assert not (tmp_path / "t").exists()


def _absolute(spec, config):
    runs = [{**run, "path": str(config.parent / run["path"])} for run in spec["subjects"]["sub-01"]["runs"]]
    return {name: {"runs": runs} for name in spec["subjects"]}


def test_a_work_folder_of_other_code_is_refused_with_one_sentence(study, tmp_path, capsys):
    config, _ = study
    work = tmp_path / "old.work"
    work.mkdir()
    (work / "work.json").write_text('{"fit_format": 0, "package_version": "0.0.1"}')
    assert main(["--config", str(config), "--out", str(tmp_path / "o"), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: {work / 'work.json'}: field 'fit_format' is 0, this code writes 1; its fits are not "
                   f"mixed with new ones: delete {work} or set another work_dir.")
    assert not (tmp_path / "o").exists()


def test_the_dry_run_counts_done_fits_and_writes_nothing(study, tmp_path, capsys):
    config, reference = study
    work = reference.parent / "reference.work"
    before = sorted(p.name for p in work.rglob("*"))
    assert main(["--config", str(config), "--out", str(reference), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "9 fits, 9 already done" in printed and "0 to compute" in printed
    assert main(["--config", str(config), "--out", str(tmp_path / "new"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "9 fits, 0 already done" in printed and "CPU core-hours" in printed
    assert sorted(p.name for p in work.rglob("*")) == before and not (tmp_path / "new").exists()
    assert not (tmp_path / "new.work").exists()


def test_the_dry_run_says_how_many_fits_are_stale_and_why(study, tmp_path, capsys):
    config, reference = study
    spec = yaml.safe_load(config.read_text())
    variant = tmp_path / "alphas.yaml"
    variant.write_text(yaml.safe_dump({**spec, "alphas": {"logspace": [-1, 5, 7]},
                                       "features_dir": str(config.parent / "features"),
                                       "subjects": _absolute(spec, config)}))
    work = reference.parent / "reference.work"
    assert main(["--config", str(variant), "--out", str(tmp_path / "a"), "--work-dir", str(work), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "9 fits, 0 already done" in printed
    # (the joint fits' keys may also hold the grid test's fits, which differ in banded_search too)
    assert "9 of those were done before with other inputs and are computed again ('settings.alphas' in 9" in printed


def test_installing_torch_changes_no_fingerprint_of_a_numpy_backend_fit(monkeypatch):
    """The fit fingerprint names a library only when the fit computes with it: torch for the torch backends."""
    from importlib import metadata

    from encoding.sweep._units import code_versions

    real = metadata.version

    def with_torch(version):
        return lambda name: version if name == "torch" else real(name)
    monkeypatch.setattr(metadata, "version", with_torch("2.9.0"))
    numpy_before, torch_before = code_versions("numpy"), code_versions("torch_cuda")
    monkeypatch.setattr(metadata, "version", with_torch("2.14.1"))
    assert code_versions("numpy") == numpy_before and "torch" not in numpy_before
    assert code_versions("torch_cuda") != torch_before and code_versions("torch_cuda")["torch"] == "2.14.1"
