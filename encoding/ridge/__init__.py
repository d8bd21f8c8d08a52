"""The ridge engine: run-wise cross-validated ridge (fast solver, himalaya as reference), banded ridge
on himalaya, per-layer PCA, and scoring."""
from ._cv import run_splits
from ._fast import choose_form, ridge_cv
from ._fit import DEFAULT_ALPHAS, DEFAULT_MEMORY_GB, RidgeScores, choose_solver, fit_banded_ridge, fit_ridge
from ._pca import apply_pca, fit_pca, reduce_features
from ._scoring import pearson_r, r2

__all__ = ["DEFAULT_ALPHAS", "DEFAULT_MEMORY_GB", "RidgeScores", "apply_pca", "choose_form", "choose_solver",
           "fit_banded_ridge", "fit_pca", "fit_ridge", "pearson_r", "r2", "reduce_features", "ridge_cv",
           "run_splits"]
