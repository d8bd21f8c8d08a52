"""Block-permutation test of held-out correlations, vectorized over targets and permutations.

Under the null hypothesis the prediction carries no information about the response, so the
response's rows can be exchanged with one another, except that fMRI is autocorrelated: single
TRs are not exchangeable, blocks of ``block_length`` TRs (default 10, i.e. 15-20 s, longer than
the hemodynamic response) nearly are. The same permutations serve every target, so the null of
an ROI's mean r is the mean of its targets' nulls and keeps their spatial correlation.

Why it is cheap: with z-scored columns, r = sum_t zy[t] zp[t] / n. Cut the rows into blocks and
let ``G[a, b] = sum_i zy[block a, i] zp[block b, i]`` (one small matrix product per target); the
r of a permutation that puts block pi(b) of the response against block b of the prediction is
``sum_b G[pi(b), b] / n``: a sparse (n_permutations x n_blocks^2) matrix with n_blocks ones per
row times G. The cost is n_permutations x n_blocks x n_targets, ``block_length`` times less than
permuting rows one by one; 1000 permutations of 60k targets over 600 test TRs is a few seconds.

Tails: a permutation p-value is never below 1 / (n_permutations + 1), yet Benjamini-Hochberg over
m targets with k true effects needs p below q k / m (1000 permutations, 60k targets, 2000 driven
ones: 0.0017 — the floor is barely under it, and any fewer permutations find nothing). With
``tail="normal"`` (default) a target whose observed r is exceeded by fewer than ``TAIL_COUNT``
permuted r's gets its p-value from a normal fitted to its own permutation null on the Fisher z
scale, as in the tail approximations of Knijnenburg et al. 2009 and Winkler et al. 2016 (who fit
a generalized Pareto tail; the normal is cheaper for 60k targets and close for correlations);
every other p-value is the plain permutation count. ``tail="none"`` keeps the counts only.

Short test runs: B blocks have only B! distinct orderings (5 blocks: 120). Drawing more permutations
than exist repeats them, and the repeats are not independent evidence. When B! is at most the number
asked for, every ordering is enumerated instead (a warning says so), the identity included, and the
test is exact: ``p = #{orderings with r >= observed} / B!``, never below 1 / B!, with no tail
approximation (it would claim a resolution the test runs do not have). Otherwise ``n_permutations``
distinct orderings other than the identity are drawn.
"""
import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, stats

from features.errors import InputError

# G is computed for this many targets at a time; bounds memory to ~64 MB of float32 per batch
_G_BUDGET = 16_000_000
# a permuted r is a float32 sum of n_blocks terms; ties with the observed r must not depend on rounding
_TIE_TOLERANCE = 1e-6
# below this many exceedances the count says little and the tail approximation takes over
TAIL_COUNT = 10
TAILS = ("normal", "none")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockPermutations:
    """Permutations of blocks of test rows, shared by every target.

    Attributes
    ----------
    blocks : array of int of shape (n_blocks, block_length)
        Row indices of each block; blocks never cross a run boundary.
    fixed : array of int of shape (n_fixed,)
        Rows that stay in place: the last rows of each run that do not fill a block.
    order : array of int of shape (n_permutations, n_blocks)
        ``order[k, b]``: the block of the response placed against block ``b`` of the prediction
        in permutation ``k``.
    n_rows : int
    exact : bool
        True when ``order`` holds every distinct ordering of the blocks (the identity included).
    """

    blocks: np.ndarray
    fixed: np.ndarray
    order: np.ndarray
    n_rows: int
    exact: bool = False

    @property
    def n_permutations(self):
        return self.order.shape[0]


@dataclass
class PermutationResult:
    """Observed correlations and their one-sided permutation p-values (alternative: r > null).

    ``p = (1 + #{null >= observed}) / (1 + n_permutations)``, or the normal tail approximation
    where fewer than ``TAIL_COUNT`` permuted r's reach the observed one (module docstring); with
    every ordering enumerated (``exact``), ``p = #{null >= observed} / n_permutations``; NaN where a
    column is constant. ``roi_r``/``roi_p`` hold the mean r over an ROI's targets and its
    p-value, computed the same way.
    """

    r: np.ndarray
    p: np.ndarray
    n_permutations: int
    exact: bool = False
    roi_r: dict = field(default_factory=dict)
    roi_p: dict = field(default_factory=dict)


def block_permutations(run_lengths, block_length=10, n_permutations=1000, seed=0, warn=True):
    """Draw block permutations of the concatenated test runs.

    Parameters
    ----------
    run_lengths : sequence of int
        Rows of each test run, in the order they are concatenated.
    block_length : int
        TRs per block.
    n_permutations : int
        Orderings asked for; capped at the distinct orderings of the blocks, which are then all
        enumerated (module docstring).
    seed : int
    warn : bool
        Log the cap at the distinct orderings (once per analysis, not once per fit).

    Returns
    -------
    BlockPermutations
    """
    if block_length < 1 or n_permutations < 1:
        raise InputError(f"permutation test: fields 'permutation_block' and 'n_permutations' must be at least 1, "
                         f"found {block_length} and {n_permutations}.")
    blocks, fixed, start = [], [], 0
    for length in run_lengths:
        n_full = length // block_length
        blocks += [start + b * block_length + np.arange(block_length) for b in range(n_full)]
        fixed.append(np.arange(start + n_full * block_length, start + length))
        start += length
    if len(blocks) < 2:
        raise InputError(f"permutation test: field 'permutation_block' is {block_length} TRs, which leaves fewer "
                         f"than two blocks in {start} test TRs; use shorter blocks.")
    n_blocks = len(blocks)
    exact = _n_orderings_at_most(n_blocks, n_permutations)
    if exact:
        order = np.array(list(itertools.permutations(range(n_blocks))), dtype=np.int64)
        (log.warning if warn else log.debug)(
            "permutation test: the test runs hold %d blocks of %d TRs, which have only %d distinct orderings; all of "
            "them are used (an exact test, p >= 1/%d) instead of the %d asked for", n_blocks, block_length,
            len(order), len(order), n_permutations)
    else:
        order = _distinct_orderings(n_blocks, n_permutations, np.random.default_rng(seed))
    return BlockPermutations(np.array(blocks), np.concatenate(fixed).astype(np.int64), order, start, exact)


def _n_orderings_at_most(n_blocks, limit):
    """n_blocks! <= limit, without computing a huge factorial."""
    return n_blocks <= 20 and math.factorial(n_blocks) <= limit


def _distinct_orderings(n_blocks, n_permutations, rng):
    """``n_permutations`` distinct random orderings of the blocks, none of them the identity.

    Only asked for when n_blocks! exceeds n_permutations, so distinct draws exist. Duplicates are
    redrawn; with many blocks they are vanishingly rare and the first draw is kept whole.
    """
    identity = np.arange(n_blocks)
    order = rng.permuted(np.tile(identity, (n_permutations, 1)), axis=1)
    while True:
        _, first = np.unique(order, axis=0, return_index=True)
        keep = np.zeros(len(order), bool)
        keep[first] = True
        keep &= (order != identity).any(1)
        if keep.all():
            return order
        order = order[np.sort(np.flatnonzero(keep))]
        extra = rng.permuted(np.tile(identity, (n_permutations - len(order), 1)), axis=1)
        order = np.concatenate([order, extra])


def _standardize(a):
    """Columns centred and scaled to unit norm over rows; constant columns become 0."""
    a = np.asarray(a, dtype=np.float32)
    a = a - a.mean(0)
    norm = np.sqrt((a.astype(np.float64) ** 2).sum(0))
    ok = np.isfinite(norm) & (norm > 0)
    # zero, not NaN: a non-finite column must not reach the ROI sums of the null
    return np.where(ok, a / np.where(ok, norm, 1), 0).astype(np.float32), ok


def _selector(order):
    """Sparse (n_permutations, n_blocks^2) matrix picking G[order[k, b], b] for every b."""
    n_permutations, n_blocks = order.shape
    columns = (order * n_blocks + np.arange(n_blocks)).ravel()
    rows = np.repeat(np.arange(n_permutations), n_blocks)
    return sparse.csr_matrix((np.ones(columns.size, np.float32), (rows, columns)),
                             shape=(n_permutations, n_blocks * n_blocks))


def _roi_weights(rois, finite, n_targets):
    """Sparse (n_targets, n_rois): 1 / n_finite_members where a finite target belongs to an ROI."""
    rows, cols, weights = [], [], []
    for j, index in enumerate(rois.values()):
        index = np.asarray(index, dtype=np.int64)
        index = index[finite[index]]
        rows.append(index)
        cols.append(np.full(index.size, j))
        weights.append(np.full(index.size, 1.0 / max(index.size, 1)))
    return sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n_targets, len(rois)))


def permutation_test(y_true, y_pred, permutations, rois=None, tail="normal"):
    """Block-permutation p-value of each target's test r (and of each ROI's mean r).

    Parameters
    ----------
    y_true : array of shape (n_rows, n_targets)
        Held-out responses (the concatenated test runs).
    y_pred : array of shape (n_rows, n_targets)
        The model's predictions of them.
    permutations : BlockPermutations
        From :func:`block_permutations` over the same rows.
    rois : dict of str to array of int, optional
        ROI name -> column indices; their mean r is tested against the mean of the same nulls.
    tail : {"normal", "none"}
        How p-values beyond the permutation count's resolution are read (module docstring).

    Returns
    -------
    PermutationResult
    """
    if y_true.shape != y_pred.shape or y_true.shape[0] != permutations.n_rows:
        raise InputError(f"permutation test: expected responses and predictions of shape ({permutations.n_rows}, "
                         f"n_targets), found {y_true.shape} and {y_pred.shape}.")
    if tail not in TAILS:
        raise InputError(f"permutation test: field 'permutation_tail' expected one of {TAILS}, found {tail!r}.")
    zy, ok_y = _standardize(y_true)
    zp, ok_p = _standardize(y_pred)
    finite = ok_y & ok_p
    n_targets = zy.shape[1]
    selector = _selector(permutations.order)
    weights = _roi_weights(rois, finite, n_targets) if rois else None
    r, exceed = np.empty(n_targets), np.zeros(n_targets, np.int64)
    moments = np.empty((2, n_targets))
    roi_null = np.zeros((permutations.n_permutations, len(rois or {})))
    n_blocks = len(permutations.blocks)
    batch = int(max(1, min(8192, _G_BUDGET // n_blocks ** 2)))
    for start in range(0, n_targets, batch):
        cols = slice(start, min(start + batch, n_targets))
        observed, null = _batch_null(zy[:, cols], zp[:, cols], permutations, selector)
        r[cols] = observed
        exceed[cols] = (null >= observed - _TIE_TOLERANCE).sum(0)
        moments[:, cols] = _fisher_moments(null)
        if weights is not None:
            roi_null += np.asarray((weights[cols].T @ null.T).T)
    r[~finite] = np.nan
    p = np.where(finite, _p_values(r, exceed, moments, permutations.n_permutations, tail, permutations.exact),
                 np.nan)
    result = PermutationResult(r, p, permutations.n_permutations, permutations.exact)
    if rois:
        _roi_results(result, rois, weights, roi_null, tail)
    return result


def _roi_results(result, rois, weights, roi_null, tail):
    """Fill ``roi_r``/``roi_p``: each ROI's mean r against the mean of its targets' nulls."""
    roi_observed = weights.T @ np.nan_to_num(result.r)
    roi_exceed = (roi_null >= roi_observed - _TIE_TOLERANCE).sum(0)
    roi_p = _p_values(roi_observed, roi_exceed, _fisher_moments(roi_null), result.n_permutations, tail,
                      result.exact)
    for j, name in enumerate(rois):
        has_targets = weights[:, j].nnz > 0
        result.roi_r[name] = float(roi_observed[j]) if has_targets else np.nan
        result.roi_p[name] = float(roi_p[j]) if has_targets else np.nan


def _fisher_moments(null):
    """Mean and standard deviation of the permuted r's on the Fisher z scale, per column."""
    z = np.arctanh(np.clip(null, -0.999999, 0.999999))
    return np.stack([z.mean(0), z.std(0)])


def _p_values(r, exceed, moments, n_permutations, tail, exact=False):
    """Permutation counts, with the normal tail where fewer than TAIL_COUNT permuted r's reach r.

    ``exact``: every ordering was enumerated, the identity among them (it counts in ``exceed``).
    """
    if exact:
        return exceed / n_permutations
    p = (1 + exceed) / (1 + n_permutations)
    if tail == "normal":
        mean, std = moments
        z = np.arctanh(np.clip(np.nan_to_num(r), -0.999999, 0.999999))
        with np.errstate(invalid="ignore", divide="ignore"):
            normal = stats.norm.sf((z - mean) / std)
        p = np.where((exceed < TAIL_COUNT) & (std > 0), normal, p)
    return p


def _batch_null(zy, zp, permutations, selector):
    """Observed r (n_batch,) and permuted r (n_permutations, n_batch) of a batch of targets."""
    blocks = permutations.blocks
    # (n_batch, n_blocks, block_length) @ (n_batch, block_length, n_blocks) -> G per target
    gram = np.matmul(zy[blocks].transpose(2, 0, 1), zp[blocks].transpose(2, 1, 0))
    n_blocks = blocks.shape[0]
    gram = gram.reshape(gram.shape[0], n_blocks * n_blocks).T
    fixed = (zy[permutations.fixed] * zp[permutations.fixed]).sum(0)
    observed = gram[np.arange(n_blocks) * (n_blocks + 1)].sum(0) + fixed
    null = selector @ gram + fixed
    return observed, null
