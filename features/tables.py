"""Plain-text tables of numbers with one row per TR: ROI time courses, per-TR regressors.

A ``.txt``/``.dat`` file is whitespace-separated, ``.csv`` comma-separated and ``.tsv`` tab-separated;
lines starting with ``#`` are comments. A first row that is not all numbers is a header of column names.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError


def _separator(path: Path):
    suffix = path.suffix.lower()
    return {".csv": ",", ".tsv": "\t"}.get(suffix, r"\s+")


def read_text_table(path, names=None):
    """The numbers of a text table and its column names.

    Parameters
    ----------
    path : str or Path
    names : sequence of str, optional
        Column names that replace the header's (or name the columns of a file without one).

    Returns
    -------
    values : float64 array of shape (n_rows, n_columns)
    names : list of str, or None for a file without a header and no ``names``

    Raises
    ------
    InputError
        Naming the file and what was wrong: unreadable, ragged rows, a cell that is not a number, or a
        ``names`` list of the wrong length.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, sep=_separator(path), header=None, dtype=str, comment="#",
                            skip_blank_lines=True, keep_default_na=False, engine="python")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise InputError(f"{path}: expected a table of numbers (one row per TR, one column per target), "
                         f"found a file pandas cannot read ({reason}).") from None
    header = None
    if len(table) and not _all_numbers(table.iloc[0]):
        header = [str(v).strip() for v in table.iloc[0]]
        table = table.iloc[1:]
    values = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(np.isnan(values) & ~table.apply(lambda c: c.str.strip().str.lower().isin(
        ["nan", "na", "n/a"])).to_numpy())
    if bad.size:
        row, column = bad[0]
        line = int(row) + (2 if header else 1)
        raise InputError(f"{path}: expected numbers in every cell, found {table.iat[row, column]!r} in line "
                         f"{line}, column {column + 1}.")
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != values.shape[1]:
            raise InputError(f"{path}: field 'names' lists {len(names)} names for the file's "
                             f"{values.shape[1]} columns.")
        header = names
    return values, header


def _all_numbers(row) -> bool:
    return bool(pd.to_numeric(row.str.strip(), errors="coerce").notna().all())
