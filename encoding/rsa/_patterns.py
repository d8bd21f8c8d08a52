"""Item patterns: what the RDMs are computed from.

Items are the things an RDM compares (words, scenes, event types). In a naturalistic stimulus an
item occurs as events in time (a table with onset, duration, item, run), so:

- a feature layer's pattern for an item is the mean of its rows (TRs) over the item's events,
  weighted by how much of each event a row covers (features are stimulus-locked: no lag);
- a brain pattern per run is the item's beta in a GLM of that run: one HRF-convolved regressor
  per item, plus an intercept. Betas per run give crossnobis its independent partitions, and the
  GLM residuals give its noise covariance.
"""
import numpy as np

from features.errors import InputError
from features.events import event_row_weights


def item_order(events, items=None):
    """Item names in the order of their first event, or as given (each must occur)."""
    seen = list(dict.fromkeys(str(i) for i in events["item"]))
    if items is None:
        return seen
    missing = [str(i) for i in items if str(i) not in seen]
    if missing:
        raise InputError(f"events: field 'item' never holds {missing[0]!r}, which the config's 'items' lists.")
    return [str(i) for i in items]


def feature_item_patterns(layer_by_run, events, items, tr):
    """Mean feature vector of each item over its events.

    Parameters
    ----------
    layer_by_run : dict stimulus run -> array of shape (n_rows, hidden)
        One layer's rows (one per TR) for each run that the events name.
    events : DataFrame with onset, duration, item, run
    items : list of str
    tr : float
        Seconds per feature row.

    Returns
    -------
    patterns : array of shape (n_items, hidden)
    """
    hidden = next(iter(layer_by_run.values())).shape[1]
    sums, weights = np.zeros((len(items), hidden)), np.zeros(len(items))
    index = {item: i for i, item in enumerate(items)}
    for run, part in events.groupby(events["run"].astype(str), sort=False):
        if run not in layer_by_run:
            raise InputError(f"events: field 'run' names {run!r}, which the features store does not hold.")
        part = part[part["item"].astype(str).isin(index)]
        rows = event_row_weights(part, layer_by_run[run].shape[0], tr)
        rows_per_item = np.zeros((len(items), rows.shape[1]))
        np.add.at(rows_per_item, [index[str(i)] for i in part["item"]], rows)
        sums += rows_per_item @ layer_by_run[run]
        weights += rows_per_item.sum(1)
    if (weights == 0).any():
        missing = items[int(np.flatnonzero(weights == 0)[0])]
        raise InputError(f"events: item {missing!r} has no event inside the stored feature rows.")
    return sums / weights[:, None]


def item_design(events, items, n_trs, tr, hrf_model="spm"):
    """HRF-convolved regressor of each item for one fMRI run.

    Parameters
    ----------
    events : DataFrame with onset, duration, item (this run's events only), seconds from the run's
        first TR
    items : list of str
    n_trs : int
    tr : float
    hrf_model : str
        nilearn's HRF model name ("spm", "glover", ...).

    Returns
    -------
    design : array of shape (n_trs, n_items)
        All-zero columns for items with no event in the run.
    """
    from nilearn.glm.first_level import compute_regressor

    frame_times = np.arange(n_trs) * tr
    design = np.zeros((n_trs, len(items)))
    for i, item in enumerate(items):
        part = events[events["item"].astype(str) == item]
        if len(part):
            condition = np.vstack([part["onset"], part["duration"], np.ones(len(part))])
            design[:, i] = compute_regressor(condition, hrf_model, frame_times)[0][:, 0]
    return design


def item_betas(bold, design):
    """Least-squares item betas of one run, and the residuals crossnobis needs.

    Parameters
    ----------
    bold : array of shape (n_trs, n_targets)
        Preprocessed run (detrended, z-scored).
    design : array of shape (n_trs, n_items)

    Returns
    -------
    betas : array of shape (n_items, n_targets)
        NaN rows for items absent from the run.
    residuals : array of shape (n_trs, n_targets)
    dof : int
        ``n_trs`` minus the regressors fitted (items present and the intercept).
    """
    present = np.abs(design).sum(0) > 0
    X = np.column_stack([design[:, present], np.ones(design.shape[0])])
    coefficients, *_ = np.linalg.lstsq(X, bold, rcond=None)
    betas = np.full((design.shape[1], bold.shape[1]), np.nan)
    betas[present] = coefficients[:-1]
    return betas, bold - X @ coefficients, int(bold.shape[0] - X.shape[1])
