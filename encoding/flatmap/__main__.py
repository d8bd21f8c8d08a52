"""Draw per-target maps of an output folder of python -m encoding.run on flattened cortex (both hemispheres, ROI
outlines), as PNG and/or SVG, into <folder>/flatmaps/.

Command line: ``python -m encoding.flatmap <output folder> --map r|normalized_r|best_layer|...``.
"""
import argparse
import sys

from features.errors import InputError, command

from ..outputs.report import write_report
from ._maps import MAPS
from ._render import render_flatmaps


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m encoding.flatmap", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="output folder of python -m encoding.run")
    parser.add_argument("--map", nargs="+", choices=MAPS, default=["r"], dest="maps", help="map(s) to draw")
    parser.add_argument("--subject", nargs="+", dest="subjects", help="subjects (default all)")
    parser.add_argument("--model", nargs="+", dest="models", help="models (default all)")
    parser.add_argument("--instruction", nargs="+", dest="instructions", help="instructions (default all)")
    parser.add_argument("--joint", nargs="+", dest="joints", help="joint fits for variance maps (default all)")
    parser.add_argument("--layer", default="best",
                        help="'best' (each target's CV-best layer, default) or a layer index, for r, "
                             "normalized_r and significant")
    parser.add_argument("--surface", choices=["fsLR32k", "fsaverage5", "fsaverage6", "fsaverage"],
                        help="surface for volume results (default fsaverage5); surface results use their own")
    parser.add_argument("--format", nargs="+", choices=["png", "svg"], default=["png"], dest="formats")
    parser.add_argument("--threshold", type=float, help="FDR q level (default: the config's fdr_q)")
    parser.add_argument("--ceiling-threshold", type=float,
                        help="ceiling at or below which normalized r is not drawn (default: the config's)")
    parser.add_argument("--parcellation", nargs="+",
                        help="label file(s) to paint parcel results on: a .dlabel.nii, a left and a right "
                             ".annot/.label.gii, or a NIfTI label volume; area k carries parcel k")
    parser.add_argument("--no-outlines", action="store_true", help="do not outline the ROIs")
    parser.add_argument("--all-targets", action="store_true",
                        help="best_layer/best_instruction on every target, not only significant ones")
    parser.add_argument("--output-dir", help="write here (default <folder>/flatmaps)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


def _layer(text):
    if text == "best":
        return "best"
    try:
        return int(text)
    except ValueError:
        raise InputError(f"--layer: expected 'best' or a layer index, found {text!r}.") from None


@command(build_parser)
def main(args):
    parcellation = args.parcellation
    if parcellation is not None:
        parcellation = parcellation[0] if len(parcellation) == 1 else parcellation
    written = render_flatmaps(args.folder, args.maps, args.subjects, args.models, args.instructions, args.joints,
                              _layer(args.layer), args.surface, args.formats, args.threshold,
                              args.ceiling_threshold, parcellation, not args.no_outlines,
                              not args.all_targets, args.output_dir)
    if args.output_dir is None:
        write_report(args.folder)     # the new maps join the folder's report
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
