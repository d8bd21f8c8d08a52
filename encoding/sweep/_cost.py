"""How long a fit takes on this machine: a cost model of the ridge solver, calibrated here.

The fast solver's time is a fixed cost per decomposition plus costs per target (BENCHMARKS.md). With n
training TRs, F folds, p delayed features, T targets, A alphas, r = min(p, n (F - 1) / F) the rank of a
fold, P permutations over B blocks of the test rows, one fit costs about

    c0 + c1 (F + 1) r^3                      eigendecompositions (folds and refit)
       + c2 F n p min(n, p)                  Gram or kernel products
       + c3 F T n r                          projections of the targets
       + c4 F T r A                          scoring every alpha
       + c5 T (P B + n_test B)               the permutation test

seconds. The coefficients are fitted (non-negative least squares) to timed fits of random arrays of a
few shapes on this machine, one thread each (as a Dask worker runs), and cached in the cache folder per
machine and version of the solver's code. A banded fit is costed as ``banded_iterations`` single-band
fits of all its features: each band-weight sample is one kernel-form fit on the summed kernels (its refit
only for the targets it improves), so this is close to an upper bound.
``bench/sweep.py`` compares the estimate with measured sweeps.
"""
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_CALIBRATION = [  # (n_train, n_test, p, targets, folds, permutations)
    (300, 60, 40, 2000, 4, 0), (600, 100, 60, 4000, 5, 0), (400, 80, 800, 1500, 4, 0),
    (800, 100, 1200, 1000, 4, 0), (500, 100, 100, 3000, 4, 200), (1200, 150, 300, 2000, 6, 0),
]


def terms(shape):
    """The model's terms (module docstring) for one fit's sizes (``_plan.array_shapes``)."""
    n, m, p, t = shape["n_train"], shape["n_test"], shape["n_features"], shape["n_targets"]
    folds, alphas = shape["n_folds"], shape["n_alphas"]
    rank = min(p, n * (folds - 1) / folds)
    blocks = max(m // 10, 1)
    return np.array([1.0, (folds + 1) * rank ** 3, folds * n * p * min(n, p),
                     folds * t * n * rank, folds * t * rank * alphas,
                     t * (shape.get("n_permutations", 0) * blocks + m * blocks)], dtype=float)


class CostModel:
    """Seconds and gigabytes of one fit on this machine."""

    def __init__(self, coefficients):
        self.coefficients = np.asarray(coefficients, dtype=float)

    def seconds(self, shape):
        single = float(terms(shape) @ self.coefficients)
        iterations = shape.get("banded_iterations") or 0
        return single * iterations if iterations else single


def _machine_key():
    """This machine, numpy, and the solver's code: a calibration is not reused once the solver changes."""
    import hashlib

    import numpy
    solver = hashlib.sha1()
    for source in sorted((Path(__file__).resolve().parents[1] / "ridge").glob("*.py")):
        solver.update(source.read_bytes())
    return (f"{platform.node()}-{platform.machine()}-{os.cpu_count()}-numpy{numpy.__version__}"
            f"-ridge{solver.hexdigest()[:12]}")


def load_cost_model(cache_dir, calibrate_if_missing=True):
    """The calibrated model for this machine, from the cache or calibrated now (about ten seconds)."""
    path = Path(cache_dir) / "cost_model.json"
    try:
        cached = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        cached = {}
    key = _machine_key()
    if key in cached:
        return CostModel(cached[key])
    if not calibrate_if_missing:
        return None
    log.info("calibrating the ridge cost model on this machine (one thread; once, cached in %s)", path)
    coefficients = calibrate()
    cached[key] = coefficients.tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(cached, indent=2))
    os.replace(tmp, path)
    return CostModel(coefficients)


def calibrate(shapes=_CALIBRATION, seed=0):
    """Fit the coefficients to timed single-thread fits of random arrays (module docstring)."""
    from scipy.optimize import nnls
    from threadpoolctl import threadpool_limits

    from ..ridge import DEFAULT_ALPHAS, fit_ridge
    from ..stats import block_permutations, permutation_test

    rng = np.random.default_rng(seed)
    rows, seconds = [], []
    with threadpool_limits(1):
        torch_threads = _torch_threads(1)
        try:
            for n, m, p, t, folds, n_perm in shapes:
                X = rng.standard_normal((n + m, p)).astype(np.float32)
                Y = (X[:, :1] + rng.standard_normal((n + m, t))).astype(np.float32)
                groups = np.repeat(np.arange(folds), -(-n // folds))[:n]
                start = time.process_time()
                result = fit_ridge(X[:n], Y[:n], groups, X[n:], Y[n:], alphas=DEFAULT_ALPHAS,
                                   return_prediction=bool(n_perm))
                if n_perm:
                    permutation_test(Y[n:], result.extra["test_prediction"], block_permutations([m], 10, n_perm))
                seconds.append(time.process_time() - start)
                rows.append(terms({"n_train": n, "n_test": m, "n_features": p, "n_targets": t, "n_folds": folds,
                                   "n_alphas": len(DEFAULT_ALPHAS), "n_permutations": n_perm}))
        finally:
            _torch_threads(torch_threads)
    rows, seconds = np.array(rows), np.array(seconds)
    scale = rows.max(0)
    coefficients, _ = nnls(rows / scale, seconds)
    return coefficients / scale


def _torch_threads(n):
    try:
        import torch
    except ImportError:
        return None
    if n is None:
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before
