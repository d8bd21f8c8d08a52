"""``scores.h5``: per-target results of every fit of one analysis.

Layout::

    /                                         attrs: config (JSON), versions (JSON),
                                                     instructions (JSON name -> prompt)
    /<subject>                                attrs: train_runs, test_runs, files, space, cv,
                                                     space_kind, n_targets, test_run_lengths,
                                                     n_permutations (used), permutations_exact
    /<subject>/valid                          bool (n_targets,): False = NaN/constant in a training
                                              run, not fitted
    /<subject>/rois/{indices, offsets}        ROI targets, concatenated; attrs names (JSON)
    /<subject>/mask                           volumes only: the brain mask, attrs affine
    /<subject>/<model>                        attrs n_layers (layers the store holds)
    /<subject>/<model>/<instruction>/layer_<k>/{test_r, test_r2, cv_score, alpha}   (n_targets,)
    /<subject>/<model>/<instruction>/layer_<k>/{p_perm, q_perm}  block-permutation p of test r and
                                              its BH q over the targets of this fit
    /<subject>/<model>/<instruction>/best_layer        int (n_targets,), by CV score (-1 if unfitted)
    /<subject>/<model>/<instruction>/best_layer_{test_r, cv_score, p_perm, q_perm}   at that layer
                                              (q_perm: BH over the targets of this map)
    /<subject>/<model>/<instruction>/layer_weights/{test_r, test_r2, cv_score, alpha, preferred_depth}
                                              (n_targets,), weights (n_bands, n_targets) summing to 1
                                              per target, test_r2_split, band_weights; attrs band_layers,
                                              band_labels, band_depths, band_scales, n_layers, search,
                                              n_samples (``encoding.layer_weights``)
    /<subject>/<model>/best_instruction       int (n_targets,) index into attrs instructions, by
                                              the CV score at each instruction's best layer (-1)
    /<subject>/<model>/best_instruction_{test_r, p_perm, q_perm}   at that instruction (q_perm: BH
                                              over the targets of this map)
    /<subject>/noise_ceiling/ceiling          the ceiling of test r used to normalize (attrs method);
                                              with repeats also explainable_variance,
                                              split_half_reliability, repeat_ceiling
    /noise_ceiling/cross_subject/{ceiling, ci_low, ci_high} (n_targets,), curve (n_sizes, n_targets),
                                              subset_sizes; attrs method, subjects
    /<subject>/joint/<name>/{test_r, test_r2, cv_score, alpha}, test_r2_split and band_weights
                                              (n_bands, n_targets); attrs bands (JSON)
    /<subject>/joint/<name>/partition/{r2_a, r2_b, shared, unique_a, unique_b}  (n_targets,),
                                              two-band fits only; attrs band_a, band_b

Unfitted targets hold NaN, and so do the test scores of a fitted target that a test run cannot score
(NaN or constant there). The multiple-comparison families are defined in
``encoding.outputs.alignment.SIGNIFICANCE_FAMILIES``. Everything chosen (alpha, best layer, best instruction) comes from
training runs only.
"""
import json

import h5py
import numpy as np

from features.store import ClosedOnExit

from ..stats import fdr_bh

SCORE_FIELDS = ("test_r", "test_r2", "cv_score", "alpha")


def _full(values, valid):
    """Scatter per-valid-target values back to all targets, NaN elsewhere."""
    values = np.asarray(values)
    out = np.full(values.shape[:-1] + valid.shape, np.nan, dtype=np.float32)
    out[..., valid] = values
    return out


class ScoresFile(ClosedOnExit):
    """Writer/reader of scores.h5."""

    def __init__(self, path, mode="r"):
        self.path = path
        self._h5 = h5py.File(path, mode)

    def write_root(self, config, versions, instructions=None):
        self._h5.attrs["config"] = json.dumps(config, default=str)
        self._h5.attrs["versions"] = json.dumps(versions)
        self._h5.attrs["instructions"] = json.dumps(dict(instructions or {}))

    def write_subject(self, subject, valid, train_runs, test_runs, files, space, n_folds, space_kind=None,
                      test_run_lengths=None):
        group = self._h5.require_group(subject)
        group.create_dataset("valid", data=valid)
        group.attrs.update(train_runs=json.dumps(train_runs), test_runs=json.dumps(test_runs),
                           files=json.dumps(files), space=space, cv="leave-one-stimulus-out" if n_folds is None
                           else f"{n_folds} folds grouped by stimulus", n_targets=int(valid.size),
                           space_kind=space_kind or space.split(":")[0],
                           test_run_lengths=json.dumps([int(n) for n in test_run_lengths or []]))

    def write_rois(self, subject, rois):
        """ROI name -> target indices, kept so later analyses need no atlas."""
        group = self._h5.require_group(f"{subject}/rois")
        sizes = [len(index) for index in rois.values()]
        group.create_dataset("indices", data=np.concatenate([np.asarray(i, np.int64) for i in rois.values()])
                             if rois else np.zeros(0, np.int64))
        group.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
        group.attrs["names"] = json.dumps(list(rois))

    def read_rois(self, subject):
        """ROI name -> target indices as written by ``write_rois`` ({} for older files)."""
        if f"{subject}/rois" not in self._h5:
            return {}
        group = self._h5[f"{subject}/rois"]
        indices, offsets = group["indices"][()], group["offsets"][()]
        return {name: indices[offsets[i]:offsets[i + 1]] for i, name in enumerate(json.loads(group.attrs["names"]))}

    def write_mask(self, subject, mask, affine):
        """The brain mask of volume data, so maps can be unmasked and projected to a surface."""
        dataset = self._h5.require_group(subject).create_dataset("mask", data=np.asarray(mask, np.uint8),
                                                                 compression="gzip")
        dataset.attrs["affine"] = np.asarray(affine, np.float64)

    def write_array(self, key, name, values, valid=None, **attrs):
        """One per-target array under ``key``; with ``valid`` the values are for valid targets only."""
        values = _full(values, valid) if valid is not None else np.asarray(values)
        if f"{key}/{name}" in self._h5:
            del self._h5[f"{key}/{name}"]
        dataset = self._h5.require_group(key).create_dataset(name, data=values)
        dataset.attrs.update(attrs)
        return dataset

    def attrs(self, key="/"):
        return self._h5[key].attrs

    def __contains__(self, key):
        return key in self._h5

    def write_fit(self, key, scores, valid, **attrs):
        """Store one fit's RidgeScores (on valid targets) under ``key``."""
        group = self._h5.require_group(key)
        for name in SCORE_FIELDS:
            group.create_dataset(name, data=_full(getattr(scores, name), valid))
        for name in ("test_r2_split", "band_weights"):
            if getattr(scores, name) is not None:
                group.create_dataset(name, data=_full(getattr(scores, name), valid))
        group.attrs.update(solver=scores.solver, **attrs)

    def copy_fit(self, fit_file, key):
        """Copy the group ``key`` of a fit file (written with ``write_fit`` by a sweep's unit) to ``key``;
        returns ``key``."""
        parent, name = key.rsplit("/", 1)
        with h5py.File(fit_file, "r") as source:
            source.copy(source[key], self._h5.require_group(parent), name=name)
        return key

    def write_best_layer(self, key, layers, valid):
        """Per target, the layer with the highest CV score, and the scores at that layer.

        Writes ``best_layer`` and ``best_layer_<name>`` for test_r, cv_score and, when the layers
        have them, p_perm with its BH q over the targets of this map (``q_perm``).
        """
        cv = np.stack([self.read(f"{key}/layer_{k}", "cv_score") for k in layers])
        fitted = valid & np.isfinite(cv).all(0)
        pick = np.where(fitted, np.nanargmax(np.where(np.isfinite(cv), cv, -np.inf), axis=0), 0)
        best = np.where(fitted, np.asarray(layers)[pick], -1)
        self._h5[key].create_dataset("best_layer", data=best)
        names = ["test_r", "cv_score"] + (["p_perm"] if f"{key}/layer_{layers[0]}/p_perm" in self._h5 else [])
        at_best = {}
        for name in names:
            stacked = np.stack([self.read(f"{key}/layer_{k}", name) for k in layers])
            at_best[name] = np.where(fitted, stacked[pick, np.arange(pick.size)], np.nan).astype(np.float32)
            self._h5[key].create_dataset(f"best_layer_{name}", data=at_best[name])
        if "p_perm" in at_best:
            self._h5[key].create_dataset("best_layer_q_perm", data=fdr_bh(at_best["p_perm"]).astype(np.float32))
        return best, at_best["test_r"]

    def read(self, key, name=None):
        return self._h5[key if name is None else f"{key}/{name}"][()]

    def subjects(self):
        """Subjects in file order (the root also holds the cross-subject noise_ceiling group)."""
        return [k for k in self._h5.keys() if k != "noise_ceiling"]

    def keys(self, key="/"):
        return list(self._h5[key].keys())

    def close(self):
        self._h5.close()
