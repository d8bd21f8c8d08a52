"""Variance partitioning between two feature spaces: shared and unique variance per target.

Two feature spaces A and B (two instructions of one model, a video and an audio model) are fitted
alone and jointly (banded ridge, one regularisation per space); with the held-out R^2 of each:

    unique_A = R2(A+B) - R2(B)        unique_B = R2(A+B) - R2(A)
    shared   = R2(A) + R2(B) - R2(A+B)

(set-theoretic partitioning, de Heer et al. 2017; Lescroart et al. 2015). The parts are estimates
from finite test data and separately regularised fits, so a part can come out slightly negative;
nothing is clipped, which keeps ROI means unbiased. This differs from the banded fit's own
``test_r2_split`` (the product-measure split of the joint R^2, which has no shared part).
"""
from dataclasses import dataclass

import numpy as np

from .ridge import fit_banded_ridge, fit_ridge

PARTS = ("shared", "unique_a", "unique_b")


@dataclass
class VariancePartition:
    """Arrays of shape (n_targets,): held-out R^2 of each fit and the parts derived from them."""

    r2_joint: np.ndarray
    r2_a: np.ndarray
    r2_b: np.ndarray

    @property
    def unique_a(self):
        return self.r2_joint - self.r2_b

    @property
    def unique_b(self):
        return self.r2_joint - self.r2_a

    @property
    def shared(self):
        return self.r2_a + self.r2_b - self.r2_joint

    def parts(self):
        """{"shared": ..., "unique_a": ..., "unique_b": ...}."""
        return {name: getattr(self, name) for name in PARTS}


def fit_partition(Xa_train, Xb_train, Y_train, run_ids, Xa_test, Xb_test, Y_test, n_iter=50, **fit_args):
    """Fit A alone, B alone and A+B jointly, and partition the held-out variance.

    Parameters
    ----------
    Xa_train, Xb_train : arrays of shape (n_train, n_features_a), (n_train, n_features_b)
    Y_train : array of shape (n_train, n_targets)
    run_ids : array of shape (n_train,)
    Xa_test, Xb_test : arrays of shape (n_test, n_features_a), (n_test, n_features_b)
    Y_test : array of shape (n_test, n_targets)
    n_iter : int
        Random-search iterations of the banded fit.
    **fit_args
        alphas, n_folds, n_targets_batch, ... passed to both ridge functions.

    Returns
    -------
    VariancePartition
    """
    single_a = fit_ridge(Xa_train, Y_train, run_ids, Xa_test, Y_test, **fit_args)
    single_b = fit_ridge(Xb_train, Y_train, run_ids, Xb_test, Y_test, **fit_args)
    joint = fit_banded_ridge([Xa_train, Xb_train], Y_train, run_ids, [Xa_test, Xb_test], Y_test,
                             n_iter=n_iter, **fit_args)
    return VariancePartition(joint.test_r2, single_a.test_r2, single_b.test_r2)


def roi_partition_rows(partition, rois, **keys):
    """Mean of each R^2 and each part over every ROI's targets (NaN targets left out).

    Parameters
    ----------
    partition : VariancePartition
    rois : dict of str to array of int
    **keys
        Columns copied into every row (subject, joint, band names...).

    Returns
    -------
    list of dict, one per ROI
    """
    values = {"r2_joint": partition.r2_joint, "r2_a": partition.r2_a, "r2_b": partition.r2_b,
              **partition.parts()}
    rows = []
    for roi, index in rois.items():
        finite = np.isfinite(partition.r2_joint[index]) & np.isfinite(partition.r2_a[index]) \
            & np.isfinite(partition.r2_b[index])
        row = {**keys, "roi": roi, "n_targets": int(finite.sum())}
        for name, array in values.items():
            row[f"mean_{name}"] = float(array[index][finite].mean()) if finite.any() else np.nan
        rows.append(row)
    return rows
