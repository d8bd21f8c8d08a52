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
  they sum over words to r) are averaged the same way.

Held-out test segments (``test_segments``, set by ``compare.test_segments``): one more model, trained on
the other segments (alpha by inner cross-validation over them), predicts the test segments' words, and
its per-word r terms (``test_r_terms``, ``test_sensor_r_terms``; responses and predictions centred within
each test segment, columns scaled to unit norm over the test words, so they sum to the test words' r) are
what the paired comparison of two models tests (``_compare``). With one test segment that model is its
outer fold's model, so nothing is fitted twice. The outer folds' terms cannot serve: fold k's predictions
come from weights fitted on the other folds' responses, so every fold's terms depend on every other
fold's responses and tests that treat them as independent are liberal. Given the one test model, the
test words' terms depend only on their own responses.
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
    test_segments: np.ndarray = None   # (n_test_segments,) labels of the held-out test segments; empty: none
    test_r_terms: np.ndarray = None    # (n_test, G, W) per-word terms of the test words' r, mean over each group
    test_sensor_r_terms: np.ndarray = None  # (n_test, S, W) the same at every sensor; None when read from a file
    test_cv_score: np.ndarray = None   # (S, W) the test model's inner-CV R^2 (training segments only)
    extra: dict = field(default_factory=dict)   # groups: the sensor group names; file: the work file read

    FIELDS = ("r", "p", "q", "alpha", "cv_score", "word_error", "word_r_terms", "r_foldwise", "sensor_r_terms",
              "test_segments", "test_r_terms", "test_sensor_r_terms", "test_cv_score")


def _zscore(train, test):
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1)
    return (train - mean) / std, (test - mean) / std


def test_segment_labels(choice, segments, where="test_segments"):
    """The held-out test segments of one subject's words.

    Parameters
    ----------
    choice : None, "half", "last", int or list of int
        ``half``: the later half of the segments in reading order (rounded down: 1 of 3, 2 of 4 or 5);
        ``last``: the last segment; numbers: segments by their 0-based place in reading order; None: none.
    segments : array of shape (n_words,)
    where : str
        Names the config field in the error.

    Returns
    -------
    list of segment labels (empty for None); at least two segments are left to train on (alpha is
    chosen by cross-validation over them)
    """
    labels = list(dict.fromkeys(np.asarray(segments).tolist()))
    if choice is None:
        return []
    if choice == "half":
        chosen = labels[len(labels) - len(labels) // 2:]
    elif choice == "last":
        chosen = labels[-1:]
    else:
        places = [int(v) for v in (choice if isinstance(choice, (list, tuple)) else [choice])]
        outside = [k for k in places if not 0 <= k < len(labels)]
        if outside:
            raise InputError(f"{where} names segment {outside[0]}, but there are {len(labels)} segments "
                             f"(0 to {len(labels) - 1} in reading order).")
        chosen = [labels[k] for k in sorted(set(places))]
    if len(labels) - len(chosen) < 2:
        raise InputError(f"{where} leaves {len(labels) - len(chosen)} of {len(labels)} segments to train on; the "
                         f"test model needs at least 2 (alpha is chosen by cross-validation over them).")
    return chosen


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
        test, Y_z_test, P_test, alpha[f], cv_score[f] = test_predictions(X, Y, segments, [label], alphas,
                                                                         cv_folds, solver)
        Y_z[test], P[test] = Y_z_test, P_test
    return Y_z, P, alpha, cv_score


def test_predictions(X, Y, segments, test, alphas=DEFAULT_ALPHAS, cv_folds=None, solver="auto"):
    """One model trained on the segments not in ``test`` predicts the words of the ``test`` segments.

    Parameters
    ----------
    X, Y, segments, alphas, cv_folds, solver : as :func:`held_out_predictions`
    test : list of segment labels

    Returns
    -------
    rows : bool (n_words,), the test words
    Y_z : (n_test, n_targets), the test words' responses z-scored with the training statistics
    P : float32 (n_test, n_targets), their predictions on that scale
    alpha : (n_targets,), chosen by the inner cross-validation over the training segments
    cv_score : (n_targets,), the inner-CV score at the chosen alpha
    """
    X, Y, segments = np.asarray(X, np.float64), np.asarray(Y, np.float64), np.asarray(segments)
    rows = np.isin(segments, test)
    X_train, X_test = _zscore(X[~rows], X[rows])
    Y_train, Y_test = _zscore(Y[~rows], Y[rows])
    scores = fit_ridge(X_train.astype(np.float32), Y_train.astype(np.float32), segments[~rows],
                       X_test.astype(np.float32), Y_test.astype(np.float32), alphas=alphas, n_folds=cv_folds,
                       solver=solver, return_prediction=True)
    return rows, Y_test, scores.extra["test_prediction"], scores.alpha, scores.cv_score


def _centre_within(a, segments):
    out = np.array(a, dtype=np.float64)
    for label in np.unique(segments):
        rows = segments == label
        out[rows] -= out[rows].mean(0)
    return out


def fit_words(X, Y, segments, groups=None, alphas=DEFAULT_ALPHAS, cv_folds=None, n_permutations=1000,
              permutation_block=10, seed=0, solver="auto", test_segments=None):
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
    test_segments : list of segment labels or None
        Held-out test segments (:func:`test_segment_labels`): one model trained on the others predicts
        them, and its per-word r terms are kept (``test_*`` fields); None or empty: none.

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
    test = _test_terms(X, Y.reshape(n_words, -1), segments, list(test_segments or []), Y_z, P, cv_score, groups,
                       (n_sensors, n_windows), alphas, cv_folds, solver)
    return WordFit(r=np.asarray(r).reshape(shape), p=np.asarray(p).reshape(shape),
                   q=fdr_bh(np.asarray(p)).reshape(shape), alpha=alpha.reshape(-1, *shape),
                   cv_score=cv_score.mean(0).reshape(shape), word_error=word_error.astype(np.float32),
                   word_r_terms=word_r_terms.astype(np.float32), r_foldwise=r_foldwise.reshape(shape),
                   sensor_r_terms=products.reshape(n_words, n_sensors, n_windows).astype(np.float32),
                   **test, extra={"groups": list(groups)})


def _test_terms(X, Y, segments, test, Y_z, P, cv_score, groups, shape, alphas, cv_folds, solver):
    """The ``test_*`` fields of a WordFit: the test model's per-word r terms on the test segments' words."""
    if not test:
        return {"test_segments": np.zeros(0, np.int64),
                "test_r_terms": np.zeros((0, len(groups), shape[1]), np.float32),
                "test_sensor_r_terms": np.zeros((0, *shape), np.float32),
                "test_cv_score": np.full(shape, np.nan)}
    labels = list(dict.fromkeys(segments.tolist()))
    if len(test) == 1:
        # one test segment: its outer fold's model was trained on every other segment, as the test model is
        rows = segments == test[0]
        Y_test, P_test, score = Y_z[rows], P[rows], cv_score[labels.index(test[0])]
    else:
        rows, Y_test, P_test, _, score = test_predictions(X, Y, segments, test, alphas, cv_folds, solver)
    products = _test_products(Y_test, P_test, segments[rows], shape)
    return {"test_segments": np.asarray(test), "test_r_terms": _group_means(products, groups).astype(np.float32),
            "test_sensor_r_terms": products.astype(np.float32), "test_cv_score": np.asarray(score).reshape(shape)}


def _test_products(Y_test, P_test, test_segments, shape):
    """Per-word r terms of the test words (n_test, S, W): centred within each test segment, unit columns."""
    centred = _centre_within(Y_test, test_segments), _centre_within(P_test, test_segments)
    return (_unit(centred[0]) * _unit(centred[1])).reshape(-1, *shape)


def held_out_sensor_terms(X, Y, segments, test, alphas=DEFAULT_ALPHAS, cv_folds=None, solver="auto"):
    """``fit_words(X, Y, segments, test_segments=test).test_sensor_r_terms`` from the test model alone, without
    the outer folds and the permutations (what ``compare`` computes again; the same numbers).

    Parameters
    ----------
    X, Y, segments, alphas, cv_folds, solver : as :func:`fit_words`
    test : list of segment labels, not empty

    Returns
    -------
    float32 array of shape (n_test, n_sensors, n_windows)
    """
    Y = np.asarray(Y)
    n_words, n_sensors, n_windows = Y.shape
    segments = np.asarray(segments)
    rows, Y_test, P_test, _, _ = test_predictions(X, Y.reshape(n_words, -1), segments, list(test), alphas, cv_folds,
                                                  solver)
    if len(test) == 1:      # fit_words reads one test segment from its outer folds' arrays, kept in float32
        Y_test = Y_test.astype(np.float32)
    return _test_products(Y_test, P_test, segments[rows], (n_sensors, n_windows)).astype(np.float32)


def _group_means(per_sensor, groups):
    """(n_words, n_sensors, n_windows) -> (n_words, n_groups, n_windows), mean over each group's sensors."""
    return np.stack([per_sensor[:, np.asarray(index)].mean(1) for index in groups.values()], 1)


def _unit(a):
    """Columns scaled to unit norm over rows (already centred); constant columns stay 0."""
    norm = np.sqrt((a ** 2).sum(0))
    return a / np.where(norm > 0, norm, 1)
