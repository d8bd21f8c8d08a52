"""The engine chooses the BLAS threads of each fit (issue 28): one for a small fit, every core for a large one.

Each test reads the thread count the BLAS runs with *inside* the fit (threadpoolctl's view of the loaded
libraries), and that the process's own setting is back afterwards.
"""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from encoding.ridge import _fit, _threads, available_cores, fit_banded_ridge, fit_ridge, fit_threads


def _blas_threads():
    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


@pytest.fixture
def seen(monkeypatch):
    """The BLAS threads each fit ran with, recorded from inside the solver."""
    record = []
    for name in ("_fit_ridge", "_fit_banded_ridge"):
        inner = getattr(_fit, name)

        def spy(*args, _inner=inner, **kwargs):
            record.append(_blas_threads())
            return _inner(*args, **kwargs)
        monkeypatch.setattr(_fit, name, spy)
    return record


def _problem(n=60, p=8, targets=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32)
    Y = (X[:, :2] @ rng.standard_normal((2, targets)) + rng.standard_normal((n, targets))).astype(np.float32)
    return X[:48], Y[:48], np.repeat(np.arange(4), 12), X[48:], Y[48:]


def test_a_small_fit_runs_on_one_thread_and_the_setting_comes_back(seen):
    with threadpool_limits(2):
        before = _blas_threads()
        fit_ridge(*_problem())
        fit_banded_ridge([_problem()[0][:, :4], _problem()[0][:, 4:]], _problem()[1], _problem()[2],
                         [_problem()[3][:, :4], _problem()[3][:, 4:]], _problem()[4], n_iter=3)
        after = _blas_threads()
    assert seen == [1, 1]
    assert before == after == min(2, _blas_threads_max())


def _blas_threads_max():
    with threadpool_limits(None):
        return _blas_threads()


def test_a_large_fit_runs_on_every_available_core_from_four_cores_up(seen, monkeypatch):
    monkeypatch.setattr(_threads, "SMALL_WORK", 1.0)   # this problem counts as large
    monkeypatch.setattr(_threads, "available_cores", lambda: 4)
    fit_ridge(*_problem())
    monkeypatch.setattr(_threads, "available_cores", lambda: 3)
    fit_ridge(*_problem())
    assert seen == [4, 1]


def test_a_set_number_of_threads_is_used_whatever_the_size(seen):
    fit_ridge(*_problem(), threads=2)
    assert seen == [2]


def test_the_choice_follows_the_size_and_never_exceeds_a_threads_variable_the_user_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert available_cores() == 8
    assert fit_threads(300, 150) == 1                      # 6.75e6 multiply-adds
    assert fit_threads(2000, 17920) == 8                   # a 7B model's fold: 7.2e10
    assert fit_threads(2000, 17920, threads=3) == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert available_cores() == 2 and fit_threads(2000, 17920) == 1


def test_a_sweep_fit_runs_under_the_limit_the_engine_chose(tmp_path, seen):
    """compute_fit (what the in-process sweep and every Dask worker run) passes its threads to the solver: one
    per Dask worker, and at most the share a launched process was given."""
    from encoding.pipeline import run_analysis
    from encoding.config import load_config
    from encoding.sweep import _units

    from reference_recipe import write_study

    study = write_study(tmp_path / "study", n_targets=20)
    config = load_config(study.config)
    calls = []
    original = _units.compute_fit

    def recording(spec, fit_file, write=True, threads=None, max_threads=None, progress=False):
        calls.append((threads, max_threads))
        return original(spec, fit_file, write, threads=threads, max_threads=max_threads, progress=progress)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr("encoding.sweep._execute.compute_fit", recording)
    try:
        run_analysis({**config, "threads": 2, "out": str(tmp_path / "out")})
    finally:
        monkeypatch.undo()
    assert calls == [(2, None)] and seen == [2]
