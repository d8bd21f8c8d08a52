"""Inference on RDM comparisons: Mantel permutation tests, bootstrap intervals, noise ceilings.

Items, not pairs, are the exchangeable units: the n (n - 1) / 2 dissimilarities share items and
are not independent, so permutation tests permute items (rows and columns together) and the item
bootstrap resamples items (Nili et al. 2014; Kriegeskorte et al. 2008).
"""
from dataclasses import dataclass

import numpy as np
from scipy import stats

from features.errors import InputError

from ._compare import compare_rdms, kendall_tau_a, partial_correlation, semipartial_correlation
from ._rdm import permute_items, square_rdm, upper_triangle

PARTIAL_KINDS = ("partial", "semipartial")


def rsa_score(brain_rdm, model_rdm, method="spearman", controls=(), kind="partial"):
    """The one comparison every test here repeats: plain, partial or semipartial.

    Parameters
    ----------
    brain_rdm, model_rdm : arrays of shape (n_items, n_items) or (n_pairs,)
    method : {"spearman", "kendall_tau_a", "pearson"}
    controls : sequence of RDMs
        When given, their part is removed (``kind`` says from which RDMs).
    kind : {"partial", "semipartial"}
        "semipartial" removes the controls from the model RDM only.

    Returns
    -------
    score : float
    """
    if not len(controls):
        return compare_rdms(brain_rdm, model_rdm, method)
    if method == "kendall_tau_a":
        raise InputError("rsa: field 'comparison' is kendall_tau_a, which has no partial form; use spearman or "
                         "pearson with controls.")
    if kind not in PARTIAL_KINDS:
        raise InputError(f"rsa: field 'partial' is {kind!r}; known: {', '.join(PARTIAL_KINDS)}.")
    function = partial_correlation if kind == "partial" else semipartial_correlation
    return function(brain_rdm, model_rdm, controls, method)


@dataclass
class MantelResult:
    """Observed score, its permutation p-value and the null scores, shape (n_permutations,)."""
    score: float
    p_value: float
    null: np.ndarray


def mantel_test(brain_rdm, model_rdm, method="spearman", controls=(), kind="partial", n_permutations=1000,
                random_state=None, alternative="greater"):
    """Permutation test of an RDM comparison, permuting the items of the brain RDM.

    Parameters
    ----------
    brain_rdm : array of shape (n_items, n_items)
        Permuted (rows and columns together); model and control RDMs stay fixed, so a partial
        Mantel test keeps the model-control relation intact.
    model_rdm : array of shape (n_items, n_items) or (n_pairs,)
    method, controls, kind : as :func:`rsa_score`.
    n_permutations : int
    random_state : int, numpy Generator or None
    alternative : {"greater", "two-sided"}

    Returns
    -------
    MantelResult
        ``p_value = (1 + #{null >= observed}) / (1 + n_permutations)`` (absolute values for
        "two-sided"), which is exactly uniform on its grid under the null.
    """
    brain = square_rdm(upper_triangle(brain_rdm))
    rng = np.random.default_rng(random_state)
    orders = np.array([rng.permutation(brain.shape[0]) for _ in range(n_permutations)], dtype=int)
    orders = orders.reshape(n_permutations, brain.shape[0])
    vectors = np.vstack([upper_triangle(brain)[None], permute_items(brain, orders)])
    scores = _batch_scores(vectors, upper_triangle(model_rdm), method, [upper_triangle(c) for c in controls], kind)
    observed, null = scores[0], scores[1:]
    if alternative == "two-sided":
        exceed = np.abs(null) >= abs(observed) - 1e-12
    elif alternative == "greater":
        exceed = null >= observed - 1e-12
    else:
        raise InputError(f"mantel_test: field 'alternative' is {alternative!r}; known: greater, two-sided.")
    return MantelResult(float(observed), float((1 + exceed.sum()) / (1 + n_permutations)), null)


def _batch_scores(brain_vectors, model_vector, method, controls, kind):
    """:func:`rsa_score` of each row of ``brain_vectors`` (n_draws, n_pairs) with one model."""
    finite = np.isfinite(brain_vectors).all() and np.isfinite(model_vector).all() and all(
        np.isfinite(c).all() for c in controls)
    if method == "kendall_tau_a" and not controls and finite:
        return np.array([kendall_tau_a(v, model_vector) for v in brain_vectors])
    if method not in ("spearman", "pearson") or not finite:
        return np.array([rsa_score(v, model_vector, method, controls, kind) for v in brain_vectors])
    if method == "spearman":
        brain_vectors = stats.rankdata(brain_vectors, axis=1)
        model_vector = stats.rankdata(model_vector)
        controls = [stats.rankdata(c) for c in controls]
    if controls:
        C = np.column_stack([np.ones(model_vector.size)] + list(controls))
        projector = C @ np.linalg.pinv(C)
        model_vector = model_vector - projector @ model_vector
        if kind == "partial":
            brain_vectors = brain_vectors - brain_vectors @ projector.T
    brain_vectors = brain_vectors - brain_vectors.mean(1, keepdims=True)
    model_vector = model_vector - model_vector.mean()
    denominator = np.linalg.norm(brain_vectors, axis=1) * np.linalg.norm(model_vector)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, brain_vectors @ model_vector / denominator, np.nan)


@dataclass
class BootstrapResult:
    """Point estimate on all data, percentile interval and the bootstrap scores (n_bootstrap,)."""
    estimate: float
    ci_low: float
    ci_high: float
    samples: np.ndarray


def item_bootstrap_samples(n_items, n_bootstrap=1000, random_state=None):
    """Item indices drawn with replacement, one row per bootstrap sample, each row sorted.

    Returns
    -------
    samples : array of int of shape (n_bootstrap, n_items)
    """
    rng = np.random.default_rng(random_state)
    return np.sort(rng.integers(0, n_items, size=(n_bootstrap, n_items)), axis=1)


def bootstrap_items(brain_rdms, model_rdm, method="spearman", controls=(), kind="partial", n_bootstrap=1000,
                    ci=0.95, random_state=None, samples=None):
    """Bootstrap over items: resample items, score the resampled RDMs, take percentiles.

    A pair made of an item and its own copy has no dissimilarity to predict (it would be 0 in
    every RDM), so such pairs are left out, as rsatoolbox does; with the same resampled indices
    the scores equal rsatoolbox's ``bootstrap_sample_pattern`` + ``compare``.

    Parameters
    ----------
    brain_rdms : array of shape (n_items, n_items) or (n_subjects, n_items, n_items)
        With several subjects, each sample's score is the mean over subjects.
    model_rdm : array of shape (n_items, n_items) or (n_pairs,)
    method, controls, kind : as :func:`rsa_score`.
    n_bootstrap : int
    ci : float
        Coverage of the percentile interval.
    random_state : int, numpy Generator or None
    samples : array of int of shape (n_bootstrap, n_items) or None
        Resampled item indices to use instead of drawing them (:func:`item_bootstrap_samples`).

    Returns
    -------
    BootstrapResult
    """
    brains = _as_subject_squares(brain_rdms)
    model = square_rdm(upper_triangle(model_rdm))
    controls = [square_rdm(upper_triangle(c)) for c in controls]
    if samples is None:
        samples = item_bootstrap_samples(model.shape[0], n_bootstrap, random_state)
    scores = np.empty(len(samples))
    for s, index in enumerate(np.asarray(samples)):
        model_s, controls_s = _resampled(model, index), [_resampled(c, index) for c in controls]
        scores[s] = np.mean([rsa_score(_resampled(b, index), model_s, method, controls_s, kind) for b in brains])
    estimate = np.mean([rsa_score(b, model, method, controls, kind) for b in brains])
    return _result(estimate, scores, ci)


def _resampled(rdm, index):
    """Upper triangle of the RDM of items ``index`` (with repeats); pairs of an item with its own
    copy are NaN."""
    return upper_triangle(np.where(index[:, None] == index[None], np.nan, rdm[np.ix_(index, index)]))


def bootstrap_subjects(brain_rdms, model_rdm, method="spearman", controls=(), kind="partial", n_bootstrap=1000,
                       ci=0.95, random_state=None, samples=None):
    """Bootstrap over subjects: the mean score over subjects drawn with replacement.

    Parameters
    ----------
    brain_rdms : array of shape (n_subjects, n_items, n_items) or (n_subjects, n_pairs)
    samples : array of int of shape (n_bootstrap, n_subjects) or None
        Subject indices to use instead of drawing them.
    Others as :func:`bootstrap_items`.

    Returns
    -------
    BootstrapResult
    """
    per_subject = np.array([rsa_score(b, model_rdm, method, controls, kind) for b in brain_rdms])
    if samples is None:
        rng = np.random.default_rng(random_state)
        samples = rng.integers(0, per_subject.size, size=(n_bootstrap, per_subject.size))
    return _result(per_subject.mean(), per_subject[np.asarray(samples)].mean(1), ci)


def _result(estimate, scores, ci):
    tail = (1 - ci) / 2 * 100
    low, high = np.nanpercentile(scores, [tail, 100 - tail]) if np.isfinite(scores).any() else (np.nan, np.nan)
    return BootstrapResult(float(estimate), float(low), float(high), scores)


def noise_ceiling(subject_rdms, method="spearman"):
    """Bounds on the score the true model could reach given between-subject variability.

    Upper bound: each subject's score against the mean RDM of all subjects (itself included,
    hence over-fitted); lower bound: against the mean of the other subjects (Nili et al. 2014).
    The mean is taken over ranks for rank comparisons and over z-scored RDMs for Pearson, the
    RDM that maximises the average score (as rsatoolbox's ``boot_noise_ceiling`` pools them).

    Parameters
    ----------
    subject_rdms : array of shape (n_subjects, n_items, n_items) or (n_subjects, n_pairs)
    method : {"spearman", "kendall_tau_a", "pearson"}

    Returns
    -------
    lower, upper : float
    """
    vectors = np.array([upper_triangle(r) for r in subject_rdms])
    if vectors.shape[0] < 2:
        raise InputError("noise_ceiling: field 'subject_rdms' needs two or more subjects.")
    pooled = np.array([_poolable(v, method) for v in vectors])
    everyone = np.nanmean(pooled, axis=0)
    lower, upper = [], []
    for s, vector in enumerate(vectors):
        others = np.nanmean(np.delete(pooled, s, axis=0), axis=0)
        lower.append(compare_rdms(vector, others, method))
        upper.append(compare_rdms(vector, everyone, method))
    return float(np.mean(lower)), float(np.mean(upper))


def _poolable(vector, method):
    finite = np.isfinite(vector)
    out = np.full(vector.shape, np.nan)
    if method == "pearson":
        out[finite] = stats.zscore(vector[finite])
    else:
        out[finite] = stats.rankdata(vector[finite])
    return out


def _as_subject_squares(brain_rdms):
    brain_rdms = np.asarray(brain_rdms, dtype=np.float64)
    if brain_rdms.ndim == 1 or (brain_rdms.ndim == 2 and brain_rdms.shape[0] == brain_rdms.shape[1]):
        brain_rdms = brain_rdms[None]
    return np.array([square_rdm(upper_triangle(r)) for r in brain_rdms])
