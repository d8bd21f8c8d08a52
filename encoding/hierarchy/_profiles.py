"""Score profiles over layer depth per ROI, their preferred depth, and bootstrap intervals.

Depth is the layer index over the index of the last layer (0 = embedding output, 1 = last
layer), so models with 29 and 33 layers share one axis. The preferred depth of a profile is read
two ways: the depth of its maximum, and the score-weighted mean depth. The weights are the scores
above the profile's own floor (its lowest positive part: max(s, 0) - min over layers of
max(s, 0)): neighbouring layers share most of their information, so every layer of a driven ROI
scores above zero, and raw scores as weights would pull every estimate towards the middle depth.
"""
import numpy as np

CI = (2.5, 97.5)


def preferred_depth(depth, profiles):
    """Argmax depth and score-weighted mean depth of one or many profiles.

    Parameters
    ----------
    depth : array of shape (n_layers,)
    profiles : array of shape (..., n_layers)

    Returns
    -------
    argmax : array of shape (...)
    weighted : array of shape (...); NaN where no layer scores above the floor
    """
    depth = np.asarray(depth, dtype=np.float64)
    profiles = np.asarray(profiles, dtype=np.float64)
    argmax = depth[np.argmax(np.nan_to_num(profiles, nan=-np.inf), axis=-1)]
    weights = np.clip(np.nan_to_num(profiles), 0, None)
    weights = weights - weights.min(-1, keepdims=True)
    total = weights.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.where(total > 0, (weights * depth).sum(-1) / np.where(total > 0, total, 1), np.nan)
    return argmax, weighted


def bootstrap_profiles(scores, n_bootstrap=1000, seed=0, chunk=200):
    """ROI-mean profiles of bootstrap resamples of an ROI's targets.

    Parameters
    ----------
    scores : array of shape (n_targets, n_layers)
        One ROI's targets; rows with a NaN are left out.
    n_bootstrap : int
    seed : int
    chunk : int
        Resamples drawn at once (bounds memory to chunk x n_targets counts).

    Returns
    -------
    profiles : array of shape (n_bootstrap, n_layers)
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores).all(1)]
    n = scores.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n_bootstrap, scores.shape[1]))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        # multinomial counts are a resample with replacement, as one matrix product
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        out[start:start + size] = counts @ scores / n
    return out


def roi_preferred_depth(depth, scores, n_bootstrap=1000, seed=0):
    """Profile, preferred depths and their bootstrap intervals for one ROI's targets (or, as
    :func:`group_preferred_depth`, of the mean profile over subjects, with intervals over resampled subjects).

    Parameters
    ----------
    depth : array of shape (n_layers,)
    scores : array of shape (n_targets, n_layers)
        One ROI's targets, or each subject's ROI profile (n_subjects, n_layers); the rows are resampled.

    Returns
    -------
    dict with profile (n_layers,), argmax, argmax_ci (low, high), weighted, weighted_ci
    """
    scores = np.asarray(scores, dtype=np.float64)
    profile = np.nanmean(scores[np.isfinite(scores).all(1)], axis=0)
    argmax, weighted = preferred_depth(depth, profile)
    boot_argmax, boot_weighted = preferred_depth(depth, bootstrap_profiles(scores, n_bootstrap, seed))
    return {"profile": profile, "argmax": float(argmax), "weighted": float(weighted),
            "argmax_ci": tuple(np.percentile(boot_argmax, CI)),
            "weighted_ci": tuple(np.nanpercentile(boot_weighted, CI)) if np.isfinite(boot_weighted).any()
            else (np.nan, np.nan)}


#: a group's preferred depth resamples the subjects' profiles as one ROI's targets are resampled
group_preferred_depth = roi_preferred_depth


def weights_preferred_depth(band_depth, weights, target_weight=None, n_bootstrap=1000, seed=0):
    """Preferred depth from band weights (the layer-weights fit): the weight profile's mean depth, with
    bootstrap intervals over the rows (targets, or subjects for a group).

    Parameters
    ----------
    band_depth : array of shape (n_bands,)
    weights : array of shape (n_rows, n_bands), each row's band weights (summing to one)
    target_weight : array of shape (n_rows,), optional
        Each row's share of the profile (``encoding.layer_weights.roi_weight_profile``: the positive CV
        score); default equal. Rows of weight 0 or with a NaN are left out.

    Returns
    -------
    dict with profile (n_bands,), weighted (the profile's mean depth), weighted_ci (low, high); NaN when no
    row has weight
    """
    weights = np.asarray(weights, dtype=np.float64)
    share = np.ones(len(weights)) if target_weight is None else np.asarray(target_weight, dtype=np.float64)
    keep = np.isfinite(weights).all(1) & (share > 0)
    weights, share = weights[keep], share[keep]
    if not keep.any():
        return {"profile": np.full(len(band_depth), np.nan), "weighted": np.nan, "weighted_ci": (np.nan, np.nan)}
    profile = share @ weights / share.sum()
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(weights), np.full(len(weights), 1 / len(weights)), size=n_bootstrap) * share
    totals = counts.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (counts @ weights @ np.asarray(band_depth)) / totals
    return {"profile": profile, "weighted": float(profile @ band_depth),
            "weighted_ci": tuple(np.nanpercentile(boot, CI)) if np.isfinite(boot).any() else (np.nan, np.nan)}
