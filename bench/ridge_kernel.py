"""The kernel form at the shapes real studies have: the fast engine vs himalaya KernelRidgeCV, with a float64 referee.

    python bench/ridge_kernel.py --threads 1 --repeat 2 --n 2000,3000,4000 --targets 5000
    python bench/ridge_kernel.py --threads 1 --repeat 2 --n 2000 --targets 15000
    python bench/ridge_kernel.py --threads 1 --repeat 2 --n 2000 --simulation planted-layer   # before issue 31
    python bench/ridge_kernel.py --threads 1 --n 2000 --targets 2000 --clean 0.1   # small alphas chosen

A 7B multimodal LLM has 3,584 hidden units; 5 delays make p = 17,920 delayed features, far more than the TRs
per fold, so every fit is in the kernel form. One process, the same arrays and leave-one-run-out folds
(``--runs`` training runs of n / runs TRs plus one test run of that length), 17 alphas log-spaced over
1e-2..1e6, float32 data. The data (``bench/simulations.py``, ``--simulation``):

- ``whole-brain`` (the default): stimulus latents with a decaying spectrum, a layer's features a mix of
  them plus private noise, and a whole-brain mix of targets: most of them noise alone (``--noise-fraction``),
  the others at signal shares spread over 0.01..0.9, AR(1) noise, z-scored per run. The chosen alphas
  spread over the grid and most targets choose the largest, as on real data;
- ``planted-layer`` (the benchmark's data before issue 31): every target driven by one layer's features at
  noise levels spread over 0.5..8; the chosen alphas fall in a narrow band, none at the top of the grid.

The histogram of the chosen alphas (the fast engine's, over all targets) is printed per configuration.

Competitors: ``fast`` (``fit_ridge``, solver "auto"), ``himalaya-kernel`` (himalaya KernelRidgeCV on the
float32 arrays, r2_score: himalaya's default precision), ``himalaya-kernel64`` (the same on float64 copies).
The referee, computed here in float64 with scipy's LAPACK and no code of the engine or himalaya: per fold an
eigendecomposition of the training kernel, every alpha's validation prediction formed directly, himalaya's
r2_score averaged over folds with its tie-break toward larger alphas, and the refit on all training TRs by a
Cholesky solve per chosen alpha. It scores the first ``--referee-targets`` targets; every competitor's test r
and chosen alphas are compared with it there (the largest |delta r|, and how many targets drift by more than
1e-4 and 1e-2).

With ``--repeat`` the competitors take turns for that many rounds and each one's fastest round (CPU time)
is the one reported and compared: on a shared machine one round's time varied by up to 12 %.

``--backend torch_cuda`` runs the engine and himalaya on the GPU (himalaya's backend, float32 data; the
referee stays in float64 on the CPU and is the float64 check): the rounds are then ranked and compared by
wall time, the GPU's work being invisible to the CPU clock, and the peak of torch's CUDA allocations is
printed beside the host's.

    python bench/ridge_kernel.py --backend torch_cuda --repeat 2 --n 2000,3000,4000 --targets 5000

Prints per configuration and competitor: CPU and wall seconds, peak resident memory above the level at the
call and the data it reads (X and Y, train and test), max |delta r| and the fraction of same alphas
against the referee, and the CPU-time ratio of each competitor to the fast engine. With ``--threads 1``
CPU seconds are the compute each competitor needs; other jobs on the machine do not inflate them.
"""
import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg  # (also loads scipy's BLAS before --threads limits it)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's code
from encoding.ridge import fit_ridge, pearson_r, run_splits  # noqa: E402
from _memory import PeakMemory  # noqa: E402
from ridge_sweep import describe_machine, limit_threads, use_backend  # noqa: E402
from simulations import SIMULATIONS, alpha_histogram  # noqa: E402

COMPETITORS = ("fast", "himalaya-kernel", "himalaya-kernel64")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--n", type=ints, default=[2000, 3000, 4000], help="training TRs (comma list)")
    parser.add_argument("--p", type=ints, default=[17920], help="delayed features = 5 x hidden (comma list)")
    parser.add_argument("--targets", type=ints, default=[5000], help="targets (comma list)")
    parser.add_argument("--alphas", type=int, default=17, help="alphas, log-spaced over 1e-2..1e6")
    parser.add_argument("--runs", type=int, default=5, help="training runs (leave-one-run-out folds)")
    parser.add_argument("--competitors", default="fast,himalaya-kernel,himalaya-kernel64", help=f"comma list of {', '.join(COMPETITORS)}")
    parser.add_argument("--referee-targets", type=int, default=1000,
                        help="targets the float64 referee scores (0: no referee)")
    parser.add_argument("--memory-gb", type=float, help="fast engine's working-memory budget (default: its own)")
    parser.add_argument("--clean", type=float, default=0.0,
                        help="fraction of targets made nearly noiseless (1%% noise): the smallest alphas are best")
    parser.add_argument("--simulation", default="whole-brain", choices=tuple(SIMULATIONS),
                        help="the simulated study (bench/simulations.py); planted-layer: the data before issue 31")
    parser.add_argument("--noise-fraction", type=float, default=0.55, help="whole-brain: share of noise targets")
    parser.add_argument("--latent-rank", type=int, default=256, help="whole-brain: stimulus latents")
    parser.add_argument("--decay", type=float, default=1.0, help="whole-brain: latent k's variance ~ k^-decay")
    parser.add_argument("--private", type=float, default=0.1,
                        help="whole-brain: each feature's private noise variance relative to its latent part")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, the competitors taking turns in each; each one's best round is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS and torch threads for every competitor (default: as set)")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch", "torch_cuda"),
                        help="himalaya backend of the engine and himalaya (torch_cuda: on the GPU, timed by wall clock)")
    parser.add_argument("--json", type=Path, help="append the records (JSON lines) to this file")
    args = parser.parse_args(argv)
    args.clock = "seconds" if args.backend == "torch_cuda" else "cpu_seconds"
    args.competitors = args.competitors.split(",")
    unknown = set(args.competitors) - set(COMPETITORS)
    if unknown or "fast" not in args.competitors:
        parser.error(f"--competitors: need 'fast' and known names ({', '.join(COMPETITORS)}); got {unknown or ''}")
    return args


def referee(X_train, Y_train, splits, X_test, alphas):
    """Kernel ridge CV in float64, written for this comparison: chosen alpha index and test prediction per target.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    Y_train : array of shape (n_train, n_targets)
    splits : list of (train_indices, val_indices)
    X_test : array of shape (n_test, n_features)
    alphas : array of shape (n_alphas,)

    Returns
    -------
    best : int array of shape (n_targets,)
    prediction : array of shape (n_test, n_targets), float64
    """
    X, Y = np.asarray(X_train, np.float64), np.asarray(Y_train, np.float64)
    kernel, test_kernel = X @ X.T, np.asarray(X_test, np.float64) @ X.T
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, val in splits:
        eigenvalues, vectors = scipy.linalg.eigh(kernel[np.ix_(train, train)], driver="evd")
        val_map, projected = kernel[np.ix_(val, train)] @ vectors, vectors.T @ Y[train]
        Y_val = Y[val]
        ss_tot = ((Y_val - Y_val.mean(0)) ** 2).sum(0)
        for a, alpha in enumerate(alphas):
            residual = Y_val - val_map @ (projected / (eigenvalues + alpha)[:, None])
            # himalaya's rule: alphas below twice a negative eigenvalue's size are never chosen
            scores[a] += (-1e5 if alpha < -2 * eigenvalues.min() else 1 - (residual ** 2).sum(0) / ss_tot) / len(splits)
    best = (scores + np.log(alphas)[:, None] * 1e-10).argmax(0)
    prediction = np.empty((len(X_test), Y.shape[1]))
    for a in np.unique(best):
        chosen = best == a
        factor = scipy.linalg.cho_factor(kernel + alphas[a] * np.eye(len(kernel)))
        prediction[:, chosen] = test_kernel @ scipy.linalg.cho_solve(factor, Y[:, chosen])
    return best, prediction


def referee_torch(X_train, Y_train, splits, X_test, alphas, device="cpu"):
    """:func:`referee` in torch, float64 on ``device``: the same arithmetic (eigh per fold, direct validation
    predictions, a Cholesky refit) where scipy on the CPU would take minutes (n = 10,000 on a GPU node)."""
    import torch

    def tensor(a):
        return torch.as_tensor(np.asarray(a), device=device).double()

    X, Y, X_test = tensor(X_train), tensor(Y_train), tensor(X_test)
    kernel, test_kernel = X @ X.T, X_test @ X.T
    del X, X_test
    alphas_t = torch.as_tensor(alphas, device=device, dtype=torch.float64)
    scores = torch.zeros(len(alphas), Y.shape[1], device=device, dtype=torch.float64)
    for train, val in splits:
        train, val = torch.as_tensor(train, device=device), torch.as_tensor(val, device=device)
        eigenvalues, vectors = torch.linalg.eigh(kernel[train][:, train])
        val_map, projected = kernel[val][:, train] @ vectors, vectors.T @ Y[train]
        Y_val = Y[val]
        ss_tot = ((Y_val - Y_val.mean(0)) ** 2).sum(0)
        for a, alpha in enumerate(alphas):
            residual = Y_val - val_map @ (projected / (eigenvalues + alpha)[:, None])
            score = (-1e5 if alpha < -2 * float(eigenvalues.min()) else 1 - (residual ** 2).sum(0) / ss_tot)
            scores[a] += score / len(splits)
    best = (scores + torch.log(alphas_t)[:, None] * 1e-10).argmax(0)
    prediction = torch.empty(test_kernel.shape[0], Y.shape[1], device=device, dtype=torch.float64)
    eye = torch.eye(len(kernel), device=device, dtype=torch.float64)
    for a in torch.unique(best).tolist():
        chosen = best == a
        factor = torch.linalg.cholesky(kernel + alphas[a] * eye)
        prediction[:, chosen] = test_kernel @ torch.cholesky_solve(Y[:, chosen], factor)
    return best.cpu().numpy(), prediction.cpu().numpy()


def make_clean(X, Y_train, Y_test, train, test, fraction, seed):
    """The first ``fraction`` of the targets replaced by a linear function of the design plus 1% noise."""
    k = int(round(fraction * Y_train.shape[1]))
    if not k:
        return Y_train, Y_test
    rng = np.random.default_rng([seed, 17])
    clean = X @ (rng.standard_normal((X.shape[1], k)).astype(np.float32) / np.sqrt(X.shape[1]))
    clean /= clean.std(0)
    clean += 0.01 * rng.standard_normal(clean.shape).astype(np.float32)
    Y_train, Y_test = Y_train.copy(), Y_test.copy()
    Y_train[:, :k], Y_test[:, :k] = clean[train], clean[test]
    return Y_train, Y_test


def run_competitor(name, X_train, Y_train, runs, X_test, Y_test, alphas, args):
    """One fit: chosen alpha grid index, test r per target, and the fast engine's batch size."""
    if name == "himalaya-kernel64":
        X_train, Y_train, X_test, Y_test = (np.asarray(a, np.float64) for a in (X_train, Y_train, X_test, Y_test))
    solver = "auto" if name == "fast" else "kernel"
    scores = fit_ridge(X_train, Y_train, runs, X_test, Y_test, alphas=alphas, solver=solver, memory_gb=args.memory_gb)
    index = np.abs(np.log(np.asarray(scores.alpha, np.float64))[:, None] - np.log(alphas)[None]).argmin(1)
    return index, scores.test_r, scores.extra.get("n_targets_batch")


def bench_configuration(n, p, n_targets, args):
    """Every competitor and the referee on one (n, p, targets); returns the records."""
    design = {}
    if args.simulation == "whole-brain":
        design = dict(noise_fraction=args.noise_fraction, rank=args.latent_rank, decay=args.decay,
                      private=args.private)
    Y_train, Y_test, runs, train, test, layer_design = SIMULATIONS[args.simulation](n, p, n_targets, args.runs, 1,
                                                                                    args.seed, **design)
    X = layer_design(0)
    Y_train, Y_test = make_clean(X, Y_train, Y_test, train, test, args.clean, args.seed)
    X_train, X_test = X[train], X[test]
    del X
    alphas = np.logspace(-2, 6, args.alphas)
    data_gb = sum(a.nbytes for a in (X_train, X_test, Y_train, Y_test)) / 2 ** 30
    records, results = {}, {}
    for round_ in range(args.repeat):   # turns: a slow spell on the machine falls on every competitor alike
        for name in args.competitors:
            with PeakMemory() as memory:
                start, cpu_start = time.perf_counter(), time.process_time()
                results[name] = run_competitor(name, X_train, Y_train, runs, X_test, Y_test, alphas, args)
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            record = dict(n=n, p=p, targets=n_targets, competitor=name, seconds=seconds, cpu_seconds=cpu_seconds,
                          peak_extra_gb=memory.extra_gb, gpu_peak_gb=memory.gpu_gb, data_gb=data_gb,
                          load=os.getloadavg()[0], n_targets_batch=results[name][2], round=round_,
                          rounds=args.repeat, backend=args.backend, clock=args.clock, simulation=args.simulation,
                          design=design)
            print(_line(record), flush=True)
            if name not in records or record[args.clock] < records[name][args.clock]:
                records[name] = record
    records = [records[name] for name in args.competitors]
    if args.referee_targets:
        cols = slice(0, min(args.referee_targets, n_targets))
        start = time.process_time()
        best, prediction = referee(X_train, Y_train[:, cols], run_splits(runs), X_test, alphas)
        r_referee = pearson_r(np.asarray(Y_test[:, cols], np.float64), prediction)
        print(f"  referee (float64, {cols.stop} targets): {time.process_time() - start:.1f} s CPU", flush=True)
        print(f"  referee's alphas ({cols.stop} targets): {alpha_histogram(best, alphas)}", flush=True)
        for record in records:
            index, r, _ = results[record["competitor"]]
            drift = np.abs(r[cols] - r_referee)
            record.update(referee_targets=cols.stop,
                          max_dr_vs_referee=float(np.nanmax(drift)),
                          n_dr_above_1e4=int(np.sum(drift > 1e-4)), n_dr_above_1e2=int(np.sum(drift > 1e-2)),
                          same_alpha_vs_referee=float(np.mean(index[cols] == best)))
            if args.clean:   # the nearly noiseless targets alone
                k = min(int(round(args.clean * n_targets)), cols.stop)
                record.update(clean_max_dr_vs_referee=float(np.nanmax(np.abs(r[:k] - r_referee[:k]))),
                              clean_same_alpha_vs_referee=float(np.mean(index[:k] == best[:k])))
    fast_index = results["fast"][0]
    print(f"  fast's alphas ({n_targets} targets): {alpha_histogram(fast_index, alphas)}", flush=True)
    records[0]["alpha_counts"] = np.bincount(fast_index, minlength=len(alphas)).tolist()
    fast = records[0][args.clock]
    for record in records:
        record["x_fast"] = record[args.clock] / fast
        print("  " + _summary(record), flush=True)
    return records


def _line(record):
    batch = f"  batches of {record['n_targets_batch']}" if record.get("n_targets_batch") else ""
    round_ = f" round {record['round'] + 1}/{record['rounds']}" if record.get("rounds", 1) > 1 else ""
    gpu = f", GPU +{record['gpu_peak_gb']:.2f} GB" if record.get("gpu_peak_gb") is not None else ""
    return (f"n={record['n']} p={record['p']} targets={record['targets']} {record['competitor']:>17}{round_}: "
            f"{record['cpu_seconds']:8.2f} s CPU {record['seconds']:8.2f} s wall  "
            f"peak +{record['peak_extra_gb']:.2f} GB{gpu} "
            f"(data {record['data_gb']:.2f} GB)  load {record['load']:.1f}{batch}")


def _summary(record):
    referee_part = ""
    if "max_dr_vs_referee" in record:
        referee_part = (f"  max|dr| vs float64 referee {record['max_dr_vs_referee']:.1e} (|dr| > 1e-4 on "
                        f"{record['n_dr_above_1e4']}, > 1e-2 on {record['n_dr_above_1e2']}), same alpha "
                        f"{record['same_alpha_vs_referee']:.4f} ({record['referee_targets']} targets)")
        if "clean_max_dr_vs_referee" in record:
            referee_part += (f"; nearly noiseless targets: max|dr| {record['clean_max_dr_vs_referee']:.1e}, same alpha "
                             f"{record['clean_same_alpha_vs_referee']:.4f}")
    best = f" (best of {record['rounds']} rounds)" if record.get("rounds", 1) > 1 else ""
    clock = "wall" if record.get("clock") == "seconds" else "CPU"
    memory = record["peak_extra_gb"] if record.get("gpu_peak_gb") is None else record["gpu_peak_gb"]
    where = "" if record.get("gpu_peak_gb") is None else "GPU "
    return (f"{record['competitor']:>17}: x{record['x_fast']:.2f} of fast's {clock} time{best}, {where}memory "
            f"{memory / record['data_gb']:.2f}x the data" + referee_part)


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)
    use_backend(args.backend)
    print(describe_machine(), flush=True)
    print(f"simulation: {args.simulation}" + ("" if args.simulation != "whole-brain" else
          f" (noise fraction {args.noise_fraction}, {args.latent_rank} latents, decay {args.decay}, "
          f"private {args.private})"), flush=True)
    for n, p, n_targets in itertools.product(args.n, args.p, args.targets):
        records = bench_configuration(n, p, n_targets, args)
        if args.json:
            with open(args.json, "a") as handle:
                for record in records:
                    handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
