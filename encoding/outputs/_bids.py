"""BIDS-derivatives file names and the ``dataset_description.json`` of an output folder.

A map is named ``sub-<s>[_hemi-<L|R>][_space-..][_res-..][_den-..][_atlas-..][_parcel-..]_model-<m>
[_task-<instruction>][_joint-<j>]_stat-<stat>[_desc-<d>]_statmap.<ext>`` under ``sub-<s>/func/``:

- ``space``, ``res``, ``den``, ``atlas`` and ``parcel`` are copied from the input run's file name
  (fMRIPrep's ``space-MNI152NLin2009cAsym_res-2``, ``space-fsaverage5``, ``space-fsLR_den-91k``, the
  Algonauts release's ``atlas-Schaefer18_parcel-1000Par7Net``); an input without them gets the space its
  targets were recognised as (``space-fsaverage5``, ``space-fsLR_den-32k``...), a volume none (BIDS: the
  input's own space);
- ``model`` is the features store, ``task`` the *instruction the model was given* (the task asked of the
  model, not the fMRI task, which the input files name), ``joint`` a banded fit;
- ``stat`` is what the values are and ``desc`` where they were taken (``bestlayer``: at each target's
  CV-best layer) or which band (unique variance).

BIDS labels are letters and digits only, so ``qwen2.5-vl`` becomes ``qwen25vl`` and ``sub-01`` gives
``01``; ``maps.tsv`` beside the maps lists every file with the original names.
"""
import json
import re
from pathlib import Path

#: entity order of a map's name (BIDS order for the standard entities, ours after ``parcel``)
ENTITIES = ("sub", "hemi", "space", "res", "den", "atlas", "parcel", "model", "task", "joint", "stat", "desc")
INPUT_ENTITIES = ("space", "res", "den", "atlas", "parcel")
BIDS_VERSION = "1.10.0"
SUFFIX = "statmap"
_DEFAULT_SPACE = {"fsaverage3": {"space": "fsaverage3"}, "fsaverage4": {"space": "fsaverage4"},
                  "fsaverage5": {"space": "fsaverage5"}, "fsaverage6": {"space": "fsaverage6"},
                  "fsaverage": {"space": "fsaverage"}, "fsLR164k": {"space": "fsLR", "den": "164k"}}


def label(value):
    """A BIDS label: letters and digits only ("qwen2.5-vl" -> "qwen25vl", "sub-01" -> "01")."""
    text = re.sub(r"^sub-", "", str(value))
    return re.sub(r"[^A-Za-z0-9]", "", text) or "x"


def input_entities(space):
    """The space entities of a map written for runs in ``space`` (module docstring).

    Parameters
    ----------
    space : encoding.fmri.TargetSpace

    Returns
    -------
    dict entity -> label, in ENTITIES order
    """
    name = Path(str(space.source).split(" + ")[0].split(" (dataset")[0]).name
    found = {key: m.group(1) for key in INPUT_ENTITIES
             for m in [re.search(rf"(?:^|_){key}-([A-Za-z0-9]+)", name)] if m}
    if "space" in found:
        return found
    if space.kind == "fsLR32k":
        return {"space": "fsLR", "den": "91k" if space.n_targets == 91282 else "32k"}
    return dict(_DEFAULT_SPACE.get(space.kind, {}))


def map_name(entities, extension):
    """``sub-01_space-..._stat-r_desc-bestlayer_statmap<extension>`` from entity -> label (labels cleaned)."""
    parts = [f"{key}-{label(entities[key])}" for key in ENTITIES if entities.get(key) not in (None, "")]
    return "_".join(parts + [SUFFIX]) + extension


def dataset_description(name, version, config, commit=None):
    """The ``dataset_description.json`` of a derivatives folder (BIDS ``GeneratedBy``)."""
    generated = {"Name": "mllm-encoding", "Version": version,
                 "Description": "voxel-wise encoding of fMRI with the layers of multimodal models: maps in the "
                                "input's own space (maps.tsv lists them)",
                 "Config": config}
    if commit:
        generated["GitCommit"] = commit
    return {"Name": f"mllm-encoding maps: {name}", "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": [generated]}


def write_json(path, content):
    Path(path).write_text(json.dumps(content, indent=2, default=str) + "\n")
