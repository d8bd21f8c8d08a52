"""Estimators in the style of scikit-learn and himalaya, on lists of runs, for notebooks.

``RunwiseRidgeCV``: one feature space; the engine's fast run-wise cross-validated ridge underneath,
weights from himalaya's solvers. ``RunwiseBandedRidgeCV``: several feature spaces on himalaya's
GroupRidgeCV / MultipleKernelRidgeCV. Both z-score each run's features, apply FIR delays within runs and
group the cross-validation folds by stimulus, as ``python -m encoding.run`` does.

A module of its own, not exported by ``encoding.ridge``: the run preparation loads ``encoding.fmri``
(nibabel) for ``preprocess_run``, which importing the solvers (and ``python -m encoding.run --help``) does not
need.
"""
from ._runs import design_runs, response_runs
from ._sklearn_api import RunwiseBandedRidgeCV, RunwiseRidgeCV

__all__ = ["RunwiseBandedRidgeCV", "RunwiseRidgeCV", "design_runs", "response_runs"]
