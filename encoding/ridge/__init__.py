"""The ridge engine: run-wise cross-validated ridge (fast solver, himalaya as reference), banded ridge
(fast kernel-form search, himalaya as reference), per-layer PCA, and scoring. ``memory`` (what a fit holds, the
targets per batch) and the eigendecompositions and work counts below are public for the sweep's planner and
cost model; the launcher's rank and barriers (``launcher_world``, ``barrier``, ``main_process_first``) for the
pipeline. The run-wise scikit-learn-style estimators (``RunwiseRidgeCV``, ``RunwiseBandedRidgeCV``) sit beside
the solvers in ``_sklearn_api`` and are public through ``encoding.ridge.estimators`` (not imported here: they
load ``encoding.fmri``)."""
from ._banded import band_weight_grid, band_weight_samples
from ._cv import run_splits
from ._distributed import barrier, launcher_world, main_process_first
from ._fast import ridge_cv
from ._fit import DEFAULT_ALPHAS, RidgeScores, choose_solver, fit_banded_ridge, fit_ridge
from ._folds import choose_form
from ._fractions import MIN_BLOCK, scoring_costs
from ._kernel import eigh_ascending
from ._pca import apply_pca, fit_pca, reduce_features
from ._primal import eigh_descending
from ._scoring import pearson_r, r2
from ._threads import MIN_CORES, SMALL_WORK, available_cores, fit_threads, limited_threads
from .memory import DEFAULT_MEMORY_GB

__all__ = ["DEFAULT_ALPHAS", "DEFAULT_MEMORY_GB", "MIN_BLOCK", "MIN_CORES", "SMALL_WORK", "RidgeScores", "apply_pca",
           "available_cores", "band_weight_grid", "band_weight_samples", "barrier", "choose_form", "choose_solver",
           "eigh_ascending", "eigh_descending", "fit_banded_ridge", "fit_pca", "fit_ridge", "fit_threads",
           "launcher_world", "limited_threads", "main_process_first", "pearson_r", "r2", "reduce_features", "ridge_cv",
           "run_splits", "scoring_costs"]
