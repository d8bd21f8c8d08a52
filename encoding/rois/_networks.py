"""Parcel names and parcel -> network files, for data whose targets are parcels (e.g. Schaefer-1000).

A parcel is named by its 0-based target index (the column of the data) or by its name in ``rois.names``.

Names (``rois.names``): a list, or a file: one name per line; a colour table whose lines hold an index
and a name among numbers (Schaefer's ``*_order.txt`` "1 7Networks_LH_Vis_1 120 18 134 0", FSL's
``*.lut`` "1 0.47 0.07 0.53 7Networks_LH_Vis_1": the name is the first field that is not a number); a
TSV/CSV with a ``name`` column; a YAML/JSON list.

Networks, one of:

- YAML/JSON, network -> list of parcels: ``{Vis: [0, 1, 2], SomMot: [3, 4]}`` or with names
  (the ROI -> target indices file the engine and ``encoding.rsa`` have always read);
- YAML/JSON, parcel -> network: ``{7Networks_LH_Vis_1: Vis, 7Networks_LH_Vis_2: Vis}`` (or target indices
  as keys);
- CSV/TSV with a ``network`` column and a parcel column: ``target`` (0-based index) or ``parcel`` /
  ``name`` (a name).

Schaefer names carry their network ("7Networks_LH_Vis_1" is in Vis, "17Networks_RH_DefaultA_PCC_2" in
DefaultA): :func:`networks_from_names` reads it, so a names file alone groups Schaefer parcels.
"""
import csv
import re
from pathlib import Path

import numpy as np
import yaml

from features.errors import InputError

_SCHAEFER = re.compile(r"^\d+Networks_[LR]H_([A-Za-z]+)")


def read_names(value, n_targets=None, field="rois.names"):
    """Parcel names in target order from a list or a file (module docstring).

    Parameters
    ----------
    value : sequence of str, or str / Path of a file
    n_targets : int or None
        The data's targets: the names must be as many (None: not checked).
    field : str
        Named in messages.

    Returns
    -------
    list of str
    """
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise InputError(f"{path}: field '{field}' expected a file of parcel names, found no such file.")
        names = _names_from_file(path, field)
        where = path
    else:
        names, where = [str(name) for name in value], "config"
    if n_targets is not None and len(names) != n_targets:
        raise InputError(f"{where}: field '{field}' expected {n_targets} names, one per target of the data, "
                         f"found {len(names)}.")
    if len(set(names)) != len(names):
        repeated = next(name for name in names if names.count(name) > 1)
        raise InputError(f"{where}: field '{field}' expected unique names, found {repeated!r} twice.")
    return names


def _names_from_file(path, field):
    suffix = path.name.lower()
    if suffix.endswith((".yaml", ".yml", ".json")):
        names = yaml.safe_load(path.read_text())
        if not isinstance(names, list):
            raise InputError(f"{path}: field '{field}' expected a list of names, found {type(names).__name__}.")
        return [str(name) for name in names]
    if suffix.endswith((".tsv", ".csv")):
        rows = _table(path)
        if rows and "name" in rows[0]:
            return [row["name"] for row in rows]
        found = ", ".join(rows[0]) if rows else "no rows"
        raise InputError(f"{path}: field '{field}' expected a 'name' column, found {found}.")
    names = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or line.lstrip().startswith("#"):
            continue
        words = [f for f in fields if not _is_number(f)]
        names.append(words[0] if words and len(fields) > 1 else line.strip())
    return names


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _table(path):
    """Rows of a TSV/CSV as dicts with lower-case column names."""
    text = path.read_text()
    delimiter = "\t" if path.name.lower().endswith(".tsv") or "\t" in text.splitlines()[0] else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]


def read_networks(path, names, field="rois.atlas"):
    """Target indices of each network in a parcel -> network file (module docstring).

    Parameters
    ----------
    path : Path
    names : list of str
        The parcels' names in target order (``read_names`` or the default ``parcel_0001``...).
    field : str
        Named in messages.

    Returns
    -------
    networks : dict network -> sorted target indices, networks in order of first appearance
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: field '{field}' expected a parcel -> network file, found no such file.")
    if path.name.lower().endswith((".csv", ".tsv")):
        pairs = _pairs_from_table(path, field)
    else:
        try:
            mapping = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise InputError(f"{path}: field '{field}' is not valid YAML ({str(err).splitlines()[0]}).") from None
        if not isinstance(mapping, dict):
            raise InputError(f"{path}: field '{field}' expected a mapping of network to parcels (or parcel to "
                             f"network), found {type(mapping).__name__}.")
        pairs = _pairs_from_mapping(mapping, path)
    return _group(pairs, names, path)


def _pairs_from_mapping(mapping, path):
    """(parcel, network) pairs from network -> [parcels] or parcel -> network."""
    lists = [isinstance(v, (list, tuple)) for v in mapping.values()]
    if all(lists):
        return [(parcel, str(network)) for network, parcels in mapping.items() for parcel in parcels]
    if not any(lists):
        return [(parcel, str(network)) for parcel, network in mapping.items()]
    raise InputError(f"{path}: field 'networks' expected either network -> list of parcels or parcel -> network "
                     f"throughout, found both.")


def _pairs_from_table(path, field):
    rows = _table(path)
    columns = list(rows[0]) if rows else []
    parcel = next((c for c in ("target", "parcel", "name") if c in columns), None)
    if "network" not in columns or parcel is None:
        raise InputError(f"{path}: field '{field}' expected a 'network' column and a 'target' (0-based index) or "
                         f"'parcel' (name) column, found {', '.join(columns) or 'no rows'}.")
    return [(int(row[parcel]) if parcel == "target" else row[parcel], row["network"]) for row in rows]


def _group(pairs, names, path):
    index_of = {name: i for i, name in enumerate(names)}
    members, network_of = {}, {}
    for parcel, network in pairs:
        if isinstance(parcel, (int, np.integer)) and not isinstance(parcel, bool):
            if not 0 <= parcel < len(names):
                raise InputError(f"{path}: field '{network}' holds target index {parcel}, outside "
                                 f"0..{len(names) - 1}.")
            target = int(parcel)
        elif str(parcel) in index_of:
            target = index_of[str(parcel)]
        else:
            raise InputError(f"{path}: field '{network}' names parcel {parcel!r}, which is not among the "
                             f"{len(names)} parcel names (rois.names, e.g. {names[0]!r}).")
        if network_of.get(target, network) != network:
            raise InputError(f"{path}: field '{network}' claims parcel {names[target]!r}, which is already in "
                             f"{network_of[target]!r}.")
        network_of[target] = network
        members.setdefault(network, []).append(target)
    return {network: np.unique(np.asarray(index, np.int64)) for network, index in members.items()}


def networks_from_names(names):
    """Parcel name -> network for Schaefer-style names ("7Networks_LH_Vis_1" -> "Vis"), or None if any
    name is not one."""
    found = {name: _SCHAEFER.match(name) for name in names}
    if not found or not all(found.values()):
        return None
    return {name: match.group(1) for name, match in found.items()}
