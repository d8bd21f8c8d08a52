"""Four real input layouts built small, each a complete study ``encoding.run`` can analyse.

- ``volume``: fMRIPrep MNI152 NIfTI runs with a brain mask (BIDS names with ``space-MNI152NLin2009cAsym``),
  a NIfTI label atlas with a TSV of names;
- ``gifti``: fMRIPrep fsaverage5 ``hemi-L``/``hemi-R`` ``.func.gii`` pairs (10242 vertices each), the
  built-in atlas (``auto``);
- ``cifti``: CIFTI-2 dense time series on fsLR-32k surfaces plus subcortical voxels (a subsample of the
  91k grayordinates, named ``space-fsLR_den-91k`` as fMRIPrep names them), a dlabel atlas on the same
  grayordinates;
- ``parcels``: an Algonauts-style HDF5 file of 1000 Schaefer-like parcels (one dataset per run), parcel
  names in Schaefer's colour-table format, a parcel -> network CSV whose 7 networks are the ROIs, and a
  NIfTI parcellation to paint.

Every study: a two-instruction, three-layer features store; five stimulus runs, the last held out and
watched twice (a repeat noise ceiling); targets driven by planted layers; a block permutation test and
a two-band joint fit and the layer weights, so every map of ``encoding.outputs.native_maps`` exists.
"""
import h5py
import nibabel as nib
import numpy as np
import yaml
from nibabel.cifti2.cifti2_axes import BrainModelAxis, LabelAxis, SeriesAxis

from features.delays import delay_run, zscore_run
from encoding.demo.toy_study import toy_features

N_RUNS, N_TRS, HIDDEN, N_LAYERS, TR = 5, 40, 4, 3, 2.0
DELAYS = [1, 2]
SUBJECT = "sub-01"
NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
LAYOUTS = ("volume", "gifti", "cifti", "parcels")


def _responses(caption, n_targets, rng):
    """Runs (n_TR, n_targets): target j read out from caption layer j % 3, plus noise; run 5 twice."""
    weights = rng.standard_normal((N_LAYERS, HIDDEN * len(DELAYS), n_targets))
    runs = []
    for run in list(range(N_RUNS)) + [N_RUNS - 1]:
        signal = np.zeros((N_TRS, n_targets))
        for layer in range(N_LAYERS):
            columns = np.arange(layer, n_targets, N_LAYERS)
            signal[:, columns] = delay_run(zscore_run(caption[run, layer]), DELAYS) @ weights[layer][:, columns]
        runs.append((100 + signal + rng.standard_normal(signal.shape)).astype(np.float32))
    return runs


def _entries(paths):
    stimuli = [f"run-{k + 1}" for k in range(N_RUNS)] + [f"run-{N_RUNS}"]
    return [{**path, "stimulus_run": stimulus, "tr": TR} for path, stimulus in zip(paths, stimuli)]


def _volume(folder, caption, rng):
    shape, affine = (6, 7, 5), np.array([[4.0, 0, 0, -12], [0, 4.0, 0, -14], [0, 0, 4.0, -10], [0, 0, 0, 1]])
    ijk = np.indices(shape).reshape(3, -1).T
    mask = ((((ijk - np.array(shape) / 2 + 0.5) / (np.array(shape) / 2)) ** 2).sum(1) <= 1.1).reshape(shape)
    name = "space-MNI152NLin2009cAsym_res-2"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / f"{SUBJECT}_{name}_desc-brain_mask.nii.gz")
    labels = np.where(mask, ijk[:, 0].reshape(shape) // 2 + 1, 0)
    nib.save(nib.Nifti1Image(labels.astype(np.int16), affine), folder / "atlas.nii.gz")
    (folder / "atlas.tsv").write_text("index\tname\n1\tleft\n2\tmiddle\n3\tright\n")
    paths = []
    for k, bold in enumerate(_responses(caption, int(mask.sum()), rng)):
        image = np.zeros(shape + (N_TRS,), np.float32)
        image[mask] = bold.T
        path = f"{SUBJECT}_task-movie_run-{k + 1}_{name}_desc-preproc_bold.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), folder / path)
        paths.append({"path": path, "mask": f"{SUBJECT}_{name}_desc-brain_mask.nii.gz"})
    return paths, {"atlas": "atlas.nii.gz", "lut": "atlas.tsv"}


def write_gifti(path, series, structure):
    """One 1D darray per time point, as fMRIPrep writes ``.func.gii``."""
    image = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure}))
    for row in series:
        image.add_gifti_data_array(nib.gifti.GiftiDataArray(row.astype(np.float32)))
    nib.save(image, path)


def _gifti(folder, caption, rng):
    n = 10242
    paths = []
    for k, bold in enumerate(_responses(caption, 2 * n, rng)):
        entry = {}
        for side, hemi, structure, block in (("left", "L", "CortexLeft", bold[:, :n]),
                                              ("right", "R", "CortexRight", bold[:, n:])):
            entry[side] = f"{SUBJECT}_task-movie_run-{k + 1}_hemi-{hemi}_space-fsaverage5_bold.func.gii"
            write_gifti(folder / entry[side], block, structure)
        paths.append(entry)
    return paths, {"atlas": "auto"}


def cifti_grayordinates(rng):
    """Surface vertices of both 32k meshes and voxels of two subcortical structures, in CIFTI order."""
    left = BrainModelAxis.from_surface(np.sort(rng.choice(32492, 80, replace=False)), 32492, "CortexLeft")
    right = BrainModelAxis.from_surface(np.sort(rng.choice(32492, 70, replace=False)), 32492, "CortexRight")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-90, -126, -72)
    thalamus = np.zeros((91, 109, 91), bool)
    thalamus[40:42, 50:52, 35:37] = True
    voxels = BrainModelAxis.from_mask(thalamus, affine=affine, name="ThalamusLeft")
    return left + right + voxels


def _cifti(folder, caption, rng):
    brain_models = cifti_grayordinates(rng)
    keys = (np.arange(len(brain_models)) % 3 + 1)[None].astype(np.float32)
    table = {0: ("???", (0, 0, 0, 0)), 1: ("early", (1, 0, 0, 1)), 2: ("middle", (0, 1, 0, 1)),
             3: ("late", (0, 0, 1, 1))}
    nib.save(nib.Cifti2Image(keys, header=(LabelAxis(["rois"], [table]), brain_models)), folder / "rois.dlabel.nii")
    paths = []
    for k, bold in enumerate(_responses(caption, len(brain_models), rng)):
        path = f"{SUBJECT}_task-movie_run-{k + 1}_space-fsLR_den-91k_bold.dtseries.nii"
        nib.save(nib.Cifti2Image(bold, header=(SeriesAxis(0, TR, N_TRS), brain_models)), folder / path)
        paths.append({"path": path})
    return paths, {"atlas": "rois.dlabel.nii"}


def schaefer_names(n=1000):
    """Schaefer-style parcel names: 7Networks_<LH|RH>_<network>_<k>, networks in blocks per hemisphere."""
    names, per_hemisphere = [], n // 2
    for hemi in ("LH", "RH"):
        for i in range(per_hemisphere):
            network = NETWORKS[i * len(NETWORKS) // per_hemisphere]
            names.append(f"7Networks_{hemi}_{network}_{i + 1}")
    return names


def _parcels(folder, caption, rng):
    n = 1000
    lines = [f"{k + 1}\t{name}\t{(k * 7) % 255}\t{(k * 13) % 255}\t{(k * 29) % 255}\t0"
             for k, name in enumerate(schaefer_names(n))]
    (folder / "Schaefer2018_1000Parcels_7Networks_order.txt").write_text("\n".join(lines) + "\n")
    labels = (np.arange(n) + 1).reshape(10, 10, 10)       # parcel k is label k + 1, label order = parcel order
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(labels.astype(np.int16), affine),
             folder / "Schaefer2018_1000Parcels_7Networks_order_FSLMNI152_2mm.nii.gz")
    file = f"{SUBJECT}_task-movie_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5"
    paths = []
    with h5py.File(folder / file, "w") as handle:
        for k, bold in enumerate(_responses(caption, n, rng)):
            handle[f"ses-001_task-movie_run-{k + 1}"] = bold
            paths.append({"path": file, "dataset": f"ses-001_task-movie_run-{k + 1}"})
    rows = [f"{name},{name.split('_')[2]}" for name in schaefer_names(n)]
    (folder / "networks.csv").write_text("parcel,network\n" + "\n".join(rows) + "\n")
    return paths, {"atlas": "networks.csv", "names": "Schaefer2018_1000Parcels_7Networks_order.txt",
                   "parcellation": "Schaefer2018_1000Parcels_7Networks_order_FSLMNI152_2mm.nii.gz"}


_WRITERS = {"volume": _volume, "gifti": _gifti, "cifti": _cifti, "parcels": _parcels}


def write_layout_study(folder, layout, seed=0):
    """Write one layout's data and config into ``folder``; return the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    caption = toy_features(rng, folder, N_RUNS, N_LAYERS, N_TRS, HIDDEN, TR)
    paths, rois = _WRITERS[layout](folder, caption, rng)
    config = {"name": layout, "features_dir": "features", "models": ["toy"], "instructions": ["caption", "action"],
              "subjects": {SUBJECT: {"runs": _entries(paths)}}, "test_runs": [f"run-{N_RUNS}"], "delays": DELAYS,
              "alphas": {"logspace": [-1, 4, 6]}, "rois": rois, "flatmap": False, "n_permutations": 20,
              "permutation_block": 5, "n_bootstrap": 20, "banded_iterations": 3, "layer_weights": {"ratios": 1},
              "joint": [{"name": "early+late", "bands": [{"model": "toy", "instruction": "caption", "layer": 0},
                                                         {"model": "toy", "instruction": "caption", "layer": 2}]}]}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
