"""``fit``: a SPoSE embedding from a collection's training triplets (or a triplet table's), written as one
output folder.

The folder (complete or absent, never half-written; ``encoding/outputs/folder.py``)::

    embedding.tsv      item + one column per kept dimension (sorted by total weight)
    embedding.h5       /embedding (n_items, n_dims), /items, /reproducibility (n_dims,),
                       /seeds/seed_<s> (every seed's pruned fit at the chosen lambda); attrs: the settings,
                       lambda, seed and the collection's parameters (judge, model, prompt)
    similarity.h5      /similarity (n_items, n_items): SPoSE's predicted similarity, /items
    top_items.tsv      dimension, rank, item, weight (the 10 heaviest items of each dimension)
    top_items.png      the same as a figure (names, or images when the items have them)
    validation.csv     one row per (lambda, seed): kept dimensions, validation cross-entropy and accuracy
    fit.json           what was fitted on what, the choice of lambda, the versions it ran with
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from features.errors import InputError
from features.store import from_attr, to_attr

from ..outputs.folder import atomic_folder, refuse_existing
from ..versions import library_versions
from ._estimator import DEFAULT_LAMBDAS, SPoSE
from ._figures import plot_top_items, top_items
from ._items import read_items
from ._table import TableJudgments, open_judgments

log = logging.getLogger(__name__)

_STR = h5py.string_dtype("utf-8")
MIN_TRIPLETS = 20


def fit_embedding(collection, out, n_dims=100, lambdas=DEFAULT_LAMBDAS, n_seeds=5, epochs=500, batch_size=100,
                  lr=0.001, validation_fraction=0.1, device="cpu", random_state=0, top_k=10, overwrite=False,
                  items=None):
    """Fit SPoSE on the finished training triplets of a collection (or the rows of a triplet table) and write
    the output folder.

    Parameters
    ----------
    collection : str or Path
        A collection folder (or its ``triplets.h5``), or a triplet table (``_table.py``) with ``items``.
    out : str or Path
        The output folder; an existing one is replaced only with ``overwrite``.
    n_dims, lambdas, n_seeds, epochs, batch_size, lr, validation_fraction, device, random_state :
        See :class:`SPoSE`.
    top_k : int
        Items listed per dimension.
    items : str or Path, optional
        The items file of a triplet table (``_items.py``); not for a collection, which lists its own.

    Returns
    -------
    out : Path
    model : SPoSE (fitted)
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    judgments = open_judgments(collection, None if items is None else read_items(items))
    path, n_items = judgments.path, len(judgments.items)
    triplets, choices = judgments.select("train")
    if len(triplets) < MIN_TRIPLETS:
        field, hint = (("split", "rows marked train") if isinstance(judgments, TableJudgments) else
                       ("done", "is the collection finished?"))
        raise InputError(f"{path}: field '{field}' leaves {len(triplets)} training triplets; at least "
                         f"{MIN_TRIPLETS} are needed ({hint}).")
    check_settings(path, len(triplets), n_dims, lambdas, n_seeds, epochs, batch_size, lr, validation_fraction)
    if int(n_dims) > n_items:
        log.warning("%s: --dims %d exceeds its %d items, and the fit keeps every dimension the sparsity penalty does "
                    "not prune, so start from at most %d (the dimensions kept are printed at the end).", path,
                    int(n_dims), n_items, n_items)
    log.info("read %s: %d training triplets over %d items", path, len(triplets), n_items)
    try:
        model = SPoSE(n_dims, lambdas, n_seeds, epochs, batch_size, lr, validation_fraction, device=device,
                      random_state=random_state, progress=True).fit(triplets, choices, n_items)
    except InputError as err:   # the estimator names its fields, the file is ours to name
        raise InputError(f"{path}: {str(err).removeprefix('SPoSE: ')}") from None
    settings = {"n_dims_initial": int(n_dims), "lambdas": [float(v) for v in np.atleast_1d(lambdas)],
                "n_seeds": int(n_seeds), "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr),
                "validation_fraction": float(validation_fraction), "device": str(device),
                "random_state": int(random_state)}
    with atomic_folder(out, overwrite) as partial:
        write_fit(partial, model, judgments, settings, top_k)
    log.info("wrote %s: %d of %d dimensions kept after pruning, at lambda %g", out, model.embedding_.shape[1],
             int(n_dims), model.lambda_)
    return out, model


def check_settings(path, n_triplets, n_dims, lambdas, n_seeds, epochs, batch_size, lr, validation_fraction):
    """InputError naming ``path`` and the flag when a fit setting cannot work, before anything is fitted."""
    lambdas = np.atleast_1d(np.asarray(lambdas, dtype=float))
    checks = [("--dims", n_dims, int(n_dims) >= 1, "at least 1"),
              ("--seeds", n_seeds, int(n_seeds) >= 1, "at least 1"),
              ("--epochs", epochs, int(epochs) >= 1, "at least 1"),
              ("--batch-size", batch_size, int(batch_size) >= 1, "at least 1"),
              ("--lr", lr, float(lr) > 0, "a positive learning rate"),
              ("--lambdas", ",".join(f"{v:g}" for v in lambdas), lambdas.size > 0 and (lambdas >= 0).all(),
               "non-negative sparsity weights")]
    for flag, value, ok, expected in checks:
        if not ok:
            raise InputError(f"{path}: {flag} {value}: expected {expected}.")
    n_validation = int(round(float(validation_fraction) * n_triplets))
    if not 0 < n_validation < n_triplets:
        raise InputError(f"{path}: --validation-fraction {validation_fraction} of its {n_triplets} training "
                         f"triplets leaves {n_validation} to choose lambda on and {n_triplets - n_validation} to "
                         f"fit; both need at least one.")


def write_fit(folder, model, judgments, settings, top_k=10):
    """Every file of a fit's output folder (see the module docstring)."""
    folder = Path(folder)
    names = list(judgments.items.names)
    embedding = model.embedding_
    columns = [f"dim_{d + 1}" for d in range(embedding.shape[1])]
    pd.DataFrame(embedding, columns=columns).assign(item=names)[["item", *columns]].to_csv(
        folder / "embedding.tsv", sep="\t", index=False, float_format="%.6g")
    summary = {**settings, "lambda": model.lambda_, "seed": model.seed_, "n_dims": int(embedding.shape[1]),
               "n_items": len(names), "n_train": model.n_train_, "n_validation": model.n_validation_,
               "validation_accuracy": float(model.validation_.loc[model.validation_["chosen"],
                                                                  "validation_accuracy"].iloc[0]),
               "reproducibility_mean": _mean(model.reproducibility_), "collection": str(judgments.path.resolve())}
    with h5py.File(folder / "embedding.h5", "w") as h5:
        h5["embedding"] = embedding
        h5.create_dataset("items", data=names, dtype=_STR)
        h5["reproducibility"] = model.reproducibility_
        for s, fit in enumerate(model.embeddings_):
            h5[f"seeds/seed_{int(settings['random_state']) + s}"] = fit
        for key, value in summary.items():
            h5.attrs[key] = to_attr(value)
        h5.attrs["collection_parameters"] = json.dumps(judgments.parameters, sort_keys=True, default=str)
    with h5py.File(folder / "similarity.h5", "w") as h5:
        h5["similarity"] = model.similarity()
        h5.create_dataset("items", data=names, dtype=_STR)
        h5.attrs["what"] = "SPoSE predicted probability that two items are chosen together, averaged over third items"
    top_items(embedding, names, top_k).to_csv(folder / "top_items.tsv", sep="\t", index=False, float_format="%.4g")
    import matplotlib.pyplot as plt

    plt.close(plot_top_items(embedding, names, judgments.items.images, k=min(top_k, 6),
                             output_file=folder / "top_items.png"))
    model.validation_.to_csv(folder / "validation.csv", index=False, float_format="%.6g")
    (folder / "fit.json").write_text(json.dumps({**summary, "collection_parameters": judgments.parameters,
                                                 "versions": library_versions()}, indent=2, default=str))


def _mean(values):
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def read_fit(folder):
    """(names, embedding, attributes) of a fit's ``embedding.h5``."""
    path = Path(folder) / "embedding.h5"
    if not path.is_file():
        raise InputError(f"{path}: embedding not found (run `python -m encoding.triplets fit` first).")
    with h5py.File(path, "r") as h5:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["items"][()]]
        attrs = {k: from_attr(v) for k, v in h5.attrs.items()}
        attrs["reproducibility"] = h5["reproducibility"][()]
        return names, h5["embedding"][()], attrs
