"""Layer weights per target: one banded ridge over every layer of a model and instruction, each layer a band.

The layer sweep fits each layer alone and picks, per target, the layer with the best CV score (the argmax).
A target driven by two layers is then given one of them. Here all layers enter one banded (multiple-kernel)
ridge, K(g) = sum_b g_b K_b with g on the simplex and one alpha per target, and the band weights g that
cross-validation chooses say how much each layer contributes: ``weights`` (n_bands, n_targets), summing to
one per target, and the ``preferred_depth``, sum_b g_b depth_b with depth = layer / (n_layers - 1) (a group's
mean). The fit runs on the fast banded engine (``encoding.ridge.fit_banded_ridge(solver="fast")``: per-band
kernels computed once, each weight sample one kernel-form fit), whose cost per sample does not grow with the
features, only with the TRs and targets.

Decisions, each measured in ``bench/layer_weights.py`` (BENCHMARKS.md, issue 32):

- **Bands**: one per fitted layer, or ``bands: N`` contiguous groups of adjacent layers of near-equal size
  (``numpy.array_split``), which keeps the search small at 29-33 layers.
- **Equal footing**: each band's design is scaled so that its training kernel has the bands' mean trace. Band
  weights then compare bands of unequal width (groups of unequal size, PCA), and K(g) keeps the scale of one
  layer's kernel, so the sweep's alphas fit. Layers of one width, z-scored as every design is, have equal
  traces up to the delays' edge rows (scales within a few 1e-3 of 1).
- **PCA** (``pca_components``): each layer reduced to its leading components fitted on the training rows
  (``encoding.ridge.reduce_features``), for memory: 29 layers of 17,920 delayed features at 10,000 TRs are
  21 GB of float32 design held at once.
- **Samples** (``search``): ``pairs`` (default) tries each band alone, all bands equally, and every pair of
  bands at ``ratios`` splits j / (ratios + 1); ``neighbours`` only pairs of adjacent bands (B + 1 + ratios
  (B - 1) samples, for many bands); ``random`` himalaya's Dirichlet draws (``n_iter``; the first equal
  weights). ``n_iter`` > 0 adds that many Dirichlet draws to pairs or neighbours (mixtures of three or more).
  On the planted study of eight layers, 50 Dirichlet draws (the joint fits' default) gave no mixture target
  both of its layers; 200 gave 47-88 %, pairs at five ratios (149 samples) 88-100 %.
"""
import itertools
import logging
from typing import get_args

import numpy as np

from features.errors import InputError

from ._schema import LayerWeights

log = logging.getLogger(__name__)

#: ``layer_weights`` settings of the config, and their defaults (``true`` in a config means these).
DEFAULTS = LayerWeights().model_dump()
SEARCHES = get_args(LayerWeights.model_fields["search"].annotation)
#: A target is "mixed" when its second-largest band weight exceeds this (layer_weights.csv).
MIXED = 0.25


def layer_weights_settings(config):
    """The config's ``layer_weights`` with defaults filled in, or None when the analysis is off.

    Returns
    -------
    dict with bands, search, ratios, n_iter, pca_components; or None
    """
    value = config.get("layer_weights")
    if value is None or value is False:
        return None
    settings = dict(DEFAULTS)
    if isinstance(value, dict):
        settings.update(value)
    if settings["search"] == "random" and not settings["n_iter"]:
        raise InputError(f"{config['config_file']}: field 'layer_weights.n_iter' must be >= 1 with search 'random' "
                         f"(the number of Dirichlet samples), found {settings['n_iter']}.")
    return settings


def band_layers(layers, n_bands=None):
    """The layers of each band: one band per layer, or ``n_bands`` contiguous groups of near-equal size.

    Returns
    -------
    list of lists of int
    """
    layers = [int(k) for k in layers]
    if not n_bands or n_bands >= len(layers):
        return [[k] for k in layers]
    return [[int(k) for k in group] for group in np.array_split(layers, int(n_bands))]


def band_depths(bands, n_layers):
    """Normalized depth of each band: the mean of its layers' layer / (n_layers - 1)."""
    return np.array([np.mean(band) / max(n_layers - 1, 1) for band in bands])


def band_label(band):
    """``layer3`` or ``layers4to7``: a band's name in file names, tables and map descriptions."""
    return f"layer{band[0]}" if len(band) == 1 else f"layers{band[0]}to{band[-1]}"


def weight_samples(n_bands, search="pairs", ratios=5, n_iter=0, random_state=0):
    """Band-weight samples on the simplex (module docstring).

    Returns
    -------
    gammas : array of shape (n_samples, n_bands)
    """
    # lazy: pulls himalaya and scikit-learn; encoding.hierarchy reads layer weights without them
    from encoding.ridge import band_weight_samples

    if search not in SEARCHES:
        raise ValueError(f"layer weights: unknown search {search!r}; known: {', '.join(SEARCHES)}.")
    if search == "random" or n_bands == 1:
        return band_weight_samples(n_bands, max(int(n_iter), 1), random_state)
    samples = [np.eye(n_bands)[b] for b in range(n_bands)] + [np.full(n_bands, 1 / n_bands)]
    pairs = (itertools.combinations(range(n_bands), 2) if search == "pairs"
             else zip(range(n_bands - 1), range(1, n_bands)))
    shares = np.arange(1, int(ratios) + 1) / (int(ratios) + 1)
    for a, b in pairs:
        for share in shares:
            sample = np.zeros(n_bands)
            sample[a], sample[b] = share, 1 - share
            samples.append(sample)
    gammas = np.array(samples)
    if n_iter:
        # the Dirichlet draws after the first (himalaya's first is equal weights, already here)
        gammas = np.concatenate([gammas, band_weight_samples(n_bands, int(n_iter) + 1, random_state)[1:]])
    return gammas


def band_designs(layer_train, layer_test, bands):
    """Each band's training and test design: its layers' columns side by side, scaled to the mean trace.

    Parameters
    ----------
    layer_train, layer_test : dict layer -> array of shape (n_train or n_test, n_features_layer); a band of one
        float32 layer is that layer's array, scaled in place (the caller hands its arrays over)
    bands : list of lists of layers

    Returns
    -------
    Xs_train, Xs_test : lists of float32 arrays, one per band
    scales : array of shape (n_bands,), the factor each band was multiplied by
    """
    # scaled in place, in float32: a float64 temporary, or a copy of a one-layer band, would double the peak memory
    def stacked(arrays):
        return (arrays[0] if len(arrays) == 1 else np.hstack(arrays)).astype(np.float32, copy=False)

    Xs_train = [stacked([layer_train[k] for k in band]) for band in bands]
    Xs_test = [stacked([layer_test[k] for k in band]) for band in bands]
    traces = np.array([float(np.einsum("ij,ij->", X, X, dtype=np.float64)) for X in Xs_train])
    if (traces <= 0).any():
        raise InputError(f"layer weights: band {band_label(bands[int(np.argmin(traces))])} has constant features "
                         f"in every training run; nothing to weigh.")
    scales = np.sqrt(traces.mean() / traces)
    for X_train, X_test, scale in zip(Xs_train, Xs_test, scales):
        X_train *= np.float32(scale)
        X_test *= np.float32(scale)
    return Xs_train, Xs_test, scales


def fit_layer_weights(Xs_train, Y_train, run_ids, Xs_test, Y_test, depths, gammas, alphas, n_folds=None,
                      memory_gb=None, n_targets_batch=None, threads=None, progress=False):
    """The banded fit over the bands and the weights and depth it gives each target.

    Parameters
    ----------
    Xs_train, Xs_test : lists of arrays, one per band (``band_designs``)
    depths : array of shape (n_bands,), each band's normalized depth
    gammas : array of shape (n_samples, n_bands), band-weight samples (``weight_samples``)

    Returns
    -------
    RidgeScores of the banded fit, with ``extra["weights"]`` (n_bands, n_targets), each target's band weights
    summing to one, and ``extra["preferred_depth"]`` (n_targets,)
    """
    # lazy: pulls himalaya and scikit-learn; encoding.hierarchy reads layer weights without them
    from encoding.ridge import fit_banded_ridge

    result = fit_banded_ridge(Xs_train, Y_train, run_ids, Xs_test, Y_test, alphas=alphas, n_folds=n_folds,
                              n_iter=np.asarray(gammas, dtype=np.float64), n_targets_batch=n_targets_batch,
                              solver="fast", memory_gb=memory_gb, threads=threads, progress=progress)
    # band_weights are g / alpha: normalized per target they are the chosen sample g
    weights = np.asarray(result.band_weights, dtype=np.float64)
    weights = weights / weights.sum(0, keepdims=True)
    result.extra.update(weights=weights.astype(np.float32),
                        preferred_depth=(np.asarray(depths)[:, None] * weights).sum(0).astype(np.float32))
    return result


def roi_weight_profile(weights, cv_score, index):
    """An ROI's band-weight profile: its targets' weights averaged with their positive CV score as weight.

    A target the banded fit does not predict in cross-validation (CV R^2 <= 0) has weights that mean
    nothing, yet sum to one like any other target's; weighting by the CV score leaves them out and counts
    well-predicted targets most.

    Returns
    -------
    profile : array of shape (n_bands,), NaN when no target of the ROI has a positive CV score
    target_weight : array of shape (len(index),), each target's share
    """
    cv = np.nan_to_num(np.asarray(cv_score, dtype=np.float64)[index], nan=0.0)
    w = np.asarray(weights, dtype=np.float64)[:, index]
    share = np.where(np.isfinite(w).all(0), np.clip(cv, 0, None), 0.0)
    if share.sum() <= 0:
        return np.full(w.shape[0], np.nan), share
    return np.nan_to_num(w) @ share / share.sum(), share / share.sum()


def roi_rows(subject, model, instruction, fit, best, rois, bands, depths, n_layers):
    """layer_weights.csv rows: per ROI, depth by the weights and by the argmax, and held-out r of both.

    Depths are averaged over the ROI's targets with their positive CV score as weight (``roi_weight_profile``),
    the argmax's too, so both sides average the same targets; ``frac_targets_mixed`` is the share of those
    targets whose second-largest band weight exceeds ``MIXED``; r and CV scores are plain means over the
    fitted targets, as in alignment.csv.

    Parameters
    ----------
    fit : dict name -> array: ``weights`` (n_bands, n_targets), ``preferred_depth``, ``test_r``, ``cv_score``
    best : dict name -> array (n_targets,): the layer sweep's ``best_layer``, ``best_layer_test_r`` and
        ``best_layer_cv_score``
    rois : dict roi -> target indices

    Returns
    -------
    list of dict
    """
    rows = []
    argmax_depth = np.where(best["best_layer"] >= 0, best["best_layer"] / max(n_layers - 1, 1), np.nan)
    for roi, index in rois.items():
        fitted = np.isfinite(fit["test_r"][index]) & np.isfinite(best["best_layer_test_r"][index])
        profile, share = roi_weight_profile(fit["weights"], fit["cv_score"], index)
        predictive = share > 0
        second = np.sort(np.nan_to_num(fit["weights"][:, index[predictive]]), axis=0)[-2] if len(bands) > 1 else []
        row = {"subject": subject, "model": model, "instruction": instruction, "roi": roi,
               "n_targets": int(fitted.sum()), "n_targets_predictive": int(predictive.sum()),
               "frac_targets_mixed": float(np.mean(second > MIXED)) if predictive.any() else np.nan,
               "preferred_depth_weights": float(profile @ depths) if predictive.any() else np.nan,
               "preferred_depth_argmax": float(np.nansum(argmax_depth[index] * share)) if predictive.any()
               else np.nan,
               "mean_test_r_weights": _mean(fit["test_r"][index][fitted]),
               "mean_test_r_best_layer": _mean(best["best_layer_test_r"][index][fitted]),
               "mean_cv_score_weights": _mean(fit["cv_score"][index][fitted]),
               "mean_cv_score_best_layer": _mean(best["best_layer_cv_score"][index][fitted])}
        row["test_r_gain"] = row["mean_test_r_weights"] - row["mean_test_r_best_layer"]
        row.update({f"weight_{band_label(band)}": float(w) for band, w in zip(bands, profile)})
        rows.append(row)
    return rows


def _mean(values):
    return float(np.mean(values)) if values.size else np.nan
