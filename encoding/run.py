"""Command line: ``python -m encoding.run --instruction caption``.

With no ``--config`` it runs the embedded demo (configs/default.yaml): synthetic movie, synthetic
features, simulated subject, generated on first use into the cache and reused afterwards.
"""
import argparse
import logging
import sys

from features.errors import InputError
from instructions import UnknownInstructionError

from .config import load_config, parse_list
from .ridge import launcher_world


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m encoding.run",
        description="Fit voxel-wise encoding models from MLLM layer features to fMRI and write the layer x ROI "
                    "alignment (scores.h5, alignment.csv, figures, report).")
    parser.add_argument("--config", help="YAML run config (default: the embedded demo, configs/default.yaml)")
    parser.add_argument("--instruction", help="instruction name, comma list, or 'all'")
    parser.add_argument("--model", type=parse_list,
                        help="model name or comma list (a features store <features_dir>/<model>.h5)")
    parser.add_argument("--stimuli", help="movie files (a folder, one file per stimulus run): extract the features a "
                                          "store lacks before fitting (config key 'stimuli')")
    parser.add_argument("--layers", help="'all' or comma list of layer indices (0 = embedding output)")
    parser.add_argument("--subjects", type=parse_list, help="comma list of subjects from the config")
    parser.add_argument("--out", help="output folder (default results/<config name>)")
    parser.add_argument("--backend", choices=["numpy", "torch", "torch_cuda", "cupy"], help="himalaya backend")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (fits per subject and model, how many are done, memory and estimated "
                             "time) and write nothing")
    parser.add_argument("--workers", type=_positive_int, metavar="N",
                        help="fit on a local Dask cluster of N single-threaded worker processes (config 'workers')")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="fit on an existing Dask cluster, e.g. tcp://head:8786 (config 'scheduler')")
    parser.add_argument("--work-dir", help="where finished fits are kept for resuming (default <out>.work; config "
                                           "'work_dir')")
    parser.add_argument("--save-models", action="store_true", default=None,
                        help="keep every layer fit as an encoder in <out>/models/ for python -m encoding.predict "
                             "(config 'save_models')")
    parser.add_argument("--layer-weights", action="store_true",
                        help="also fit one banded ridge over all layers of each model and instruction: the weight "
                             "each layer gets per target and the weight-averaged depth (config 'layer_weights'; "
                             "its settings there are kept)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="BLAS/torch threads per fit (default: one for a small fit, every core for a large one; "
                             "config 'threads')")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, found {text!r}")
    return value


def config_from_args(args):
    overrides = {"instructions": args.instruction, "models": args.model or None,
                 "layers": args.layers, "out": args.out, "backend": args.backend, "stimuli": args.stimuli,
                 "workers": args.workers, "scheduler": args.scheduler, "work_dir": args.work_dir,
                 "threads": args.threads, "save_models": args.save_models}
    config = load_config(args.config, overrides)
    if args.layer_weights and not config["layer_weights"]:
        config["layer_weights"] = True
    if args.subjects:
        wanted = args.subjects
        unknown = [s for s in wanted if s not in config["subjects"]]
        if unknown:
            raise InputError(f"--subjects: unknown subject '{unknown[0]}'; known: {', '.join(config['subjects'])}.")
        config["subjects"] = {s: config["subjects"][s] for s in wanted}
    return config


def _with_planted_layers(best, config):
    """Demo only: put the simulation's planted layer beside the recovered one."""
    import json

    # lazy: pulls PyAV, nibabel and h5py; only the demo's summary needs it, and --help must not pay for it
    from .demo.build import demo_folder

    planted = json.loads((demo_folder(config["cache_dir"]) / "manifest.json").read_text())["planted_layers"]
    best = best.copy()
    best["planted_layer"] = [str(planted[r]["layer"]) if r in planted and planted[r]["model"] == m else "-"
                             for r, m in zip(best["roi"], best["model"])]
    return best


def main(argv=None):
    args = build_parser().parse_args(argv)
    rank, _ = launcher_world()   # under a launcher, only rank 0 reports and writes the output folder
    logging.basicConfig(level=logging.WARNING if args.quiet or rank > 0 else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # lazy: pulls matplotlib, nibabel and h5py; --help must not pay for them
    from .pipeline import run_analysis

    try:
        config = config_from_args(args)
        out, best = run_analysis(config, overwrite=args.overwrite, dry_run=args.dry_run)
    except (InputError, UnknownInstructionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(best)
        return 0
    if rank > 0:
        return 0
    print("\nBest layer per ROI (chosen by cross-validation in the training runs; test r on held-out runs):\n")
    if config["demo"] is not None:
        best = _with_planted_layers(best, config)
    # lazy: pull nibabel, h5py and pandas; --help must not pay for them
    from .outputs.alignment import summarize_best_layers
    from .roi_sets import roi_networks
    print(summarize_best_layers(best, roi_networks(config, best["roi"].unique()), csv_path=out / "best_layers.csv",
                                fdr_q=config["fdr_q"]))
    print(f"\nResults in {out}/ (report.html, alignment.csv, scores.h5, figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
