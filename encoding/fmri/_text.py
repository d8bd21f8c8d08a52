"""Runs stored as plain text: one row per TR, one column per target (ROI or parcel time courses).

Many shared datasets give ROI time courses this way (Brennan et al. 2016's Alice data: 362 rows x 6
columns of whitespace-separated numbers, ``LATL RATL LPTL LIPL LPreM LIFG`` named only in a README).
A ``.txt``/``.dat`` file is whitespace-separated, ``.csv`` comma-separated and ``.tsv`` tab-separated.
The targets' names come from the run entry's ``names`` list, else from a header row (a first row
that is not all numbers), else they are ``parcel_1``, ... like any array of parcels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from features.tables import read_text_table

from ._paths import map_rows, resolve_file, strip_suffixes
from ._space import TargetSpace


def load_text(run: Mapping, base_dir: Path) -> tuple[np.ndarray, TargetSpace]:
    """Load a text/CSV/TSV run ``(n_TR, n_targets)``; ``run["names"]`` names the columns."""
    path = resolve_file(run, "path", base_dir, "a text file of time courses")
    values, names = read_text_table(path, run.get("names"))
    return (np.ascontiguousarray(values, dtype=np.float32),
            TargetSpace(kind="parcels", n_targets=values.shape[1] if values.ndim == 2 else 0, file_format="text",
                        source=str(path), names=tuple(names) if names else None))


def text_shape(run: Mapping, base_dir: Path) -> tuple[int, int]:
    """(n_TR, n_targets) of a text run (the file is read: text has no header to peek at)."""
    data, _ = load_text(run, base_dir)
    return tuple(int(n) for n in data.shape)


def save_text_map(values, space: TargetSpace, output_file, names=None) -> Path:
    """Write ``(n_targets,)`` or ``(n_maps, n_targets)`` as a TSV: one row per target, named, one column per map."""
    rows = map_rows(values, space.n_targets, output_file)
    path = strip_suffixes(output_file, (".tsv",))
    path = path.with_name(path.name + ".tsv")
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(names) if names is not None and len(names) == len(rows) else (
        ["value"] if len(rows) == 1 else [f"map_{k + 1}" for k in range(len(rows))])
    targets = list(space.names) if space.names else [f"parcel_{i + 1}" for i in range(space.n_targets)]
    frame = pd.DataFrame(rows.T, columns=columns)
    frame.insert(0, "target", targets)
    frame.to_csv(path, sep="\t", index=False, float_format="%.6g")
    return path
