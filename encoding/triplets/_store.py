"""The judgments store: one HDF5 file per collection, ``<out>/triplets.h5``.

Layout::

    /                  attrs: every parameter that changes the judgments (judge, model id and revision,
                       prompt and answers verbatim, sampling, batch size, dtype, device type, library
                       versions, ...) and the provenance that follows from them (the chat-formatted prompt)
    /items/name        utf-8 (n_items,)
    /items/label       utf-8 (n_items,), only when the judge read other words than the names
    /items/image       utf-8 (n_items,), only when the items have images
    /triplets          int32 (n, 3): item indices in the order shown
    /test              bool (n,): held out from fitting
    /repeat_of         int32 (n,): -1, or the row this one shows again in another order
    /scores            float32 (n, 3): the judge's score of each position as the odd one out (NaN until done)
    /choice            int8 (n,): the position with the highest score (-1 until done)
    /done              bool (n,)

Crash safety is the features store's (``extractors/parts.py``): a running process only appends records
of finished batches to its own part file, and the store is only ever replaced whole. A consolidation
writes every row from the plan and the records, so a store merged after a kill equals the store of an
uninterrupted run in every dataset and attribute.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from extractors.parts import checked_parts, read_records, replaced_whole
from features.errors import InputError
from features.store import from_attr, open_hdf5, to_attr

from ._items import Items

log = logging.getLogger(__name__)

STORE_NAME = "triplets.h5"
_STR = h5py.string_dtype("utf-8")


def store_path(where) -> Path:
    """``<folder>/triplets.h5`` for a collection folder, or the file itself."""
    where = Path(where)
    return where / STORE_NAME if where.suffix != ".h5" else where


def check_judgment_parameters(recorded, parameters, path):
    """InputError when a parameter recorded in ``path`` (a store or part file) differs from this run's.

    Unlike the features store, every parameter of a collection is compared: they all change the judgments.
    """
    for key, value in parameters.items():
        if key in recorded and recorded[key] != from_attr(to_attr(value)):
            raise InputError(f"{path}: field '{key}' was written as {recorded[key]!r} but this run asks for "
                             f"{value!r}; collect into another folder or delete the store to start again.")
    missing = sorted(set(parameters) - set(recorded))
    if recorded and missing:
        raise InputError(f"{path}: field '{missing[0]}' is not recorded: the file was written by another version "
                         f"of the collection; collect into another folder.")


@dataclass
class Judgments:
    """A collection read back: the plan, the judge's scores and choices, and how they were made.

    Attributes
    ----------
    items : Items
    triplets : int32 array (n, 3)
    test, done : bool arrays (n,)
    repeat_of : int32 array (n,)
    scores : float32 array (n, 3)
    choice : int8 array (n,)
    parameters : dict
        Root attributes of the store.
    path : Path
    """

    items: Items
    triplets: np.ndarray
    test: np.ndarray
    repeat_of: np.ndarray
    scores: np.ndarray
    choice: np.ndarray
    done: np.ndarray
    parameters: dict
    path: Path

    def select(self, split="train", repeats=False):
        """(triplets, choices) of the finished first showings of one split (``train``, ``test`` or ``all``),
        or with ``repeats=True`` of the finished repeats."""
        keep = self.done & ((self.repeat_of >= 0) if repeats else (self.repeat_of < 0))
        if split == "train":
            keep &= ~self.test
        elif split == "test":
            keep &= self.test
        elif split != "all":
            raise InputError(f"split: expected train, test or all, found '{split}'.")
        return self.triplets[keep], self.choice[keep].astype(np.int64)

    def repeat_pairs(self):
        """(odd item of the first showing, odd item of the repeat) for every finished repeated triplet."""
        rows = np.flatnonzero(self.done & (self.repeat_of >= 0))
        rows = rows[self.done[self.repeat_of[rows]]]
        first = self.repeat_of[rows]
        pick = lambda r: self.triplets[r, self.choice[r]]  # noqa: E731
        return pick(first), pick(rows)


def read_judgments(where) -> Judgments:
    """Read a store (a collection folder or its ``triplets.h5``)."""
    path = store_path(where)
    with open_hdf5(path, "triplet store", missing=" (run `python -m encoding.triplets collect` first)") as h5:
        missing = [k for k in ("items/name", "triplets", "scores", "choice", "done") if k not in h5]
        if missing:
            raise InputError(f"{path}: field '{missing[0]}' is missing; not a triplet store.")
        names = tuple(_strings(h5["items/name"]))
        images = tuple(_strings(h5["items/image"])) if "items/image" in h5 else None
        labels = tuple(_strings(h5["items/label"])) if "items/label" in h5 else None
        return Judgments(Items(names, images, labels), h5["triplets"][()], h5["test"][()], h5["repeat_of"][()],
                         h5["scores"][()], h5["choice"][()], h5["done"][()],
                         {k: from_attr(v) for k, v in h5.attrs.items()}, path)


def _strings(dataset):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in dataset[()]]


def consolidate(path, parameters, plan, items) -> bool:
    """Merge the store's part files into it, atomically (see the module docstring).

    Parameters
    ----------
    path : Path
        The store.
    parameters : dict
        This collection's parameters; a part or store written with others is an InputError.
    plan : Plan
    items : Items

    Returns
    -------
    bool : whether anything was merged.
    """
    path = Path(path)
    parts, provenance = checked_parts(path, parameters, check_judgment_parameters)
    if not parts:
        return False
    n_rows = 0
    with replaced_whole(path) as tmp, h5py.File(tmp, "a") as h5:
        if "done" not in h5:
            _create(h5, {**provenance, **parameters}, plan, items)
        scores, done = h5["scores"][()], h5["done"][()]
        for part in parts:
            for header, payload in read_records(part):
                rows = slice(header["first"], header["first"] + header["n"])
                scores[rows] = np.frombuffer(payload, dtype=np.float32).reshape(-1, 3)
                done[rows] = True
                n_rows += header["n"]
        h5["scores"][...] = scores
        h5["choice"][...] = np.where(done, np.nan_to_num(scores, nan=-np.inf).argmax(1), -1).astype(np.int8)
        h5["done"][...] = done
        for key, value in provenance.items():
            if key not in h5.attrs:
                h5.attrs[key] = to_attr(value)
    for part in parts:
        part.unlink()
    log.info("wrote %s: merged %d judgments from %d part file(s)", path, n_rows, len(parts))
    return True


def _create(h5, attrs, plan, items):
    for key, value in attrs.items():
        h5.attrs[key] = to_attr(value)
    h5.create_dataset("items/name", data=list(items.names), dtype=_STR)
    if items.labels is not None:
        h5.create_dataset("items/label", data=list(items.labels), dtype=_STR)
    if items.images is not None:
        h5.create_dataset("items/image", data=list(items.images), dtype=_STR)
    n = len(plan)
    h5.create_dataset("triplets", data=plan.triplets.astype(np.int32))
    h5.create_dataset("test", data=plan.test.astype(bool))
    h5.create_dataset("repeat_of", data=plan.repeat_of.astype(np.int32))
    h5.create_dataset("scores", data=np.full((n, 3), np.nan, np.float32))
    h5.create_dataset("choice", data=np.full(n, -1, np.int8))
    h5.create_dataset("done", data=np.zeros(n, bool))


def read_store_parameters(path) -> dict:
    with h5py.File(path, "r") as h5:
        return {k: from_attr(v) for k, v in h5.attrs.items()}
