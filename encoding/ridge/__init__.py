"""The ridge engine: run-wise cross-validated ridge and banded ridge on himalaya, and scoring."""
from ._cv import run_splits
from ._fit import DEFAULT_ALPHAS, RidgeScores, choose_solver, fit_banded_ridge, fit_ridge
from ._scoring import pearson_r, r2

__all__ = ["DEFAULT_ALPHAS", "RidgeScores", "choose_solver", "fit_banded_ridge", "fit_ridge",
           "pearson_r", "r2", "run_splits"]
