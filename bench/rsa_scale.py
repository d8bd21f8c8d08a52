"""Partial and semipartial Mantel tests at THINGS scale, side by side with the (n_pairs, n_pairs) projector they
replaced. One process, the same RDMs and the same permutations.

    python bench/rsa_scale.py                                  # 1,854 items, 1,000 permutations, 2 controls
    python bench/rsa_scale.py --items 1854 --permutations 100 --old-items 200 --bootstrap 3 --threads 1

Data: RDMs of ``--items`` items (1,854: 1.7 M pairs), Euclidean distances between random patterns rounded to
1e-3 (ties) and offset by 1,000; ``--controls`` control RDMs that correlate with the model; a brain RDM that
follows the model and the first control.

Prints per case: CPU and wall seconds, peak memory above what the process held before the call (resident
set sampled every 5 ms, and numpy's own allocations as tracemalloc counts them), the score and p-value.
First the current engine at ``--items`` (partial and semipartial, Spearman); there the projector would need
n_pairs^2 floats, printed, not run. Then at ``--old-items`` (a size the projector still fits) both
implementations on the same permutations, with the largest score difference and the ratios old / new of
peak numpy memory (tracemalloc: exact, where the sampled resident set of a small run is lost in the
allocator's reuse) and CPU time. ``--bootstrap N`` adds an item bootstrap of N samples at ``--items`` (time per
sample: the CLI draws ``n_bootstrap`` of them per cell).
"""
import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

# measure this checkout's code, not whichever copy of the package happens to be installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from encoding.rsa import bootstrap_items, mantel_test, pattern_rdm, permute_items, square_rdm  # noqa: E402
from encoding.rsa import upper_triangle  # noqa: E402
from _memory import PeakMemory  # noqa: E402  (bench/, the script's own folder)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1854, help="items of the scale run (THINGS: 1,854)")
    parser.add_argument("--permutations", type=int, default=1000, help="Mantel permutations of the scale run")
    parser.add_argument("--controls", type=int, default=2, help="control RDMs")
    parser.add_argument("--method", default="spearman", choices=("spearman", "pearson"))
    parser.add_argument("--old-items", type=int, default=200,
                        help="items of the side-by-side run (the projector takes 8 n_pairs^2 bytes; 0: skip)")
    parser.add_argument("--old-permutations", type=int, default=100, help="permutations of the side-by-side run")
    parser.add_argument("--bootstrap", type=int, default=0, help="item bootstrap samples at --items (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="BLAS threads (default: as set)")
    return parser.parse_args(argv)


def simulate(n_items, n_controls, seed):
    """Brain, model and control RDMs as upper-triangle vectors (n_pairs,)."""
    rng = np.random.default_rng(seed)

    def distances():
        return upper_triangle(pattern_rdm(rng.standard_normal((n_items, 20)), "euclidean"))

    controls = [distances() for _ in range(n_controls)]
    model = distances() + sum(w * c for w, c in zip([0.8, 0.5, 0.3, 0.2], controls))
    brain = 0.3 * model + 0.6 * (controls[0] if controls else 0) + distances()
    return [1000 + np.round(v, 3) for v in [brain, model] + controls]


def projector_mantel(brain_rdm, model_rdm, method, controls, kind, n_permutations, random_state):
    """The Mantel test as it was before the O(n_pairs) rewrite: every permuted vector at once, each ranked,
    controls removed through the (n_pairs, n_pairs) projector C pinv(C). Same draws as ``mantel_test``."""
    brain = square_rdm(upper_triangle(brain_rdm))
    rng = np.random.default_rng(random_state)
    orders = np.array([rng.permutation(brain.shape[0]) for _ in range(n_permutations)], dtype=int)
    vectors = np.vstack([upper_triangle(brain)[None], permute_items(brain, orders)])
    model = upper_triangle(model_rdm)
    if method == "spearman":
        vectors, model = stats.rankdata(vectors, axis=1), stats.rankdata(model)
        controls = [stats.rankdata(c) for c in controls]
    C = np.column_stack([np.ones(model.size)] + list(controls))
    projector = C @ np.linalg.pinv(C)
    model = model - projector @ model
    if kind == "partial":
        vectors = vectors - vectors @ projector.T
    vectors = vectors - vectors.mean(1, keepdims=True)
    model = model - model.mean()
    scores = vectors @ model / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(model))
    observed, null = scores[0], scores[1:]
    return observed, float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations)), null


def measure(label, function):
    with PeakMemory(trace=True) as memory:
        start, cpu_start = time.perf_counter(), time.process_time()
        result = function()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    record = dict(label=label, seconds=seconds, cpu_seconds=cpu_seconds, peak_extra_gb=memory.extra_gb,
                  traced_gb=memory.traced_gb, result=result)
    print(f"{label:>46}: {cpu_seconds:8.2f} s CPU {seconds:8.2f} s wall  peak +{memory.extra_gb:.2f} GB "
          f"(numpy {memory.traced_gb:.2f} GB)  load {os.getloadavg()[0]:.1f}", flush=True)
    return record


def bench_scale(args):
    vectors = simulate(args.items, args.controls, args.seed)
    brain, model, controls = square_rdm(vectors[0]), vectors[1], vectors[2:]
    n_pairs = model.size
    data_gb = (sum(v.nbytes for v in vectors) + brain.nbytes) / 2 ** 30
    print(f"\n{args.items} items ({n_pairs} pairs), {args.controls} controls, {args.method}, "
          f"{args.permutations} permutations; data {data_gb:.2f} GB; an (n_pairs, n_pairs) projector would take "
          f"{8 * n_pairs ** 2 / 2 ** 30:,.0f} GB (not run)")
    for kind in ("partial", "semipartial"):
        record = measure(f"{kind} Mantel, {args.items} items", lambda: mantel_test(
            brain, model, args.method, controls, kind, args.permutations, random_state=args.seed))
        result = record["result"]
        print(f"{'':>48}score {result.score:.4f}  p {result.p_value:.4f}  max |null| {np.abs(result.null).max():.4f}")
    if args.bootstrap:
        record = measure(f"partial item bootstrap x{args.bootstrap}, {args.items} items", lambda: bootstrap_items(
            brain, model, args.method, controls, "partial", args.bootstrap, random_state=args.seed))
        print(f"{'':>48}{record['seconds'] / (args.bootstrap + 1):.2f} s wall per resample "
              f"(estimate included)")


def bench_side_by_side(args):
    vectors = simulate(args.old_items, args.controls, args.seed + 1)
    brain, model, controls = square_rdm(vectors[0]), vectors[1], vectors[2:]
    n_pairs = model.size
    print(f"\nside by side: {args.old_items} items ({n_pairs} pairs), {args.old_permutations} permutations; "
          f"the projector alone {8 * n_pairs ** 2 / 2 ** 30:.2f} GB")
    for kind in ("partial", "semipartial"):
        new = measure(f"{kind}, O(n_pairs) residuals", lambda: mantel_test(
            brain, model, args.method, controls, kind, args.old_permutations, random_state=args.seed))
        old = measure(f"{kind}, (n_pairs, n_pairs) projector", lambda: projector_mantel(
            brain, model, args.method, controls, kind, args.old_permutations, args.seed))
        mine, theirs = new["result"], old["result"]
        difference = np.abs(np.r_[mine.score, mine.null] - np.r_[theirs[0], theirs[2]]).max()
        print(f"{'':>48}max |score difference| {difference:.1e}  same p: {mine.p_value == theirs[1]}  "
              f"peak numpy memory x{old['traced_gb'] / new['traced_gb']:.0f}  CPU "
              f"x{old['cpu_seconds'] / new['cpu_seconds']:.1f} of new")


def describe_machine():
    from threadpoolctl import threadpool_info
    blas = ", ".join(f"{i['internal_api']} {i.get('version')} x{i['num_threads']}" for i in threadpool_info())
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {total:.0f} GB, "
            f"Python {platform.python_version()}, numpy {np.__version__}; BLAS: {blas}; "
            f"load average at start {os.getloadavg()[0]:.1f}")


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    print(describe_machine(), flush=True)
    bench_scale(args)
    if args.old_items:
        bench_side_by_side(args)
    maxrss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # kB on Linux
    print(f"\nprocess peak resident memory (maxrss): {maxrss_gb:.2f} GB")


if __name__ == "__main__":
    main()
