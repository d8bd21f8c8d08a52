"""Layer sweep, side by side: the fast ridge engine vs himalaya RidgeCV vs scikit-learn RidgeCV vs a
bootstrap-ridge implementation in the style common in this field. One process, the same arrays and folds.

    python bench/ridge_sweep.py --n 3000 --p 1280 --targets 20000 --layers 8
    python bench/ridge_sweep.py --n 1000,2000,4000 --p 640 --targets 2000 --layers 1 --competitors fast

BENCHMARKS.md's rows were run with ``--threads 1`` (each command is written there).

Data: ``--runs`` training runs of n / runs TRs (leave-one-run-out CV) plus one test run of the same
length; per layer, hidden = p / 5 smooth features delayed by 1..5 TRs within each run; targets driven
by one planted layer's latents with noise levels spread over targets (so the chosen alphas differ).
Lists in --n, --p and --targets run every combination (to see how time grows).

Prints per layer and competitor: CPU and wall seconds, peak memory above what the process held before
the call, max |delta r| and alpha agreement against the fast engine and himalaya (where the fast engine and
himalaya choose different alphas, a float64 referee with direct solves says whose alpha is the exact CV
choice: ``exact_sides_with_fast`` / ``_himalaya`` of ``exact_refereed``); then per configuration
the sweep totals and time ratios. Ratios use CPU time, which other jobs sharing the cores do not inflate;
with ``--threads 1`` it is the compute each competitor needs. ``--json`` appends the records to a file.
"""
import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# measure this checkout's code, not whichever copy of the package happens to be installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from encoding.ridge import fit_ridge, pearson_r, run_splits  # noqa: E402
from _memory import PeakMemory  # noqa: E402  (bench/, the script's own folder)
from features.delays import delay_run  # noqa: E402

COMPETITORS = ("fast", "himalaya", "himalaya-kernel", "sklearn", "bootstrap", "fast-torch", "fast-pca")
N_DELAYS = 5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--n", type=ints, default=[3000], help="training TRs (comma list)")
    parser.add_argument("--p", type=ints, default=[1280], help="delayed features = 5 x hidden (comma list)")
    parser.add_argument("--targets", type=ints, default=[20000], help="targets (comma list)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--alphas", type=int, default=11, help="alphas, log-spaced over 1e-2..1e6")
    parser.add_argument("--runs", type=int, default=5, help="training runs (leave-one-run-out folds)")
    parser.add_argument("--competitors", default="fast,himalaya,sklearn,bootstrap",
                        help=f"comma list of {', '.join(COMPETITORS)}")
    parser.add_argument("--memory-gb", type=float, default=2.0, help="fast engine's working-memory budget")
    parser.add_argument("--pca", type=int, default=256, help="components for fast-pca")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS and torch threads for every competitor (default: as set)")
    parser.add_argument("--json", type=Path, help="append the records (JSON lines) to this file")
    args = parser.parse_args(argv)
    args.competitors = args.competitors.split(",")
    unknown = set(args.competitors) - set(COMPETITORS)
    if unknown or "fast" not in args.competitors:
        parser.error(f"--competitors: need 'fast' and known names ({', '.join(COMPETITORS)}); got {unknown or ''}")
    return args


def simulate(n, p, n_targets, n_runs, n_layers, seed):
    """Targets and a per-layer design generator on shared latents; float32 like real pipelines."""
    rng = np.random.default_rng(seed)
    n_per_run, hidden = n // n_runs, p // N_DELAYS
    n_total = n_per_run * (n_runs + 1)
    latents = _smooth(rng.standard_normal((n_total, 32)))
    planted = n_layers // 2
    driving = _design(latents, planted, hidden, n_per_run, seed)[:, :160]
    Y = np.empty((n_total, n_targets), dtype=np.float32)
    noise = np.geomspace(0.5, 8, n_targets).astype(np.float32)
    for start in range(0, n_targets, 5000):   # in column chunks: no full-size temporaries
        cols = slice(start, start + 5000)
        chunk = driving @ rng.standard_normal((driving.shape[1], len(noise[cols])), dtype=np.float32)
        chunk /= chunk.std(0)
        chunk += noise[cols] * rng.standard_normal(chunk.shape, dtype=np.float32)
        Y[:, cols] = (chunk - chunk.mean(0)) / chunk.std(0)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    train = slice(0, n_per_run * n_runs)
    test = slice(n_per_run * n_runs, n_total)
    layer_design = lambda layer: _design(latents, layer, hidden, n_per_run, seed)  # noqa: E731
    return Y[train], Y[test], runs, train, test, layer_design


def _smooth(x):
    """Slow drifts like feature time courses: AR(1) with coefficient 0.8."""
    for t in range(1, len(x)):
        x[t] += 0.8 * x[t - 1]
    return x


def _design(latents, layer, hidden, n_per_run, seed):
    """Layer features: a layer-specific mix of the latents plus private noise, delayed within runs, z-scored."""
    rng = np.random.default_rng([seed, layer])
    features = latents @ rng.standard_normal((latents.shape[1], hidden)) / np.sqrt(latents.shape[1])
    features = (features + rng.standard_normal(features.shape)).astype(np.float32)
    runs = [delay_run(features[i:i + n_per_run]) for i in range(0, len(features), n_per_run)]
    X = np.concatenate([(r - r.mean(0)) / (r.std(0) + 1e-6) for r in runs])
    return X.astype(np.float32)


def bootstrap_style_ridge(X_train, Y_train, splits, X_test, Y_test, alphas, chunk=5000):
    """Ridge as the field's widely used bootstrap-ridge code does it, written anew for this comparison.

    Per held-out set (here the run folds, in place of random chunks of TRs; shared by all targets): one
    SVD of the training design, responses projected on its left singular vectors chunk by chunk, each
    alpha a rescaling s / (s^2 + alpha) of the singular values; alphas chosen on the mean held-out
    score; then one SVD of all training rows and one weight matrix per chosen alpha. Scored with
    himalaya's R^2 and alpha convention (not alpha^2) so that its numbers compare with the others.

    Returns
    -------
    alpha_index : array of shape (n_targets,)
    test_r : array of shape (n_targets,)
    """
    n_targets = Y_train.shape[1]
    scores = np.zeros((len(splits), len(alphas), n_targets))
    for f, (train, val) in enumerate(splits):
        U, s, Vt = np.linalg.svd(X_train[train], full_matrices=False)
        val_on_axes = X_train[val] @ Vt.T
        for start in range(0, n_targets, chunk):
            cols = slice(start, start + chunk)
            projected = U.T @ Y_train[train, cols]
            Y_val = Y_train[val, cols]
            ss_tot = ((Y_val - Y_val.mean(0)) ** 2).sum(0)
            for a, alpha in enumerate(alphas):
                prediction = (val_on_axes * (s / (s ** 2 + alpha)).astype(np.float32)) @ projected
                scores[f, a, cols] = 1 - ((Y_val - prediction) ** 2).sum(0) / ss_tot
    mean = scores.mean(0) + (np.log(alphas.astype(np.float32)) * 1e-10)[:, None]
    best = mean.argmax(0)
    U, s, Vt = np.linalg.svd(X_train, full_matrices=False)
    prediction = np.empty((X_test.shape[0], n_targets), dtype=np.float32)
    for a in np.unique(best):
        chosen = best == a
        weights = Vt.T @ ((s / (s ** 2 + alphas[a])).astype(np.float32)[:, None] * (U.T @ Y_train[:, chosen]))
        prediction[:, chosen] = X_test @ weights
    return best, pearson_r(Y_test, prediction), mean[best, np.arange(n_targets)]


def run_competitor(name, X_train, Y_train, runs, X_test, Y_test, alphas, args):
    """One fit; returns alpha grid index, test r and CV score (None where not comparable) per target."""
    from himalaya.backend import set_backend
    if name in ("fast", "fast-pca", "himalaya", "himalaya-kernel"):
        solver = {"fast": "auto", "fast-pca": "auto", "himalaya": "primal", "himalaya-kernel": "kernel"}[name]
        scores = fit_ridge(X_train, Y_train, runs, X_test, Y_test, alphas=alphas, solver=solver,
                           memory_gb=args.memory_gb, pca_components=args.pca if name == "fast-pca" else None)
        return _grid_index(scores.alpha, alphas), scores.test_r, scores.cv_score
    if name == "fast-torch":
        set_backend("torch")
        try:
            scores = fit_ridge(X_train, Y_train, runs, X_test, Y_test, alphas=alphas, memory_gb=args.memory_gb)
        finally:
            set_backend("numpy")
        return _grid_index(scores.alpha, alphas), scores.test_r, scores.cv_score
    if name == "sklearn":
        from sklearn.linear_model import RidgeCV
        # per-target alphas exist in scikit-learn only with its efficient leave-one-TR-out (cv=None)
        model = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=False).fit(X_train, Y_train)
        return _grid_index(model.alpha_, alphas), pearson_r(Y_test, model.predict(X_test)), None
    return bootstrap_style_ridge(X_train, Y_train, run_splits(runs), X_test, Y_test, alphas)


def exact_best_alphas(X_train, Y, splits, alphas):
    """Each target's best alpha by CV computed in float64 with direct solves, on whichever side is smaller.

    The referee where two competitors chose different alphas: mean validation R^2 over the folds (himalaya's
    r2_score), with the same tie-break toward larger alphas as both.
    """
    X, Y = X_train.astype(np.float64), np.asarray(Y, dtype=np.float64)
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, val in splits:
        X_f, Y_f, Y_v = X[train], Y[train], Y[val]
        primal = X.shape[1] <= len(train)
        gram = X_f.T @ X_f if primal else X_f @ X_f.T
        ss_tot = ((Y_v - Y_v.mean(0)) ** 2).sum(0)
        for a, alpha in enumerate(alphas):
            solved = np.linalg.solve(gram + alpha * np.eye(len(gram)), X_f.T @ Y_f if primal else Y_f)
            prediction = X[val] @ solved if primal else X[val] @ (X_f.T @ solved)
            scores[a] += (1 - ((Y_v - prediction) ** 2).sum(0) / ss_tot) / len(splits)
    return (scores + np.log(alphas)[:, None] * 1e-10).argmax(0)


def _grid_index(alpha, alphas):
    return np.abs(np.log(np.asarray(alpha, dtype=np.float64))[:, None] - np.log(alphas)[None]).argmin(1)


def bench_configuration(n, p, n_targets, args):
    """Every competitor on every layer of one (n, p, targets); returns the records."""
    Y_train, Y_test, runs, train, test, layer_design = simulate(n, p, n_targets, args.runs, args.layers, args.seed)
    alphas = np.logspace(-2, 6, args.alphas)
    records = []
    for layer in range(args.layers):
        X = layer_design(layer)
        X_train, X_test = X[train], X[test]
        data_gb = sum(a.nbytes for a in (X_train, X_test, Y_train, Y_test)) / 2 ** 30
        results = {}
        for name in args.competitors:
            with PeakMemory() as memory:
                start, cpu_start = time.perf_counter(), time.process_time()
                results[name] = run_competitor(name, X_train, Y_train, runs, X_test, Y_test, alphas, args)
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            records.append(dict(n=n, p=p, targets=n_targets, layer=layer, competitor=name, seconds=seconds,
                                cpu_seconds=cpu_seconds, peak_extra_gb=memory.extra_gb, data_gb=data_gb,
                                load=os.getloadavg()[0]))
        for record in records[-len(args.competitors):]:
            index, r, cv = results[record["competitor"]]
            for reference in ("fast", "himalaya"):
                if reference in results and reference != record["competitor"]:
                    ref_index, ref_r, ref_cv = results[reference]
                    record[f"max_dr_vs_{reference}"] = float(np.nanmax(np.abs(r - ref_r)))
                    record[f"same_alpha_vs_{reference}"] = float(np.mean(index == ref_index))
                    differ = index != ref_index
                    if differ.any() and cv is not None and ref_cv is not None:
                        # a different alpha with the same CV score (to float32 rounding) is a tie broken by
                        # rounding, not a different answer
                        record[f"max_dcv_where_alpha_differs_vs_{reference}"] = float(
                            np.abs(cv - ref_cv)[differ].max())
                    if differ.any() and (record["competitor"], reference) == ("himalaya", "fast"):
                        # float64 referee on (at most 20 of) the targets where they disagree
                        cols = np.flatnonzero(differ)[:20]
                        exact = exact_best_alphas(X_train, Y_train[:, cols], run_splits(runs), alphas)
                        record["exact_refereed"] = len(cols)
                        record["exact_sides_with_fast"] = int(np.sum(exact == results["fast"][0][cols]))
                        record["exact_sides_with_himalaya"] = int(np.sum(exact == results["himalaya"][0][cols]))
            print(_line(record), flush=True)
    return records


def _line(record):
    comparisons = " ".join(_comparison(key, value) for key, value in record.items()
                           if key.startswith(("max_dr", "same_alpha", "max_dcv", "exact_")))
    return (f"n={record['n']} p={record['p']} targets={record['targets']} layer={record['layer']} "
            f"{record['competitor']:>15}: {record['cpu_seconds']:8.2f} s CPU {record['seconds']:8.2f} s wall  "
            f"peak +{record['peak_extra_gb']:.2f} GB "
            f"(data {record['data_gb']:.2f} GB)  load {record['load']:.1f}  {comparisons}")


def summarize(records, competitors):
    """Sweep totals per competitor, their ratio to the fast engine (CPU time), worst differences over layers."""
    fast = sum(r["cpu_seconds"] for r in records if r["competitor"] == "fast")
    first = records[0]
    print(f"\nsweep n={first['n']} p={first['p']} targets={first['targets']} "
          f"layers={len({r['layer'] for r in records})}:")
    for name in competitors:
        mine = [r for r in records if r["competitor"] == name]
        total = sum(r["cpu_seconds"] for r in mine)
        wall = sum(r["seconds"] for r in mine)
        keys = dict.fromkeys(k for r in mine for k in r if k.startswith(("max_dr", "same_alpha", "max_dcv", "exact_")))
        worst = {key: _over_layers(key)(r[key] for r in mine if key in r) for key in keys}
        print(f"  {name:>15}: {total:9.2f} s CPU ({wall:.1f} s wall)  x{total / fast:6.2f} of fast  peak +"
              f"{max(r['peak_extra_gb'] for r in mine):.2f} GB  "
              + " ".join(_comparison(k, v) for k, v in worst.items()))


def _over_layers(key):
    """How a comparison combines over layers: the worst agreement, the largest difference, counts summed."""
    return min if key.startswith("same_alpha") else sum if key.startswith("exact_") else max


def _comparison(key, value):
    if key.startswith("exact_"):
        return f"{key}={value}"
    return f"{key}={value:.4f}" if key.startswith("same_alpha") else f"{key}={value:.1e}"


def limit_threads(threads):
    """BLAS (threadpoolctl) and torch threads for every competitor; None leaves them as set."""
    if not threads:
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass


def use_backend(name):
    """himalaya's backend for every competitor that follows; on torch_cuda, first one small kernel-form fit so
    that CUDA's start (context, cuBLAS and cuSOLVER handles) is timed in no competitor."""
    from himalaya.backend import set_backend
    set_backend(name, on_error="raise")
    if name == "torch_cuda":
        rng = np.random.default_rng(0)
        X, Y = rng.standard_normal((240, 600), dtype=np.float32), rng.standard_normal((240, 8), dtype=np.float32)
        fit_ridge(X[:200], Y[:200], np.repeat(np.arange(4), 50), X[200:], Y[200:], alphas=np.logspace(-2, 6, 17))


def describe_machine():
    import himalaya
    import sklearn
    from threadpoolctl import threadpool_info
    blas = ", ".join(f"{i['internal_api']} {i.get('version')} x{i['num_threads']}" for i in threadpool_info())
    try:
        import torch
        torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_version = "absent"
    from himalaya.backend import get_backend
    backend = get_backend().name
    if backend == "torch_cuda":
        backend += f" on {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, backend {backend}, "
            f"Python {platform.python_version()}, "
            f"numpy {np.__version__}, himalaya {himalaya.__version__}, scikit-learn {sklearn.__version__}, "
            f"torch {torch_version}; BLAS: {blas}; load average at start {os.getloadavg()[0]:.1f}")


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)
    print(describe_machine(), flush=True)
    for n, p, n_targets in itertools.product(args.n, args.p, args.targets):
        records = bench_configuration(n, p, n_targets, args)
        summarize(records, args.competitors)
        if args.json:
            with open(args.json, "a") as handle:
                for record in records:
                    handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
