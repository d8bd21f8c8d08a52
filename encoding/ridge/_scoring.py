"""Per-target scores on held-out data."""
import numpy as np


def pearson_r(y_true, y_pred):
    """Correlation per column.

    Parameters
    ----------
    y_true, y_pred : arrays of shape (n_samples, n_targets)

    Returns
    -------
    r : array of shape (n_targets,); NaN where either column is constant.
    """
    y_true = y_true - y_true.mean(0)
    y_pred = y_pred - y_pred.mean(0)
    denominator = np.sqrt((y_true ** 2).sum(0) * (y_pred ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (y_true * y_pred).sum(0) / denominator, np.nan)


def r2(y_true, y_pred):
    """Coefficient of determination per column, 1 - SS_res / SS_tot (can be negative)."""
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)

