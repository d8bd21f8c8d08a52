"""Banded ridge, side by side: himalaya's random search vs the fast kernel-form search, same arrays and folds.

    python bench/banded.py --threads 1 --n 1000 --targets 1000 --n-iter 50
    python bench/banded.py --threads 1 --n 2000 --targets 1000 --n-iter 10
    python bench/banded.py --threads 1 --n 1000 --targets 1000 --n-iter 50 --simulation planted-layer

Two bands of ``--p`` delayed features each, 5 training runs (leave-one-run-out) and a test run of n / 5 TRs,
17 alphas over 1e-2..1e6, float32. The data (``--simulation``):

- ``whole-brain`` (the default since issue 31, ``bench/simulations.py``'s ``two_bands``): the two bands mix
  partly shared stimulus latents with a decaying spectrum (each latent in band A with a weight u, in band B
  with 1 - u); most targets are noise, the others prefer either band to their own degree at signal shares
  spread over 0.01..0.9, with AR(1) noise, z-scored per run;
- ``planted-layer`` (the data before issue 31): two layers of ``bench/ridge_sweep.py``'s simulation, each
  target mixing the two bands' signals in its own proportion at noise levels spread over 0.5..4.

Competitors, all through ``fit_banded_ridge``:

- ``himalaya``: solver "himalaya" (MultipleKernelRidgeCV on precomputed kernels, random search of
  ``--n-iter`` Dirichlet samples, r2_score);
- ``fast-same``: solver "fast" on the same samples: its choices and scores against himalaya's;
- ``fast-grid``: solver "fast", ``search="grid"``: ``band_weight_grid(--grid)`` (the two bands' weight ratio
  log-spaced over 10^-decades..10^decades) and each band alone, one search (what ``banded_search: grid``
  runs in the pipeline): is the score equal for fewer samples?

Prints per competitor CPU and wall seconds (and per band-weight sample) and peak memory above the call's
start, the mean CV score and mean test R^2 over targets, the fraction of targets whose CV score is at least
himalaya's (within 1e-6) and how far below it the others fall (median, 99th percentile and largest), and the
CPU-time ratio of himalaya to each fast search. Each search costs the same per sample whatever the samples
(one kernel-form fit each), so with ``--n-iter`` below 50 the grid is also compared with himalaya's default
50 samples at himalaya's measured cost per sample (printed as such). With ``--threads 1`` CPU seconds are
the compute each needs; other jobs on the machine do not inflate them.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's BLAS before --threads limits it)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's code
from encoding.ridge import band_weight_grid, fit_banded_ridge  # noqa: E402
from _memory import PeakMemory  # noqa: E402
from ridge_sweep import _design, _smooth, describe_machine, limit_threads  # noqa: E402
from simulations import alpha_histogram, two_bands  # noqa: E402

#: The alphas of ``fit_banded_ridge``'s default, which every competitor here uses.
ALPHAS = np.logspace(-2, 6, 17)
#: himalaya's random search by default (``fit_banded_ridge(n_iter=50)``): the grid's comparison.
DEFAULT_SAMPLES = 50


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="training TRs")
    parser.add_argument("--p", type=int, default=17920, help="delayed features per band (5 x hidden)")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--n-iter", type=int, default=50, help="himalaya's random-search samples")
    parser.add_argument("--grid", type=int, default=25, help="band-weight ratios of the fast grid search")
    parser.add_argument("--decades", type=float, default=3.0,
                        help="the grid's ratios span 10^-decades..10^decades (3: search='grid' itself)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--competitors", default="himalaya,fast-same,fast-grid")
    parser.add_argument("--simulation", default="whole-brain", choices=("whole-brain", "planted-layer"),
                        help="the simulated study; planted-layer: the data before issue 31")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS and torch threads (default: as set)")
    return parser.parse_args(argv)


def simulate(n, p, n_targets, n_runs, seed):
    """The data before issue 31 (``planted-layer``): two bands on shared latents and targets mixing their
    signals in spread proportions; float32."""
    rng = np.random.default_rng(seed)
    n_per_run, hidden = n // n_runs, p // 5
    n_total = n_per_run * (n_runs + 1)
    latents = _smooth(rng.standard_normal((n_total, 32)))
    bands = [_design(latents, layer, hidden, n_per_run, seed) for layer in (0, 1)]
    signals = []
    for band in bands:
        signal = band[:, :160] @ rng.standard_normal((160, n_targets)).astype(np.float32)
        signals.append(signal / signal.std(0))
    share = np.linspace(0, np.pi / 2, n_targets)
    noise = np.geomspace(0.5, 4, n_targets)[rng.permutation(n_targets)]
    Y = np.cos(share) * signals[0] + np.sin(share) * signals[1] + noise * rng.standard_normal(signals[0].shape)
    Y = ((Y - Y.mean(0)) / Y.std(0)).astype(np.float32)
    train, test = slice(0, n_per_run * n_runs), slice(n_per_run * n_runs, n_total)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    return [b[train] for b in bands], Y[train], runs, [b[test] for b in bands], Y[test]


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)
    print(describe_machine(), flush=True)
    simulation = two_bands if args.simulation == "whole-brain" else simulate
    Xs_train, Y_train, runs, Xs_test, Y_test = simulation(args.n, args.p, args.targets, args.runs, args.seed)
    print(f"simulation: {args.simulation}", flush=True)
    data_gb = sum(a.nbytes for a in [*Xs_train, *Xs_test, Y_train, Y_test]) / 2 ** 30
    grid = dict(n_iter=args.grid, search="grid") if args.decades == 3 else \
        dict(n_iter=np.concatenate([band_weight_grid(args.grid, args.decades), np.eye(2)]))   # the same, wider
    settings = {"himalaya": dict(solver="himalaya", n_iter=args.n_iter),
                "fast-same": dict(solver="fast", n_iter=args.n_iter), "fast-grid": dict(solver="fast", **grid)}
    results, cpu, per_sample = {}, {}, {}
    for name in args.competitors.split(","):
        with PeakMemory() as memory:
            start, cpu_start = time.perf_counter(), time.process_time()
            results[name] = fit_banded_ridge(Xs_train, Y_train, runs, Xs_test, Y_test, **settings[name])
            seconds, cpu[name] = time.perf_counter() - start, time.process_time() - cpu_start
        scores = results[name]
        cv_score, test_r2 = scores.cv_score, scores.test_r2
        n_samples = len(scores.extra.get("band_weight_samples", [])) or args.n_iter
        per_sample[name] = cpu[name] / n_samples
        line = (f"n={args.n} p={args.p} x 2 bands targets={args.targets} {name:>9}: {cpu[name]:8.1f} s CPU "
                f"{seconds:8.1f} s wall  peak +{memory.extra_gb:.2f} GB (data {data_gb:.2f} GB)  "
                f"load {os.getloadavg()[0]:.1f}  samples {n_samples} ({per_sample[name]:.2f} s CPU each)"
                f"  mean cv R2 {np.mean(cv_score):.5f}  mean test R2 {np.nanmean(test_r2):.5f}")
        if "himalaya" in results and name != "himalaya":
            reference = results["himalaya"]
            deficit = reference.cv_score - cv_score   # > 0: himalaya's search found the better CV score
            line += (f"  cv >= himalaya's (1e-6) {np.mean(cv_score >= reference.cv_score - 1e-6):.4f}"
                     f"  cv below himalaya's: median {np.median(deficit):.1e}, 99th pct "
                     f"{np.quantile(deficit, 0.99):.1e}, max {deficit.max():.1e}"
                     f"  x{cpu['himalaya'] / cpu[name]:.2f} faster")
            if name == "fast-same":
                gamma, gamma_ref = scores.band_weights * scores.alpha, reference.band_weights * reference.alpha
                line += (f"  same alpha {np.mean(np.isclose(scores.alpha, reference.alpha, rtol=1e-5)):.4f}"
                         f"  max|d gamma| {np.abs(gamma - gamma_ref).max():.1e}"
                         f"  max|d cv| {np.abs(scores.cv_score - reference.cv_score).max():.1e}"
                         f"  max|d r| {np.nanmax(np.abs(scores.test_r - reference.test_r)):.1e}")
        if name == "fast-grid" and "himalaya" in results and args.n_iter != DEFAULT_SAMPLES:
            default = per_sample["himalaya"] * DEFAULT_SAMPLES
            line += (f"  x{default / cpu[name]:.2f} faster than himalaya's {DEFAULT_SAMPLES} samples at its measured "
                     f"{per_sample['himalaya']:.2f} s CPU per sample ({default:.0f} s)")
        print(line, flush=True)
        if name != "himalaya":
            index = np.abs(np.log(scores.alpha.astype(np.float64))[:, None] - np.log(ALPHAS)[None]).argmin(1)
            print(f"  {name}'s alphas: {alpha_histogram(index, ALPHAS)}", flush=True)
    if "fast-same" in per_sample and "fast-grid" not in cpu and "himalaya" in cpu:
        # every sample of the fast search is one kernel-form fit: the grid's cost is its samples at this cost
        grid_cpu = per_sample["fast-same"] * (args.grid + 2)
        print(f"fast-grid estimated from fast-same's {per_sample['fast-same']:.2f} s CPU per sample: "
              f"{args.grid + 2} samples {grid_cpu:.0f} s CPU, x{per_sample['himalaya'] * DEFAULT_SAMPLES / grid_cpu:.2f} "
              f"faster than himalaya's {DEFAULT_SAMPLES} samples at its measured cost per sample", flush=True)


if __name__ == "__main__":
    main()
