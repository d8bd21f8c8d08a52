"""The engine against the field's reference recipe, on a study shaped like a real one: the agreement figures.

    python bench/reference_pipeline.py                            # primal and kernel form, 2,000 targets
    python bench/reference_pipeline.py --hidden 64,512 --targets 5000 --offset 3

The study and the reference are tests/reference_recipe.py's (the same code tests/test_reference_pipeline.py
holds the engine to): hidden states with large offsets (every unit ``--offset`` SDs from 0, a quarter of them
ten times that), a training movie watched twice, a short test run, trim 0; the reference is each run's
features z-scored by scikit-learn's StandardScaler, delays within runs, himalaya RidgeCV (p <= n) or
KernelRidgeCV (p > n), leave-one-stimulus-out. The engine runs through ``python -m encoding.run``'s own
entry point on the files. Prints per hidden size: max and median |delta r| against the reference, the
fraction of targets with the same alpha, and the same figures for the engine's former recipe (raw
features delayed, then the delayed design z-scored) against the reference.
"""
import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

root = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(root), str(root / "tests")]     # this checkout's code, and the reference recipe
from encoding.run import main  # noqa: E402
from reference_recipe import reference_fit, write_study  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", default="16,200", help="hidden sizes (x 4 delays = p), comma list")
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--offset", type=float, default=3.0, help="offset of every unit, in its SDs")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def agreement(r, alpha, r_ref, alpha_ref):
    delta = np.abs(r - r_ref)
    same = np.isclose(alpha, alpha_ref, rtol=1e-4).mean() if alpha is not None else np.nan
    return f"max |dr| {delta.max():.2e}  median |dr| {np.median(delta):.2e}  same alpha {same:.4f}"


def main_bench(argv=None):
    args = parse_args(argv)
    for hidden in (int(h) for h in args.hidden.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            study = write_study(Path(folder) / "study", hidden=hidden, n_targets=args.targets, offset=args.offset,
                                seed=args.seed)
            out = Path(folder) / "out"
            with contextlib.redirect_stdout(io.StringIO()):      # the best-layer table of 2,000 parcels
                assert main(["--config", str(study.config), "--out", str(out), "--quiet"]) == 0
            with h5py.File(out / "scores.h5") as scores:
                r = scores["sub-01/offset/caption/layer_1/test_r"][()]
                alpha = scores["sub-01/offset/caption/layer_1/alpha"][()]
            n_train = sum(len(b) for s, b in zip(study.stimuli, study.bold) if s != study.test)
            kernel = hidden * len(study.delays) > n_train
            r_ref, alpha_ref = reference_fit(study, kernel=kernel)
            r_raw, alpha_raw = reference_fit(study, design="raw-delay", kernel=kernel)
        form = "kernel" if kernel else "primal"
        print(f"hidden {hidden} (p = {hidden * len(study.delays)}, {n_train} training TRs, {form}), "
              f"{args.targets} targets, offset {args.offset} SD")
        print(f"  engine vs reference:          {agreement(r, alpha, r_ref, alpha_ref)}")
        print(f"  former recipe vs reference:   {agreement(r_raw, alpha_raw, r_ref, alpha_ref)}")


if __name__ == "__main__":
    main_bench()
