"""Command line: ``python -m encoding.hierarchy <output folder>``.

Writes hierarchy.csv (preferred depth per ROI with bootstrap intervals), hierarchy_tests.csv
(rank test of preferred depth against ROI level) and one line plot per (subject, model,
instruction) into the folder, then refreshes its report.
"""
import argparse
import sys

from features.errors import command

from ..outputs.report import write_report
from ._analysis import hierarchy_analysis


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m encoding.hierarchy",
        description="Per ROI, the score profile over normalized layer depth (0 = embedding output, 1 = last "
                    "layer), its preferred depth with bootstrap intervals, and a rank test of preferred depth "
                    "against the ROI hierarchy.")
    parser.add_argument("folder", help="output folder of python -m encoding.run")
    parser.add_argument("--score", choices=["cv_score", "test_r"], default="cv_score",
                        help="score whose profile is read (default cv_score: chosen inside the training runs)")
    parser.add_argument("--n-bootstrap", type=int, help="bootstrap resamples (default: the config's n_bootstrap)")
    parser.add_argument("--levels", help="YAML file mapping ROI name -> hierarchy level (default: the config's "
                                         "rois.levels, then the Glasser groups' levels)")
    parser.add_argument("--all-rois", action="store_true",
                        help="rank-test every ROI with a level, not only those significant at their best layer")
    parser.add_argument("--seed", type=int, help="seed of the bootstrap and permutations (default: the config's)")
    parser.add_argument("--output-dir", help="write here instead of into the folder (the report is then left alone)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


@command(build_parser)
def main(args):
    _, tests, figures = hierarchy_analysis(args.folder, args.score, args.n_bootstrap, args.levels,
                                           args.all_rois, args.seed, args.output_dir)
    if args.output_dir is None:
        write_report(args.folder)
    print(tests.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nWrote hierarchy.csv, hierarchy_tests.csv and {len(figures)} plot(s) to {args.output_dir or args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
