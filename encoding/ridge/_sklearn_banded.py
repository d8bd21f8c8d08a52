"""Several feature spaces, banded ridge: himalaya's GroupRidgeCV / MultipleKernelRidgeCV on lists of runs.

The runs of each band are prepared as in the one-space estimator (z-scored per run, delayed within runs,
trimmed); the fit is himalaya's own estimator (``estimator_``), with the engine's settings of
``encoding.ridge.fit_banded_ridge``: folds grouped by stimulus, R² as the CV score, a random search over the
band weights. GroupRidgeCV (primal) when the bands' delayed features together are no more than the training
rows, MultipleKernelRidgeCV on one linear kernel per band otherwise.
"""
import numpy as np
from himalaya.backend import get_backend
from himalaya.kernel_ridge import MultipleKernelRidgeCV
from himalaya.ridge import GroupRidgeCV
from himalaya.scoring import r2_score, r2_score_split
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.errors import InputError

from ._cv import run_splits
from ._fit import DEFAULT_ALPHAS, choose_solver
from ._runs import check_pairs, design_runs, response_runs, row_groups


class RunwiseBandedRidgeCV(BaseEstimator):
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
        self.alphas = alphas
        self.delays = delays
        self.n_iter = n_iter
        self.cv = cv
        self.trim = trim
        self.preprocess_targets = preprocess_targets
        self.random_state = random_state
        self.n_targets_batch = n_targets_batch

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
        Y = response_runs(Y_runs, self.trim, self.preprocess_targets)
        for i, band in enumerate(bands):
            check_pairs(band, Y, x_name=f"Xs_runs[{i}]")
        Xs = [np.concatenate(band) for band in bands]
        Y_train = np.concatenate(Y)
        cv = run_splits(row_groups(Y, groups), self.cv)
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
        return [design_runs(band, self.delays, self.trim, name=f"Xs_runs[{i}]") for i, band in enumerate(Xs_runs)]

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
        Y = np.concatenate(response_runs(Y_runs, self.trim, self.preprocess_targets))
        prediction = self.predict(Xs_runs, split=split)
        scorer = r2_score_split if split else r2_score
        return backend.to_numpy(scorer(backend.asarray(Y), backend.asarray(prediction)))
