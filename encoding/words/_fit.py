"""Ridge from word features to every sensor x window, cross-validated over story segments.

Outer loop: each story segment is predicted by a model trained on the other segments (every
sensor x window its own alpha, chosen by the engine's inner cross-validation over the training
segments, ``encoding.ridge.fit_ridge``). The features and responses are z-scored with the training
words' statistics. Every word thus gets a held-out prediction, and:

- r per sensor x window is the Pearson correlation over all words of responses and predictions, each
  centred within its segment (so a segment's offset, common to its responses and its fold's
  predictions, adds nothing). This *pooled* r is biased below zero under the null (about -0.04 for 8
  random features on white noise, 400 words in 4 segments): each fold picks its own alpha per target,
  so the folds' predictions differ in scale and pooling them mixes unlike scales. ``r_foldwise``, the
  mean over folds of r within each test segment, is reported beside it and is unbiased there (about
  -0.006); a fold whose prediction is constant (alpha at the grid's top) counts as r = 0;
- the permutation test (p, q, ``significant``) uses the pooled r: its permutation null is centred at 0
  while the observed pooled r under the null lies below 0, so the test is conservative, never liberal;
- its p-value comes from block permutations (``encoding.stats``; adjacent words' epochs overlap in
  time, so blocks of ``permutation_block`` consecutive words are exchanged, not single words): each
  segment is cut into blocks (none crosses a segment boundary, a segment's leftover words stay in
  place) and the blocks of all segments are exchanged with one another, and q comes from
  Benjamini-Hochberg over all sensors x windows of the map;
- the per-word error is the squared error of the z-scored prediction, averaged over each sensor
  group's sensors, per window; the per-word r terms ``z_y * z_p`` (columns scaled to unit norm, so
  they sum over words to r) are averaged the same way: the paired comparison of two models works on them.
"""
from dataclasses import dataclass, field

import numpy as np

from features.errors import InputError

from ..ridge import DEFAULT_ALPHAS, fit_ridge
from ..stats import block_permutations, fdr_bh, permutation_test


@dataclass
class WordFit:
    """One (subject, model, layer) fit. S sensors, W windows, n words, G sensor groups."""
    r: np.ndarray               # (S, W) held-out Pearson r pooled over all words (the one tested)
    p: np.ndarray               # (S, W) one-sided block-permutation p (NaN without permutations)
    q: np.ndarray               # (S, W) Benjamini-Hochberg over the map
    alpha: np.ndarray           # (n_segments, S, W) chosen by inner CV in each outer fold
    cv_score: np.ndarray        # (S, W) inner-CV R^2 at the chosen alpha, mean over outer folds
    word_error: np.ndarray      # (n, G, W) squared error of the z-scored prediction, mean over each group's sensors
    word_r_terms: np.ndarray    # (n, G, W) per-word terms of r, mean over each group's sensors
    r_foldwise: np.ndarray = None   # (S, W) mean over outer folds of r within each test segment
    sensor_r_terms: np.ndarray = None  # (n, S, W) per-word terms of r at every sensor (sensor x time clusters);
    #                                    None in a fit read from a work file: ``_study.sensor_terms`` reads them
    extra: dict = field(default_factory=dict)   # groups: the sensor group names; file: the work file read

    FIELDS = ("r", "p", "q", "alpha", "cv_score", "word_error", "word_r_terms", "r_foldwise", "sensor_r_terms")


def _zscore(train, test):
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1)
    return (train - mean) / std, (test - mean) / std


def held_out_predictions(X, Y, segments, alphas=DEFAULT_ALPHAS, cv_folds=None, solver="auto"):
    """Every word's prediction by the model trained on the other segments.

    Parameters
    ----------
    X : array of shape (n_words, n_features)
    Y : array of shape (n_words, n_targets)
    segments : array of int of shape (n_words,)
    alphas, cv_folds, solver : as :func:`encoding.ridge.fit_ridge` (inner folds over training segments)

    Returns
    -------
    Y_z : float32 (n_words, n_targets), responses z-scored with their fold's training statistics
    P : float32 (n_words, n_targets), predictions on that scale
    alpha : (n_segments, n_targets)
    cv_score : (n_segments, n_targets)
    """
    X, Y, segments = np.asarray(X, np.float64), np.asarray(Y, np.float64), np.asarray(segments)
    labels = list(dict.fromkeys(segments.tolist()))
    if len(labels) < 3:
        raise InputError(f"segments: field 'segments' gives {len(labels)} story segment(s); cross-validation over "
                         f"segments needs at least 3 (one to test, two to choose alpha).")
    Y_z, P = np.empty(Y.shape, np.float32), np.empty(Y.shape, np.float32)
    alpha, cv_score = np.empty((len(labels), Y.shape[1])), np.empty((len(labels), Y.shape[1]))
    for f, label in enumerate(labels):
        test = segments == label
        X_train, X_test = _zscore(X[~test], X[test])
        Y_train, Y_test = _zscore(Y[~test], Y[test])
        scores = fit_ridge(X_train.astype(np.float32), Y_train.astype(np.float32), segments[~test],
                           X_test.astype(np.float32), Y_test.astype(np.float32), alphas=alphas, n_folds=cv_folds,
                           solver=solver, return_prediction=True)
        Y_z[test], P[test] = Y_test, scores.extra["test_prediction"]
        alpha[f], cv_score[f] = scores.alpha, scores.cv_score
    return Y_z, P, alpha, cv_score


def _centre_within(a, segments):
    out = np.array(a, dtype=np.float64)
    for label in np.unique(segments):
        rows = segments == label
        out[rows] -= out[rows].mean(0)
    return out


def fit_words(X, Y, segments, groups=None, alphas=DEFAULT_ALPHAS, cv_folds=None, n_permutations=1000,
              permutation_block=10, seed=0, solver="auto"):
    """Held-out r, its significance and the per-word errors of one feature space (module docstring).

    Parameters
    ----------
    X : array of shape (n_words, n_features)
    Y : array of shape (n_words, n_sensors, n_windows)
    segments : array of shape (n_words,)
    groups : dict of name -> sensor indices, or None (one group of all sensors)
    alphas, cv_folds, solver : see :func:`held_out_predictions`
    n_permutations : int
        0 skips the test (p and q NaN).
    permutation_block : int
        Consecutive words per permuted block.
    seed : int

    Returns
    -------
    WordFit
    """
    Y = np.asarray(Y)
    if Y.ndim != 3 or len(Y) != len(X):
        raise InputError(f"fit_words: field 'Y' expected ({len(X)}, n_sensors, n_windows), found {Y.shape}.")
    n_words, n_sensors, n_windows = Y.shape
    segments = np.asarray(segments)
    Y_z, P, alpha, cv_score = held_out_predictions(X, Y.reshape(n_words, -1), segments, alphas, cv_folds, solver)
    Y_c, P_c = _centre_within(Y_z, segments), _centre_within(P, segments)
    products = _unit(Y_c) * _unit(P_c)               # (n_words, n_targets); sums to r over words
    order = np.argsort(segments, kind="stable")     # blocks never cross a segment boundary
    if n_permutations:
        lengths = [int((segments == s).sum()) for s in np.unique(segments[order])]
        permutations = block_permutations(lengths, permutation_block, n_permutations, seed)
        result = permutation_test(Y_c[order], P_c[order], permutations)
        r, p = result.r, result.p
    else:
        r = products.sum(0)
        p = np.full(r.shape, np.nan)
    groups = groups or {"all": np.arange(n_sensors)}
    word_r_terms = _group_means(products.reshape(n_words, n_sensors, n_windows), groups)
    word_error = _group_means(((Y_z - P) ** 2).reshape(n_words, n_sensors, n_windows), groups)
    shape = (n_sensors, n_windows)
    # within a segment Y_c and P_c are already centred: a fold's r is the sum of its unit-scaled products, and
    # r_foldwise their mean over folds (reported beside the pooled r; the tests use the pooled terms above)
    labels = np.unique(segments)
    r_foldwise = sum((_unit(Y_c[rows]) * _unit(P_c[rows])).sum(0) for rows in (segments == s for s in labels))
    r_foldwise = r_foldwise / len(labels)
    return WordFit(r=np.asarray(r).reshape(shape), p=np.asarray(p).reshape(shape),
                   q=fdr_bh(np.asarray(p)).reshape(shape), alpha=alpha.reshape(-1, *shape),
                   cv_score=cv_score.mean(0).reshape(shape), word_error=word_error.astype(np.float32),
                   word_r_terms=word_r_terms.astype(np.float32), r_foldwise=r_foldwise.reshape(shape),
                   sensor_r_terms=products.reshape(n_words, n_sensors, n_windows).astype(np.float32),
                   extra={"groups": list(groups)})


def _group_means(per_sensor, groups):
    """(n_words, n_sensors, n_windows) -> (n_words, n_groups, n_windows), mean over each group's sensors."""
    return np.stack([per_sensor[:, np.asarray(index)].mean(1) for index in groups.values()], 1)


def _unit(a):
    """Columns scaled to unit norm over rows (already centred); constant columns stay 0."""
    norm = np.sqrt((a ** 2).sum(0))
    return a / np.where(norm > 0, norm, 1)
