"""File names in and out: run fields resolved to existing files, output names given their
suffix, result maps checked against their space, library errors turned into clauses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from features.errors import InputError


def resolve_file(run: Mapping, field: str, base_dir: Path, needed_for: str) -> Path:
    """Return the existing file named by ``run[field]``, resolved against ``base_dir``.

    Parameters
    ----------
    run : mapping
        One run entry of a config.
    field : str
        The key holding the file name (``"path"``, ``"mask"``, ``"left"``, ``"right"``).
    base_dir : Path
        Folder relative paths are read from (the config's folder).
    needed_for : str
        What the field is for, to complete the message when it is missing.

    Raises
    ------
    InputError
        When the field is absent or empty, or names no existing file.
    """
    value = run.get(field)
    if value is None or str(value).strip() == "":
        where = run.get("path") or run.get("left") or "run entry"
        raise InputError(
            f"{where}: expected a '{field}' field naming {needed_for}, found none.")
    path = Path(str(value)).expanduser()
    if not path.is_absolute():
        path = Path(base_dir).expanduser() / path
    if not path.is_file():
        found = "a folder" if path.is_dir() else "no such file"
        raise InputError(
            f"{path}: expected the '{field}' field to name an existing file, found {found}.")
    return path


def reason(error: Exception) -> str:
    """A library's error as a clause: first line, no final period, so the message stays one
    sentence."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0].rstrip(".")


def strip_suffixes(output_file, suffixes: tuple[str, ...]) -> Path:
    """Return ``output_file`` without the first of ``suffixes`` it ends with (case-insensitive)."""
    path = Path(output_file).expanduser()
    lowered = path.name.lower()
    for suffix in suffixes:
        if lowered.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def map_rows(values, n_targets: int, output_file) -> np.ndarray:
    """Return a result map as float32 ``(n_maps, n_targets)``, checking its width.

    Parameters
    ----------
    values : array of shape (n_targets,) or (n_maps, n_targets)
        One map, or several (e.g. one per layer).
    n_targets : int
        Columns of the space the map belongs to.
    output_file : str or Path
        Named in the message when the shape is wrong.
    """
    array = np.asarray(values, dtype=np.float32)
    if array.ndim not in (1, 2) or array.shape[-1] != n_targets:
        raise InputError(
            f"{output_file}: expected values of shape ({n_targets},) or (n_maps, {n_targets}) "
            f"for this space, found shape {array.shape}.")
    return np.atleast_2d(array)
