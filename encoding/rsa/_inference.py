"""Inference on RDM comparisons: Mantel permutation tests, bootstrap intervals, noise ceilings.

Items, not pairs, are the exchangeable units: the n (n - 1) / 2 dissimilarities share items and
are not independent, so permutation tests permute items (rows and columns together) and the item
bootstrap resamples items (Nili et al. 2014; Kriegeskorte et al. 2008).

Memory stays linear in the number of pairs (1.7 M at 1,854 items, THINGS scale): controls are removed
through an orthonormal basis of shape (n_pairs, n_controls), never an (n_pairs, n_pairs) projector,
and permutations are scored in blocks of draws of at most ``_BLOCK_BYTES``.
"""
from dataclasses import dataclass

import numpy as np
from scipy import stats

from features.errors import InputError

from ._compare import compare_rdms, partial_correlation, semipartial_correlation
from ._rdm import permute_items, square_rdm, upper_triangle

PARTIAL_KINDS = ("partial", "semipartial")

# Permuted brain vectors of a Mantel test are held at most this many bytes at a time (a block of
# draws x pairs in float64): 19 draws at 1,854 items, every draw of a few hundred items at once.
# A block costs about three times this at its peak (the gather's indices, then the residuals).
_BLOCK_BYTES = 2 ** 28


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
    _check_partial(method, kind)
    function = partial_correlation if kind == "partial" else semipartial_correlation
    return function(brain_rdm, model_rdm, controls, method)


def _check_partial(method, kind):
    if method == "kendall_tau_a":
        raise InputError("rsa: field 'comparison' is kendall_tau_a, which has no partial form; use spearman or "
                         "pearson with controls.")
    if kind not in PARTIAL_KINDS:
        raise InputError(f"rsa: field 'partial' is {kind!r}; known: {', '.join(PARTIAL_KINDS)}.")


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
    n_items = brain.shape[0]
    rng = np.random.default_rng(random_state)
    # draw 0 is the identity: the observed score goes through the same arithmetic as the null
    orders = np.array([np.arange(n_items)] + [rng.permutation(n_items) for _ in range(n_permutations)], dtype=int)
    scores = _permuted_scores(brain, orders, upper_triangle(model_rdm), method, [upper_triangle(c) for c in controls],
                              kind)
    observed, null = scores[0], scores[1:]
    if alternative == "two-sided":
        exceed = np.abs(null) >= abs(observed) - 1e-12
    elif alternative == "greater":
        exceed = null >= observed - 1e-12
    else:
        raise InputError(f"mantel_test: field 'alternative' is {alternative!r}; known: greater, two-sided.")
    return MantelResult(float(observed), float((1 + exceed.sum()) / (1 + n_permutations)), null)


def _permuted_scores(brain, orders, model_vector, method, controls, kind):
    """:func:`rsa_score` of the brain RDM with its items taken in each order, against one model.

    Parameters
    ----------
    brain : array of shape (n_items, n_items)
    orders : array of int of shape (n_draws, n_items)
    model_vector : array of shape (n_pairs,)
    controls : list of arrays of shape (n_pairs,)

    Returns
    -------
    scores : array of shape (n_draws,)
    """
    n_pairs = brain.shape[0] * (brain.shape[0] - 1) // 2
    for name, vector in [("model_rdm", model_vector)] + [("controls", c) for c in controls]:
        if vector.size != n_pairs:
            raise InputError(f"mantel_test: field '{name}' holds an RDM of {vector.size} pairs; the brain RDM has "
                             f"{brain.shape[0]} items ({n_pairs} pairs).")
    if controls:
        _check_partial(method, kind)
    finite = all(np.isfinite(v).all() for v in [brain, model_vector] + controls)
    if method not in ("spearman", "pearson") or not finite:
        # Kendall's tau, or NaN pairs (which move with the items, so each draw keeps its own pairs): one
        # draw at a time.
        return np.array([rsa_score(permute_items(brain, order), model_vector, method, controls, kind)
                         for order in orders])
    if method == "spearman":
        # Permuting items permutes the pairs, so the ranks of a permuted RDM are the permuted ranks of
        # the RDM (ties included): rank once, not once per draw.
        brain = square_rdm(stats.rankdata(upper_triangle(brain)))
        model_vector = stats.rankdata(model_vector)
        controls = [stats.rankdata(c) for c in controls]
    basis = _control_basis(controls) if controls else None
    model_part = _residuals(model_vector[None].copy(), basis)[0]
    brain_basis = basis if kind == "partial" else None
    rows, cols = np.triu_indices(brain.shape[0], k=1)
    flat = brain.ravel()
    step = max(1, _BLOCK_BYTES // (8 * max(n_pairs, 1)))
    scores = []
    for start in range(0, len(orders), step):
        # permute_items(brain, block) as one flat gather, cheaper than its two-array fancy index
        block = orders[start:start + step]
        index = block[:, rows] * brain.shape[0]
        index += block[:, cols]
        vectors = flat[index]
        del index
        scores.append(_correlations(vectors, model_part, brain_basis))
    return np.concatenate(scores)


def _control_basis(controls):
    """Orthonormal basis of what the controls add to an intercept, shape (n_pairs, rank).

    With ``y`` centred, ``y - U (U^T y)`` is the residual of ``y`` regressed on ``[1, controls]``,
    in O(n_pairs x n_controls) memory. The controls are centred (the intercept's part) and scaled
    to unit norm first, so the rank cut (lstsq's, ``n_pairs * eps`` of the largest singular value)
    does not depend on their units or offsets; a control without variance adds nothing.
    """
    C = np.column_stack(controls)
    scale = np.linalg.norm(C, axis=0)
    C = C - C.mean(0)
    norms = np.linalg.norm(C, axis=0)
    varies = norms > scale * C.shape[0] * np.finfo(float).eps
    if not varies.any():
        return np.empty((C.shape[0], 0))
    C = C[:, varies] / norms[varies]
    U, s, _ = np.linalg.svd(C, full_matrices=False)
    return U[:, s > s[0] * C.shape[0] * np.finfo(float).eps]


def _residuals(vectors, basis):
    """Rows of ``vectors`` (n_rows, n_pairs) centred and, with a basis, residualised on it, in place."""
    vectors -= vectors.mean(1, keepdims=True)
    if basis is not None and basis.shape[1]:
        vectors -= (vectors @ basis) @ basis.T
    return vectors


def _correlations(vectors, model_part, basis):
    """Pearson r of each row of ``vectors`` (n_draws, n_pairs), residualised on ``basis`` when given,
    with the centred (and residualised) model vector."""
    vectors = _residuals(vectors, basis)
    denominator = np.sqrt(np.einsum("ij,ij->i", vectors, vectors) * (model_part @ model_part))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, vectors @ model_part / denominator, np.nan)


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
