"""Layer weights on a planted study: which band-weight samples recover planted two-layer mixtures, at what cost
against the layer sweep.

    python bench/layer_weights.py --threads 1
    python bench/layer_weights.py --threads 1 --rho 0.8
    python bench/layer_weights.py --threads 1 --hidden 256 --noise-targets 5000 --competitors "neighbours 5,pairs 5"

The study (``encoding.demo.mixture_study.simulate``): ``--layers`` layers of 16 units, each layer the one
before it plus new features (adjacent layers correlate ``--rho`` unit by unit), 5 runs of 100 TRs (the last
held out), delays 1-3, and 40 targets in each of four groups: driven by layer 1, by layer 6, by an equal
mixture of layers 1 and 5 (far apart) and of layers 2 and 3 (adjacent), each planted layer exactly its share
of every target's signal variance, noise variance equal to the signal's.

Competitors, each a layer-weights fit (``encoding.layer_weights.fit_layer_weights``: the fast banded engine,
per-band kernels once, each sample one kernel-form fit) on the same designs and folds:

- ``random N``: himalaya's Dirichlet draws (concentration 0.1 and 1, the first equal weights), what the joint
  fits use with ``banded_iterations: N``;
- ``neighbours R``: each layer alone, all equally, and every adjacent pair at R splits j / (R + 1);
- ``pairs R``: the same over every pair of layers (the default, R = 5).

Printed per competitor: samples, CPU seconds and their ratio to the layer sweep's (every layer fitted alone by
``fit_ridge``, as ``encoding.run`` does, measured in the same run), mean CV R^2 and test r, and per group the
share of targets given both planted layers (each weight > 0.25) or the mean weight of its own layer, and the
mean weighted depth. With ``--threads 1`` CPU seconds are the compute each needs.

The default study is small (160 targets, 48 delayed features a layer), so its ratios weigh the banded search's
fixed cost per sample against a sweep of cheap primal fits. ``--hidden 256`` (768 delayed features a layer,
more than the 400 training TRs: the sweep's fits go to the kernel form too, as a real model's 3,584-wide layers
do) and ``--noise-targets 5000`` (pure-noise targets added, as most of a brain is) give the cost at a shape
closer to a real run's.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's BLAS before --threads limits it)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's code
from encoding.demo.mixture_study import simulate  # noqa: E402
from encoding.layer_weights import band_depths, band_designs, fit_layer_weights, weight_samples  # noqa: E402
from encoding.ridge import fit_ridge  # noqa: E402
from features.delays import delay_run, zscore_run  # noqa: E402
from ridge_sweep import describe_machine, limit_threads  # noqa: E402

PLANTED = {"layer 1": {1: 1.0}, "layer 6": {6: 1.0}, "far 1+5": {1: 0.5, 5: 0.5}, "adjacent 2+3": {2: 0.5, 3: 0.5}}
DELAYS = [1, 2, 3]
ALPHAS = np.logspace(-1, 5, 13)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rho", type=float, default=0.5, help="correlation of adjacent layers, unit by unit")
    parser.add_argument("--targets", type=int, default=40, help="targets per planted group")
    parser.add_argument("--hidden", type=int, default=16, help="units per layer (times 3 delays: features)")
    parser.add_argument("--noise-targets", type=int, default=0, help="pure-noise targets added (for the cost)")
    parser.add_argument("--competitors", default="random 20,random 50,random 100,random 200,random 400,"
                                                  "neighbours 5,pairs 3,pairs 5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS threads (default: as set)")
    return parser.parse_args(argv)


def study(args):
    layers, responses, rois = simulate(args.seed, PLANTED, n_layers=args.layers, hidden=args.hidden, n_runs=5,
                                       n_trs=100, targets_per_roi=args.targets, delays=DELAYS, rho=args.rho)
    if args.noise_targets:
        rng = np.random.default_rng(args.seed + 1)
        responses = [np.hstack([y, rng.standard_normal((len(y), args.noise_targets))]) for y in responses]
    designs = [[delay_run(zscore_run(layer), DELAYS).astype(np.float32) for layer in run] for run in layers]
    responses = [(y - y.mean(0)) / y.std(0) for y in responses]
    train, test = range(len(layers) - 1), [len(layers) - 1]
    X_train = {k: np.concatenate([designs[r][k] for r in train]) for k in range(args.layers)}
    X_test = {k: np.concatenate([designs[r][k] for r in test]) for k in range(args.layers)}
    Y_train = np.concatenate([responses[r] for r in train]).astype(np.float32)
    Y_test = np.concatenate([responses[r] for r in test]).astype(np.float32)
    groups = np.concatenate([np.full(len(responses[r]), r) for r in train])
    return X_train, X_test, Y_train, Y_test, groups, rois


def sweep(X_train, X_test, Y_train, Y_test, groups):
    """Every layer alone, as the layer sweep fits it; CPU seconds and the CV-best layer's scores."""
    start = time.process_time()
    fits = [fit_ridge(X_train[k], Y_train, groups, X_test[k], Y_test, alphas=ALPHAS, threads=1) for k in X_train]
    seconds = time.process_time() - start
    cv = np.stack([f.cv_score for f in fits])
    best = cv.argmax(0)
    columns = np.arange(best.size)
    return seconds, best, cv[best, columns], np.stack([f.test_r for f in fits])[best, columns]


def competitor(name, n_bands, seed):
    kind, count = name.split()
    if kind == "random":
        return weight_samples(n_bands, "random", n_iter=int(count), random_state=seed)
    return weight_samples(n_bands, kind, ratios=int(count))


def describe(name, gammas, seconds, sweep_seconds, result, rois, depths):
    weights, depth = result.extra["weights"], result.extra["preferred_depth"]
    parts = [f"{name:13s} {len(gammas):4d} samples {seconds:6.1f} s ({seconds / sweep_seconds:4.1f}x sweep)  "
             f"CV {np.nanmean(result.cv_score):.4f} r {np.nanmean(result.test_r):.4f}"]
    for roi, mix in PLANTED.items():
        index, planted = rois[roi], list(mix)
        if len(planted) == 2:
            both = np.mean((weights[planted[0], index] > 0.25) & (weights[planted[1], index] > 0.25))
            parts.append(f"{roi}: both {both:4.0%}")
        else:
            parts.append(f"{roi}: own {weights[planted[0], index].mean():.2f}")
        parts[-1] += f" d {depth[index].mean():.2f}"
    return " | ".join(parts)


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)
    print(describe_machine())
    X_train, X_test, Y_train, Y_test, groups, rois = study(args)
    sweep_seconds, best, best_cv, best_r = sweep(X_train, X_test, Y_train, Y_test, groups)
    depths = band_depths([[k] for k in range(args.layers)], args.layers)
    print(f"layer sweep: {args.layers} fits, {sweep_seconds:.1f} s; CV-best layer: CV {best_cv.mean():.4f} "
          f"r {best_r.mean():.4f}")
    for roi, mix in PLANTED.items():
        index = rois[roi]
        counts = np.bincount(best[index], minlength=args.layers)
        print(f"  {roi}: argmax layers {dict((k, int(c)) for k, c in enumerate(counts) if c)}, depth "
              f"{depths[best[index]].mean():.2f}")
    layers = list(range(args.layers))
    Xs_train, Xs_test, _ = band_designs(X_train, X_test, [[k] for k in layers])
    for name in args.competitors.split(","):
        gammas = competitor(name, args.layers, args.seed)
        start = time.process_time()
        result = fit_layer_weights(Xs_train, Y_train, groups, Xs_test, Y_test, depths, gammas, ALPHAS, threads=1)
        seconds = time.process_time() - start
        print(describe(name, gammas, seconds, sweep_seconds, result, rois, depths), flush=True)


if __name__ == "__main__":
    main()
