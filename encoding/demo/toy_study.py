"""A toy study that runs in seconds: three simulated subjects in a coarse MNI volume.

For tests and for trying the analyses (ceilings, permutations, group tests, hierarchy, flatmaps)
without the full demo. Everything is simulated: a 5-layer "toy" features store answered under two
instructions, and 12 mm voxels of an ellipsoidal "brain" cut from back to front into five ROIs,
each driven by one layer of the ``caption`` features (the planted depth gradient: ROI k by layer
k, level k + 1). Subjects share the response and differ in noise; sub-01 also watched the test
run twice.
"""
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from features.delays import delay_run
from features.store import FeatureStore
from instructions import resolve

ROIS = ("occipital", "temporal", "parietal", "premotor", "prefrontal")   # back to front, layer k drives ROI k
N_LAYERS, HIDDEN, N_RUNS, N_TRS, TR = 5, 6, 5, 60, 2.0
DELAYS = [1, 2]
SHAPE, VOXEL_MM, ORIGIN = (16, 19, 16), 12.0, (-90.0, -126.0, -72.0)
SUBJECTS = ("sub-01", "sub-02", "sub-03")


def _affine():
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = ORIGIN
    return affine


def _labels():
    """ROI label per voxel (0 outside the brain): an ellipsoid cut into five slabs along y."""
    ijk = np.indices(SHAPE).reshape(3, -1).T
    xyz = ijk * VOXEL_MM + np.array(ORIGIN)
    inside = (((xyz - [0.0, -18.0, 15.0]) / [68.0, 100.0, 62.0]) ** 2).sum(1) <= 1
    edges = np.quantile(xyz[inside, 1], np.linspace(0, 1, len(ROIS) + 1)[1:-1])
    labels = np.where(inside, np.searchsorted(edges, xyz[:, 1]) + 1, 0)
    return labels.reshape(SHAPE)


def toy_features(rng, folder, n_runs=N_RUNS, n_layers=N_LAYERS, n_trs=N_TRS, hidden=HIDDEN, tr=TR):
    """A two-instruction (caption, action) features store of random layers, ``<folder>/features/toy.h5``.

    Returns
    -------
    the caption layers, array of shape (n_runs, n_layers, n_trs, hidden)
    """
    layers = {name: rng.standard_normal((n_runs, n_layers, n_trs, hidden)).astype(np.float32)
              for name in ("caption", "action")}
    prompts = resolve(list(layers))
    with FeatureStore(folder / "features" / "toy.h5", "a", {"model_id": "toy", "tr": tr}) as store:
        for instruction, values in layers.items():
            for run in range(n_runs):
                store.create_run(instruction, f"run-{run + 1}", n_trs, [hidden] * n_layers, prompts[instruction])
                store.write_clips(instruction, f"run-{run + 1}", slice(None), list(values[run]))
    return layers["caption"]


def _bold(rng, caption, labels, weights, run, noise=1.5):
    """One run of one subject, (x, y, z, n_TR): the planted layer of each ROI plus noise."""
    bold = noise * rng.standard_normal(SHAPE + (N_TRS,))
    for k in range(len(ROIS)):
        signal = delay_run(caption[run, k], DELAYS) @ weights[k]
        bold[labels == k + 1] += signal.T
    return (bold + 100).astype(np.float32)


def write_toy_study(folder, seed=0):
    """Write the toy study's data and config into ``folder``; return the config path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    caption = toy_features(rng, folder)
    labels = _labels()
    nib.save(nib.Nifti1Image(labels.astype(np.int16), _affine()), folder / "rois.nii.gz")
    (folder / "rois.tsv").write_text("index\tname\n" + "".join(f"{k + 1}\t{n}\n" for k, n in enumerate(ROIS)))
    nib.save(nib.Nifti1Image((labels > 0).astype(np.uint8), _affine()), folder / "mask.nii.gz")
    weights = [rng.standard_normal((HIDDEN * len(DELAYS), int((labels == k + 1).sum()))) * 0.5
               for k in range(len(ROIS))]
    subjects = {}
    for subject in SUBJECTS:
        runs = []
        presentations = list(range(N_RUNS)) + ([N_RUNS - 1] if subject == "sub-01" else [])
        for i, run in enumerate(presentations):
            name = f"{subject}_run-{run + 1}{'_rep-2' if i >= N_RUNS else ''}_bold.nii.gz"
            nib.save(nib.Nifti1Image(_bold(rng, caption, labels, weights, run), _affine()), folder / name)
            runs.append({"path": name, "mask": "mask.nii.gz", "stimulus_run": f"run-{run + 1}", "tr": TR})
        subjects[subject] = {"runs": runs}
    config = {"name": "toy", "features_dir": "features", "models": ["toy"], "instructions": ["caption", "action"],
              "subjects": subjects, "test_runs": [f"run-{N_RUNS}"], "delays": DELAYS,
              "alphas": {"logspace": [-1, 4, 6]},
              "rois": {"atlas": "rois.nii.gz", "lut": "rois.tsv", "levels": {n: k + 1 for k, n in enumerate(ROIS)}},
              "joint": [{"name": "early+late", "bands": [{"model": "toy", "instruction": "caption", "layer": 0},
                                                         {"model": "toy", "instruction": "caption", "layer": 4}]}],
              "banded_iterations": 5, "flatmap": False, "n_permutations": 100, "n_bootstrap": 100,
              "noise_ceiling": {"n_bootstrap": 10}}
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path

