"""One whole-brain fit at a 7B model's shapes on CPU, from two target counts, and himalaya beside it.

    python bench/whole_brain.py --threads 1
    python bench/whole_brain.py --threads 1 --n 10000 --targets 2048,6144 --himalaya-targets 1024
    python bench/whole_brain.py --threads 1 --whole     # the whole-brain fit itself (about 40 min)
    python bench/whole_brain.py --threads 1 --whole --simulation planted-layer   # BENCHMARKS.md's issue 17 rows

A full fit (n = 10,000 training TRs, p = 17,920 delayed features, 80,000 targets) takes about an hour of
one core, and himalaya's several. So the fast engine (``fit_ridge``, solver "auto": the kernel form) is
timed on the first ``--targets`` counts of the same simulated study (``--simulation``, as in
``bench/ridge_kernel.py``: ``whole-brain`` by default, ``planted-layer`` the data before issue 31; 5 training
runs, a test run of n / 5 TRs, 17 alphas over 1e-2..1e6, float32), and its CPU time is split
into a fixed part (the kernels, five fold decompositions) and a per-target part by a line through the two
points. Both the engine and himalaya batch their targets, so the time grows linearly in the targets; the
whole-brain time is that line at ``--whole-brain`` targets. himalaya KernelRidgeCV (r2_score) runs on
``--himalaya-targets`` of them in the same process, compared with the line at that count.

Prints each run (CPU and wall seconds, peak memory above entry and the data read), the fixed and
per-target costs, the whole-brain CPU time, and ``--study-fits`` of them in core-hours (the issue's study:
13,700 fits of this size). ``--whole`` instead fits all ``--whole-brain`` targets at once, as a study would,
and prints that fit's CPU time and peak memory.

``--backend torch_cuda`` runs every fit on the GPU (float32 data; the first fit is preceded by a small
untimed one that starts CUDA): times are then wall-clock seconds, and the peak of torch's CUDA allocations
is printed beside the host's.

    python bench/whole_brain.py --backend torch_cuda --whole
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's BLAS before --threads limits it)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's code
sys.path.insert(1, str(Path(__file__).resolve().parent))
from encoding.ridge import fit_ridge  # noqa: E402
from _memory import PeakMemory  # noqa: E402
from ridge_sweep import describe_machine, limit_threads, use_backend  # noqa: E402
from simulations import SIMULATIONS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="training TRs")
    parser.add_argument("--p", type=int, default=17920, help="delayed features (5 x hidden)")
    parser.add_argument("--targets", default="2048,6144", help="two target counts for the fast engine")
    parser.add_argument("--himalaya-targets", type=int, default=1024, help="targets himalaya fits (0: none)")
    parser.add_argument("--whole-brain", type=int, default=80000, help="targets of one whole-brain fit")
    parser.add_argument("--study-fits", type=int, default=13700, help="whole-brain fits of the study")
    parser.add_argument("--whole", action="store_true", help="fit all --whole-brain targets at once instead")
    parser.add_argument("--referee-targets", type=int, default=0,
                        help="with --whole: targets a float64 referee scores (bench/ridge_kernel.py's, in torch, on "
                             "the fit's device)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--simulation", default="whole-brain", choices=tuple(SIMULATIONS),
                        help="the simulated study (bench/simulations.py); planted-layer: the data before issue 31")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS and torch threads (default: as set)")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch", "torch_cuda"),
                        help="himalaya backend (torch_cuda: on the GPU, timed by wall clock)")
    args = parser.parse_args(argv)
    args.targets = [int(t) for t in args.targets.split(",")]
    if len(args.targets) != 2 or args.targets[0] >= args.targets[1]:
        parser.error(f"--targets: two increasing counts, e.g. 2048,6144; got {args.targets}")
    return args


def timed(name, solver, X_train, Y_train, runs, X_test, Y_test, alphas, on_gpu=False):
    """One fit; returns its time (CPU seconds, or wall seconds ``on_gpu``) and its scores."""
    data_gb = sum(a.nbytes for a in (X_train, X_test, Y_train, Y_test)) / 2 ** 30
    with PeakMemory() as memory:
        start, cpu_start = time.perf_counter(), time.process_time()
        scores = fit_ridge(X_train, Y_train, runs, X_test, Y_test, alphas=alphas, solver=solver)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gpu = "" if memory.gpu_gb is None else f", GPU +{memory.gpu_gb:.2f} GB ({memory.gpu_gb / data_gb:.2f}x)"
    print(f"{name:>9} {Y_train.shape[1]:6d} targets: {cpu:8.1f} s CPU {seconds:8.1f} s wall  peak "
          f"+{memory.extra_gb:.2f} GB{gpu} (data {data_gb:.2f} GB, {memory.extra_gb / data_gb:.2f}x)  "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    return (seconds if on_gpu else cpu), scores


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)
    use_backend(args.backend)
    print(describe_machine(), flush=True)
    on_gpu = args.backend == "torch_cuda"
    clock, hours = ("wall", "GPU-hours") if on_gpu else ("CPU", "core-hours")
    largest = args.whole_brain if args.whole else max(args.targets[1], args.himalaya_targets)
    Y_train, Y_test, runs, train, test, layer_design = SIMULATIONS[args.simulation](args.n, args.p, largest, args.runs,
                                                                                    1, args.seed)
    X = layer_design(0)
    X_train, X_test = X[train], X[test]
    del X
    alphas = np.logspace(-2, 6, 17)
    if args.whole:
        cpu, fast_scores = timed("fast", "auto", X_train, Y_train, runs, X_test, Y_test, alphas, on_gpu)
        print(f"one whole-brain fit ({args.whole_brain:,} targets): {cpu / 60:.1f} min {clock}; {args.study_fits:,} "
              f"such fits: {cpu * args.study_fits / 3600:,.0f} {hours}", flush=True)
        if args.referee_targets:
            _against_referee(fast_scores, X_train, Y_train, runs, X_test, Y_test, alphas, args.referee_targets,
                             "cuda" if on_gpu else "cpu")
        return
    cpu, fast = {}, {}
    for t in args.targets:
        cpu[t], fast[t] = timed("fast", "auto", X_train, np.ascontiguousarray(Y_train[:, :t]), runs, X_test,
                                np.ascontiguousarray(Y_test[:, :t]), alphas, on_gpu)
    (t1, t2) = args.targets
    per_target = (cpu[t2] - cpu[t1]) / (t2 - t1)
    fixed = cpu[t1] - per_target * t1
    whole = fixed + per_target * args.whole_brain
    print(f"fast: fixed {fixed:.1f} s {clock} per layer, {1e3 * per_target:.2f} ms {clock} per target; "
          f"{args.whole_brain:,} targets: {whole / 60:.1f} min {clock}; {args.study_fits:,} such fits: "
          f"{whole * args.study_fits / 3600:,.0f} {hours}", flush=True)
    np.testing.assert_array_equal(fast[t1].alpha, fast[t2].alpha[:t1])   # the same targets, the same choices
    if args.himalaya_targets:
        t = args.himalaya_targets
        himalaya_cpu, himalaya = timed("himalaya", "kernel", X_train, np.ascontiguousarray(Y_train[:, :t]), runs,
                                       X_test, np.ascontiguousarray(Y_test[:, :t]), alphas, on_gpu)
        ours = fixed + per_target * t
        same = np.mean(himalaya.alpha == fast[t1].alpha[:t]) if t <= t1 else float("nan")
        dr = np.nanmax(np.abs(himalaya.test_r - fast[t1].test_r[:t])) if t <= t1 else float("nan")
        print(f"himalaya at {t:,} targets: {himalaya_cpu:.1f} s {clock}, x{himalaya_cpu / ours:.2f} the fast line "
              f"there ({ours:.1f} s); same alpha {same:.4f}, max|dr| {dr:.1e}", flush=True)


def _against_referee(scores, X_train, Y_train, runs, X_test, Y_test, alphas, n_targets, device):
    """The fit's test r and chosen alphas on its first ``n_targets`` against the float64 referee's."""
    from encoding.ridge import pearson_r, run_splits
    from ridge_kernel import referee_torch

    cols = slice(0, min(n_targets, Y_train.shape[1]))
    start = time.perf_counter()
    best, prediction = referee_torch(X_train, Y_train[:, cols], run_splits(runs), X_test, alphas, device)
    r_referee = pearson_r(np.asarray(Y_test[:, cols], np.float64), prediction)
    index = np.abs(np.log(np.asarray(scores.alpha, np.float64))[:, None] - np.log(alphas)[None]).argmin(1)
    print(f"float64 referee ({device}, {cols.stop:,} targets, {time.perf_counter() - start:.1f} s wall): max|dr| "
          f"{np.nanmax(np.abs(np.asarray(scores.test_r)[cols] - r_referee)):.1e}, same alpha "
          f"{np.mean(index[cols] == best):.4f}", flush=True)


if __name__ == "__main__":
    main()
