"""Estimators in the style of scikit-learn and himalaya, on lists of runs, for notebooks.

``RunwiseRidgeCV``: one feature space; the engine's fast run-wise cross-validated ridge underneath,
weights from himalaya's solvers. ``RunwiseBandedRidgeCV``: several feature spaces on himalaya's
GroupRidgeCV / MultipleKernelRidgeCV. Both z-score each run's features, apply FIR delays within runs and
group the cross-validation folds by stimulus, as ``python -m encoding.run`` does.
"""
from ._banded import RunwiseBandedRidgeCV
from ._ridge import RunwiseRidgeCV
from ._runs import design_runs, response_runs

__all__ = ["RunwiseBandedRidgeCV", "RunwiseRidgeCV", "design_runs", "response_runs"]
