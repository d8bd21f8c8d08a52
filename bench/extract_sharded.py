"""Sharding end to end: ``python -m extractors.run`` in several processes against one process, on a device.

::

    python bench/extract_sharded.py --device cuda      # 2 processes on one GPU, or one per GPU where there are more
    python bench/extract_sharded.py --device cpu       # the same control flow on the CPU

A tiny random Qwen2.5-VL (tests/conftest_extractors.py) and two short synthetic movies (5 clips). The sharded
run (``torch.distributed.run``, as ``accelerate launch`` sets the processes up) deals the clips to the
processes, each batching its clips (``--batch-clips 2``) and instructions, and the first process merges the
part files; the single process (this one) runs clip by clip. On one GPU both processes are pinned to ``cuda:0`` (they
meet over gloo); with several GPUs each process takes its own. Prints the two runs' times and how their stores
compare (parameters, answers, features relative to each layer's largest), and exits non-zero where they
differ beyond the README's tolerance (float32 1e-5, bfloat16 1e-2).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TR = 1.5
TOLERANCE = {"float32": 1e-5, "bfloat16": 1e-2}


def _run(command, env, log):
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    Path(log).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(done.stderr[-3000:])
        raise SystemExit(f"{' '.join(command[:6])} ... exited with {done.returncode}")
    return took, done.stderr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--work", help="folder for the model, movies and stores (default: a temporary one)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from conftest_extractors import build_qwen2_5_vl, read_store
    from encoding.demo.movie import write_synthetic_movie
    from extractors.run import ensure_features
    from features.store import FeatureStore

    cuda = args.device.startswith("cuda")
    n_gpus = torch.cuda.device_count() if cuda else 0
    processes = max(2, n_gpus)
    dtype = ("bfloat16" if cuda else "float32") if args.dtype == "auto" else args.dtype
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-sharded-"))
    try:
        model = build_qwen2_5_vl(work / "model")
        movies = work / "movies"
        movies.mkdir(parents=True, exist_ok=True)
        write_synthetic_movie(movies / "run-1.mp4", duration_s=4.5, seed=1, scene_s=(1.5, 2.5))
        write_synthetic_movie(movies / "run-2.mp4", duration_s=3.0, seed=2, scene_s=(1.0, 2.0))
        common = ["-m", "extractors.run", "--stimuli", str(movies), "--tr", str(TR), "--model", str(model),
                  "--family", "qwen2_5_vl", "--instruction", "caption,narrative,none", "--max-new-tokens", "4",
                  "--dtype", dtype, "--batch-instructions", "--quiet"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
        # one GPU: both processes pinned to it; several: one per GPU, as accelerate deals them
        pinned = ["--device", "cuda:0"] if cuda and n_gpus < processes else ([] if cuda else ["--device", "cpu"])
        sharded = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   *common, "--out", str(work / "sharded"), "--batch-clips", "2", *pinned]
        where = (f"{processes} processes on {torch.cuda.get_device_name(0)}" if cuda and n_gpus == 1 else
                 f"{processes} processes, one per GPU" if cuda else f"{processes} processes on the CPU")
        print(f"extraction sharded over {where}, {dtype}, tiny Qwen2.5-VL, 5 clips x 3 instructions", flush=True)
        took_sharded, log = _run(sharded, env, work / "sharded.log")
        merged = [line for line in log.splitlines() if "part file(s)" in line or "on this process of" in line]
        start = time.perf_counter()  # one process, clip by clip: this one
        ensure_features(movies, TR, model, "caption,narrative,none", work / "single", family="qwen2_5_vl",
                        max_new_tokens=4, dtype=dtype, batch_instructions=True, progress=False, batch_clips=1,
                        device="cuda:0" if cuda else "cpu")
        took_single = time.perf_counter() - start
        a, b = work / "sharded" / "model.h5", work / "single" / "model.h5"
        with FeatureStore(a) as first, FeatureStore(b) as second:
            same_parameters = first.parameters == second.parameters
        first, second = read_store(a), read_store(b)
        worst, same_text, done = 0.0, first.keys() == second.keys(), True
        for key in second:
            same_text &= first[key][1] == second[key][1]
            done &= bool(first[key][2].all())
            for x, y in zip(first[key][0], second[key][0]):
                worst = max(worst, float(np.abs(x - y).max() / max(float(np.abs(y).max()), 1e-30)))
        for line in merged:
            print("  " + line.split(": ", 1)[-1])
        print(f"  sharded {took_sharded:.1f} s (processes started, model loads included), single process "
              f"{took_single:.1f} s (model load included)")
        print(f"  stores: same parameters {same_parameters}, every clip done {done}, same answers {same_text}, "
              f"features max|difference| / max|feature| {worst:.1e} (tolerance {TOLERANCE[dtype]:.0e})", flush=True)
        if not (same_parameters and done and same_text and worst <= TOLERANCE[dtype]):
            raise SystemExit("the sharded store differs from the single process's")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
