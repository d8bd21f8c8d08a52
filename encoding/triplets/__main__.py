"""Command line: ``python -m encoding.triplets collect|fit|evaluate``.

::

    python -m encoding.triplets collect --items things.tsv --model <hf id or folder> [--images folder/] \\
        --n-triplets 100000 --out triplets/
    python -m encoding.triplets fit triplets/ --dims 100 --out spose/
    python -m encoding.triplets fit judgments.tsv --items items.tsv --out spose/     # judgments made elsewhere
    python -m encoding.triplets evaluate spose/ --heldout triplets/test --reference things_spose66.csv

Bad input ends in one sentence naming the file and the field, and exit status 2. Each command's flags, their
defaults and ranges are defined in ``_config``.
"""
import argparse
import sys

from features.errors import command

from ._collect import collect_judgments
from ._config import Collect, Evaluate, Fit, check_flags
from ._estimator import DEFAULT_LAMBDAS
from ._evaluate import evaluate_embedding, report
from ._fit import fit_embedding


def _floats(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers, found '{text}'") from None


def _flags(command, section, specs):
    """Add a command's flags: the default and help of each from its section (``_config``), the rest (the
    argparse type, positional, required) from ``specs``: name -> keyword arguments of add_argument."""
    for name, extra in specs.items():
        field = section.model_fields[name]
        extra = dict(extra)
        positional = extra.pop("positional", False)
        kwargs = {"help": field.description, **extra}
        if field.is_required():
            if not positional:
                kwargs.setdefault("required", True)
        elif extra.get("action") != "store_true":
            kwargs["default"] = field.default
        if positional:
            command.add_argument(name, **kwargs)
        else:
            command.add_argument("--" + name.replace("_", "-"), **kwargs)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m encoding.triplets",
                                     description="Triplet odd-one-out judgments from a model, SPoSE embeddings "
                                                 "and their evaluation.")
    commands = parser.add_subparsers(dest="command", required=True)
    flag, number, whole = {"action": "store_true"}, {"type": float}, {"type": int}
    collect = commands.add_parser("collect", help="judge triplets with a model into <out>/triplets.h5")
    _flags(collect, Collect, {"items": {}, "model": {}, "out": {}, "n_triplets": whole, "triplets": {}, "images": {},
                              "judge": {}, "family": {}, "prompt_file": {}, "test_fraction": number, "repeats": whole,
                              "seed": whole, "batch_size": whole, "layer": whole, "dtype": {}, "device": {},
                              "trust_remote_code": flag, "quiet": flag})
    fit = commands.add_parser("fit", help="fit a SPoSE embedding on a collection's training triplets")
    _flags(fit, Fit, {"collection": {"positional": True}, "items": {}, "out": {}, "dims": whole,
                      "lambdas": {"type": _floats}, "seeds": whole, "epochs": whole, "batch_size": whole, "lr": number,
                      "validation_fraction": number, "device": {}, "seed": whole, "overwrite": flag, "quiet": flag})
    evaluate = commands.add_parser("evaluate", help="held-out accuracy beside the agreement between repeats, stability, "
                                                    "RSA")
    _flags(evaluate, Evaluate, {"fit": {"positional": True}, "heldout": {}, "reference": {},
                                "reference_similarity": {"choices": ("dot", "spose")}, "permutations": whole,
                                "bootstrap": whole, "out": {}, "overwrite": flag, "quiet": flag})
    return parser


@command(build_parser)
def main(args):
    check_flags(args.command, vars(args))
    return _run(args)


def _run(args):
    if args.command == "collect":
        path = collect_judgments(args.items, args.model, args.out, args.n_triplets, args.triplets, args.images,
                                 args.judge, args.family, args.prompt_file, args.test_fraction, args.repeats, args.seed,
                                 args.batch_size, args.layer, dtype=args.dtype, device=args.device,
                                 trust_remote_code=args.trust_remote_code, progress=not args.quiet)
        print(path)
    elif args.command == "fit":
        out, model = fit_embedding(args.collection, args.out, args.dims, args.lambdas or DEFAULT_LAMBDAS, args.seeds,
                                   args.epochs, args.batch_size, args.lr, args.validation_fraction, args.device,
                                   args.seed, overwrite=args.overwrite, items=args.items)
        print(f"{model.embedding_.shape[1]} of {args.dims} dimensions kept after pruning, at lambda {model.lambda_:g} "
              f"(chosen on held-out triplets); results in {out}/")
    else:
        out, summary = evaluate_embedding(args.fit, args.heldout, args.reference, args.reference_similarity, None
                                          if args.out is None else args.out, args.bootstrap, args.permutations,
                                          overwrite=args.overwrite)
        print(report(summary) + f"\nResults in {out}/ (evaluation.json, evaluation.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
