"""How long a fit takes on this machine: a cost model of the ridge solver, calibrated here.

The fast solver's time is mostly matrix products and eigendecompositions whose sizes are known from the
fit's shape, so the model counts them and prices them at rates measured on this machine. With n training
TRs, F folds of v = n / F validation TRs, r = n - v training TRs per fold, m test TRs, p delayed
features, T targets, A alphas, P permutations over B blocks of the test rows, one fit costs

    c_eig32 E32 + c_eig64 E64 + c_mac W          counted work at measured rates
       + c0 + c1 T (n + m) + c2 T (P + m) B      fitted overheads

seconds, where (``work``, following ``encoding.ridge``'s kernel and primal forms, the same choice of form
and, per fold, of partial fractions or direct scoring as the solver makes):

- E32 = F r^3, the kernel form's float32 fold decompositions; E64 = (F + 1) p^3, the primal form's
  float64 ones (folds and refit);
- W, multiply-adds in float32 units (a float64 one counted twice, as the solver counts them): the
  kernels or Grams, each fold's validation map and coupling, the refit's maps, and per target each fold's
  projection, its scoring of every alpha and the refit's prediction.

The rates c_eig32, c_eig64 and c_mac come from timed decompositions and products of a few hundred to a
thousand rows (``measure_rates``); the overheads (a fixed cost per fit, per target and TR, and the
permutation test) are fitted by non-negative least squares to what remains of a few small timed fits once
the counted work is taken off. All timings run on one thread (as a Dask worker runs) and are cached in
the cache folder per machine and version of the solver's and this model's code. A banded fit is costed
as ``banded_iterations`` single-band fits of all its features: each band-weight sample is one kernel-form
fit on the summed kernels (its refit only for the targets it improves), so this is close to an upper bound.
An earlier model fitted one coefficient per term to small fits alone and put a 7B model's whole-brain fit
(9,000 TRs, p = 17,920, 80,000 targets) at 0.69x its measured time. ``bench/sweep.py`` compares the
estimate with measured sweeps, ``bench/whole_brain.py`` with one large fit.
"""
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from ..ridge import (DEFAULT_ALPHAS, MIN_BLOCK, eigh_ascending, eigh_descending, fit_ridge, limited_threads,
                     scoring_costs)
from ..stats import block_permutations, permutation_test

log = logging.getLogger(__name__)

_CALIBRATION = [  # (n_train, n_test, p, targets, folds, permutations)
    (300, 60, 40, 2000, 4, 0), (600, 100, 60, 4000, 5, 0), (400, 80, 800, 1500, 4, 0),
    (800, 100, 1200, 1000, 4, 0), (500, 100, 100, 3000, 4, 200), (1200, 150, 300, 2000, 6, 0),
    (600, 120, 2400, 2000, 5, 0),
]
#: Sizes of the timed decompositions and products that set the rates.
_RATE_SIZES = {"eig32": 1024, "eig64": 512, "mac": 1024}


def _fold_scoring(rank, n_val, n_alphas, kernel):
    """Multiply-adds per target of one fold's alpha scoring, as the solver's ``fractions_if_cheaper`` chooses:
    partial fractions (a float32 coupling with a float64 band of the smallest block, no pairs) or every
    alpha's prediction directly, whichever costs less (``encoding.ridge.scoring_costs``)."""
    return min(scoring_costs("kernel" if kernel else "primal", rank, n_val, n_alphas, MIN_BLOCK))


def work(shape):
    """Counted work of one fit (module docstring): E32, E64 and W for ``_plan.array_shapes``'s sizes."""
    n, m, p, t = (float(shape[k]) for k in ("n_train", "n_test", "n_features", "n_targets"))
    folds, alphas = int(shape["n_folds"]), int(shape["n_alphas"])
    v = n / folds
    r = n - v
    if p > r:   # the kernel form (``choose_form``)
        fixed = 2 * (n * n / 2 + m * n) * p           # K and K_test in float64
        fixed += folds * 2 * v * r * r                # each fold's A = K_val,train Q and H = A^T A
        fixed += 2 * m * r * r                        # the refit's K_test,f Q (float64)
        # per alpha chosen (about ten of 17 on whole-brain targets): its Schur inverse and its test map
        fixed += 2 * min(alphas, 10) * (v * v * r + v ** 3 + m * v * r)
        per_target = folds * (r * r + _fold_scoring(r, v, alphas, True))   # Q^T y and the scoring
        per_target += 2 * ((v + m) * r + v * v + m * v)                   # the refit (float64)
        return np.array([folds * r ** 3, 0.0, fixed + t * per_target])
    fixed = 2 * n * p * p + folds * 2 * 2 * v * p * p + 2 * m * p * p   # Grams, A and H per fold, test map
    per_target = n * p + folds * (v * p + p * p + _fold_scoring(p, v, alphas, False)) + p * p + m * p
    return np.array([0.0, (folds + 1) * p ** 3, fixed + t * per_target])


def overheads(shape):
    """The fitted terms (module docstring): 1, T (n + m), T (P + m) B."""
    n, m, t = shape["n_train"], shape["n_test"], shape["n_targets"]
    blocks = max(m // 10, 1)
    return np.array([1.0, t * (n + m), t * (shape.get("n_permutations", 0) + m) * blocks], dtype=float)


class CostModel:
    """Seconds of one fit on this machine: ``coefficients`` are the rates c_eig32, c_eig64, c_mac and the
    overheads c0, c1, c2 (module docstring)."""

    def __init__(self, coefficients):
        self.coefficients = np.asarray(coefficients, dtype=float)
        if self.coefficients.shape != (6,):
            raise ValueError(f"cost model: 6 coefficients expected, got {self.coefficients.shape}")

    def seconds(self, shape):
        single = float(np.concatenate([work(shape), overheads(shape)]) @ self.coefficients)
        iterations = shape.get("banded_iterations") or 0
        return single * iterations if iterations else single


# GPU rates: none measured yet. The model above is calibrated on this machine's CPU; a fit on backend torch_cuda
# runs on a card it cannot time here, and describe_plan says so. TODO(issue 30): once bench/gpu_issue30.sh has run
# on a card (its ridge_table and whole_brain steps time the fast engine at n = 2,000-4,000 and 10,000 TRs, p =
# 17,920, 5,000 and 80,000 targets), add here, per card name as torch reports it, a function of
# _plan.array_shapes's sizes giving a fit's wall seconds fitted to those times, and have describe_plan use it for
# GPU backends.


def _machine_key():
    """This machine, numpy, and the solver's code: a calibration is not reused once the solver changes."""
    import hashlib

    import numpy
    solver = hashlib.sha1()
    for source in sorted((Path(__file__).resolve().parents[1] / "ridge").glob("*.py")) + [Path(__file__)]:
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
    if key in cached and len(cached[key]) == 6:
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


def measure_rates(sizes=_RATE_SIZES, seed=0):
    """Seconds per unit of work on this thread: a float32 eigendecomposition (per r^3, the kernel form's
    fold call, ``encoding.ridge.eigh_ascending``), a float64 one (per p^3, the primal form's,
    ``encoding.ridge.eigh_descending``) and a float32 matrix product (per multiply-add, as the targets' products);
    each the fastest of three."""
    rng = np.random.default_rng(seed)

    def fastest(call):
        times = []
        for _ in range(3):
            start = time.process_time()
            call()
            times.append(time.process_time() - start)
        return min(times)

    k = sizes["eig32"]
    X = rng.standard_normal((k, 2 * k)).astype(np.float32)
    kernel32 = X @ X.T
    eig32 = fastest(lambda: eigh_ascending(kernel32.copy())) / k ** 3   # (it overwrites its input)
    k = sizes["eig64"]
    X = rng.standard_normal((2 * k, k))
    gram = X.T @ X
    eig64 = fastest(lambda: eigh_descending(gram)) / k ** 3
    k = sizes["mac"]
    A, B = rng.standard_normal((k, k), dtype=np.float32), rng.standard_normal((k, 2 * k), dtype=np.float32)
    mac = fastest(lambda: A @ B) / (2 * k ** 3)
    return np.array([eig32, eig64, mac])


def fit_overheads(rows, seconds):
    """Non-negative overheads whose sum over ``rows`` (fits x ``overheads`` terms) comes closest to
    ``seconds`` relative to each fit's time, so that the shortest fits count as much as the longest."""
    from scipy.optimize import nnls
    rows, seconds = np.asarray(rows, dtype=float), np.asarray(seconds, dtype=float)
    weights = 1 / np.maximum(seconds, 1e-3)
    scale = np.maximum(rows.max(0), 1e-300)
    coefficients, _ = nnls(rows / scale * weights[:, None], seconds * weights)
    return coefficients / scale


def calibrate(shapes=_CALIBRATION, seed=0):
    """The rates (``measure_rates``) and the overheads fitted to timed single-thread fits of random arrays
    (module docstring), after one untimed fit that pays for the imports."""
    rng = np.random.default_rng(seed)
    rows, seconds = [], []
    with limited_threads(1):
        for index, (n, m, p, t, folds, n_perm) in enumerate([shapes[0]] + list(shapes)):
            X = rng.standard_normal((n + m, p)).astype(np.float32)
            Y = (X[:, :1] + rng.standard_normal((n + m, t))).astype(np.float32)
            groups = np.repeat(np.arange(folds), -(-n // folds))[:n]
            start = time.process_time()
            result = fit_ridge(X[:n], Y[:n], groups, X[n:], Y[n:], alphas=DEFAULT_ALPHAS,
                               return_prediction=bool(n_perm), threads=1)
            if n_perm:
                permutation_test(Y[n:], result.extra["test_prediction"], block_permutations([m], 10, n_perm))
            if index == 0:   # the warm-up
                continue
            shape = {"n_train": n, "n_test": m, "n_features": p, "n_targets": t, "n_folds": folds,
                     "n_alphas": len(DEFAULT_ALPHAS), "n_permutations": n_perm}
            seconds.append(time.process_time() - start)
            rows.append((work(shape), overheads(shape)))
        rates = measure_rates(seed=seed)
    counted = np.array([w @ rates for w, _ in rows])
    remaining = np.maximum(np.array(seconds) - counted, 0.0)
    return np.concatenate([rates, fit_overheads([o for _, o in rows], remaining)])

