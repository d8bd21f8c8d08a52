"""Threads as a user gets them: the demo and a 7B-shape fit, on an idle and on a loaded machine.

    python bench/threads.py                     # both parts, idle and with 2 busy processes
    python bench/threads.py --part fit --load 0,1,2

OpenBLAS starts one spinning thread per core. On small matrices, or when other jobs hold the cores (a
shared lab server), those threads cost far more than they save; the engine therefore chooses its threads
per fit (``encoding/ridge/_threads.py``: one for a small fit, every core for a large one). This bench runs
each competitor in a fresh process, so the BLAS starts as it does for a user, and takes turns over rounds:

- demo: ``python -m encoding.run --instruction caption`` (fresh output and work folders, the demo's data
  already generated), with the engine's choice (``auto``), with ``--threads <cores>`` (what the BLAS does on
  its own, the engine's behaviour before it chose), and with ``OPENBLAS_NUM_THREADS=1`` set before start;
- fit: ``fit_ridge`` at a 7B model's shape (2,000 training TRs in 5 runs, a 400-TR test run, p = 17,920
  delayed features, 5,000 targets, ``bench/ridge_sweep.py``'s simulation) with ``threads=None`` (auto: every
  core at this size), ``threads=1`` and ``threads=<cores>``.

``--load K`` starts K busy processes (a pure-Python loop each) for the duration of a condition: the load a
shared machine has. Wall seconds are what the user waits; every ratio is against ``auto`` in the same
condition.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIT_CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r}); sys.path.insert(0, {root!r})
import numpy as np
from ridge_sweep import simulate
from encoding.ridge import fit_ridge
Y_train, Y_test, runs, train, test, design = simulate(2000, 17920, 5000, 5, 1, 0)
X = design(0)
threads = {threads}
start = time.perf_counter(); cpu = time.process_time()
result = fit_ridge(X[train], Y_train, runs, X[test], Y_test, threads=threads, memory_gb=2.0)
print(json.dumps({{"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                   "mean_r": float(np.nanmean(result.test_r))}}))
"""

BUSY = "import itertools\nfor _ in itertools.count():\n    pass\n"


def cores():
    return len(os.sched_getaffinity(0))


def run_demo(variant, scratch):
    out = Path(tempfile.mkdtemp(dir=scratch))
    env = dict(os.environ)
    args = [sys.executable, "-m", "encoding.run", "--instruction", "caption", "--out", str(out / "demo"),
            "--work-dir", str(out / "work"), "--quiet"]
    if variant == "cores":
        args += ["--threads", str(cores())]
    elif variant == "env-1":
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall}


def run_fit(variant):
    threads = {"auto": None, "1": 1, "cores": cores()}[variant]
    code = FIT_CHILD.format(bench=str(ROOT / "bench"), root=str(ROOT), threads=threads)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["demo", "fit", "all"], default="all")
    parser.add_argument("--load", default="0,2", help="busy processes per condition (comma list)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    parts = ["demo", "fit"] if args.part == "all" else [args.part]
    variants = {"demo": ["auto", "cores", "env-1"], "fit": ["auto", "1", "cores"]}
    print(f"machine: {cores()} cores available, load average {os.getloadavg()[0]:.2f} at start; "
          f"python {sys.version.split()[0]}")
    scratch = Path(tempfile.mkdtemp(prefix="bench-threads-"))
    try:
        if "demo" in parts:   # generate the demo's data once, untimed
            run_demo("auto", scratch)
        for load in [int(v) for v in args.load.split(",")]:
            busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
            try:
                time.sleep(1 if load else 0)
                for part in parts:
                    times = {v: [] for v in variants[part]}
                    for _ in range(args.rounds):
                        for variant in variants[part]:
                            result = run_demo(variant, scratch) if part == "demo" else run_fit(variant)
                            times[variant].append(result["wall"])
                            extra = f", mean test r {result['mean_r']:.5f}" if "mean_r" in result else ""
                            print(f"  load {load}  {part:4s}  {variant:6s}  {result['wall']:7.1f} s wall{extra}",
                                  flush=True)
                    best = {v: min(t) for v, t in times.items()}
                    summary = ", ".join(f"{v} {best[v]:.1f} s ({best[v] / best['auto']:.2f}x auto)" for v in best)
                    print(f"load {load}, {part}: {summary}", flush=True)
            finally:
                for process in busy:
                    process.kill()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
