"""SPoSE: a sparse, positive object embedding learned from triplet odd-one-out choices.

The choice model (Zheng, Pereira, Baker & Hebart 2019, ICLR; Hebart et al. 2020, Nat. Hum. Behav.):
every item ``i`` has a non-negative vector ``x_i``; in a triplet ``(i, j, k)`` the similarity of a pair is
the dot product ``S_ij = x_i . x_j``, and the probability that ``k`` is the odd one out (that ``i, j`` is
the most similar pair) is ``exp(S_ij) / (exp(S_ij) + exp(S_ik) + exp(S_jk))``.

The objective and its optimisation follow the authors' reference implementation (ViCCo-Group/SPoSE,
``train.py``, ``models/model.py``, ``utils.py``):

- the loss of a mini-batch is the mean cross-entropy of the observed choices, plus ``lambda / n_items``
  times the L1 norm of the whole embedding (sparsity), plus ``0.01`` times the sum of its negative parts
  (a soft positivity constraint);
- the embedding starts from N(0.1, 0.01) entries and is optimised with Adam (lr 0.001 there) on
  mini-batches of triplets drawn without replacement each epoch (100 triplets there);
- a dimension is kept when its largest weight exceeds 0.1 (``get_nneg_dims``); the rest are pruned.

What this module adds on top of that recipe: negative entries left by the soft constraint are set to 0
in the returned embedding (it is non-negative, as the model says), and kept dimensions are sorted by
their total weight, largest first, as Hebart et al. (2020) order theirs.

Arrays in, arrays out: these functions take triplets with their choices and return numpy arrays, so the
math is testable without the estimator in ``_estimator.py``.
"""
from __future__ import annotations

import numpy as np

from features.errors import InputError

POSITIVITY_WEIGHT = 0.01   # weight of the sum of negative parts in the reference recipe
INIT_MEAN, INIT_STD = 0.1, 0.01
PRUNE_THRESHOLD = 0.1      # a dimension whose largest weight is at most this is pruned


def odd_last(triplets, choices):
    """Reorder each triplet so the chosen odd one out comes last (the reference recipe's layout).

    Parameters
    ----------
    triplets : int array of shape (n_triplets, 3)
        Item indices in the order they were shown.
    choices : int array of shape (n_triplets,)
        Position (0, 1 or 2) of the odd one out in each triplet.

    Returns
    -------
    ordered : int64 array of shape (n_triplets, 3)
        ``(i, j, odd)``: the pair judged most similar, then the odd one out.
    """
    triplets = np.asarray(triplets, dtype=np.int64)
    choices = np.asarray(choices, dtype=np.int64)
    if triplets.ndim != 2 or triplets.shape[1] != 3 or choices.shape != (triplets.shape[0],):
        raise InputError(f"triplets: field 'triplets' expected shape (n, 3) with one choice each, found "
                         f"{triplets.shape} and {choices.shape}.")
    if choices.size and (choices.min() < 0 or choices.max() > 2):
        raise InputError("triplets: field 'choice' must be 0, 1 or 2 (the position of the odd one out).")
    order = np.array([[1, 2, 0], [0, 2, 1], [0, 1, 2]])[choices]
    return np.take_along_axis(triplets, order, axis=1)


def pair_logits(embedding, triplets):
    """Similarities of the three pairs of each triplet, ordered so column ``k`` leaves out position ``k``.

    Parameters
    ----------
    embedding : tensor of shape (n_items, n_dims)
    triplets : long tensor of shape (n_triplets, 3)

    Returns
    -------
    logits : tensor of shape (n_triplets, 3)
        ``[S_12, S_02, S_01]``: the softmax over a row is the probability that each position is the odd one out.
    """
    import torch
    from torch.nn.functional import embedding as lookup

    # one lookup of the three rows (its backward sums into the rows: cheaper than three index_put's)
    a, b, c = lookup(triplets, embedding).unbind(1)
    return torch.stack([(b * c).sum(-1), (a * c).sum(-1), (a * b).sum(-1)], 1)


def odd_one_out_probabilities(embedding, triplets, batch_size=1 << 16):
    """Probability that each position of each triplet is the odd one out, under the SPoSE choice model.

    Parameters
    ----------
    embedding : array of shape (n_items, n_dims)
    triplets : int array of shape (n_triplets, 3)
    batch_size : int
        Triplets scored at once (bounds the float64 rows looked up to 3 x batch_size x n_dims).

    Returns
    -------
    probabilities : float64 array of shape (n_triplets, 3)
    """
    import torch

    weights = torch.as_tensor(np.asarray(embedding, dtype=np.float64))
    triplets = torch.as_tensor(np.asarray(triplets, dtype=np.int64))
    out = [torch.softmax(pair_logits(weights, triplets[s:s + batch_size]), 1)
           for s in range(0, len(triplets), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 3))


def spose_loss(weights, batch, lmbda, n_items):
    """The reference recipe's loss of one mini-batch ``(i, j, odd)``: cross-entropy + sparsity + positivity.

    Returns
    -------
    loss : scalar tensor (what is minimised)
    cross_entropy : scalar tensor (the data term alone)
    """
    import torch

    cross_entropy = _cross_entropy(weights, batch)
    penalty = (lmbda / n_items) * weights.abs().sum() + POSITIVITY_WEIGHT * torch.relu(-weights).sum()
    return cross_entropy + penalty, cross_entropy


def _cross_entropy(weights, batch):
    import torch

    logits = pair_logits(weights, batch)
    return torch.logsumexp(logits, 1).mean() - logits[:, 2].mean()


def _add_penalty_gradient(weights, lmbda, n_items):
    """Add the gradient of the sparsity and positivity terms of :func:`spose_loss` to ``weights.grad``.

    Written out (``lmbda / n_items * sign(W) - 0.01 * [W < 0]``, both 0 at W = 0 as autograd has them)
    rather than differentiated: three passes over the embedding instead of autograd's several, which are
    most of a step's cost when a mini-batch touches 300 of 1,854 rows. ``min(sign(W), 0)`` is ``-[W < 0]``
    without a comparison's boolean mask and its conversion (three times slower on CPU).
    """
    import torch

    sign = torch.sign(weights)
    weights.grad.add_(sign, alpha=lmbda / n_items)
    weights.grad.add_(sign.clamp_(max=0), alpha=POSITIVITY_WEIGHT)


def fit_spose(ordered, n_items, n_dims, lmbda, epochs=100, batch_size=100, lr=0.001, random_state=0,
              device="cpu", progress=None, cpu_threads=1):
    """Optimise one SPoSE embedding (one lambda, one seed) on triplets with the odd one out last.

    Parameters
    ----------
    ordered : int array of shape (n_triplets, 3)
        ``(i, j, odd)`` per triplet (see :func:`odd_last`).
    n_items, n_dims : int
    lmbda : float
        Sparsity weight; the L1 term is ``lmbda / n_items * |W|_1`` as in the reference recipe.
    epochs, batch_size, lr : int, int, float
        Passes over the triplets, triplets per Adam step, Adam's learning rate.
    random_state : int
        Seeds the initial embedding and the order of mini-batches (bit-reproducible on CPU).
    device : str
        ``"cpu"`` or a CUDA device.
    progress : callable or None
        Called as ``progress(epoch, mean cross-entropy of the epoch, weights)`` after each epoch; ``weights`` is
        the embedding so far (a detached tensor on ``device``: read it, do not change it).
    cpu_threads : int or None
        Torch intra-op threads while fitting on CPU (None: leave torch's setting). One by default: a step
        is a few small kernels (a 100-triplet batch touches 300 rows), which extra threads only make wait
        on each other; on a busy 2-core machine two threads ran the planted test's fits 6 to 20 times
        slower than one (``bench/spose.py`` measures both).

    Returns
    -------
    embedding : float32 array of shape (n_items, n_dims)
        The raw optimised weights (not pruned, negative parts not yet cleared).
    """
    import torch

    before = torch.get_num_threads()
    if cpu_threads and str(device).startswith("cpu"):
        torch.set_num_threads(int(cpu_threads))
    try:
        return _optimise(ordered, n_items, n_dims, lmbda, epochs, batch_size, lr, random_state, device, progress)
    finally:
        torch.set_num_threads(before)


def _optimise(ordered, n_items, n_dims, lmbda, epochs, batch_size, lr, random_state, device, progress):
    import torch

    generator = torch.Generator().manual_seed(int(random_state))
    weights = (torch.randn(n_items, n_dims, generator=generator, dtype=torch.float32) * INIT_STD + INIT_MEAN)
    weights = weights.to(device).requires_grad_(True)
    data = torch.as_tensor(np.asarray(ordered, dtype=np.int64)).to(device)
    # fused: one kernel for Adam's update of the whole embedding (CPU and CUDA, torch >= 2.4)
    optimizer = torch.optim.Adam([weights], lr=lr, fused=True)
    for epoch in range(int(epochs)):
        order = torch.randperm(len(data), generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, len(data), batch_size):
            batch = data[order[start:start + batch_size]]
            optimizer.zero_grad(set_to_none=False)
            cross_entropy = _cross_entropy(weights, batch)
            cross_entropy.backward()
            with torch.no_grad():
                _add_penalty_gradient(weights, lmbda, n_items)
            optimizer.step()
            total += cross_entropy.detach() * len(batch)
        if progress is not None:
            progress(epoch, float(total) / max(len(data), 1), weights.detach())
    return weights.detach().cpu().numpy()


def prune(embedding, threshold=PRUNE_THRESHOLD):
    """Clear negative entries, drop dimensions whose largest weight is at most ``threshold``, and sort the
    rest by total weight, largest first.

    Returns
    -------
    pruned : float32 array of shape (n_items, n_kept)
    kept : int array of shape (n_kept,)
        Column of each kept dimension in the input.
    """
    embedding = np.clip(np.asarray(embedding, dtype=np.float32), 0, None)
    kept = np.flatnonzero(embedding.max(0) > threshold)
    kept = kept[np.argsort(-embedding[:, kept].sum(0), kind="stable")]
    return embedding[:, kept], kept


def cross_entropy(embedding, ordered):
    """Mean negative log-probability of the observed choices (``ordered``: odd one out last)."""
    probabilities = odd_one_out_probabilities(embedding, ordered)
    return float(-np.log(np.maximum(probabilities[:, 2], 1e-300)).mean())


def choice_accuracy(embedding, ordered):
    """Fraction of triplets whose observed odd one out (last column) is the model's most likely one."""
    return float(hits(odd_one_out_probabilities(embedding, ordered), 2).mean())


def hits(probabilities, choices):
    """Per triplet, 1 when the chosen position is the most likely one, shared equally among tied maxima
    (so an embedding that cannot tell the three apart scores chance, 1/3, not 0 or 1).

    Parameters
    ----------
    probabilities : array of shape (n, 3)
    choices : int array of shape (n,) or an int

    Returns
    -------
    float64 array of shape (n,)
    """
    probabilities = np.asarray(probabilities)
    top = probabilities >= probabilities.max(1, keepdims=True) * (1 - 1e-12)
    chosen = np.take_along_axis(top, np.broadcast_to(np.asarray(choices), (len(top),))[:, None], 1)[:, 0]
    return chosen / top.sum(1)
