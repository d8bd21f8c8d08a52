"""Cross-validation splits grouped by run: no fold ever trains and validates on one run.

The engine passes the *stimulus* run of each row, not the fMRI run: a movie watched twice (CNeuroMod
Movie10 has such repeats) is then validated as a whole, never on a model trained on its other viewing,
which would inflate the CV scores and bias the choice of alpha and layer.
"""
import numpy as np

from features.errors import InputError


def run_splits(run_ids, n_folds=None):
    """Train/validation index pairs that keep runs whole.

    Parameters
    ----------
    run_ids : array of shape (n_samples,)
        The group each row belongs to: its stimulus run (rows of repeated viewings share a label).
    n_folds : int or None
        None: leave one group out. Otherwise groups are dealt, in order of first appearance, into
        ``n_folds`` folds.

    Returns
    -------
    splits : list of (train_indices, validation_indices)
    """
    run_ids = np.asarray(run_ids)
    runs = list(dict.fromkeys(run_ids.tolist()))
    n_folds = len(runs) if n_folds is None else int(n_folds)
    if len(runs) < 2 or not 2 <= n_folds <= len(runs):
        raise InputError(
            f"cv_folds: need at least 2 training stimuli and 2 <= cv_folds <= their number, found "
            f"{len(runs)} training stimulus run(s) and cv_folds={n_folds}."
        )
    fold_of_run = {run: i * n_folds // len(runs) for i, run in enumerate(runs)}
    folds = np.array([fold_of_run[r] for r in run_ids.tolist()])
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(n_folds)]
