"""Cross-validated ridge per feature space, and banded ridge over several.

One feature space goes to the fast solver (``_fast``) by default, with himalaya's RidgeCV and
KernelRidgeCV kept as the reference it equals; banded ridge runs on himalaya. The functions take plain
arrays (rows = TRs of the training or test runs, already delayed and z-scored) and return per-target
numbers; the current himalaya backend decides where they run.
"""
from dataclasses import dataclass, field

import numpy as np
from himalaya.backend import get_backend
from himalaya.kernel_ridge import KernelRidgeCV, MultipleKernelRidgeCV
from himalaya.ridge import GroupRidgeCV, RidgeCV
from himalaya.scoring import r2_score, r2_score_split

from ._banded import band_weight_grid, band_weight_samples, banded_ridge_cv
from ._cv import run_splits
from ._fast import ridge_cv
from ._pca import reduce_features
from ._scoring import pearson_r, r2
from ._threads import fit_threads, limited_threads

DEFAULT_ALPHAS = np.logspace(-2, 6, 17)


@dataclass
class RidgeScores:
    """Per-target results of one fit. Arrays have shape (n_targets,) unless said otherwise."""
    alpha: np.ndarray            # chosen on cross-validation inside the training runs
    cv_score: np.ndarray         # mean validation R^2 over folds at the chosen alpha
    test_r: np.ndarray           # Pearson r on the test runs
    test_r2: np.ndarray          # R^2 on the test runs
    solver: str                  # "fast-primal", "fast-kernel", "primal", "kernel" or "banded-..."
    test_r2_split: np.ndarray = None   # (n_bands, n_targets), banded fits only
    band_weights: np.ndarray = None    # (n_bands, n_targets): exp(deltas), banded fits only
    extra: dict = field(default_factory=dict)


def choose_solver(n_samples, n_features):
    """Primal ridge when features are fewer than samples, kernel ridge otherwise (cheaper side)."""
    return "primal" if n_features <= n_samples else "kernel"


def fit_ridge(X_train, Y_train, run_ids, X_test, Y_test, alphas=DEFAULT_ALPHAS, n_folds=None,
              n_targets_batch=None, solver="auto", Y_in_cpu=False, memory_gb=None, pca_components=None,
              return_prediction=False, threads=None):
    """Ridge with per-target alphas chosen by run-wise cross-validation, scored on test runs.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
    Y_train : array of shape (n_train, n_targets)
    run_ids : array of shape (n_train,)
        CV group of each row (encoding.run passes its stimulus run, so repeated viewings stay in one
        fold); folds never split a group.
    X_test : array of shape (n_test, n_features)
    Y_test : array of shape (n_test, n_targets)
    alphas : array of shape (n_alphas,)
    n_folds : int or None
        None is leave-one-run-out.
    n_targets_batch : int or None
        Targets solved at once; bounds memory (with the fast solver, an upper bound on what
        ``memory_gb`` allows).
    solver : {"auto", "fast-primal", "fast-kernel", "primal", "kernel"}
        "auto": the fast solver (``_fast.ridge_cv``: one decomposition per fold, every alpha by
        rescaling), in primal or kernel form, whichever is cheaper. "fast-primal"/"fast-kernel" force
        the form. "primal"/"kernel": himalaya's RidgeCV/KernelRidgeCV, the reference it equals.
    Y_in_cpu : bool
        himalaya solvers only; the fast solver always reads Y one batch of targets at a time.
    memory_gb : float or None
        Working memory of the fast solver beyond its inputs; sets the targets per batch. None: half the
        memory available when the fit starts (``memory.working_memory_gb``; 2 GB where it cannot be read).
    pca_components : int or None
        Reduce the design to its leading principal components, fitted on the training runs only.
    return_prediction : bool
        Also hand back the test rows' prediction as ``extra["test_prediction"]``: numpy float32 of shape
        (n_test, n_targets), the prediction ``test_r`` and ``test_r2`` score (every solver, with or
        without PCA). It is held in memory beside the inputs, outside ``memory_gb``.
    threads : int or None
        BLAS/torch threads during the fit; None chooses: one for a small fit, every available core for a
        large one (``_threads.fit_threads``).

    Returns
    -------
    RidgeScores

    Notes
    -----
    Several processes: started by a launcher (``torchrun --nproc_per_node K`` or ``accelerate launch``,
    which set WORLD_SIZE > 1 and RANK), the fast solver gives each process a contiguous share of the
    targets (of T targets, rank k fits [k T // K, (k + 1) T // K)) and all-gathers the per-target
    results, so every process returns the full arrays, equal to a one-process fit. The process group is
    initialised from the environment if the launcher did not (gloo on CPU, NCCL with the torch_cuda
    backend). Each process reads only its share of Y's columns but decomposes the whole design itself.
    One process is the same code path with a share of all targets. The gather is collective: every
    process must make the same calls in the same order. The himalaya solvers ("primal", "kernel") do not
    split.
    """
    with limited_threads(fit_threads(*np.shape(X_train), threads)):
        return _fit_ridge(X_train, Y_train, run_ids, X_test, Y_test, alphas, n_folds, n_targets_batch, solver,
                          Y_in_cpu, memory_gb, pca_components, return_prediction)


def _fit_ridge(X_train, Y_train, run_ids, X_test, Y_test, alphas, n_folds, n_targets_batch, solver, Y_in_cpu,
               memory_gb, pca_components, return_prediction):
    extra = {}
    if pca_components:
        X_train, X_test, explained = reduce_features(X_train, X_test, int(pca_components))
        extra.update(pca_components=int(pca_components), pca_explained_variance=float(explained.sum()))
    if solver in ("auto", "fast-primal", "fast-kernel"):
        form = "auto" if solver == "auto" else solver[len("fast-"):]
        out = ridge_cv(X_train, Y_train, run_splits(run_ids, n_folds), X_test, Y_test, np.asarray(alphas),
                       form=form, memory_gb=memory_gb,
                       n_targets_batch=n_targets_batch, return_prediction=return_prediction)
        extra.update(n_targets_batch=out["n_targets_batch"], world_size=out["world_size"])
        if return_prediction:
            extra["test_prediction"] = out["test_prediction"]
        return RidgeScores(alpha=out["alpha"], cv_score=out["cv_score"], test_r=out["test_r"],
                           test_r2=out["test_r2"], solver="fast-" + out["form"], extra=extra)
    if solver not in ("primal", "kernel"):
        raise ValueError(f"fit_ridge: unknown solver '{solver}'; known: auto, fast-primal, fast-kernel, primal, "
                         f"kernel.")
    return _fit_ridge_himalaya(X_train, Y_train, run_ids, X_test, Y_test, alphas, n_folds, n_targets_batch,
                               solver, Y_in_cpu, extra, return_prediction)


def _fit_ridge_himalaya(X_train, Y_train, run_ids, X_test, Y_test, alphas, n_folds, n_targets_batch, solver,
                        Y_in_cpu, extra, return_prediction=False):
    """himalaya's RidgeCV or KernelRidgeCV on run-wise folds: the reference the fast solver equals."""
    backend = get_backend()
    params = dict(score_func=r2_score, n_targets_batch=n_targets_batch,
                  n_targets_batch_refit=n_targets_batch)
    cv = run_splits(run_ids, n_folds)
    if solver == "primal":
        model = RidgeCV(alphas=alphas, cv=cv, solver_params=params, Y_in_cpu=Y_in_cpu)
    else:
        model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, solver_params=params,
                              Y_in_cpu=Y_in_cpu)
    model.fit(X_train, Y_train)
    prediction = backend.to_numpy(model.predict(X_test))
    if return_prediction:
        extra["test_prediction"] = np.asarray(prediction, dtype=np.float32)
    return RidgeScores(
        alpha=backend.to_numpy(model.best_alphas_),
        cv_score=backend.to_numpy(model.cv_scores_),
        test_r=pearson_r(Y_test, prediction),
        test_r2=r2(Y_test, prediction),
        solver=solver,
        extra=extra,
    )


def fit_banded_ridge(Xs_train, Y_train, run_ids, Xs_test, Y_test, alphas=DEFAULT_ALPHAS, n_folds=None,
                     n_iter=50, n_targets_batch=None, random_state=0, Y_in_cpu=False, solver="auto",
                     return_single=False, search="random", memory_gb=None, threads=None, progress=False):
    """Banded ridge: one regularisation per feature space, searched over band weights.

    Parameters
    ----------
    Xs_train : list of arrays of shape (n_train, n_features_band)
    Xs_test : list of arrays of shape (n_test, n_features_band)
    n_iter : int or array of shape (n_samples, n_bands)
        Band-weight samples: an int draws that many as himalaya's random search does (Dirichlet, the
        first one equal weights, ``random_state``); an array gives them (e.g. ``band_weight_grid()``).
    search : {"random", "grid"}
        "random": ``n_iter`` as above. "grid" (two bands): ``band_weight_grid(n_iter)``, the two bands'
        weight ratio log-spaced over 10^-3..10^3, followed by each band alone, (1, 0) and (0, 1): on
        ``bench/banded.py``'s study 25 ratios reached the mean CV R^2 of 50 random samples to 1e-5.
        Always in the kernel form: himalaya's primal search divides each band by the square root of its
        weight, which a band alone (weight 0 for the other) does not survive.
    solver : {"auto", "fast", "himalaya"}
        "fast": the kernel form of ``_banded`` (per-band kernels once, each sample a fast kernel-form
        fit); "himalaya": himalaya's GroupRidgeCV (fewer features than training TRs) or
        MultipleKernelRidgeCV. "auto": "fast" when the bands together have more features than TRs or the
        search is "grid".
    memory_gb : float or None
        "fast" only: working memory beyond the inputs, which sets the targets per batch (at most
        ``n_targets_batch``). None: half the memory available now.
    return_single : bool
        "fast" only: also fit each band alone on the same kernels, in ``extra["single"]`` (a list per
        band of dicts with ``alpha``, ``cv_score``, ``test_r``, ``test_r2``).
    threads : int or None
        BLAS/torch threads during the fit; None chooses from the size of the bands together (``fit_ridge``).
    progress : bool
        Show a progress bar over the band-weight samples (a banded fit can take minutes).

    Returns
    -------
    RidgeScores with ``test_r2_split`` of shape (n_bands, n_targets): each band's share of the joint
    test R^2 (product-measure split; the shares sum to the joint R^2), and ``band_weights`` (n_bands,
    n_targets): g / alpha (himalaya's exp(deltas_)).
    """
    n_train, n_features = Xs_train[0].shape[0], sum(X.shape[1] for X in Xs_train)
    with limited_threads(fit_threads(n_train, n_features, threads)):
        return _fit_banded_ridge(Xs_train, Y_train, run_ids, Xs_test, Y_test, alphas, n_folds, n_iter,
                                 n_targets_batch, random_state, Y_in_cpu, solver, return_single, search, memory_gb,
                                 progress)


def _fit_banded_ridge(Xs_train, Y_train, run_ids, Xs_test, Y_test, alphas, n_folds, n_iter, n_targets_batch,
                      random_state, Y_in_cpu, solver, return_single, search, memory_gb, progress):
    n_train, n_features = Xs_train[0].shape[0], sum(X.shape[1] for X in Xs_train)
    if solver not in ("auto", "fast", "himalaya"):
        raise ValueError(f"fit_banded_ridge: unknown solver '{solver}'; known: auto, fast, himalaya.")
    if search not in ("random", "grid"):
        raise ValueError(f"fit_banded_ridge: unknown search '{search}'; known: random, grid.")
    if search == "grid":
        if len(Xs_train) != 2 or np.ndim(n_iter) != 0:
            raise ValueError(f"fit_banded_ridge: search 'grid' takes two bands and a number of ratios; got "
                             f"{len(Xs_train)} bands and n_iter of shape {np.shape(n_iter)}.")
        n_iter = np.concatenate([band_weight_grid(int(n_iter)), np.eye(2)])
    kernel_form = search == "grid" or choose_solver(n_train, n_features) == "kernel"
    if solver == "fast" or (solver == "auto" and kernel_form):
        gammas = n_iter if np.ndim(n_iter) == 2 else band_weight_samples(len(Xs_train), int(n_iter), random_state)
        out = banded_ridge_cv(Xs_train, Y_train, run_splits(run_ids, n_folds), Xs_test, Y_test, alphas, gammas,
                              n_targets_batch=n_targets_batch, return_single=return_single, memory_gb=memory_gb,
                              progress=progress)
        extra = dict(band_weight_samples=np.asarray(gammas), sample=out["sample"], n_targets_batch=out["n_targets_batch"])
        if return_single:
            extra["single"] = out["single"]
        return RidgeScores(alpha=out["alpha"], cv_score=out["cv_score"], test_r=out["test_r"], test_r2=out["test_r2"],
                           solver="banded-fast-kernel", test_r2_split=out["test_r2_split"],
                           band_weights=out["band_weights"], extra=extra)
    backend = get_backend()
    params = dict(score_func=r2_score, n_iter=n_iter, alphas=alphas, n_targets_batch=n_targets_batch,
                  n_targets_batch_refit=n_targets_batch, progress_bar=progress)
    cv = run_splits(run_ids, n_folds)
    solver = "banded-" + ("kernel" if kernel_form else "primal")
    with np.errstate(divide="ignore"):   # a single band's sample (weight 0 for the other): log(0) = -inf
        model, prediction_split = _himalaya_banded(solver, params, cv, random_state, Y_in_cpu, Xs_train, Y_train,
                                                   Xs_test)
    prediction = prediction_split.sum(0)
    Y_test_centered = Y_test - Y_test.mean(0)
    split = backend.to_numpy(r2_score_split(backend.asarray(Y_test_centered),
                                            backend.asarray(prediction_split)))
    return RidgeScores(
        alpha=backend.to_numpy(model.best_alphas_),
        cv_score=backend.to_numpy(model.cv_scores_).max(0),
        test_r=pearson_r(Y_test, prediction),
        test_r2=r2(Y_test, prediction),
        solver=solver,
        test_r2_split=split,
        band_weights=np.exp(backend.to_numpy(model.deltas_)),
    )


def _himalaya_banded(solver, params, cv, random_state, Y_in_cpu, Xs_train, Y_train, Xs_test):
    """himalaya's banded fit: GroupRidgeCV (primal) or MultipleKernelRidgeCV; the model and split prediction."""
    backend = get_backend()
    if solver == "banded-primal":
        model = GroupRidgeCV(groups="input", solver_params=params, cv=cv, random_state=random_state,
                             Y_in_cpu=Y_in_cpu)
        model.fit(list(Xs_train), Y_train)
        prediction_split = backend.to_numpy(model.predict(list(Xs_test), split=True))
    else:
        # Fewer samples than features: the same problem on one linear kernel per band.
        model = MultipleKernelRidgeCV(kernels="precomputed", solver_params=params, cv=cv,
                                      random_state=random_state, Y_in_cpu=Y_in_cpu)
        model.fit(np.stack([X @ X.T for X in Xs_train]), Y_train)
        kernels_test = np.stack([X_test @ X.T for X_test, X in zip(Xs_test, Xs_train)])
        prediction_split = backend.to_numpy(model.predict(kernels_test, split=True))
    return model, prediction_split
