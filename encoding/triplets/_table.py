"""Judgments made elsewhere (people, another model) as a plain table, read into the same form as a store.

A triplet table is a TSV or CSV file with a header and one judgment per row::

    item_1    item_2    item_3    odd       split
    aardvark  abacus    acorn     abacus    train
    ...

``item_1``, ``item_2``, ``item_3`` name the three items in the order they were shown, ``odd`` names the
one chosen as the odd one out (one of the three), and ``split`` (optional: ``train`` or ``test``) says
which rows ``fit`` leaves for ``evaluate``. Names are those of an items file (``_items.py``), which fixes
the order of the embedding's rows. Other columns (participant, time, ...) are ignored.

A triplet judged more than once (the same three items, in any order) gives the agreement between
repeats: each later judgment is paired with the first one (``Judgments.repeat_pairs``). Every row is a
judgment that is fitted and scored; none is set aside as a repeat, unlike a collection's second showings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError

from ._store import Judgments, read_judgments

COLUMNS = ("item_1", "item_2", "item_3", "odd")
TABLE_SUFFIXES = (".tsv", ".csv")
SPLIT_VALUES = ("train", "test")


def is_triplet_table(where) -> bool:
    """True for a TSV/CSV file (a triplet table), False for a collection folder or store."""
    return Path(where).suffix.lower() in TABLE_SUFFIXES


def open_judgments(where, items=None) -> Judgments:
    """A collection (folder or ``triplets.h5``) or a triplet table read with ``items``.

    Parameters
    ----------
    where : str or Path
    items : Items or None
        The items a table's names refer to; required for a table, refused for a store (which lists its own).
    """
    if is_triplet_table(where):
        if items is None:
            raise InputError(f"{where}: a triplet table needs --items, the items file its names refer to (it "
                             f"fixes the embedding's rows).")
        return read_triplet_table(where, items)
    if items is not None:
        raise InputError(f"--items: {where} is a collection, which lists its own items; --items goes with a "
                         f"triplet table (.tsv or .csv).")
    return read_judgments(where)


class TableJudgments(Judgments):
    """Judgments read from a table: every row is a first showing; repeats are rows of the same three items."""

    def repeat_pairs(self):
        """(odd item of a triplet's first judgment, odd item of a later one) for every later judgment of
        the same three items."""
        keys = np.sort(self.triplets.astype(np.int64), 1)
        keys = (keys[:, 0] * len(self.items) + keys[:, 1]) * len(self.items) + keys[:, 2]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        later = np.flatnonzero(first[inverse] != np.arange(len(keys)))
        odd = self.triplets[np.arange(len(keys)), self.choice]
        return odd[first[inverse[later]]], odd[later]


def read_triplet_table(path, items) -> TableJudgments:
    """Read a triplet table (see the module docstring) against ``items``.

    Raises
    ------
    InputError
        Missing file or column, a name the items do not list, an ``odd`` that is not one of its row's three
        items, a repeated item, or a ``split`` other than train or test; rows are counted from 1 after the
        header.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: triplet table not found.")
    try:
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                            keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable triplet table ({str(err).splitlines()[0]}).") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: field '{missing[0]}' is missing; a triplet table has the columns "
                         f"{', '.join(COLUMNS)} (found {', '.join(map(str, table.columns)) or 'none'}).")
    if table.empty:
        raise InputError(f"{path}: field 'odd' holds no judgments (the table has a header only).")
    index = items.index()
    columns = {c: table[c].str.strip() for c in COLUMNS}
    codes = {}
    for column in COLUMNS:
        codes[column] = columns[column].map(index)
        unknown = np.flatnonzero(codes[column].isna().to_numpy())
        if unknown.size:
            row = int(unknown[0])
            raise InputError(f"{path}: row {row + 1}: field '{column}' names '{columns[column].iloc[row]}', which "
                             f"the items file does not list.")
    triplets = np.column_stack([codes[c].to_numpy(np.int64) for c in COLUMNS[:3]])
    repeated = np.flatnonzero((triplets[:, 0] == triplets[:, 1]) | (triplets[:, 0] == triplets[:, 2])
                              | (triplets[:, 1] == triplets[:, 2]))
    if repeated.size:
        raise InputError(f"{path}: row {repeated[0] + 1}: fields 'item_1', 'item_2', 'item_3' repeat an item; a "
                         f"triplet needs three different items.")
    is_odd = triplets == codes["odd"].to_numpy(np.int64)[:, None]
    stray = np.flatnonzero(~is_odd.any(1))
    if stray.size:
        row = int(stray[0])
        raise InputError(f"{path}: row {row + 1}: field 'odd' is '{columns['odd'].iloc[row]}', which is none of "
                         f"the row's three items.")
    test = np.zeros(len(table), bool)
    if "split" in table.columns:
        split = table["split"].str.strip().str.lower()
        wrong = np.flatnonzero(~split.isin(SPLIT_VALUES).to_numpy())
        if wrong.size:
            raise InputError(f"{path}: row {wrong[0] + 1}: field 'split' is '{table['split'].iloc[wrong[0]]}'; "
                             f"expected train or test.")
        test = (split == "test").to_numpy()
    n = len(table)
    parameters = {"judge": "table", "source": str(path.resolve()), "items": items.fingerprint,
                  "n_items": len(items), "has_split": "split" in table.columns}
    return TableJudgments(items, triplets.astype(np.int32), test, np.full(n, -1, np.int32),
                          np.full((n, 3), np.nan, np.float32), is_odd.argmax(1).astype(np.int8), np.ones(n, bool),
                          parameters, path)
