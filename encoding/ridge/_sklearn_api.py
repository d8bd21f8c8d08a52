"""One feature space, run-wise cross-validated ridge: a scikit-learn / himalaya style estimator on lists of runs.

The cross-validation is the engine's fast solver (``encoding.ridge.ridge_cv``: one decomposition per fold,
every alpha by rescaling), which equals himalaya's RidgeCV on the same folds. The weights are a refit on
all training rows at each target's chosen alpha with himalaya's own solvers: ``solve_ridge_svd`` in the
primal form (features no more than rows), ``solve_kernel_ridge_eigenvalues`` on the linear kernel
otherwise, as himalaya's KernelRidgeCV would.
"""
import numpy as np
from himalaya.backend import get_backend
from himalaya.kernel_ridge import solve_kernel_ridge_eigenvalues
from himalaya.ridge import solve_ridge_svd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._cv import run_splits
from ._fast import ridge_cv
from ._fit import DEFAULT_ALPHAS, choose_solver
from ._runs import check_pairs, design_runs, response_runs, row_groups
from ._scoring import pearson_r, r2

METRICS = ("r2", "r")


class RunwiseRidgeCV(BaseEstimator):
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
        self.alphas = alphas
        self.delays = delays
        self.cv = cv
        self.trim = trim
        self.preprocess_targets = preprocess_targets
        self.memory_gb = memory_gb
        self.n_targets_batch = n_targets_batch

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
        X_train, Y_train, row_group = self._training_rows(X_runs, Y_runs, groups)
        out = ridge_cv(X_train, Y_train, run_splits(row_group, self.cv), None, None,
                       np.asarray(self.alphas, dtype=float), memory_gb=self.memory_gb,
                       n_targets_batch=self.n_targets_batch)
        self.best_alphas_, self.cv_scores_ = out["alpha"], out["cv_score"]
        self.n_features_in_ = np.asarray(_first(X_runs)).shape[1]
        self._refit(X_train, Y_train)
        return self

    def _training_rows(self, X_runs, Y_runs, groups):
        X = design_runs(X_runs, self.delays, self.trim)
        Y = response_runs(Y_runs, self.trim, self.preprocess_targets)
        check_pairs(X, Y)
        return np.concatenate(X), np.concatenate(Y), row_groups(X, groups)

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
        X = np.concatenate(design_runs(X_runs, self.delays, self.trim))
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
        Y = np.concatenate(response_runs(Y_runs, self.trim, self.preprocess_targets))
        prediction = self.predict(X_runs)
        if prediction.shape != Y.shape:
            raise ValueError(f"score: expected responses of shape {prediction.shape} to match the prediction, found "
                             f"{Y.shape}.")
        return r2(Y, prediction) if metric == "r2" else pearson_r(Y, prediction)


def _first(runs):
    return runs if isinstance(runs, np.ndarray) else runs[0]
