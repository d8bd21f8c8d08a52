"""Command line: ``python -m encoding.rsa --config rsa.yaml``.

Compares every layer of every model's features store with every ROI's brain RDM and writes a
tidy layer x ROI table, ``<out>/rsa.csv``, with one row per (subject, model, instruction, layer,
roi): score, Mantel p-value (items permuted), bootstrap interval over items, and with two or
more subjects a ``group`` row per cell: mean score, signed-rank p-value over subjects, bootstrap
interval over subjects and the ROI's noise ceiling.

A minimal config (paths relative to the config's folder; every key: ``encoding/rsa/_config.py``)::

    features_dir: features          # <features_dir>/<model>.h5, e.g. written by extractors.words
    models: [minilm]
    embeddings: {spose: spose/similarity.h5}   # optional: an embedding (TSV/HDF5) or similarity matrix as given
    metric: correlation             # model RDMs: correlation | cosine | euclidean
    brain_metric: correlation       # ... | crossnobis (needs patterns per run)
    comparison: spearman            # spearman | kendall_tau_a | pearson
    controls: {ratings: ratings.tsv}   # optional: partial out other RDMs (partial | semipartial)
    subjects:
      sub-01: {patterns: {path: sub-01_betas.npy}}   # (n_items, n_targets) or (n_runs, n_items, n_targets)
    rois: {atlas: parcels}          # or glasser_groups / a user atlas, as in encoding

Without ``events`` the items are the store's rows (one per word, named by the stored text); with
``events: events.tsv`` (onset, duration, item, run) items are averaged over their events, and
subjects may give fMRI ``runs`` instead of patterns (item betas from an HRF-convolved GLM).
"""
import argparse
import sys

from features.errors import command

from ..config import parse_list
from ._config import load_rsa_config
from ._run import run_rsa


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m encoding.rsa",
        description="Representational similarity analysis: compare each feature layer's RDM with each ROI's brain "
                    "RDM and write the layer x ROI table rsa.csv (score, Mantel p, bootstrap CI, noise ceiling).")
    parser.add_argument("--config", required=True, help="YAML RSA config (keys: see encoding/rsa/_config.py)")
    parser.add_argument("--model", type=parse_list,
                        help="model name or comma list (a features store <features_dir>/<model>.h5)")
    parser.add_argument("--instruction", help="instruction name of the stores, comma list, or 'all'")
    parser.add_argument("--layers", help="'all' or comma list of layer indices (0 = embedding output)")
    parser.add_argument("--comparison", help="spearman | kendall_tau_a | pearson")
    parser.add_argument("--brain-metric", help="correlation | cosine | euclidean | crossnobis")
    parser.add_argument("--permutations", type=int, help="Mantel permutations per cell (0: no p-values)")
    parser.add_argument("--bootstrap", type=int, help="bootstrap samples per cell (0: no intervals)")
    parser.add_argument("--out", help="output folder (default results/<config name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


@command(build_parser)
def main(args):
    overrides = {"models": args.model or None, "instructions": args.instruction, "layers": args.layers,
                 "comparison": args.comparison, "brain_metric": args.brain_metric,
                 "n_permutations": args.permutations, "n_bootstrap": args.bootstrap, "out": args.out}
    config = load_rsa_config(args.config, overrides)
    out, table = run_rsa(config, overwrite=args.overwrite)
    columns = ["subject", "model", "instruction", "layer", "roi", "score", "p_value", "ci_low", "ci_high"]
    if not args.quiet:
        print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nResults in {out}/ (rsa.csv, rdms.h5, config.yaml, versions.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
