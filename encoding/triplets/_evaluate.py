"""``evaluate``: a fitted embedding against held-out judgments, beside the judge's agreement with itself, and a
reference.

- **Held-out accuracy**: the share of held-out triplets whose judged odd one out is the embedding's most
  likely one, with a bootstrap interval over triplets.
- **Agreement between repeats**: how often the judge chose the same odd one out when a triplet was
  judged again (a collection's repeated subset, shown in another order; the same three items judged more
  than once in a table). It is reported beside the accuracy and is no ceiling on it: for a triplet whose
  choice the judge makes with probabilities ``p``, two judgments agree with probability ``sum p_k^2``,
  while the best any model can reach there is ``max p_k``, which is at least as large (the planted judge of
  ``bench/spose.py --recovery``: best possible accuracy 0.583, agreement 0.548, and a fit reached 0.581;
  ``tests/test_triplets_tables.py`` plants one whose ceiling exceeds its agreement by more than 0.05, and
  the fit's accuracy exceeds the agreement). Hebart et al. (2020) estimated
  their ceiling from the majority choice of many repeats instead.
- **Stability**: the per-dimension reproducibility across seeds recorded by ``fit``.
- **RSA with a reference embedding** (e.g. the human SPoSE-66 of THINGS): Spearman correlation, over the
  items both share, of the fitted embedding's SPoSE similarity with the reference's similarity, with a
  Mantel permutation p-value (``encoding.rsa``). The reference's similarity is its dot products
  (``reference_similarity="dot"``, the default: a published embedding rescaled by a constant, like the
  THINGS file in ``../shared/data/things``, keeps their order but not the softmax's scale) or its own
  SPoSE similarity (``"spose"``, for an embedding at its fitted scale).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np

from features.errors import InputError

from ..outputs.folder import atomic_folder, refuse_existing
from ..rsa import mantel_test, read_item_matrix, upper_triangle
from ..versions import library_versions
from ._fit import read_fit
from ._similarity import spose_similarity
from ._spose import hits, odd_one_out_probabilities
from ._items import Items
from ._store import read_judgments, store_path
from ._table import is_triplet_table, read_triplet_table

log = logging.getLogger(__name__)

SPLITS = ("test", "train", "all")


def heldout_accuracy(embedding, triplets, choices, n_bootstrap=1000, random_state=0, ci=0.95):
    """Share of triplets whose chosen odd one out is the embedding's most likely one, and its interval.

    Returns
    -------
    dict: accuracy, ci_low, ci_high (bootstrap percentiles over triplets), n
    """
    correct = hits(odd_one_out_probabilities(embedding, triplets), np.asarray(choices))
    return {"n": int(correct.size), **_with_interval(correct, n_bootstrap, random_state, ci, "accuracy")}


def repeat_agreement(first_odd, repeat_odd, n_bootstrap=1000, random_state=0, ci=0.95):
    """Share of repeated triplets given the same odd one out both times (no ceiling on accuracy, see above).

    Returns
    -------
    dict: agreement, ci_low, ci_high (bootstrap percentiles over repeats), n
    """
    same = (np.asarray(first_odd) == np.asarray(repeat_odd)).astype(float)
    if not same.size:
        return {"n": 0, "agreement": None, "ci_low": None, "ci_high": None}
    return {"n": int(same.size), **_with_interval(same, n_bootstrap, random_state, ci, "agreement")}


def _with_interval(values, n_bootstrap, random_state, ci, name):
    estimate = float(values.mean()) if values.size else float("nan")
    if not n_bootstrap or values.size < 2:
        return {name: estimate, "ci_low": None, "ci_high": None}
    rng = np.random.default_rng(random_state)
    draws = np.array([values[rng.integers(0, values.size, values.size)].mean() for _ in range(n_bootstrap)])
    low, high = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2])
    return {name: estimate, "ci_low": float(low), "ci_high": float(high)}


def reference_rsa(names, similarity, reference, reference_similarity="dot", n_permutations=1000, random_state=0):
    """Spearman RSA of an item similarity matrix with a reference embedding's, over their shared items.

    Parameters
    ----------
    names : list of str
    similarity : array of shape (n_items, n_items)
    reference : str or Path
        An embedding table or HDF5 file (``encoding.rsa.read_item_matrix``), or a similarity matrix.
    reference_similarity : {"dot", "spose"}
        How a reference *embedding* becomes a similarity matrix.

    Returns
    -------
    dict: score, p_value, n_items, reference, reference_similarity
    """
    ref_names, matrix, kind = read_item_matrix(reference)
    shared = [n for n in names if n in set(ref_names)]
    if len(shared) < 4:
        raise InputError(f"{reference}: field 'items' shares {len(shared)} item names with the embedding; RSA needs "
                         f"at least 4 (names must match exactly, e.g. 'air_conditioner').")
    ours = [names.index(n) for n in shared]
    theirs = [ref_names.index(n) for n in shared]
    if kind == "similarity":
        ref = matrix[np.ix_(theirs, theirs)]
    elif reference_similarity == "dot":
        ref = matrix[theirs] @ matrix[theirs].T
    elif reference_similarity == "spose":
        ref = spose_similarity(matrix[theirs])
    else:
        raise InputError(f"--reference-similarity: expected dot or spose, found '{reference_similarity}'.")
    model_rdm, reference_rdm = 1 - similarity[np.ix_(ours, ours)], 1 - ref
    np.fill_diagonal(model_rdm, 0)
    np.fill_diagonal(reference_rdm, 0)
    result = mantel_test(reference_rdm, upper_triangle(model_rdm), "spearman", n_permutations=n_permutations,
                         random_state=random_state)
    return {"score": result.score, "p_value": result.p_value if n_permutations else None, "n_items": len(shared),
            "reference": str(reference), "reference_similarity": reference_similarity if kind == "embedding"
            else "given", "comparison": "spearman", "n_permutations": int(n_permutations)}


def heldout_judgments(where, default, names):
    """(judgments, split) of ``--heldout``: a collection folder or store (its test split), or
    ``<folder>/<split>`` with split test, train or all, or a triplet table named by the fit's items (its
    test rows when it has a ``split`` column, else all); ``default`` (what the fit was fitted on) when None."""
    items = Items(tuple(names))
    if where is None:
        if default is None:
            raise InputError("--heldout: the fit does not record what it was fitted on; give --heldout.")
        if is_triplet_table(default):
            judgments = read_triplet_table(default, items)
            if not judgments.parameters["has_split"]:
                raise InputError(f"{default}: field 'split' is missing, so every row of the table was fitted; give "
                                 f"--heldout with judgments the fit has not seen.")
            return judgments, "test"
        return read_judgments(default), "test"
    if is_triplet_table(where):
        judgments = read_triplet_table(where, items)
        return judgments, "test" if judgments.parameters["has_split"] else "all"
    where = Path(where)
    if not store_path(where).is_file() and where.name in SPLITS and store_path(where.parent).is_file():
        return read_judgments(where.parent), where.name
    return read_judgments(where), "test"


def evaluate_embedding(fit_folder, heldout=None, reference=None, reference_similarity="dot", out=None,
                       n_bootstrap=1000, n_permutations=1000, random_state=0, overwrite=False):
    """Evaluate a ``fit`` output folder and write ``evaluation.json`` and ``evaluation.md`` to ``out``
    (default ``<fit_folder>/evaluation``).

    Returns
    -------
    out : Path
    summary : dict
    """
    fit_folder = Path(fit_folder)
    names, embedding, attrs = read_fit(fit_folder)
    out = Path(out) if out else fit_folder / "evaluation"
    refuse_existing(out, overwrite)
    judgments, split = heldout_judgments(heldout, attrs.get("collection"), names)
    if list(judgments.items.names) != names:
        raise InputError(f"{judgments.path}: field 'items' lists other items than the embedding {fit_folder} "
                         f"was fitted on.")
    if judgments.triplets.size and (judgments.triplets.min() < 0 or judgments.triplets.max() >= len(embedding)):
        raise InputError(f"{judgments.path}: field 'triplets' holds item index "
                         f"{_outside(judgments.triplets, len(embedding))}, but the embedding in "
                         f"{fit_folder / 'embedding.h5'} has {len(embedding)} items (indices 0 to {len(embedding) - 1}).")
    triplets, choices = judgments.select(split)
    if not len(triplets):
        raise InputError(f"{judgments.path}: field 'test' marks no finished triplets of the {split} split.")
    first_odd, repeat_odd = judgments.repeat_pairs()
    summary = {"embedding": str(fit_folder.resolve()), "heldout": str(judgments.path), "split": split,
               "n_dims": int(embedding.shape[1]), "lambda": attrs.get("lambda"),
               "accuracy": heldout_accuracy(embedding, triplets, choices, n_bootstrap, random_state),
               "repeat_agreement": repeat_agreement(first_odd, repeat_odd, n_bootstrap, random_state),
               "stability": _stability(attrs["reproducibility"]),
               "judge": {k: judgments.parameters.get(k) for k in ("judge", "model_id", "model_revision", "prompt",
                                                                  "source")}}
    if reference is not None:
        with h5py.File(fit_folder / "similarity.h5", "r") as h5:
            similarity = h5["similarity"][()]
        summary["reference_rsa"] = reference_rsa(names, similarity, reference, reference_similarity, n_permutations,
                                                 random_state)
    summary["versions"] = library_versions()
    with atomic_folder(out, overwrite) as partial:
        (partial / "evaluation.json").write_text(json.dumps(summary, indent=2, default=str))
        (partial / "evaluation.md").write_text(report(summary))
    log.info("wrote %s", out)
    return out, summary


def _outside(triplets, n_items):
    """The first item index of ``triplets`` outside 0..n_items - 1."""
    flat = triplets.ravel()
    return int(flat[np.flatnonzero((flat < 0) | (flat >= n_items))[0]])


def _stability(reproducibility):
    r = np.asarray(reproducibility, dtype=float)
    if not np.isfinite(r).any():
        return {"mean": None, "n_dims_above_0.8": None, "per_dimension": r.tolist()}
    return {"mean": float(np.nanmean(r)), "n_dims_above_0.8": int((r > 0.8).sum()),
            "per_dimension": [round(float(v), 4) for v in r]}


def report(summary) -> str:
    """The evaluation as a short Markdown report."""
    acc, agreement, stability = summary["accuracy"], summary["repeat_agreement"], summary["stability"]
    judge = summary["judge"]
    source = (f"Judgments: the table {judge.get('source')}." if judge.get("judge") == "table" else
              f"Judge: {judge.get('judge')} `{judge.get('model_id')}` (revision {judge.get('model_revision')}).")
    lines = [f"# SPoSE embedding: {summary['n_dims']} dimensions (lambda {summary['lambda']})", "", source, "",
             f"- Held-out accuracy ({summary['split']} split of {summary['heldout']}, {acc['n']} triplets): "
             f"{_pct(acc['accuracy'])} [{_pct(acc['ci_low'])}, {_pct(acc['ci_high'])}] (chance 33.3 %)."]
    if agreement["n"]:
        lines.append(f"- Beside it, the judge's agreement with itself on {agreement['n']} triplets judged twice: "
                     f"{_pct(agreement['agreement'])} [{_pct(agreement['ci_low'])}, {_pct(agreement['ci_high'])}]. "
                     f"This is no ceiling: two judgments of a triplet agree (sum of p^2) less often than the best "
                     f"possible model predicts one (max p), so an accuracy above it is possible.")
    else:
        lines.append("- Agreement between repeats: no triplet was judged twice (`collect --repeats`).")
    if stability["mean"] is not None:
        lines.append(f"- Stability across seeds: mean reproducibility {stability['mean']:.3f}; "
                     f"{stability['n_dims_above_0.8']} of {summary['n_dims']} dimensions above r = 0.8.")
    rsa = summary.get("reference_rsa")
    if rsa:
        p = f", Mantel p = {rsa['p_value']:.3g} ({rsa['n_permutations']} permutations)" if rsa["p_value"] else ""
        lines.append(f"- RSA with {rsa['reference']} ({rsa['reference_similarity']} similarity, {rsa['n_items']} "
                     f"shared items): Spearman rho = {rsa['score']:.3f}{p}.")
    return "\n".join(lines) + "\n"


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f} %"
