"""Where the kernel-form engine's time goes as n grows, beside himalaya's KernelRidgeCV on the same arrays.

    python bench/ridge_profile.py --threads 1 --n 2000,3000,4000 --targets 5000

The whole-brain data of ``bench/ridge_kernel.py`` (``bench/simulations.py``), p = 17,920, 5 training runs and a
test run, 17 alphas over 1e-2..1e6. The engine's parts are timed (CPU seconds) by wrapping the functions
``encoding.ridge._kernel.fit_kernel`` calls: the float64 kernels (``linear_kernels``), the fold
decompositions (``decompose_fold``: float32 eigendecomposition, float64 refinement of its small end, the
partial fractions' set-up), the test refit's set-up (``kernel_refit``), the scoring of every alpha per fold
and target batch (``score_batch``), and the refit of the chosen alphas (``refit_kernel``). What is left
(batching, selection, bookkeeping) is "other". The split into a fixed part (kernels, decompositions, refit
set-up: paid once per layer whatever the targets) and a per-target part (scoring, refit) is what makes
the ratio to himalaya move with n: himalaya's time is nearly all per-target products.

Prints one line per n: the engine's parts, its total, himalaya float32's total and the ratio.
"""
import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's BLAS before --threads limits it)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's code
import encoding.ridge._kernel as kernel_module  # noqa: E402
from encoding.ridge import fit_ridge  # noqa: E402
from ridge_sweep import describe_machine, limit_threads  # noqa: E402
from simulations import SIMULATIONS  # noqa: E402

PARTS = ("linear_kernels", "decompose_fold", "kernel_refit", "score_batch", "refit_kernel")


def timed(name, function, clock):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            clock[name] += time.process_time() - start
    return wrapper


def profile(n, p, n_targets, runs, seed, competitors):
    Y_train, Y_test, run_ids, train, test, layer_design = SIMULATIONS["whole-brain"](n, p, n_targets, runs, 1, seed)
    X = layer_design(0)
    X_train, X_test = X[train], X[test]
    del X
    alphas = np.logspace(-2, 6, 17)
    record = {"n": n}
    clock = dict.fromkeys(PARTS, 0.0)
    originals = {name: getattr(kernel_module, name) for name in PARTS}
    for name in PARTS:
        setattr(kernel_module, name, timed(name, originals[name], clock))
    try:
        start = time.process_time()
        fit_ridge(X_train, Y_train, run_ids, X_test, Y_test, alphas=alphas, solver="auto")
        record["fast"] = time.process_time() - start
    finally:
        for name, function in originals.items():
            setattr(kernel_module, name, function)
    record.update(clock)
    record["other"] = record["fast"] - sum(clock.values())
    if "himalaya" in competitors:
        start = time.process_time()
        fit_ridge(X_train, Y_train, run_ids, X_test, Y_test, alphas=alphas, solver="kernel")
        record["himalaya"] = time.process_time() - start
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="2000,3000,4000", help="training TRs, a comma list")
    parser.add_argument("--p", type=int, default=17920)
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--competitors", default="fast,himalaya")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as set)")
    args = parser.parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    print(describe_machine(), flush=True)
    fixed = ("linear_kernels", "decompose_fold", "kernel_refit")
    for n in (int(v) for v in args.n.split(",")):
        r = profile(n, args.p, args.targets, args.runs, args.seed, args.competitors.split(","))
        parts = "  ".join(f"{name} {r[name]:.2f}" for name in (*PARTS, "other"))
        share = sum(r[name] for name in fixed) / r["fast"]
        line = f"n={n} targets={args.targets}  fast {r['fast']:.2f} s CPU: {parts}  (fixed part {share:.0%})"
        if "himalaya" in r:
            line += f"  himalaya f32 {r['himalaya']:.2f} s CPU  x{r['himalaya'] / r['fast']:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
