"""SPoSE fitting at THINGS scale: triplets per second per epoch and peak memory, side by side with the
reference recipe's formulation, in one process on the same triplets.

    python bench/spose.py                                   # 1,854 items x 100 dims x 1 M triplets, 1 epoch
    python bench/spose.py --epochs 1 --reference-triplets 100000 --device cuda

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
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

# measure this checkout's code, not whichever copy of the package happens to be installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _memory import PeakMemory  # noqa: E402  (bench/, the script's own folder)
from encoding.triplets import fit_spose, odd_last, odd_one_out_probabilities, sample_triplets  # noqa: E402
from encoding.triplets import spose_similarity  # noqa: E402
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
    return parser.parse_args(argv)


def simulate(n_items, n_triplets, seed):
    rng = np.random.default_rng(seed)
    planted = np.zeros((n_items, 20))
    for i in range(n_items):
        dims = rng.choice(20, size=rng.integers(1, 4), replace=False)
        planted[i, dims] = rng.gamma(4, 0.5, size=dims.size)
    triplets = sample_triplets(n_items, n_triplets, seed)
    p = odd_one_out_probabilities(planted, triplets)
    choices = (rng.random(len(p))[:, None] > np.cumsum(p, 1)).sum(1)
    return odd_last(triplets, choices)


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
