"""``scores.h5``: per-target results of every fit of one analysis.

Layout::

    /                                         attrs: config (JSON), versions (JSON)
    /<subject>                                attrs: train_runs, test_runs, files, space, cv
    /<subject>/valid                          bool (n_targets,): False = NaN/constant, not fitted
    /<subject>/<model>/<instruction>/layer_<k>/{test_r, test_r2, cv_score, alpha}   (n_targets,)
    /<subject>/<model>/<instruction>/best_layer        int (n_targets,), by CV score (-1 if unfitted)
    /<subject>/<model>/<instruction>/best_layer_test_r (n_targets,): test r at that layer
    /<subject>/joint/<name>/{test_r, test_r2, cv_score, alpha}, test_r2_split and band_weights
                                              (n_bands, n_targets); attrs bands (JSON)

Unfitted targets hold NaN. Everything chosen (alpha, best layer) comes from training runs only.
"""
import json

import h5py
import numpy as np

SCORE_FIELDS = ("test_r", "test_r2", "cv_score", "alpha")


def _full(values, valid):
    """Scatter per-valid-target values back to all targets, NaN elsewhere."""
    values = np.asarray(values)
    out = np.full(values.shape[:-1] + valid.shape, np.nan, dtype=np.float32)
    out[..., valid] = values
    return out


class ScoresFile:
    """Writer/reader of scores.h5."""

    def __init__(self, path, mode="r"):
        self._h5 = h5py.File(path, mode)

    def write_root(self, config, versions):
        self._h5.attrs["config"] = json.dumps(config, default=str)
        self._h5.attrs["versions"] = json.dumps(versions)

    def write_subject(self, subject, valid, train_runs, test_runs, files, space, n_folds):
        group = self._h5.require_group(subject)
        group.create_dataset("valid", data=valid)
        group.attrs.update(train_runs=json.dumps(train_runs), test_runs=json.dumps(test_runs),
                           files=json.dumps(files), space=space, cv="leave-one-run-out" if n_folds is None
                           else f"{n_folds} folds grouped by run")

    def write_fit(self, key, scores, valid, **attrs):
        """Store one fit's RidgeScores (on valid targets) under ``key``."""
        group = self._h5.require_group(key)
        for name in SCORE_FIELDS:
            group.create_dataset(name, data=_full(getattr(scores, name), valid))
        for name in ("test_r2_split", "band_weights"):
            if getattr(scores, name) is not None:
                group.create_dataset(name, data=_full(getattr(scores, name), valid))
        group.attrs.update(solver=scores.solver, **attrs)

    def write_best_layer(self, key, layers, valid):
        """Per target, the layer with the highest CV score, and the test r at that layer."""
        cv = np.stack([self.read(f"{key}/layer_{k}", "cv_score") for k in layers])
        test_r = np.stack([self.read(f"{key}/layer_{k}", "test_r") for k in layers])
        fitted = valid & np.isfinite(cv).all(0)
        pick = np.where(fitted, np.nanargmax(np.where(np.isfinite(cv), cv, -np.inf), axis=0), 0)
        best = np.where(fitted, np.asarray(layers)[pick], -1)
        best_r = np.where(fitted, test_r[pick, np.arange(pick.size)], np.nan)
        self._h5[key].create_dataset("best_layer", data=best)
        self._h5[key].create_dataset("best_layer_test_r", data=best_r.astype(np.float32))
        return best, best_r

    def read(self, key, name):
        return self._h5[f"{key}/{name}"][()]

    def keys(self, key="/"):
        return list(self._h5[key].keys())

    def close(self):
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
