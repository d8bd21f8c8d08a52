"""The run-wise estimators in the style of scikit-learn and himalaya, on lists of runs (public through
``encoding.ridge.estimators`` and ``encoding.api``).

``RunwiseRidgeCV``, one feature space: the cross-validation is the engine's fast solver
(``encoding.ridge.ridge_cv``: one decomposition per fold, every alpha by rescaling), which equals himalaya's
RidgeCV on the same folds. The weights are a refit on all training rows at each target's chosen alpha with
himalaya's own solvers: ``solve_ridge_svd`` in the primal form (features no more than rows),
``solve_kernel_ridge_eigenvalues`` on the linear kernel otherwise, as himalaya's KernelRidgeCV would.

``RunwiseBandedRidgeCV``, several feature spaces: the runs of each band are prepared as in the one-space
estimator (z-scored per run, delayed within runs, trimmed); the fit is himalaya's own estimator
(``estimator_``), with the engine's settings of ``encoding.ridge.fit_banded_ridge``: folds grouped by stimulus,
R² as the CV score, a random search over the band weights. GroupRidgeCV (primal) when the bands' delayed
features together are no more than the training rows, MultipleKernelRidgeCV on one linear kernel per band
otherwise.
"""
import numpy as np
from himalaya.backend import get_backend
from himalaya.kernel_ridge import MultipleKernelRidgeCV, solve_kernel_ridge_eigenvalues
from himalaya.ridge import GroupRidgeCV, solve_ridge_svd
from himalaya.scoring import r2_score, r2_score_split
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.errors import InputError

from ._cv import run_splits
from ._fast import ridge_cv
from ._fit import DEFAULT_ALPHAS, choose_solver
from ._runs import check_pairs, design_runs, response_runs, row_groups
from ._scoring import pearson_r, r2

METRICS = ("r2", "r")


class _RunwiseEstimator(BaseEstimator):
    """The run-wise recipe both estimators share: features z-scored, delayed and trimmed per run (``_runs``),
    responses trimmed and cleaned per run, paired run for run, and folds grouped by the runs' labels.

    Each estimator keeps its own ``__init__`` naming every parameter, as scikit-learn's ``get_params`` and
    ``clone`` read them from its signature, and hands the parameters both have to this one.
    """

    def __init__(self, alphas, delays, cv, trim, preprocess_targets, n_targets_batch):
        self.alphas = alphas
        self.delays = delays
        self.cv = cv
        self.trim = trim
        self.preprocess_targets = preprocess_targets
        self.n_targets_batch = n_targets_batch

    def _design(self, X_runs, name="X_runs"):
        """Per run: the z-scored, delayed, trimmed features (float32)."""
        return design_runs(X_runs, self.delays, self.trim, name=name)

    def _responses(self, Y_runs):
        """Per run: the trimmed responses, detrended and z-scored in time when ``preprocess_targets``."""
        return response_runs(Y_runs, self.trim, self.preprocess_targets)

    def _training_rows(self, designs, Y_runs, groups):
        """The training rows of each design and of the responses, checked run for run, and the CV splits.

        Parameters
        ----------
        designs : dict of str to list of arrays
            Each design's runs (from ``_design``), under the name its errors give.
        Y_runs : list of arrays of shape (n_TR_run, n_targets)
        groups : sequence or None
            One label per run (its stimulus); None: every run its own group.

        Returns
        -------
        Xs : list of arrays of shape (n_rows, n_columns), one per design
        Y : array of shape (n_rows, n_targets)
        cv : list of (train, validation) row indices
        """
        Y = self._responses(Y_runs)
        for name, X in designs.items():
            check_pairs(X, Y, x_name=name)
        Xs = [np.concatenate(X) for X in designs.values()]
        return Xs, np.concatenate(Y), run_splits(row_groups(Y, groups), self.cv)


class RunwiseRidgeCV(_RunwiseEstimator):
    """Ridge per target with alphas chosen by cross-validation across runs, fitted on lists of runs.

    Parameters
    ----------
    alphas : array of shape (n_alphas,)
        Penalties searched, one chosen per target.
    delays : sequence of int
        FIR delays in TRs, applied within each run after its features are z-scored over the run.
    cv : int or None
        Folds over the groups (stimuli); None leaves one group out.
    trim : (int, int)
        Rows dropped from the start and end of every run after the delays (features and responses).
    preprocess_targets : bool
        Detrend and z-score each run of responses in time (``encoding.fmri.preprocess_run``), as the engine
        does; False takes them as given.
    memory_gb : float or None
        Working memory of the fast solver beyond its inputs; None: half the memory available when the fit
        starts (``encoding.ridge.memory.working_memory_gb``).
    n_targets_batch : int or None
        Upper bound on targets solved at once.

    Attributes
    ----------
    best_alphas_ : array of shape (n_targets,)
    cv_scores_ : array of shape (n_targets,)
        Mean validation R² over folds at the chosen alpha.
    coef_ : array of shape (n_features * n_delays, n_targets)
        Primal weights, when the delayed features are no more than the training rows.
    dual_coef_ : array of shape (n_train_rows, n_targets)
        Dual weights otherwise (``get_primal_coef`` gives the primal ones); ``X_fit_`` holds the training
        design they weigh.
    solver_ : {"primal", "kernel"}
        The form of the weights.
    n_features_in_ : int
        Feature columns of each run before the delays.

    Examples
    --------
    >>> model = RunwiseRidgeCV(delays=[1, 2, 3, 4]).fit(X_runs[:4], Y_runs[:4], groups=stimuli[:4])
    >>> test_r = model.score(X_runs[4:], Y_runs[4:], metric="r")
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, delays=(1, 2, 3, 4, 5), cv=None, trim=(0, 0), preprocess_targets=True,
                 memory_gb=None, n_targets_batch=None):
        super().__init__(alphas, delays, cv, trim, preprocess_targets, n_targets_batch)
        self.memory_gb = memory_gb

    def fit(self, X_runs, Y_runs, groups=None):
        """Choose each target's alpha by run-wise cross-validation, then fit the weights on every run.

        Parameters
        ----------
        X_runs : list of arrays of shape (n_TR_run, n_features)
            Features per run (raw: z-scored and delayed here), or one array for one run.
        Y_runs : list of arrays of shape (n_TR_run, n_targets)
            Responses per run, as many rows as the run's features.
        groups : sequence, optional
            One label per run, its stimulus: runs with the same label share a fold (a movie watched twice).
            Default: every run its own group.

        Returns
        -------
        self
        """
        (X_train,), Y_train, cv = self._training_rows({"X_runs": self._design(X_runs)}, Y_runs, groups)
        out = ridge_cv(X_train, Y_train, cv, None, None, np.asarray(self.alphas, dtype=float),
                       memory_gb=self.memory_gb, n_targets_batch=self.n_targets_batch)
        self.best_alphas_, self.cv_scores_ = out["alpha"], out["cv_score"]
        self.n_features_in_ = np.asarray(_first(X_runs)).shape[1]
        self._refit(X_train, Y_train)
        return self

    def _refit(self, X_train, Y_train):
        """Weights at the chosen alphas with himalaya's solvers (module docstring)."""
        backend = get_backend()
        alpha = backend.asarray(self.best_alphas_, dtype="float32")
        self.solver_ = choose_solver(*X_train.shape)
        for stale in ("coef_", "dual_coef_", "X_fit_"):
            self.__dict__.pop(stale, None)
        if self.solver_ == "primal":
            weights = solve_ridge_svd(backend.asarray(X_train), backend.asarray(Y_train), alpha=alpha)
            self.coef_ = backend.to_numpy(weights)
        else:
            X = backend.asarray(X_train)
            weights = solve_kernel_ridge_eigenvalues(X @ X.T, backend.asarray(Y_train), alpha=alpha)
            self.dual_coef_, self.X_fit_ = backend.to_numpy(weights), X_train

    def get_primal_coef(self):
        """Primal weights (n_features * n_delays, n_targets), from the dual ones in the kernel form.

        Returns
        -------
        array of shape (n_features * n_delays, n_targets)
        """
        check_is_fitted(self, "solver_")
        return self.coef_ if self.solver_ == "primal" else self.X_fit_.T @ self.dual_coef_

    def predict(self, X_runs):
        """Predicted responses of the given runs, stacked in run order.

        Parameters
        ----------
        X_runs : list of arrays of shape (n_TR_run, n_features), or one array

        Returns
        -------
        array of shape (n_rows, n_targets), float32; n_rows = the runs' rows after ``trim``
        """
        check_is_fitted(self, "solver_")
        X = np.concatenate(self._design(X_runs))
        if self.solver_ == "primal":
            return (X @ self.coef_).astype(np.float32)
        return ((X @ self.X_fit_.T) @ self.dual_coef_).astype(np.float32)

    def score(self, X_runs, Y_runs, metric="r2"):
        """Per-target R² (himalaya's convention) or Pearson r of the prediction of held-out runs.

        Parameters
        ----------
        X_runs, Y_runs : lists of runs, as in ``fit``
        metric : {"r2", "r"}

        Returns
        -------
        array of shape (n_targets,)
        """
        if metric not in METRICS:
            raise ValueError(f"score: metric expected one of {', '.join(METRICS)}, found {metric!r}.")
        Y = np.concatenate(self._responses(Y_runs))
        prediction = self.predict(X_runs)
        if prediction.shape != Y.shape:
            raise ValueError(f"score: expected responses of shape {prediction.shape} to match the prediction, found "
                             f"{Y.shape}.")
        return r2(Y, prediction) if metric == "r2" else pearson_r(Y, prediction)


class RunwiseBandedRidgeCV(_RunwiseEstimator):
    """Banded ridge over feature spaces with one weight per band and target, fitted on lists of runs.

    Parameters
    ----------
    alphas : array of shape (n_alphas,)
        Overall penalties searched with each band-weight draw.
    delays : sequence of int
        FIR delays in TRs, applied within each run of every band.
    n_iter : int
        Random-search iterations over the band weights (Dirichlet draws).
    cv : int or None
        Folds over the groups (stimuli); None leaves one group out.
    trim : (int, int)
        Rows dropped from the start and end of every run after the delays.
    preprocess_targets : bool
        Detrend and z-score each run of responses in time.
    random_state : int
        Seed of the band-weight draws.
    n_targets_batch : int or None

    Attributes
    ----------
    estimator_ : himalaya GroupRidgeCV or MultipleKernelRidgeCV, fitted
    deltas_ : array of shape (n_bands, n_targets)
        log band weights (``band_weights_`` = exp).
    best_alphas_ : array of shape (n_targets,)
    cv_scores_ : array of shape (n_targets,)
        The best iteration's mean validation R².
    coef_ : array of shape (n_features_total, n_targets)
        Primal form: weights of the bands' delayed features, band after band.
    dual_coef_ : array of shape (n_train_rows, n_targets)
        Kernel form.
    solver_ : {"primal", "kernel"}
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, delays=(1, 2, 3, 4, 5), n_iter=50, cv=None, trim=(0, 0),
                 preprocess_targets=True, random_state=0, n_targets_batch=None):
        super().__init__(alphas, delays, cv, trim, preprocess_targets, n_targets_batch)
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, Xs_runs, Y_runs, groups=None):
        """Fit the band weights, penalties and weights by run-wise cross-validation.

        Parameters
        ----------
        Xs_runs : list over bands of lists of arrays (n_TR_run, n_features_band)
            Each band's features per run, the runs in the same order as ``Y_runs``.
        Y_runs : list of arrays (n_TR_run, n_targets)
        groups : sequence, optional
            One label per run (its stimulus); default every run its own group.

        Returns
        -------
        self
        """
        bands = self._bands(Xs_runs)
        Xs, Y_train, cv = self._training_rows({f"Xs_runs[{i}]": band for i, band in enumerate(bands)}, Y_runs,
                                              groups)
        params = dict(score_func=r2_score, n_iter=self.n_iter, alphas=np.asarray(self.alphas, dtype=float),
                      n_targets_batch=self.n_targets_batch, n_targets_batch_refit=self.n_targets_batch,
                      progress_bar=False)
        self.solver_ = choose_solver(Y_train.shape[0], sum(X.shape[1] for X in Xs))
        self.band_sizes_ = [X.shape[1] for X in Xs]
        if self.solver_ == "primal":
            self.estimator_ = GroupRidgeCV(groups="input", solver_params=params, cv=cv,
                                           random_state=self.random_state).fit(Xs, Y_train)
        else:
            self.Xs_fit_ = Xs
            self.estimator_ = MultipleKernelRidgeCV(kernels="precomputed", solver_params=params, cv=cv,
                                                    random_state=self.random_state).fit(
                np.stack([X @ X.T for X in Xs]), Y_train)
        backend = get_backend()
        self.deltas_ = backend.to_numpy(self.estimator_.deltas_)
        self.band_weights_ = np.exp(self.deltas_)
        self.best_alphas_ = backend.to_numpy(self.estimator_.best_alphas_)
        self.cv_scores_ = backend.to_numpy(self.estimator_.cv_scores_).max(0)
        for name in ("coef_", "dual_coef_"):
            if hasattr(self.estimator_, name):
                setattr(self, name, backend.to_numpy(getattr(self.estimator_, name)))
        return self

    def _bands(self, Xs_runs):
        if not isinstance(Xs_runs, (list, tuple)) or len(Xs_runs) < 2:
            raise InputError("Xs_runs: expected a list of two or more bands, each a list of runs.")
        return [self._design(band, name=f"Xs_runs[{i}]") for i, band in enumerate(Xs_runs)]

    def predict(self, Xs_runs, split=False):
        """Predicted responses of the given runs, stacked in run order.

        Parameters
        ----------
        Xs_runs : list over bands of lists of runs
        split : bool
            Per band: an extra first axis, summing to the prediction.

        Returns
        -------
        array of shape (n_rows, n_targets), or (n_bands, n_rows, n_targets) with ``split``
        """
        check_is_fitted(self, "estimator_")
        Xs = [np.concatenate(band) for band in self._bands(Xs_runs)]
        if self.solver_ == "primal":
            prediction = self.estimator_.predict(Xs, split=split)
        else:
            prediction = self.estimator_.predict(np.stack([X @ X_fit.T for X, X_fit in zip(Xs, self.Xs_fit_)]),
                                                 split=split)
        return np.asarray(get_backend().to_numpy(prediction), dtype=np.float32)

    def score(self, Xs_runs, Y_runs, split=False):
        """Per-target R² of held-out runs, or its share per band (``split``, summing to R²).

        Returns
        -------
        array of shape (n_targets,), or (n_bands, n_targets) with ``split``
        """
        backend = get_backend()
        Y = np.concatenate(self._responses(Y_runs))
        prediction = self.predict(Xs_runs, split=split)
        scorer = r2_score_split if split else r2_score
        return backend.to_numpy(scorer(backend.asarray(Y), backend.asarray(prediction)))


def _first(runs):
    return runs if isinstance(runs, np.ndarray) else runs[0]
