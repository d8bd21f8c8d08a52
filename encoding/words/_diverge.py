"""Divergence mining: which words does a model predict worst, and what do they have in common?

1. Per-word error: the squared error of the held-out prediction, mean over the chosen sensor group's
   sensors and the chosen windows (``_fit``), z-scored over words per subject and averaged over subjects.
2. The story's sentences are dealt at random into a *proposal* half and a *validation* half (whole
   sentences, so no sentence is shown to the proposer and judged by the verifier). In each half the
   ``k`` words of highest error form group A and the ``k`` of lowest error group B.
3. The proposer reads samples of the proposal groups (``prompt_k`` words of each, ``n_rounds`` rounds)
   and writes hypotheses; hypotheses the user lists are added.
4. The verifier judges every hypothesis on every validation item; a hypothesis' validity is the rate at
   which it holds in validation group A minus that in group B, its p-value the share of random
   relabellings of the validation items (group sizes kept) with a validity at least as large (one-sided),
   and q is Benjamini-Hochberg over the hypotheses.

With ``--contrast A,B`` the ranking is not one model's error but where model A beats model B: each
word's z-scored error of B minus that of A (step 1 for each model, each at its CV-best layer), so group
A holds the words A predicts much better than B. The hypotheses are validated as above, on the held-out
half's contrast groups, and each also gets ``contrast_holds_minus_not``: on the held-out words judged,
the mean contrast where the hypothesis holds minus where it does not (positive: the words it describes
are ones where A beats B).

Every prompt, response, item, score and verdict is written to the output folder.
"""
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from features.errors import InputError

from ..outputs.folder import atomic_folder, refuse_existing
from ..stats import fdr_bh
from ._config import chosen_windows, output_folder
from ._proposer import make_proposer, parse_hypotheses, proposer_prompt
from ._run import prepare, write_provenance
from ._study import best_layer, fit_study
from ._verifier import make_verifier

log = logging.getLogger(__name__)


def word_errors(fits, subjects, model, layer, windows=None, group="all"):
    """Per-word error over the chosen windows and sensor group, z-scored per subject, mean over subjects.

    Returns
    -------
    errors : array of shape (n_words,)
    """
    per_subject = []
    for subject, target in subjects.items():
        fit = fits[subject, model, layer]
        if group not in fit.extra["groups"]:
            raise InputError(f"diverge: field 'diverge.sensor_group' is {group!r}; the sensor groups are "
                             f"{', '.join(fit.extra['groups'])}.")
        chosen = chosen_windows(target.windows, windows, "diverge: field 'diverge.windows'")
        e = fit.word_error[:, fit.extra["groups"].index(group)][:, chosen].mean(1)
        # words whose epochs overlapped a BAD annotation are NaN, and left out of a subject's mean
        per_subject.append((e - np.nanmean(e)) / (np.nanstd(e) if np.nanstd(e) > 0 else 1))
    per_subject = np.array(per_subject)
    counted = np.isfinite(per_subject).sum(0)
    return np.where(counted > 0, np.nansum(per_subject, 0) / np.maximum(counted, 1), np.nan)


def word_groups(errors, sentence_of, k, seed=0):
    """Split by sentence into proposal and validation halves; top-k (A) and bottom-k (B) in each.

    Parameters
    ----------
    errors : array of shape (n_words,)
    sentence_of : array of int of shape (n_words,)
    k : int
    seed : int

    Returns
    -------
    DataFrame with one row per word: word_index, error, split ("proposal" | "validation"), group ("A", "B"
    or ""), rank_in_split (0 = highest error)
    """
    sentences = np.unique(sentence_of)
    rng = np.random.default_rng(seed)
    validation = set(rng.permutation(sentences)[: len(sentences) // 2].tolist())
    split = np.where([s in validation for s in np.asarray(sentence_of).tolist()], "validation", "proposal")
    table = pd.DataFrame({"word_index": np.arange(len(errors)), "error": errors, "split": split, "group": "",
                          "rank_in_split": -1})
    for name in ("proposal", "validation"):
        index = np.flatnonzero((split == name) & np.isfinite(errors))
        if index.size < 2 * k:
            raise InputError(f"diverge: field 'diverge.k' is {k}, but the {name} half has only {index.size} words; "
                             f"use k <= {index.size // 2}.")
        ranked = index[np.argsort(-errors[index], kind="stable")]
        table.loc[ranked, "rank_in_split"] = np.arange(ranked.size)
        table.loc[ranked[:k], "group"] = "A"
        table.loc[ranked[-k:], "group"] = "B"
    return table


def hypothesis_validity(holds, in_a, n_permutations=2000, seed=0):
    """Validity of each hypothesis and its permutation p (module docstring).

    Parameters
    ----------
    holds : bool array of shape (n_hypotheses, n_items)
    in_a : bool array of shape (n_items,)
        True for group A, False for group B.
    n_permutations : int
    seed : int

    Returns
    -------
    DataFrame: rate_a, rate_b, validity, p, q per hypothesis (rows in the order given)
    """
    holds, in_a = np.asarray(holds, dtype=np.float64), np.asarray(in_a, bool)
    n_a, n_b = in_a.sum(), (~in_a).sum()
    if n_a == 0 or n_b == 0:
        raise InputError("diverge: both groups need items to judge.")
    observed = holds[:, in_a].mean(1) - holds[:, ~in_a].mean(1)
    rng = np.random.default_rng(seed)
    labels = np.array([rng.permutation(in_a) for _ in range(n_permutations)])     # (n_permutations, n_items)
    # validity of every relabelling at once: (H, N) @ (N, P)
    null = holds @ (labels.T / n_a) - holds @ ((~labels).T / n_b)
    p = (1 + (null >= observed[:, None] - 1e-12).sum(1)) / (1 + n_permutations)
    return pd.DataFrame({"rate_a": holds[:, in_a].mean(1), "rate_b": holds[:, ~in_a].mean(1), "validity": observed,
                         "p": p, "q": fdr_bh(p)})


def _read_hypotheses(config):
    value = config["diverge"]["hypotheses"]
    if not value:
        return []
    if isinstance(value, list):
        return [str(h).strip() for h in value if str(h).strip()]
    path = Path(value)                    # resolved by load_words_config
    if not path.is_file():
        raise InputError(f"{path}: hypotheses file not found (field 'diverge.hypotheses').")
    return parse_hypotheses(path.read_text())


def contrast_errors(fits, subjects, models, layers, windows=None, group="all"):
    """Per-word B error minus A error (each z-scored per subject, mean over subjects): high where A beats B.

    Parameters
    ----------
    models : (model_a, model_b)
    layers : dict of model -> layer
    """
    a, b = models
    return word_errors(fits, subjects, b, layers[b], windows, group) - \
        word_errors(fits, subjects, a, layers[a], windows, group)


def _propose(proposer, story, groups, settings, seed, kind="errors"):
    """Proposal rounds: (records of prompt/response/hypotheses, the hypotheses in order)."""
    rng = np.random.default_rng(seed)
    proposal = groups[groups["split"] == "proposal"]
    records, found = [], []
    for round_ in range(int(settings["n_rounds"])):
        sample = {}
        for name in ("A", "B"):
            index = proposal.loc[proposal["group"] == name, "word_index"].to_numpy()
            take = np.sort(rng.choice(index, min(int(settings["prompt_k"]), index.size), replace=False))
            sample[name] = [(story.words[i], story.sentence(i)) for i in take]
        prompt = proposer_prompt(sample["A"], sample["B"], int(settings["n_hypotheses"]), kind)
        response = proposer.propose(prompt)
        hypotheses = parse_hypotheses(response, int(settings["n_hypotheses"]))
        records.append({"round": round_, "proposer": proposer.describe(), "prompt": prompt, "response": response,
                        "hypotheses": hypotheses})
        found += hypotheses
        log.info("proposal round %d: %d hypotheses", round_, len(hypotheses))
    return records, found


def run_diverge(config, overwrite=False, out=None, proposer=None, verifier=None, model=None, contrast=None):
    """``python -m encoding.words diverge``: errors, groups, hypotheses, verdicts, validity, one folder.

    Returns
    -------
    out : Path
    table : DataFrame, the rows of ``hypotheses.csv`` (ranked by validity)
    """
    settings = config["diverge"]
    out = Path(out) if out else output_folder(config, "-diverge")
    refuse_existing(out, overwrite)
    proposer_spec = proposer or settings["proposer"]
    given = _read_hypotheses(config)
    if not proposer_spec and not given:
        raise InputError(f"{config['config_file']}: field 'diverge.proposer' is not set and 'diverge.hypotheses' "
                         f"lists none; give --proposer (a Hugging Face id, a folder or an http(s) endpoint) or "
                         f"hypotheses to test.")
    models = list(contrast) if contrast else [model or settings["model"] or next(iter(config["models"]))]
    story, subjects = prepare(config)
    fits, layers = fit_study(config, story, subjects, models)
    chosen = {}
    for m in models:
        chosen[m] = int(settings["layer"]) if settings["layer"] is not None else best_layer(fits, subjects, m,
                                                                                            layers[m])
        if chosen[m] not in layers[m]:
            raise InputError(f"{config['config_file']}: field 'diverge.layer' is {chosen[m]}, not a fitted layer of "
                             f"{m}.")
    model, layer = models[0], chosen[models[0]]
    if contrast:
        errors = contrast_errors(fits, subjects, models, chosen, settings["windows"], settings["sensor_group"])
    else:
        errors = word_errors(fits, subjects, model, layer, settings["windows"], settings["sensor_group"])
    groups = word_groups(errors, story.sentence_of, int(settings["k"]), config["seed"])
    device = config["extraction"]["device"]
    records, proposed = [], []
    if proposer_spec:
        records, proposed = _propose(make_proposer(proposer_spec, settings, device, config["seed"]), story, groups,
                                     settings, config["seed"], "contrast" if contrast else "errors")
    candidates = list(dict.fromkeys([*proposed, *given]))
    source = ["proposer" if h in proposed else "user" for h in candidates]
    if not candidates:
        raise InputError(f"--proposer {proposer_spec}: its answers held no hypotheses (see the prompt and answer "
                         f"format in encoding/words/_proposer.py) and 'diverge.hypotheses' lists none.")
    validation = groups[(groups["split"] == "validation") & (groups["group"] != "")]
    items = [story.marked_sentence(i) if settings["verifier_input"] == "sentence" else story.words[i]
             for i in validation["word_index"]]
    judge = make_verifier(verifier or settings["verifier"], device)
    scores, holds = judge.judge(candidates, items)
    table = hypothesis_validity(holds, (validation["group"] == "A").to_numpy(), int(settings["n_permutations"]),
                                config["seed"])
    table.insert(0, "hypothesis", candidates)
    table.insert(1, "source", source)
    table["mean_score_a"] = scores[:, (validation["group"] == "A").to_numpy()].mean(1)
    table["mean_score_b"] = scores[:, (validation["group"] == "B").to_numpy()].mean(1)
    if contrast:
        table["contrast_holds_minus_not"] = _holds_minus_not(holds, validation["error"].to_numpy())
    table = table.sort_values(["validity", "p"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["model"], table["layer"] = model, layer
    if contrast:
        table["model_b"], table["layer_b"] = models[1], chosen[models[1]]
    groups = groups.assign(word=[story.words[i] for i in groups["word_index"]],
                           sentence=[story.sentence(i) for i in groups["word_index"]])
    with atomic_folder(out, overwrite) as partial:
        table.to_csv(partial / "hypotheses.csv", index=False)
        groups.to_csv(partial / "groups.csv", index=False)
        with open(partial / "proposer.jsonl", "w") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
        _write_verdicts(partial / "verifier.h5", candidates, items, validation, scores, holds, judge.describe())
        write_provenance(partial, config)
    return out, table


def _holds_minus_not(holds, values):
    """Per hypothesis: mean of ``values`` over the items where it holds minus where it does not."""
    holds = np.asarray(holds, bool)
    out = np.full(len(holds), np.nan)
    for h, mask in enumerate(holds):
        if mask.any() and (~mask).any():
            out[h] = values[mask].mean() - values[~mask].mean()
    return out


def _write_verdicts(path, hypotheses, items, validation, scores, holds, description):
    with h5py.File(path, "w") as handle:
        string = h5py.string_dtype("utf-8")
        handle.create_dataset("hypotheses", data=np.array(hypotheses, dtype=object), dtype=string)
        handle.create_dataset("items", data=np.array(items, dtype=object), dtype=string)
        handle.create_dataset("word_index", data=validation["word_index"].to_numpy())
        handle.create_dataset("group", data=np.array(validation["group"].tolist(), dtype=object), dtype=string)
        handle.create_dataset("scores", data=scores)
        handle.create_dataset("holds", data=holds)
        handle.attrs["verifier"] = json.dumps(description)
