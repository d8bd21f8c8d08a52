"""Layer x ROI RSA maps as rows of the tidy table encoding writes (``alignment.csv``): one row per
(subject, model, instruction, layer, roi), with ``score``, ``p_value`` and its Benjamini-Hochberg
``q_value`` over the layer x ROI rows of one (subject, model, instruction), plus a ``group``
subject that summarises the subjects with their noise ceiling.
"""
import numpy as np
from scipy import stats

from ._inference import bootstrap_items, bootstrap_subjects, mantel_test, noise_ceiling


def subject_row(key, brain_rdm, model_rdm, controls, settings, seed):
    """Score, Mantel p-value and item-bootstrap interval of one (subject, model, instruction, layer, roi).

    Parameters
    ----------
    key : dict with subject, model, instruction, layer, depth, roi, n_targets
    brain_rdm, model_rdm : arrays of shape (n_items, n_items)
    controls : list of arrays of shape (n_items, n_items)
    settings : dict with comparison, partial, n_permutations, n_bootstrap, ci
    seed : sequence of int
        Seeds this cell's permutations and resamples, so rows do not depend on the order they run in.

    Returns
    -------
    dict
    """
    method, kind = settings["comparison"], settings["partial"]
    rng = np.random.default_rng(seed)
    mantel = mantel_test(brain_rdm, model_rdm, method, controls, kind, settings["n_permutations"], rng)
    p_value = mantel.p_value if settings["n_permutations"] else np.nan
    low = high = np.nan
    if settings["n_bootstrap"]:
        boot = bootstrap_items(brain_rdm, model_rdm, method, controls, kind, settings["n_bootstrap"],
                               settings["ci"], rng)
        low, high = boot.ci_low, boot.ci_high
    return {**key, "n_items": brain_rdm.shape[0], "score": mantel.score, "p_value": p_value,
            "n_permutations": settings["n_permutations"], "ci_low": low, "ci_high": high, "ci_over": "items",
            "n_subjects": 1}


def group_row(key, subject_rdms, subject_scores, model_rdm, controls, settings, seed):
    """Mean over subjects, a one-sided Wilcoxon signed-rank p-value over subjects (Nili et al.
    2014), a subject-bootstrap interval, and the noise ceiling of the ROI.

    Parameters
    ----------
    subject_rdms : array of shape (n_subjects, n_items, n_items)
    subject_scores : array of shape (n_subjects,)
    Others as :func:`subject_row`.
    """
    method, kind = settings["comparison"], settings["partial"]
    scores = np.asarray(subject_scores, dtype=float)
    p_value = float(stats.wilcoxon(scores, alternative="greater").pvalue) if np.any(scores != 0) else 1.0
    low = high = np.nan
    if settings["n_bootstrap"]:
        boot = bootstrap_subjects(subject_rdms, model_rdm, method, controls, kind, settings["n_bootstrap"],
                                  settings["ci"], np.random.default_rng(seed))
        low, high = boot.ci_low, boot.ci_high
    lower, upper = noise_ceiling(subject_rdms, method)
    return {**key, "subject": "group", "n_items": subject_rdms.shape[1], "score": scores.mean(),
            "p_value": p_value, "n_permutations": 0, "ci_low": low, "ci_high": high, "ci_over": "subjects",
            "n_subjects": scores.size, "noise_ceiling_lower": lower, "noise_ceiling_upper": upper}
