"""Command line: ``python -m encoding.triplets collect|fit|evaluate``.

::

    python -m encoding.triplets collect --items things.tsv --model <hf id or folder> [--images folder/] \\
        --n-triplets 100000 --out triplets/
    python -m encoding.triplets fit triplets/ --dims 100 --out spose/
    python -m encoding.triplets fit judgments.tsv --items items.tsv --out spose/     # judgments made elsewhere
    python -m encoding.triplets evaluate spose/ --heldout triplets/test --reference things_spose66.csv

Bad input ends in one sentence naming the file and the field, and exit status 2.
"""
import argparse
import logging
import sys

from features.errors import InputError

from ._collect import collect_judgments
from ._estimator import DEFAULT_LAMBDAS
from ._evaluate import evaluate_embedding, report
from ._fit import fit_embedding


def _floats(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers, found '{text}'") from None


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m encoding.triplets",
                                     description="Triplet odd-one-out judgments from a model, SPoSE embeddings "
                                                 "and their evaluation.")
    commands = parser.add_subparsers(dest="command", required=True)

    collect = commands.add_parser("collect", help="judge triplets with a model into <out>/triplets.h5")
    collect.add_argument("--items", required=True, help="TSV/CSV with a 'name' column (optional 'label', 'image'), "
                                                         "or one name per line")
    collect.add_argument("--model", required=True, help="minilm (the offline MiniLM similarity judge), a registry name, "
                                                         "a local model folder or a cached Hub id")
    collect.add_argument("--out", required=True, help="collection folder")
    collect.add_argument("--n-triplets", type=int, help="triplets drawn uniformly with --seed")
    collect.add_argument("--triplets", help="a triplet file instead: three item names per line (tab or comma)")
    collect.add_argument("--images", help="folder of item images: the MLLM sees the three images")
    collect.add_argument("--judge", default="auto", help="auto | similarity | chat (default auto: by the model)")
    collect.add_argument("--family", help="adapter family of a local MLLM folder (see extractors.run --list)")
    collect.add_argument("--prompt-file", help="YAML with 'prompt' and 'answers' (default: the built-in prompt)")
    collect.add_argument("--test-fraction", type=float, default=0.1, help="share held out for evaluate (0.1)")
    collect.add_argument("--repeats", type=int, help="test triplets shown again in another order (default 1000)")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument("--batch-size", type=int, help="triplets per forward pass (8 for chat models)")
    collect.add_argument("--layer", type=int, default=-1, help="similarity judge: hidden state used (-1 = last)")
    collect.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU), float32, bfloat16, float16")
    collect.add_argument("--device", help="cpu, cuda, cuda:1 (default: accelerate's device for this process)")
    collect.add_argument("--trust-remote-code", action="store_true")

    fit = commands.add_parser("fit", help="fit a SPoSE embedding on a collection's training triplets")
    fit.add_argument("collection", help="collection folder (or its triplets.h5), or a triplet table (TSV/CSV with "
                                        "item_1, item_2, item_3, odd and optional split) with --items")
    fit.add_argument("--items", help="items file of a triplet table (the names it uses, in embedding order)")
    fit.add_argument("--out", required=True, help="output folder")
    fit.add_argument("--dims", type=int, default=100, help="initial dimensions (pruned as their weight vanishes)")
    fit.add_argument("--lambdas", type=_floats, default=None,
                     help=f"sparsity weights tried, chosen on held-out triplets ({','.join(map(str, DEFAULT_LAMBDAS))})")
    fit.add_argument("--seeds", type=int, default=5, help="fits per lambda from different starts (5)")
    fit.add_argument("--epochs", type=int, default=500)
    fit.add_argument("--batch-size", type=int, default=100)
    fit.add_argument("--lr", type=float, default=0.001)
    fit.add_argument("--validation-fraction", type=float, default=0.1, help="share held out to choose lambda")
    fit.add_argument("--device", default="cpu")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--overwrite", action="store_true")

    evaluate = commands.add_parser("evaluate", help="held-out accuracy beside the agreement between repeats, stability, "
                                                    "RSA")
    evaluate.add_argument("fit", help="a fit output folder")
    evaluate.add_argument("--heldout", help="collection folder (its test split) or <folder>/<test|train|all>, or a "
                                            "triplet table in the fit's item names (its test rows, or all)")
    evaluate.add_argument("--reference", help="reference embedding (TSV/CSV/HDF5) or similarity matrix for RSA")
    evaluate.add_argument("--reference-similarity", default="dot", choices=("dot", "spose"))
    evaluate.add_argument("--permutations", type=int, default=1000)
    evaluate.add_argument("--bootstrap", type=int, default=1000)
    evaluate.add_argument("--out", help="output folder (default <fit>/evaluation)")
    evaluate.add_argument("--overwrite", action="store_true")
    for sub in (collect, fit, evaluate):
        sub.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return _run(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


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
