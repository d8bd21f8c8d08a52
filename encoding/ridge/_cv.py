"""Cross-validation splits grouped by run: no fold ever trains and validates on one run."""
import numpy as np

from features.errors import InputError


def run_splits(run_ids, n_folds=None):
    """Train/validation index pairs that keep runs whole.

    Parameters
    ----------
    run_ids : array of shape (n_samples,)
        The training run each row comes from.
    n_folds : int or None
        None: leave one run out. Otherwise runs are dealt, in order, into ``n_folds`` groups.

    Returns
    -------
    splits : list of (train_indices, validation_indices)
    """
    run_ids = np.asarray(run_ids)
    runs = list(dict.fromkeys(run_ids.tolist()))
    n_folds = len(runs) if n_folds is None else int(n_folds)
    if len(runs) < 2 or not 2 <= n_folds <= len(runs):
        raise InputError(
            f"cv: need at least 2 training runs and 2 <= n_folds <= n_runs, found {len(runs)} training "
            f"run(s) and n_folds={n_folds}."
        )
    fold_of_run = {run: i * n_folds // len(runs) for i, run in enumerate(runs)}
    folds = np.array([fold_of_run[r] for r in run_ids.tolist()])
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(n_folds)]
