"""Model RDMs given directly: an item embedding or an item similarity matrix read from a file.

Accepted files (items are matched by name, in any row order):

- TSV/CSV: an item column (``item``, ``name``, or THINGS' ``image_name``, whose ``_01b.jpg``-style image
  suffix is dropped) and numeric columns, one per dimension (an unnamed leading index column is ignored);
- HDF5: a dataset ``embedding`` (n_items, n_dims) or ``similarity`` (n_items, n_items), with the item names
  in a string dataset ``items`` or a JSON attribute ``items`` (what ``python -m encoding.triplets fit``
  writes: ``embedding.h5``, ``similarity.h5``). ``dataset`` picks one when a file holds several.

An embedding becomes an RDM with the config's ``metric``, like a feature layer; a similarity matrix
becomes ``1 - similarity``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError
from features.store import open_hdf5

from ._rdm import pattern_rdm

_IMAGE_SUFFIX = re.compile(r"_\d+[a-z]?\.(jpg|jpeg|png)$", re.IGNORECASE)
KINDS = ("embedding", "similarity")


def read_item_matrix(path, dataset=None):
    """Item names and their embedding or similarity matrix.

    Returns
    -------
    names : list of str
    matrix : float64 array of shape (n_items, n_dims) or (n_items, n_items)
    kind : {"embedding", "similarity"}
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: embedding or similarity file not found.")
    if path.suffix.lower() in (".tsv", ".csv", ".txt"):
        names, matrix, kind = _read_table(path)
    elif path.suffix.lower() in (".h5", ".hdf5"):
        names, matrix, kind = _read_h5(path, dataset)
    else:
        raise InputError(f"{path}: expected a .tsv/.csv embedding table or an .h5 file with 'embedding' or "
                         f"'similarity'.")
    if len(set(names)) != len(names):
        raise InputError(f"{path}: field 'items' names an item more than once.")
    if not np.isfinite(matrix).all():
        raise InputError(f"{path}: field '{kind}' holds NaN or infinite values.")
    return names, matrix, kind


def _read_table(path):
    table = pd.read_csv(path, sep="," if path.suffix.lower() == ".csv" else "\t")
    if len(table.columns) and (str(table.columns[0]).startswith("Unnamed") or table.columns[0] == ""):
        table = table.drop(columns=table.columns[0])   # a written DataFrame index
    column = next((c for c in ("item", "name", "image_name") if c in table.columns), None)
    if column is None:
        raise InputError(f"{path}: field 'item' is missing; an embedding table needs an item (or name) column.")
    names = [str(n) for n in table[column]]
    if column == "image_name":
        names = [_IMAGE_SUFFIX.sub("", n) for n in names]
    values = table.drop(columns=column)
    text = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if text or values.shape[1] == 0:
        raise InputError(f"{path}: field '{text[0] if text else 'dimensions'}' is not numeric; every column but "
                         f"the item names must be a dimension.")
    return names, values.to_numpy(np.float64), "embedding"


def _read_h5(path, dataset):
    with open_hdf5(path, "file") as h5:
        present = [k for k in KINDS if k in h5]
        if dataset is not None and dataset not in h5:
            raise InputError(f"{path}: field '{dataset}' does not exist; datasets: {', '.join(h5)}.")
        name = dataset or (present[0] if len(present) == 1 else None)
        if name is None:
            raise InputError(f"{path}: field 'dataset' must say which of "
                             f"{', '.join(present) or 'embedding, similarity'} to read.")
        matrix = np.asarray(h5[name][()], dtype=np.float64)
        if "items" in h5:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["items"][()]]
        elif "items" in h5.attrs:
            names = [str(n) for n in json.loads(h5.attrs["items"])]
        else:
            raise InputError(f"{path}: field 'items' is missing; the item names must be stored with the matrix.")
    kind = "similarity" if name == "similarity" else "embedding"
    if matrix.ndim != 2 or matrix.shape[0] != len(names) or (kind == "similarity" and matrix.shape[1] != len(names)):
        raise InputError(f"{path}: field '{name}' has shape {matrix.shape} for {len(names)} items.")
    return names, matrix, kind


def item_matrix_rdm(path, items, metric="correlation", dataset=None):
    """The RDM of ``items`` (in that order) from an embedding or similarity file.

    Returns
    -------
    rdm : float64 array of shape (n_items, n_items)
    """
    names, matrix, kind = read_item_matrix(path, dataset)
    position = {n: i for i, n in enumerate(names)}
    missing = [i for i in items if i not in position]
    if missing:
        raise InputError(f"{path}: field 'items' has no row for {missing[0]!r} ({len(missing)} of {len(items)} "
                         f"items missing).")
    rows = [position[i] for i in items]
    if kind == "embedding":
        return pattern_rdm(matrix[rows], metric)
    rdm = 1 - matrix[np.ix_(rows, rows)]
    np.fill_diagonal(rdm, 0)
    return rdm
