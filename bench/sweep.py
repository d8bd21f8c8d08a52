"""The resumable sweep (issue 13), side by side: persisting and resuming against the one-process run before
it, 1 against 2 local Dask workers, the dry run's estimate against the measured fits, and the dry run of a
config shaped like the whole study.

    python bench/sweep.py demo --baseline 9c6282f          # the demo sweep; baseline: a commit before the sweep
    python bench/sweep.py estimate                         # dry-run estimate vs measured, per fit
    python bench/sweep.py study                            # dry run of the full study's shape (writes no data)

``demo`` runs, in turn and ``--repeats`` times each, whole commands on the embedded demo (each a process of
its own, one BLAS thread, so CPU seconds are the compute each needs): the baseline commit's
``python -m encoding.run`` (checked out into a temporary git worktree), this checkout's with a new work
folder (every fit computed and persisted), this checkout's resuming (every fit reused: what remains is
planning and assembly), and the sweep on ``--workers 1`` and ``--workers 2``. It prints medians and the
ratios. ``estimate`` times every fit of the demo sweep in this process (one thread) and prints the cost
model's estimate beside it. ``study`` writes a config of the study's shape whose fMRI runs are sparse NPY
files (header-only: nothing is written into them) and whose stores hold allocated but unwritten layers,
and prints ``--dry-run``'s plan: the extrapolated cost of the whole sweep on one core.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _env(root=ROOT):
    return dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def timed(command, env, cwd=None):
    """(wall seconds, CPU seconds of the process and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_demo(args):
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    run = [sys.executable, "-m", "encoding.run", "--instruction", "caption", "--quiet", "--overwrite"]
    cases = {}
    if args.baseline:
        baseline = folder / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(baseline), args.baseline],
                       check=True, capture_output=True)
        cases["baseline (one process, nothing kept)"] = (lambda i: run + ["--out", str(folder / f"b{i}")],
                                                         _env(baseline), baseline)
    cases["sweep, in-process, new work folder"] = (
        lambda i: run + ["--out", str(folder / f"n{i}"), "--work-dir", str(folder / f"w{i}-new")], _env(), ROOT)
    cases["sweep, resumed (every fit reused)"] = (
        lambda i: run + ["--out", str(folder / "r"), "--work-dir", str(folder / "w-resume")], _env(), ROOT)
    for workers in (1, 2):
        cases[f"sweep, {workers} local Dask worker(s)"] = (
            lambda i, w=workers: run + ["--out", str(folder / f"d{w}-{i}"), "--work-dir",
                                        str(folder / f"w{i}-dask{w}"), "--workers", str(w)], _env(), ROOT)
    subprocess.run(cases["sweep, resumed (every fit reused)"][0](0), env=_env(), check=True, capture_output=True)
    results = {name: [] for name in cases}
    for i in range(args.repeats):
        for name, (command, env, cwd) in cases.items():
            results[name].append(timed(command(i), env, cwd))
    print(f"demo sweep: 12 fits (8 + 3 layers, one banded), {args.repeats} runs each, one BLAS thread per process; "
          f"load average {os.getloadavg()[0]:.1f}")
    medians = {name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
               for name, runs in results.items()}
    for name, (wall, cpu) in medians.items():
        print(f"  {name:45s} wall {wall:7.1f} s   CPU {cpu:7.1f} s")
    new = medians["sweep, in-process, new work folder"]
    if args.baseline:
        base = medians["baseline (one process, nothing kept)"]
        print(f"  persisting every fit vs the baseline: wall x{new[0] / base[0]:.3f}, CPU x{new[1] / base[1]:.3f}")
    resumed = medians["sweep, resumed (every fit reused)"]
    print(f"  resuming with every fit done: wall {resumed[0] / new[0]:.2f} of a full run")
    one, two = medians["sweep, 1 local Dask worker(s)"], medians["sweep, 2 local Dask worker(s)"]
    print(f"  2 workers vs 1 worker: wall x{one[0] / two[0]:.2f} faster")
    if args.baseline:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder / "baseline")],
                       capture_output=True)


def bench_estimate(args):
    """Every fit of the demo sweep timed here (one thread), beside the cost model's estimate."""
    from threadpoolctl import threadpool_limits

    from encoding.pipeline import choose_instructions, choose_layers, open_stores, run_feature_rows
    from encoding.config import load_config
    from encoding.demo.build import ensure_demo
    from encoding.sweep import (WorkFolder, array_shapes, attach_hidden_sizes, compute_fit, load_cost_model,
                                plan_fits, prepare_subject, subject_shapes)

    config = load_config(None, {"instructions": "caption"})
    ensure_demo(config["cache_dir"], config["demo"] or {})
    stores = open_stores(config["features_dir"], config["models"], config["config_file"])
    prompts, instructions = choose_instructions(config["instructions"], config["instruction_files"], stores)
    layers = {m: choose_layers(config["layers"], s, instructions[m], config["config_file"]) for m, s in stores.items()}
    with tempfile.TemporaryDirectory() as folder:
        work = WorkFolder(Path(folder) / "work")
        subjects = {s: prepare_subject(config, s, run_feature_rows(stores, instructions), work)
                    for s in config["subjects"]}
        specs = attach_hidden_sizes(plan_fits(config, subjects, stores, prompts, instructions, layers, work), stores)
        shapes = {name: subject_shapes(subject) for name, subject in subjects.items()}
        model = load_cost_model(config["cache_dir"])
        rows = []
        with threadpool_limits(1):
            import torch
            torch.set_num_threads(1)
            for spec in specs:
                start = time.process_time()
                compute_fit(spec, work.fit_path(spec["fingerprint"]))
                measured = time.process_time() - start
                rows.append((spec["key"], model.seconds(array_shapes(spec, shapes)), measured))
    print(f"dry-run estimate vs measured CPU seconds per fit (demo, one thread; load {os.getloadavg()[0]:.1f}):")
    for key, estimate, measured in rows:
        print(f"  {key:45s} estimate {estimate:6.2f}  measured {measured:6.2f}  ratio {estimate / measured:5.2f}")
    total_e, total_m = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"  total: estimate {total_e:.1f} s, measured {total_m:.1f} s, ratio {total_e / total_m:.2f}")
    for store in stores.values():
        store.close()


def bench_study(args):
    """Dry run of a config of the study's shape (module docstring)."""
    import yaml

    from features.store import FeatureStore

    folder = Path(tempfile.mkdtemp(prefix="bench-study-"))
    n_runs, trs, targets = args.runs, args.trs // args.runs, args.targets
    video = {f"video-mllm-{i}": 29 for i in range(6)}
    audio = {f"audio-mllm-{i}": 33 for i in range(2)}
    from instructions import resolve
    video_prompts, audio_prompts = resolve("all", modality="video"), resolve("all", modality="audio")
    runs = [f"run-{k + 1}" for k in range(n_runs)]
    (folder / "features").mkdir()
    for model, n_layers in {**video, **audio}.items():
        with FeatureStore(folder / "features" / f"{model}.h5", "a", {"model_id": model, "tr": 1.49}) as store:
            prompts = video_prompts if model in video else audio_prompts
            for name, prompt in prompts.items():
                for run in runs:
                    store.create_run(name, run, trs, [args.hidden] * n_layers, prompt)
    for k in range(n_runs):   # sparse files: the header and a hole, nothing written
        array = np.lib.format.open_memmap(folder / f"sub-01_run-{k + 1}.npy", mode="w+", dtype=np.float32,
                                          shape=(trs, targets))
        del array
    subject_runs = [{"path": f"sub-01_run-{k + 1}.npy", "stimulus_run": runs[k], "tr": 1.49} for k in range(n_runs)]
    config = {"name": "study", "features_dir": "features", "models": list(video) + list(audio),
              "instructions": "all", "subjects": {f"sub-0{s + 1}": {"runs": subject_runs} for s in range(4)},
              "test_runs": [runs[-1]], "rois": {"atlas": "parcels"}, "n_permutations": 1000}
    (folder / "study.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "encoding.run", "--config", str(folder / "study.yaml"), "--dry-run",
                           "--quiet"], env=_env(), capture_output=True, text=True)
    print(done.stdout or done.stderr[-3000:])
    print(f"dry run took {time.perf_counter() - start:.1f} s; assumptions: {len(video)} video MLLMs x 29 layers x "
          f"{len(video_prompts)} instructions, {len(audio)} audio MLLMs x 33 layers x {len(audio_prompts)} "
          f"instructions, hidden "
          f"{args.hidden} x 5 delays = {5 * args.hidden} features, 4 subjects, {n_runs} runs of {trs} TRs "
          f"({n_runs * trs} TRs, one test run), {targets} targets, 17 alphas, 1,000 permutations; the cost model "
          f"counting the solver's work at rates timed here (BENCHMARKS.md says how far to trust it)")
    print(json.dumps({"folder": str(folder)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    demo = sub.add_parser("demo")
    demo.add_argument("--baseline", help="a commit before the sweep (its encoding.run, checked out aside)")
    demo.add_argument("--repeats", type=int, default=3)
    sub.add_parser("estimate")
    study = sub.add_parser("study")
    study.add_argument("--trs", type=int, default=10000)
    study.add_argument("--runs", type=int, default=10)
    study.add_argument("--targets", type=int, default=80000)
    study.add_argument("--hidden", type=int, default=3584)
    args = parser.parse_args()
    {"demo": bench_demo, "estimate": bench_estimate, "study": bench_study}[args.what](args)


if __name__ == "__main__":
    main()
