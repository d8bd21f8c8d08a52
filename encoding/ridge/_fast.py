"""Cross-validated ridge for one feature space, every alpha from one decomposition per fold: the driver.

himalaya's RidgeCV forms, per fold and per alpha, an (n_val, n_train) resolution matrix and multiplies
it with the training targets: n_alphas * n_val * n_train * n_targets operations per fold, and refits
one weight matrix per alpha. Here each fold's training design is decomposed once and the targets are
projected once onto its r = min(p, n_train) axes; each alpha then costs either n_val * r per target
("direct": form the prediction), or nothing of that order ("fractions": partial fractions in alpha).
The package's rooms, each importing only the ones below it:

- ``memory``: what a fit holds and per target, and the targets per batch (also the sweep's planner's);
- ``_fractions``: scoring every alpha of a fold by partial fractions;
- ``_folds``: the fold library: the types, a fold's scores, the alpha choice, the kernel form's refit;
- ``_primal`` and ``_kernel``: the two forms, which build the folds (p <= n_train: X^T X, else X X^T);
- this module: ``ridge_cv``, which picks the form, sizes the batches, shares the targets among a
  launcher's processes and scores the test rows (when there are any).

Products with the targets run in the data's dtype (float32 on GPU). Targets are processed in batches
sized from a memory budget (by default half the memory available, ``memory.working_memory_gb``). Every
function works on arrays of the current himalaya backend, so numpy, torch and torch_cuda run the same path.
"""
import numpy as np
from himalaya.backend import get_backend

from ._distributed import gather_targets, launcher_world, target_share
from ._folds import check_splits, choose_form, work_dtype
from ._kernel import decompose_kernel, fit_kernel
from ._primal import decompose_primal, fit_primal
from ._scoring import pearson_r, r2
from .memory import batch_bytes, batch_for, per_target_bytes, working_memory_gb


def decompose(X_train, splits, X_test, alphas, form="auto", dtype="float32", method="auto"):
    """Target-independent part of the fit: ``decompose_primal`` or ``decompose_kernel`` by ``form``."""
    if form == "auto":
        form = choose_form(X_train.shape[1], splits)
    if form == "primal":
        check_splits(splits, X_train.shape[0])
        return decompose_primal(X_train, splits, X_test, alphas, dtype, method)
    if form == "kernel":
        return decompose_kernel(X_train, splits, X_test, alphas, dtype, method)
    raise ValueError(f"fast ridge: unknown form '{form}'; known: auto, primal, kernel.")


def ridge_cv(X_train, Y_train, splits, X_test, Y_test, alphas, form="auto", memory_gb=None,
             n_targets_batch=None, method="auto", progress=False, return_prediction=False):
    """Ridge with per-target alphas chosen by cross-validation, refit on all training rows, scored on test
    rows when there are any.

    Equals himalaya's RidgeCV (fit_intercept=False, score_func=r2_score, local_alpha) with the same
    alphas and splits, up to float rounding.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    Y_train : array of shape (n_train, n_targets); read one batch of columns at a time
    splits : list of (train_indices, val_indices)
        Validation sets partitioning the training rows (run-wise K-fold, see ``run_splits``).
    X_test : array of shape (n_test, n_features), or None
        None: no refit and no test scores, only the alpha choice (as ``RunwiseRidgeCV.fit`` needs).
    Y_test : array of shape (n_test, n_targets), or None (with ``X_test`` None)
    alphas : array of shape (n_alphas,)
    form : {"auto", "primal", "kernel"}
        "auto" takes the primal form when features are no more than any fold's training rows.
    memory_gb : float or None
        Working memory for the fit beyond the arrays passed in; sets the targets per batch. None: half
        the memory available now (``working_memory_gb``).
    n_targets_batch : int or None
        Upper bound on targets per batch (None: the memory budget decides, and on CPU at most 2048).
    method : {"auto", "direct", "fractions"}
        How folds score alphas (see module docstring); "auto" takes the cheaper per fold.
    progress : bool
        Show a progress bar over target batches.
    return_prediction : bool
        Also return the test rows' prediction, ``test_prediction``.

    Under a launcher (torchrun, ``accelerate launch``: WORLD_SIZE > 1) each process decomposes the design,
    fits a contiguous share of the targets and all-gathers the per-target results (``_distributed``), so
    every process returns the full arrays. One process is rank 0 of 1 on the same path.

    Returns
    -------
    dict with numpy arrays of shape (n_targets,): ``alpha_index``, ``alpha`` (as himalaya reports
    best_alphas_), ``cv_score``, and with a test set ``test_r``, ``test_r2`` and, when asked for,
    ``test_prediction`` of shape (n_test, n_targets), float32; and ``form``, ``n_targets_batch``, ``methods``,
    ``world_size``.
    """
    backend = get_backend()
    alphas = np.asarray(alphas, dtype=np.float64)
    dtype = work_dtype(X_train)
    form = choose_form(X_train.shape[1], splits) if form == "auto" else form
    if form not in ("primal", "kernel"):
        raise ValueError(f"fast ridge: unknown form '{form}'; known: auto, primal, kernel.")
    tested = X_test is not None
    if tested != (Y_test is not None):
        raise ValueError("fast ridge: X_test and Y_test go together (both None: no test scoring).")
    n_test = X_test.shape[0] if tested else 0
    rank, world = launcher_world()
    share = target_share(Y_train.shape[1], rank, world)
    n_share = share.stop - share.start
    memory_gb = working_memory_gb(world) if memory_gb is None else memory_gb

    def batch_of(held, per_target):
        return batch_for(held, per_target, memory_gb, n_share, n_targets_batch)

    if form == "kernel":
        n_rank, n_val = max(len(train) for train, _ in splits), max(len(val) for _, val in splits)
        per_target = per_target_bytes(form, X_train.shape[0], n_test, n_rank, n_val, n_rank, len(splits),
                                      len(alphas), np.dtype(dtype).itemsize)
        batches = fit_kernel(X_train, Y_train, splits, X_test, Y_test, alphas, dtype, method,
                             lambda held: batch_of(held, per_target), share, progress=progress and rank == 0)
    else:
        check_splits(splits, X_train.shape[0])
        decomposition = decompose_primal(X_train, splits, X_test, alphas, dtype, method)
        held, per_target = batch_bytes(decomposition, X_train.shape[0], n_test, len(alphas),
                                       np.dtype(dtype).itemsize)
        batches = fit_primal(decomposition, Y_train, alphas, dtype, batch_of(held, per_target), share,
                             progress=progress and rank == 0)
    out = {name: np.empty(n_share) for name in ("cv_score", "test_r", "test_r2") if tested or name == "cv_score"}
    out["alpha_index"] = np.empty(n_share, dtype=np.int64)
    if return_prediction and tested:
        out["test_prediction"] = np.empty((n_test, n_share), dtype=np.float32)
    for item in batches:
        if isinstance(item, dict):   # the last item: how the fit went
            info = item
            continue
        mine, best, cv_score, prediction = item
        out["alpha_index"][mine], out["cv_score"][mine] = best, cv_score
        if not tested:
            continue
        columns = slice(share.start + mine.start, share.start + mine.stop)
        prediction = backend.to_numpy(prediction)
        Y_true = np.asarray(backend.to_numpy(Y_test[:, columns]), dtype=prediction.dtype)
        out["test_r"][mine], out["test_r2"][mine] = pearson_r(Y_true, prediction), r2(Y_true, prediction)
        if return_prediction:
            out["test_prediction"][:, mine] = prediction
    if world > 1:
        out = gather_targets(out, Y_train.shape[1], world, on_cuda=backend.name == "torch_cuda")
    # himalaya reports best_alphas_ as exp(-log(1 / alpha)) in the fit's dtype; so do we, so that
    # stored alphas compare equal to himalaya's bit for bit
    grid = alphas.astype(dtype)
    out["alpha"] = np.exp(-np.log(1 / grid))[out["alpha_index"]]
    out.update(form=form, n_targets_batch=info["n_targets_batch"], world_size=world, methods=info["methods"])
    return out

