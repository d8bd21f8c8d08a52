"""Alignment of feature rows (one per clip) to the TRs of an fMRI run."""
from .errors import InputError


def aligned_length(n_feature_rows, n_trs, tolerance=2, features_file="features", fmri_file="fMRI run"):
    """Number of TRs that both the features and the fMRI run cover.

    A run's scan often lasts a TR or two longer than its movie segment (or the last partial clip is
    dropped); up to ``tolerance`` rows of difference are trimmed from the end of the longer one.
    More than that means the wrong features or the wrong run were paired, which is an error.

    Returns
    -------
    n : int
        ``min(n_feature_rows, n_trs)``; callers keep the first n rows of both.
    """
    if abs(n_feature_rows - n_trs) > tolerance:
        raise InputError(
            f"{fmri_file}: has {n_trs} TRs but {features_file} has {n_feature_rows} feature rows for its "
            f"stimulus run (tolerance {tolerance}); check the run's 'stimulus_run' and 'tr' fields."
        )
    return min(n_feature_rows, n_trs)
