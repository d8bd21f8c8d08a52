"""Fitted encoders: one layer's ridge fit kept as weights, saved, loaded, and used to predict the responses to a
stimulus nobody scanned (an in-silico experiment).

An encoder is the primal weights of the ridge fit on the delayed, z-scored features of the training runs, at
each target's alpha chosen by cross-validation: ``W = (X^T X + alpha I)^-1 X^T y``, computed in float64 from
one eigendecomposition of the training design (``X X^T`` when features outnumber TRs, then ``W = X^T C``).
The fit's own held-out prediction is the same algebra, so a saved encoder predicts the test run as the fit did
(to float rounding). A new stimulus's features are z-scored over its own run, as every run is, then delayed.

File layout (HDF5; no pickles), one file per subject, model, instruction and layer::

    /                       attrs: format, subject, model, instruction, layer, delays (JSON), store (its path
                            when saved), store_parameters (JSON: the features store's compared parameters),
                            prompt, hidden, n_targets, trained_on (JSON: the training runs), space (description),
                            space_kind, file_format
    /weights                float32 (n_delays * hidden, n_fitted): columns are the fitted targets
    /alpha                  float32 (n_fitted,)
    /fitted                 int64 (n_fitted,): the target index of each column (others are predicted NaN)
    /zscore/<run>/{mean, std}   float64 (hidden,): the training runs' feature statistics (provenance)
    /space                  what writing maps back needs: volumes mask (uint8, attrs affine); CIFTI
                            brain_models/{name, voxel, vertex} (attrs affine, volume_shape, nvertices); GIFTI
                            attrs n_vertices; parcels attrs names (JSON)
"""
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.linalg

from features.delays import delay_run, zscore_run
from features.errors import InputError
from features.store import PARAMETER_KEYS, from_attr, open_hdf5, to_attr

from .design import layer_design, stack
from .fmri import TargetSpace
from .outputs.scores_file import ScoresFile
from .ridge import fit_threads, limited_threads

log = logging.getLogger(__name__)

FORMAT = 1
#: the run config's fields :func:`save_fitted_encoders` reads (``encoding.config.fields``)
SAVE_FIELDS = ("delays", "trim", "threads")
#: targets solved at once when forming the weights (float64 copies of their responses)
_TARGET_BATCH = 4096


@dataclass
class FittedEncoder:
    """One layer's fitted encoding model (module docstring).

    Attributes
    ----------
    weights : float32 array of shape (n_delays * hidden, n_fitted)
    alpha : float32 array of shape (n_fitted,)
    fitted : int array of shape (n_fitted,), target index of each column
    n_targets : int
    delays : list of int
    space : TargetSpace, or None when the file holds no space to write maps in
    info : dict, the provenance attributes (subject, model, instruction, layer, store_parameters, ...)
    zscore : dict run -> (mean, std) of the training features
    """

    weights: np.ndarray
    alpha: np.ndarray
    fitted: np.ndarray
    n_targets: int
    delays: list
    space: TargetSpace = None
    info: dict = field(default_factory=dict)
    zscore: dict = field(default_factory=dict)

    def predict(self, features):
        """Responses predicted from one run's features.

        Parameters
        ----------
        features : array of shape (n_TR, hidden), raw (z-scored here over the run, then delayed)

        Returns
        -------
        float32 array of shape (n_TR, n_targets), NaN for targets the fit left out
        """
        features = np.asarray(features)
        hidden = self.weights.shape[0] // len(self.delays)
        if features.ndim != 2 or features.shape[1] != hidden:
            raise InputError(f"features: expected an array (n_TR, {hidden}) for this encoder, found shape "
                             f"{features.shape}.")
        design = delay_run(zscore_run(features), self.delays)
        out = np.full((len(design), self.n_targets), np.nan, dtype=np.float32)
        out[:, self.fitted] = (design @ self.weights.astype(np.float64)).astype(np.float32)
        return out


def ridge_weights(X, Y, alpha):
    """Primal ridge weights of each target at its own alpha, without an intercept (as the engine fits).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    Y : array of shape (n_samples, n_targets)
    alpha : array of shape (n_targets,)

    Returns
    -------
    float32 array of shape (n_features, n_targets)
    """
    X = np.asarray(X, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    n, p = X.shape
    primal = p <= n
    eigenvalues, vectors = scipy.linalg.eigh(X.T @ X if primal else X @ X.T, driver="evd", check_finite=False)
    eigenvalues = np.clip(eigenvalues, 0, None)
    weights = np.empty((p, Y.shape[1]), dtype=np.float32)
    for start in range(0, Y.shape[1], _TARGET_BATCH):
        block = slice(start, start + _TARGET_BATCH)
        y = np.asarray(Y[:, block], dtype=np.float64)
        projected = vectors.T @ (X.T @ y if primal else y)
        for value in np.unique(alpha[block]):
            columns = np.flatnonzero(alpha[block] == value)
            solved = vectors @ (projected[:, columns] / (eigenvalues + value)[:, None])
            weights[:, start + columns] = solved if primal else X.T @ solved
    return weights


def save_encoder(path, encoder):
    """Write an encoder (``FittedEncoder``) to ``path`` (HDF5, the module docstring's layout), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with h5py.File(tmp, "w") as handle:
        handle.create_dataset("weights", data=np.asarray(encoder.weights, np.float32))
        handle.create_dataset("alpha", data=np.asarray(encoder.alpha, np.float32))
        handle.create_dataset("fitted", data=np.asarray(encoder.fitted, np.int64))
        for run, (mean, std) in encoder.zscore.items():
            handle.create_dataset(f"zscore/{run}/mean", data=np.asarray(mean, np.float64))
            handle.create_dataset(f"zscore/{run}/std", data=np.asarray(std, np.float64))
        info = {key: to_attr(value) for key, value in encoder.info.items()}
        handle.attrs.update(format=FORMAT, n_targets=int(encoder.n_targets), delays=json.dumps(list(encoder.delays)),
                            **info)
        if encoder.space is not None:
            _write_space(handle.create_group("space"), encoder.space)
    tmp.replace(path)
    return path


def load_encoder(path):
    """Read an encoder written by :func:`save_encoder`; InputError naming the file when it is not one."""
    path = Path(path)
    with open_hdf5(path, "encoder file", missing=" (field '--model')") as handle:
        if int(handle.attrs.get("format", -1)) != FORMAT or "weights" not in handle:
            raise InputError(f"{path}: field 'format' is {handle.attrs.get('format')!r}: not an encoder of this "
                             f"version (format {FORMAT}); save it again with encoding.run --save-models.")
        info = {key: from_attr(value) for key, value in handle.attrs.items()
                if key not in ("format", "n_targets", "delays")}
        zscore = {run: (handle[f"zscore/{run}/mean"][()], handle[f"zscore/{run}/std"][()])
                  for run in handle.get("zscore", {})}
        space = _read_space(handle["space"], info) if "space" in handle else None
        return FittedEncoder(handle["weights"][()], handle["alpha"][()], handle["fitted"][()],
                             int(handle.attrs["n_targets"]), json.loads(handle.attrs["delays"]), space, info, zscore)


def check_store(encoder, parameters, store_path):
    """InputError unless a features store was written with the parameters the encoder was trained on."""
    trained = {key: value for key, value in (encoder.info.get("store_parameters") or {}).items()
               if key in PARAMETER_KEYS}
    for key, value in trained.items():
        found = parameters.get(key, "not recorded")   # a store's parameters, already plain values
        if found != value:
            raise InputError(f"{store_path}: field '{key}' is {found!r}, but the encoder was trained on features "
                             f"with {key} = {value!r}; predict from a store extracted with the same settings.")


def _write_space(group, space):
    group.attrs.update(kind=space.kind, n_targets=int(space.n_targets), file_format=space.file_format,
                       source=space.source)
    if space.masker is not None:
        mask = space.masker.mask_img_
        group.create_dataset("mask", data=(np.asarray(mask.dataobj) != 0).astype(np.uint8))
        group["mask"].attrs["affine"] = mask.affine
    if space.brain_models is not None:
        models = space.brain_models
        sub = group.create_group("brain_models")
        sub.create_dataset("name", data=np.asarray(models.name, dtype=h5py.string_dtype()))
        sub.create_dataset("voxel", data=np.asarray(models.voxel, np.int64))
        sub.create_dataset("vertex", data=np.asarray(models.vertex, np.int64))
        sub.attrs.update(affine=models.affine if models.affine is not None else np.eye(4),
                         volume_shape=json.dumps(list(models.volume_shape) if models.volume_shape else None),
                         nvertices=json.dumps(dict(models.nvertices)))
    if space.n_vertices is not None:
        group.attrs["n_vertices"] = json.dumps(list(space.n_vertices))
    if space.names:
        group.attrs["names"] = json.dumps(list(space.names))


def _read_space(group, info):
    kind, n_targets = str(group.attrs["kind"]), int(group.attrs["n_targets"])
    file_format, source = str(group.attrs["file_format"]), str(group.attrs.get("source", ""))
    if "mask" in group:
        import nibabel as nib
        from nilearn.maskers import NiftiMasker

        mask = nib.Nifti1Image(group["mask"][()], group["mask"].attrs["affine"])
        return TargetSpace(kind, n_targets, file_format, source, masker=NiftiMasker(mask_img=mask).fit())
    if "brain_models" in group:
        from nibabel.cifti2.cifti2_axes import BrainModelAxis

        sub = group["brain_models"]
        shape = json.loads(sub.attrs["volume_shape"])
        models = BrainModelAxis(name=[n.decode() if isinstance(n, bytes) else n for n in sub["name"][()]],
                                voxel=sub["voxel"][()], vertex=sub["vertex"][()], affine=sub.attrs["affine"],
                                volume_shape=tuple(shape) if shape else None,
                                nvertices=json.loads(sub.attrs["nvertices"]))
        return TargetSpace(kind, n_targets, file_format, source, brain_models=models)
    n_vertices = json.loads(group.attrs["n_vertices"]) if "n_vertices" in group.attrs else None
    names = json.loads(group.attrs["names"]) if "names" in group.attrs else None
    return TargetSpace(kind, n_targets, file_format, source, n_vertices=tuple(n_vertices) if n_vertices else None,
                       names=tuple(names) if names else None)


def save_fitted_encoders(settings, folder, subjects, specs, work, stores, prompts):
    """Write every layer fit of a finished sweep as an encoder file into ``<folder>/models/`` (``--save-models``).

    The weights are formed from the fit's own design and alphas (read from its fit file); one file per subject,
    model, instruction and layer, named ``sub-<s>_model-<m>_task-<instruction>_layer-<k>_encoder.h5``.
    ``settings``: the run config's :data:`SAVE_FIELDS`.

    Returns
    -------
    list of Path written
    """
    written, responses = [], {}   # subject -> its training runs' responses, stacked once
    for spec in specs:
        if spec["kind"] != "layer" or spec.get("band_only"):
            continue
        band = spec["bands"][0]
        data = subjects[spec["subject"]].data
        store = stores[band["model"]]
        design = layer_design(store, band["instruction"], band["layer"], data, settings["delays"], settings["trim"])
        X_train, _ = stack(design, data.train)
        if spec["subject"] not in responses:
            responses[spec["subject"]] = stack([bold[:, data.valid] for bold in data.bold], data.train)[0]
        Y_train = responses[spec["subject"]]
        with ScoresFile(work.fit_path(spec["fingerprint"])) as fit:
            alpha = fit.read(spec["key"], "alpha")[data.valid]
        zscore = {}
        for i in data.train:
            run = data.feature_runs[i]
            if run not in zscore:
                raw = store.read_layer(band["instruction"], run, band["layer"])[:data.n_keep[i]].astype(np.float64)
                rows = data.fit_rows[i] if data.fit_rows and data.fit_rows[i] else [(0, len(raw))]
                fitted = np.concatenate([raw[a:b] for a, b in rows])
                zscore[run] = (fitted.mean(0), fitted.std(0))
        info = {"subject": spec["subject"], "model": band["model"], "instruction": band["instruction"],
                "layer": int(band["layer"]), "store": str(store.path), "prompt": prompts.get(band["instruction"], ""),
                "store_parameters": {k: v for k, v in store.parameters.items() if k in PARAMETER_KEYS},
                "hidden": int(X_train.shape[1] // len(settings["delays"])),
                "trained_on": [data.run_names[i] for i in data.train],
                "space": data.space.describe(), "space_kind": data.space.kind, "fingerprint": spec["fingerprint"]}
        # the weights are the largest products after the sweep: the threads a fit of this shape gets, not the
        # one thread the tables around this call run on
        with limited_threads(fit_threads(*X_train.shape, settings["threads"])):
            weights = ridge_weights(X_train, Y_train, alpha)
        encoder = FittedEncoder(weights, alpha, np.flatnonzero(data.valid),
                                data.n_targets, list(settings["delays"]), data.space, info, zscore)
        name = (f"sub-{_label(spec['subject'])}_model-{_label(band['model'])}_task-{_label(band['instruction'])}"
                f"_layer-{int(band['layer'])}_encoder.h5")
        written.append(save_encoder(Path(folder) / "models" / name, encoder))
    log.info("wrote %d encoder(s) to %s", len(written), Path(folder) / "models")
    return written


def _label(text):
    """A BIDS label: letters and digits only."""
    return "".join(ch for ch in str(text) if ch.isalnum())
