"""SPoSE fitting at THINGS scale: triplets per second per epoch and peak memory, side by side with the
reference recipe's formulation, in one process on the same triplets; and (``--recovery``) what the default
lambdas recover from a planted embedding.

    python bench/spose.py                                   # 1,854 items x 100 dims x 1 M triplets, 1 epoch
    python bench/spose.py --epochs 1 --reference-triplets 100000 --device cuda
    python bench/spose.py --recovery --jobs 2               # 200 items, 20 planted dims, 100 k triplets

Data: a sparse non-negative embedding of ``--items`` items (each on 1-3 of 20 dimensions) and ``--triplets``
distinct triplets whose odd one out is drawn from its SPoSE choice model. Each fit starts from ``--dims``
dimensions with the reference settings (Adam, lr 0.001, batch ``--batch-size``, lambda 0.008).

Rows:

- ``ours``: ``encoding.triplets.fit_spose`` (one embedding lookup per batch, the penalties' gradient written
  out, fused Adam), with one CPU thread (its default) on all triplets, and with torch's own thread count on
  the first ``--reference-triplets``;
- ``reference recipe``: the SPoSE authors' formulation as ``tests/test_triplets.py`` re-implements it (one-hot
  item vectors through a bias-free Linear layer, penalties differentiated by autograd, plain Adam), the
  referee the tests hold ``fit_spose`` equal to; run on the first ``--reference-triplets`` triplets (its cost
  per triplet does not depend on how many there are), ``0`` skips it;
- ``similarity``: ``spose_similarity`` of the fitted embedding (the O(n^3) predicted-similarity matrix every
  fit writes).

Prints per row: seconds, triplets per second per epoch, peak resident memory above the level before the row,
and the ratio of ours (one thread) to the others.

``--recovery``: a planted sparse embedding of ``--items`` items on ``--planted-dims`` dimensions (each item on
1-3, Gamma weights), ``--triplets`` triplets with choices drawn from its SPoSE choice model, of which 10 % are
a test set the fits never see. Every lambda of ``--lambdas`` (default: the wide grid below, which contains
the package's defaults) is fitted from ``--dims`` dimensions with the reference settings (500 epochs of Adam,
lr 0.001, batch 100) on the estimator's training share (``SPoSE._split``: 10 % of the rest validates). Per
lambda and checkpoint epoch: dimensions kept after pruning, validation cross-entropy (what ``fit`` chooses
lambda by), test accuracy against the planted model's on the same test triplets and against the true ceiling
(the mean of the largest choice probability: the best any model can expect), and the planted dimensions
matched one to one (Hungarian, on correlation) by a fitted one at r > 0.9, and the lowest matched r. The repeat agreement a collection would report (the mean of sum p_k^2) is printed
beside them. The lambda the default grid would choose, and what it recovers, ends the table.
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

# measure this checkout's code, not whichever copy of the package happens to be installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _memory import PeakMemory  # noqa: E402  (bench/, the script's own folder)
from encoding.triplets import (DEFAULT_LAMBDAS, SPoSE, choice_accuracy, cross_entropy, fit_spose,  # noqa: E402
                               odd_last, odd_one_out_probabilities, prune, sample_triplets, spose_similarity)
from encoding.triplets._spose import INIT_MEAN, INIT_STD  # noqa: E402
from test_triplets import reference_recipe  # noqa: E402  (the tests' referee)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1854)
    parser.add_argument("--dims", type=int, default=100)
    parser.add_argument("--triplets", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit (the recipe runs 500; time is linear)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--reference-triplets", type=int, default=100_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-similarity", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    recovery = parser.add_argument_group("--recovery: a planted embedding recovered with each lambda")
    recovery.add_argument("--recovery", action="store_true")
    recovery.add_argument("--planted-dims", type=int, default=20)
    recovery.add_argument("--lambdas", default="0.004,0.008,0.016,0.03,0.06,0.12,0.25",
                          help="comma list; the package's defaults are marked in the table")
    recovery.add_argument("--checkpoints", default="50,100,200,300,500",
                          help="epochs at which each fit is scored (the last is the fit's length)")
    recovery.add_argument("--lr", type=float, default=0.001)
    recovery.add_argument("--jobs", type=int, default=1, help="lambdas fitted at once (one CPU thread each)")
    args = parser.parse_args(argv)
    if args.recovery and "--items" not in (argv or sys.argv):
        args.items = 200
    if args.recovery and "--triplets" not in (argv or sys.argv):
        args.triplets = 100_000
    return args


def simulate(n_items, n_triplets, seed, n_planted=20, full=False):
    rng = np.random.default_rng(seed)
    planted = np.zeros((n_items, n_planted))
    for i in range(n_items):
        dims = rng.choice(n_planted, size=rng.integers(1, 4), replace=False)
        planted[i, dims] = rng.gamma(4, 0.5, size=dims.size)
    triplets = sample_triplets(n_items, n_triplets, seed)
    p = odd_one_out_probabilities(planted, triplets)
    choices = (rng.random(len(p))[:, None] > np.cumsum(p, 1)).sum(1)
    if full:
        return planted, triplets, choices, p
    return odd_last(triplets, choices)


def _fit_one(job):
    """One lambda's fit, scored at each checkpoint epoch (run in a worker process)."""
    lmbda, train, validation, test, planted, n_items, args = job
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    rows = []

    def score(epoch, _, weights):
        if epoch + 1 not in checkpoints:
            return
        embedding, _ = prune(weights.cpu().numpy())
        matched = np.zeros(planted.shape[1])     # one fitted dimension per planted one; unmatched: 0
        if embedding.shape[1]:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.nan_to_num(np.corrcoef(planted.T, embedding.T)[:planted.shape[1], planted.shape[1]:])
            rows_, cols = linear_sum_assignment(-r)
            matched[rows_] = r[rows_, cols]
        rows.append({"lambda": lmbda, "epoch": epoch + 1, "n_dims": embedding.shape[1],
                     "validation_cross_entropy": cross_entropy(embedding, validation),
                     "test_accuracy": choice_accuracy(embedding, test),
                     "planted_found": int((matched > 0.9).sum()), "planted_matched_r_min": float(matched.min())})

    start = time.perf_counter()
    fit_spose(train, n_items, args.dims, lmbda, checkpoints[-1], args.batch_size, args.lr, args.seed, args.device,
              progress=score, cpu_threads=1)
    for row in rows:
        row["fit_seconds"] = time.perf_counter() - start
    return rows


def recovery(args):
    """A planted embedding fitted with each lambda (see the module docstring)."""
    import multiprocessing

    import pandas as pd

    planted, triplets, choices, p = simulate(args.items, args.triplets, args.seed, args.planted_dims, full=True)
    n_test = len(triplets) // 10
    test = odd_last(triplets[-n_test:], choices[-n_test:])
    # the estimator's own split of the rest: what `fit` trains on and chooses lambda by
    train, validation = SPoSE(validation_fraction=0.1, random_state=args.seed)._split(
        odd_last(triplets[:-n_test], choices[:-n_test]))
    planted_accuracy = choice_accuracy(planted, test)
    ceiling = float(p[-n_test:].max(1).mean())
    agreement = float((p[-n_test:] ** 2).sum(1).mean())
    print(f"{args.items} items, {args.planted_dims} planted dimensions, {len(train):,} training + {len(validation):,} "
          f"validation + {n_test:,} test triplets; fits from {args.dims} dims, {args.checkpoints.split(',')[-1]} "
          f"epochs, batch {args.batch_size}, lr {args.lr}, seed {args.seed}")
    print(f"test triplets: planted model's accuracy {planted_accuracy:.4f}, true ceiling (mean max p) {ceiling:.4f}, "
          f"agreement between two judgments (mean sum p^2) {agreement:.4f}\n")
    lambdas = [float(v) for v in args.lambdas.split(",")]
    jobs = [(lmbda, train, validation, test, planted, args.items, args) for lmbda in lambdas]
    results = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for rows in pool.imap_unordered(_fit_one, jobs):     # each lambda's rows as soon as its fit ends
            results += rows
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    table = pd.DataFrame(results).sort_values(["lambda", "epoch"])
    table["test_minus_planted"] = table["test_accuracy"] - planted_accuracy
    table["default"] = table["lambda"].isin(DEFAULT_LAMBDAS)
    print("\nall lambdas:\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    last = table[table["epoch"] == table["epoch"].max()]
    for label, rows in (("the wide grid", last), ("the default lambdas", last[last["default"]])):
        if rows.empty:
            continue
        best = rows.loc[rows["validation_cross_entropy"].idxmin()]
        print(f"\nchosen from {label} by validation cross-entropy: lambda {best['lambda']:g}, {best['n_dims']} of "
              f"{args.dims} dimensions kept ({args.planted_dims} planted), test accuracy {best['test_accuracy']:.4f} "
              f"vs the planted model's {planted_accuracy:.4f} ({100 * best['test_minus_planted']:+.1f} points), "
              f"{best['planted_found']} of {args.planted_dims} planted dimensions matched at r > 0.9 (lowest "
              f"{best['planted_matched_r_min']:.3f})")


def timed(label, n_triplets, epochs, run):
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
    rate = n_triplets * epochs / seconds
    print(f"{label:38s} {seconds:9.1f} s  {rate:12,.0f} triplets/s/epoch  {memory.extra_gb:6.2f} GB peak extra",
          flush=True)
    return rate, result


def main(argv=None):
    args = parse_args(argv)
    if args.recovery:
        return recovery(args)
    threads = torch.get_num_threads()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"torch threads, device {args.device}")
    print(f"{args.items} items x {args.dims} dims, {args.triplets:,} triplets, batch {args.batch_size}, "
          f"{args.epochs} epoch(s) per fit\n")
    ordered = simulate(args.items, args.triplets, args.seed)
    fit = dict(n_items=args.items, n_dims=args.dims, lmbda=0.008, epochs=args.epochs, batch_size=args.batch_size,
               lr=0.001, random_state=args.seed, device=args.device)
    ours, embedding = timed("ours (1 CPU thread)", len(ordered), args.epochs,
                            lambda: fit_spose(ordered, **fit, cpu_threads=1))
    rates = {}
    subset = ordered[:args.reference_triplets]
    if str(args.device).startswith("cpu") and threads > 1 and args.reference_triplets:
        rates["ours, torch threads"] = timed(f"ours ({threads} CPU threads, {len(subset):,} triplets)", len(subset),
                                             args.epochs, lambda: fit_spose(subset, **fit, cpu_threads=None))[0]
    if args.reference_triplets and str(args.device).startswith("cpu"):
        generator = torch.Generator().manual_seed(args.seed)
        init = torch.randn(args.items, args.dims, generator=generator) * INIT_STD + INIT_MEAN
        torch.set_num_threads(1)   # as ours: one thread is its fastest too on small kernels
        rates["reference recipe"] = timed(f"reference recipe ({len(subset):,} triplets)", len(subset), args.epochs,
                                          lambda: reference_recipe(subset, init, 0.008, args.epochs, args.batch_size,
                                                                   0.001, generator))[0]
    for label, rate in rates.items():
        print(f"  ours (1 thread) / {label}: {ours / rate:.2f}x the triplets per second")
    if not args.no_similarity:
        torch.set_num_threads(threads)
        with PeakMemory() as memory:
            start = time.perf_counter()
            spose_similarity(np.clip(embedding, 0, None), device=args.device)
            seconds = time.perf_counter() - start
        print(f"\nsimilarity matrix of {args.items} items: {seconds:.1f} s, {memory.extra_gb:.2f} GB peak extra")


if __name__ == "__main__":
    main()
