"""Under torchrun the fast ridge splits targets across processes and gathers them: every process returns what
one process fitting every target returns."""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from encoding.ridge import fit_ridge

pytest.importorskip("torch.distributed.run")
REPO = Path(__file__).resolve().parents[1]
ALPHAS = np.logspace(-2, 5, 15)

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from encoding.ridge import fit_ridge
    data = np.load(sys.argv[1])
    scores = fit_ridge(data["X_train"], data["Y_train"], data["runs"], data["X_test"], data["Y_test"],
                       alphas=data["alphas"], solver=str(data["solver"]), n_targets_batch=16,
                       return_prediction=True)
    rank = torch.distributed.get_rank()
    np.savez(sys.argv[2] + f"/rank{rank}.npz", alpha=scores.alpha, cv_score=scores.cv_score,
             test_r=scores.test_r, test_r2=scores.test_r2, prediction=scores.extra["test_prediction"],
             world_size=scores.extra["world_size"])
""")


def _data(n_features, n_targets=101, seed=0):
    """Planted responses with noise spread over targets; 101 targets so the two shares differ in size."""
    rng = np.random.default_rng(seed)
    n_runs, n_per_run = 4, 50
    X = rng.standard_normal(((n_runs + 1) * n_per_run, n_features))
    signal = X @ rng.standard_normal((n_features, n_targets))
    Y = signal + np.geomspace(0.3, 10, n_targets) * signal.std(0) * rng.standard_normal(signal.shape)
    train = slice(0, n_runs * n_per_run)
    test = slice(n_runs * n_per_run, None)
    return (X[train].astype(np.float32), Y[train].astype(np.float32), np.repeat(np.arange(n_runs), n_per_run),
            X[test].astype(np.float32), Y[test].astype(np.float32))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# 20 features < 150 training rows per fold: primal form; 300 > 200 training rows: kernel form
@pytest.mark.parametrize("n_features, solver", [(20, "fast-primal"), (300, "fast-kernel")])
def test_targets_split_across_two_processes_gather_to_the_one_process_fit(tmp_path, n_features, solver):
    X_train, Y_train, runs, X_test, Y_test = _data(n_features)
    np.savez(tmp_path / "data.npz", X_train=X_train, Y_train=Y_train, runs=runs, X_test=X_test, Y_test=Y_test,
             alphas=ALPHAS, solver=solver)
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(tmp_path / "child.py"),
               str(tmp_path / "data.npz"), str(tmp_path)]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    with threadpool_limits(1):
        one = fit_ridge(X_train, Y_train, runs, X_test, Y_test, alphas=ALPHAS, solver=solver, n_targets_batch=16,
                        return_prediction=True)
    assert one.extra["world_size"] == 1
    assert len(np.unique(one.alpha)) >= 4, "the planted noise levels should spread the chosen alphas"
    for rank in (0, 1):   # every process holds the full arrays
        gathered = np.load(tmp_path / f"rank{rank}.npz")
        assert int(gathered["world_size"]) == 2
        np.testing.assert_array_equal(gathered["alpha"], one.alpha)
        for name, ours in [("cv_score", one.cv_score), ("test_r", one.test_r), ("test_r2", one.test_r2)]:
            assert gathered[name].shape == ours.shape
            np.testing.assert_allclose(gathered[name], ours, atol=1e-6, rtol=0)
        # float32 products over fewer columns may round differently: equal to float32 precision
        prediction = one.extra["test_prediction"]
        assert gathered["prediction"].shape == prediction.shape
        np.testing.assert_allclose(gathered["prediction"], prediction, atol=1e-6 * np.abs(prediction).max(), rtol=0)
