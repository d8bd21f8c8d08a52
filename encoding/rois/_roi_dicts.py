"""ROI dicts that need no atlas: one ROI per parcel, and ROIs cut down to the valid targets."""

import numpy as np

from features.errors import InputError


def parcel_rois(n_parcels, names=None):
    """Each target of parcellated data is its own ROI.

    Parameters
    ----------
    n_parcels : int
        Number of targets (parcels) of the data.
    names : sequence of str, optional
        Parcel names in target order; default "parcel_001", ... (zero-padded so they sort).

    Returns
    -------
    rois : dict of str to array of int
        Parcel name -> ``array([target_index])``.
    """
    if names is None:
        width = len(str(n_parcels))
        names = [f"parcel_{i + 1:0{width}d}" for i in range(n_parcels)]
    if len(names) != n_parcels:
        raise InputError(
            f"parcel_rois: field 'names' expected {n_parcels} names, found {len(names)}."
        )
    if len(set(names)) != len(names):
        raise InputError("parcel_rois: field 'names' expected unique names, found repeats.")
    return {str(name): np.array([i], dtype=np.int64) for i, name in enumerate(names)}


def drop_empty(rois, valid_mask):
    """Keep only valid targets in each ROI, and drop ROIs left without any.

    Parameters
    ----------
    rois : dict of str to array of int
        ROI name -> target indices.
    valid_mask : array of bool of shape (n_targets,)
        Targets that carry data (e.g. finite, non-constant signal, inside the brain mask).

    Returns
    -------
    rois : dict of str to array of int
        The ROIs that keep at least one valid target, with only their valid indices, in the
        input order.
    dropped : list of str
        Names of the ROIs that had no valid target, for the caller to report.
    """
    valid_mask = np.asarray(valid_mask, dtype=bool)
    kept, dropped = {}, []
    for name, idx in rois.items():
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= valid_mask.size):
            raise InputError(
                f"ROI {name!r}: field 'indices' expected values below n_targets={valid_mask.size}, "
                f"found {idx.max()}."
            )
        idx = idx[valid_mask[idx]]
        if idx.size:
            kept[name] = idx
        else:
            dropped.append(name)
    return kept, dropped
