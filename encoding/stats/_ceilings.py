"""Repeat-based noise ceilings, and alignment normalized by a ceiling.

A noise ceiling is the highest test r any model could reach on a target, given how much of its
response is noise. Every ceiling here is on the scale of the r the engine reports: the
correlation of one prediction with *single presentations* (a repeated test movie is scored as its
presentations concatenated, each against the same prediction). If a response is signal (variance
f) plus noise (1 - f), that ceiling is sqrt(f).

Small ceilings are unstable: r / ceiling divides one noisy number by another that is near zero,
so a target with ceiling 0.02 and r 0.05 would read "250 % of the ceiling". ``normalize_r``
therefore returns NaN where the ceiling is at or below a threshold (default 0.05) and never clips
what is left (clipping at 1 would bias ROI means down). Per-target ceilings of pure-noise targets
are also biased upwards (sqrt(max(ev, 0)) of an estimate centred on 0 is positive), so ROI
summaries average the unbiased explainable variance over the ROI's targets first and take one
square root (``roi_normalized_r``): a ratio of means, far steadier than a mean of ratios.
"""
import numpy as np

from features.errors import InputError


def _check_repeats(repeats):
    repeats = np.asarray(repeats, dtype=np.float64)
    if repeats.ndim != 3 or repeats.shape[0] < 2:
        raise InputError(f"noise ceiling: expected repeats of shape (n_repeats >= 2, n_TR, n_targets), "
                         f"found {repeats.shape}.")
    return repeats


def _zscore(a, axis):
    a = a - a.mean(axis, keepdims=True)
    std = a.std(axis, keepdims=True)
    return a / np.where(std > 0, std, 1)


def explainable_variance(repeats, bias_correction=True):
    """Fraction of each target's variance that repeats across presentations of one stimulus.

    ``ev = 1 - mean_r var(y_r - mean_r y_r) / mean_r var(y_r)`` on z-scored presentations, and
    with the bias correction ``ev - (1 - ev) / (n_repeats - 1)`` (Hsu et al. 2004; Schoppe et
    al. 2016), which removes the noise that survives averaging a finite number of repeats: for
    y_r = s + e_r it is an unbiased estimate of var(s) / var(y).

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_TR, n_targets)
        The same stimulus presented ``n_repeats`` times, rows aligned in time.
    bias_correction : bool, default=True

    Returns
    -------
    ev : array of shape (n_targets,)
        May be slightly negative for pure noise (an unbiased estimate of 0).
    """
    repeats = _zscore(_check_repeats(repeats), axis=1)
    n_repeats = repeats.shape[0]
    residual = repeats - repeats.mean(0)
    ev = 1 - residual.var(1).mean(0) / repeats.var(1).mean(0)
    if bias_correction:
        ev = ev - (1 - ev) / (n_repeats - 1)
    return ev


def split_half_reliability(repeats, n_splits=100, seed=0):
    """Split-half correlation of the repeats with the Spearman-Brown correction.

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_TR, n_targets)
    n_splits : int
        Random halvings averaged (all repeats are used each time; with 2 repeats there is one).
    seed : int

    Returns
    -------
    reliability : array of shape (n_targets,)
        Spearman-Brown corrected reliability of the mean of all ``n_repeats``:
        2 r_half / (1 + r_half), with r_half the mean correlation between the two half means.
    single : array of shape (n_targets,)
        Reliability of one presentation, ``rho_1 = rho_R / (R - (R - 1) rho_R)``; its square root
        is the ceiling of r against single presentations, as ``repeat_ceiling`` gives.
    """
    repeats = _zscore(_check_repeats(repeats), axis=1)
    n = repeats.shape[0]
    rng = np.random.default_rng(seed)
    splits = 1 if n == 2 else n_splits
    r_half = np.zeros(repeats.shape[2])
    for _ in range(splits):
        order = rng.permutation(n)
        a, b = repeats[order[: n // 2]].mean(0), repeats[order[n // 2:]].mean(0)
        r_half += (_zscore(a, 0) * _zscore(b, 0)).mean(0) / splits
    # all repeats are twice a half (exactly for even n, on average for odd n)
    reliability = 2 * r_half / (1 + r_half)
    single = reliability / (n - (n - 1) * reliability)
    return reliability, single


def repeat_ceiling(repeats, bias_correction=True):
    """Ceiling of test r from repeats: sqrt of the explainable variance, 0 where it is <= 0.

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_TR, n_targets)

    Returns
    -------
    ceiling : array of shape (n_targets,)
    """
    return np.sqrt(np.clip(explainable_variance(repeats, bias_correction), 0, 1))


def normalize_r(r, ceiling, threshold=0.05):
    """r / ceiling where the ceiling passes the threshold, NaN elsewhere (see module docstring).

    Parameters
    ----------
    r, ceiling : arrays of shape (n_targets,)
    threshold : float

    Returns
    -------
    normalized : array of shape (n_targets,)
    """
    r, ceiling = np.asarray(r, dtype=np.float64), np.asarray(ceiling, dtype=np.float64)
    passes = np.isfinite(ceiling) & (ceiling > threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(passes, r / np.where(passes, ceiling, 1), np.nan)


def roi_normalized_r(r, ceiling, index, threshold=0.05, explainable=None):
    """An ROI's mean r over its ceiling, NaN where the ROI's ceiling does not pass the threshold.

    Parameters
    ----------
    r, ceiling : arrays of shape (n_targets,)
    index : array of int
        The ROI's targets.
    threshold : float
    explainable : array of shape (n_targets,), optional
        Unbiased explainable (shared) variance per target, negative values kept. When given, the
        ROI's ceiling is sqrt(max(mean over its targets, 0)) and its mean r is over the same
        targets: averaging before the square root keeps noise targets, whose sqrt(max(ev, 0))
        is biased upwards, from inflating the ceiling. Without it, the ratio of mean r to mean
        ceiling over the targets whose own ceiling passes.

    Returns
    -------
    normalized : float
    mean_ceiling : float (NaN if no target)
    n_used : int, targets the ratio is over
    """
    r, ceiling = np.asarray(r)[index], np.asarray(ceiling)[index]
    if explainable is not None:
        ev = np.asarray(explainable)[index]
        used = np.isfinite(ev) & np.isfinite(r)
        if not used.any():
            return np.nan, np.nan, 0
        roi_ceiling = float(np.sqrt(max(ev[used].mean(), 0.0)))
        normalized = float(r[used].mean() / roi_ceiling) if roi_ceiling > threshold else np.nan
        return normalized, roi_ceiling, int(used.sum())
    passes = np.isfinite(ceiling) & (ceiling > threshold) & np.isfinite(r)
    if not passes.any():
        return np.nan, np.nan, 0
    mean_ceiling = float(ceiling[passes].mean())
    return float(r[passes].mean() / mean_ceiling), mean_ceiling, int(passes.sum())
