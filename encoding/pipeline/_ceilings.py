"""Noise ceilings: from repeated test runs (explainable variance, split-half reliability) or across subjects;
one chosen per subject and written to scores.h5."""
import json
import logging

import numpy as np

from ..stats import cross_subject_ceiling, explainable_variance, split_half_reliability

log = logging.getLogger(__name__)

#: the config's fields the ceilings read (``encoding.config.fields``)
FIELDS = ("noise_ceiling", "seed")


def repeat_ceiling(settings, scores, subject, data, test):
    """Explainable variance and split-half reliability when a test stimulus was seen twice or more; ``settings``
    holds :data:`FIELDS`."""
    by_stimulus = {}
    for i in test:
        by_stimulus.setdefault(data.stimulus_runs[i], []).append(i)
    repeated = {s: idx for s, idx in by_stimulus.items() if len(idx) >= 2}
    if not repeated or settings["noise_ceiling"]["method"] in ("none", "cross_subject"):
        return
    ev = np.zeros(data.n_targets)
    single = np.zeros(data.n_targets)
    n_rows = 0
    for stimulus, index in repeated.items():
        length = min(data.bold[i].shape[0] for i in index)
        repeats = np.stack([data.bold[i][:length] for i in index])
        ev += explainable_variance(repeats) * length
        single += split_half_reliability(repeats, seed=settings["seed"])[1] * length
        n_rows += length
    ev, single = ev / n_rows, single / n_rows
    ev[~data.valid] = single[~data.valid] = np.nan
    key = f"{subject}/noise_ceiling"
    scores.write_array(key, "explainable_variance", ev.astype(np.float32), stimuli=json.dumps(sorted(repeated)))
    scores.write_array(key, "split_half_reliability", single.astype(np.float32))
    scores.write_array(key, "repeat_ceiling", np.sqrt(np.clip(ev, 0, 1)).astype(np.float32))
    log.info("%s: repeat noise ceiling from %s (%d repeats)", subject, ", ".join(sorted(repeated)),
             min(len(i) for i in repeated.values()))


def noise_ceilings(settings, scores, test_sets):
    """Choose each subject's ceiling of r (repeat, split-half or cross-subject) and write it; ``settings`` holds
    :data:`FIELDS`.

    Returns
    -------
    dict subject -> (ceiling (n_targets,), method, variance (n_targets,)) for subjects with a
    ceiling; variance is the unbiased, signed squared ceiling that ROI summaries average
    """
    method = settings["noise_ceiling"]["method"]
    cross = None
    if method in ("auto", "cross_subject") and len(test_sets) >= 2:
        cross = _cross_subject(settings, scores, test_sets)
    chosen = {}
    for subject in test_sets:
        key = f"{subject}/noise_ceiling"
        if method in ("auto", "repeat") and f"{key}/repeat_ceiling" in scores:
            chosen[subject] = "repeat", scores.read(key, "explainable_variance")
        elif method == "split_half" and f"{key}/split_half_reliability" in scores:
            chosen[subject] = "split_half", scores.read(key, "split_half_reliability")
        elif method in ("auto", "cross_subject") and cross is not None:
            chosen[subject] = "cross_subject", cross
        elif method != "none":
            log.warning("%s: no noise ceiling (method %s needs %s)", subject, method,
                        "two or more subjects" if method == "cross_subject" else "a repeated test run")
            continue
        if subject in chosen:
            name, variance = chosen[subject]
            ceiling = np.sqrt(np.clip(variance, 0, 1)).astype(np.float32)
            scores.write_array(key, "ceiling", ceiling, method=name)
            scores.write_array(key, "ceiling_variance", np.asarray(variance, np.float32))
            chosen[subject] = (ceiling, name, variance)
    return chosen


def _cross_subject(settings, scores, test_sets):
    """The cross-subject ceiling over subjects sharing the same test runs and target space.

    Each subject's first presentation of each test run is used, cut to the shortest subject's length.
    """
    runs = list(next(iter(test_sets.values())))
    shapes = {y.shape[1] for responses in test_sets.values() for y in responses.values()}
    if any(list(responses) != runs for responses in test_sets.values()) or len(shapes) != 1:
        log.warning("no cross-subject ceiling: subjects differ in test runs or targets")
        return None
    lengths = {run: min(responses[run].shape[0] for responses in test_sets.values()) for run in runs}
    joined = [np.concatenate([responses[run][:lengths[run]] for run in runs]) for responses in test_sets.values()]
    ceiling = settings["noise_ceiling"]
    result = cross_subject_ceiling(joined, ceiling["n_bootstrap"], ceiling["max_subsets"], ceiling["extrapolation"],
                                   settings["seed"])
    key = "noise_ceiling/cross_subject"
    for name in ("ceiling", "ci_low", "ci_high", "curve", "shared_variance"):
        scores.write_array(key, name, getattr(result, name).astype(np.float32))
    scores.write_array(key, "subset_sizes", result.subset_sizes)
    scores.attrs(key).update(method=result.method, subjects=json.dumps(list(test_sets)))
    log.info("cross-subject noise ceiling over %d subjects (%s)", result.n_subjects, result.method)
    return result.shared_variance
