"""Every segment of a long run held out in turn: a prediction of the whole run from models that never saw it.

A single-run dataset (one story, one film) scored on one held-out segment gives an r over a few minutes,
whose value depends on which part of the story was held out. Holding out each segment in turn (the same
gaps, z-scoring and CV as ``encoding.run`` with that segment in ``test_runs``) and joining the held-out
predictions gives one r over the whole run: the estimate to quote beside the single held-out part.

>>> from encoding.segments import predict_segments_in_turn
>>> held_out = predict_segments_in_turn(config, "s18", "word_rate", "none", 0)
>>> held_out.r          # per target, over every segment's held-out TRs
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.errors import InputError
from features.store import FeatureStore

from .config import load_config
from .design import layer_design, load_subject, stack
from .ridge import fit_ridge


@dataclass
class HeldOutPrediction:
    """The responses and predictions of every held-out segment, in run order.

    Attributes
    ----------
    responses, prediction : float arrays of shape (n_TR, n_targets)
        The preprocessed responses of each segment (z-scored within it) and the prediction of the model
        fitted without it, stacked in the order of the segments.
    segments : list of str
        The stimulus run of each held-out segment (``run-1:1``, ...).
    lengths : list of int
        TRs of each segment in ``responses``.
    alphas : float array of shape (n_segments, n_targets)
        The alpha each fold chose by CV within its training segments.
    """

    responses: np.ndarray
    prediction: np.ndarray
    segments: list
    lengths: list
    alphas: np.ndarray

    @property
    def r(self):
        """Pearson r per target over every held-out TR (NaN for a target without variance)."""
        a = self.responses - self.responses.mean(0)
        b = self.prediction - self.prediction.mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def predict_segments_in_turn(config, subject, model, instruction, layer, stimulus_run=None):
    """Hold out each segment of a run in turn and predict it from the fit on the others.

    Parameters
    ----------
    config : dict, mapping or path
        An ``encoding.run`` config with ``segments`` for the run (its ``test_runs`` is replaced).
    subject : str
    model, instruction : str
        The features store ``<features_dir>/<model>.h5`` and the instruction fitted (``none`` for a
        baseline or a transcript's store).
    layer : int
    stimulus_run : str, optional
        The segmented run; default the only one of ``segments``.

    Returns
    -------
    HeldOutPrediction
    """
    config = load_config(config) if "config_file" not in config else config
    segments = config.get("segments") or {}
    stimulus_run = stimulus_run or (next(iter(segments)) if len(segments) == 1 else None)
    if stimulus_run not in segments:
        raise InputError(f"{config['config_file']}: field 'segments' must cut the run to predict "
                         f"({stimulus_run or 'none named'}) into segments.")
    folder = Path(config["features_dir"])
    alphas = np.asarray(config["alphas"])
    responses, predictions, names, lengths, chosen = [], [], [], [], []
    with FeatureStore(folder / f"{model}.h5") as store:
        rows = {run: [(str(store.path), int(store.done(instruction, run).size), store.parameters.get("tr"))]
                for run in store.runs(instruction)}
        n_segments = _n_segments(segments[stimulus_run])
        for k in range(1, n_segments + 1):
            name = f"{stimulus_run}:{k}"
            data = load_subject({**config, "test_runs": [name]}, subject, rows)
            design = layer_design(store, instruction, layer, data, config["delays"], config["trim"])
            Y = [bold[:, data.valid] for bold in data.bold]
            X_train, run_of_row = stack(design, data.train)
            Y_train, _ = stack(Y, data.train)
            X_test, _ = stack(design, data.test)
            Y_test, _ = stack(Y, data.test)
            fit = fit_ridge(X_train, Y_train, data.cv_groups(run_of_row), X_test, Y_test, alphas,
                            n_folds=config["cv_folds"], memory_gb=config["memory_gb"], return_prediction=True)
            full = np.full((len(Y_test), data.n_targets), np.nan)
            full[:, data.valid] = fit.extra["test_prediction"]
            observed = np.full_like(full, np.nan)
            observed[:, data.valid] = Y_test
            responses.append(observed)
            predictions.append(full)
            names.append(name)
            lengths.append(len(Y_test))
            best = np.full(data.n_targets, np.nan)
            best[data.valid] = np.asarray(fit.alpha)
            chosen.append(best)
    return HeldOutPrediction(np.concatenate(responses), np.concatenate(predictions), names, lengths,
                             np.stack(chosen))


def _n_segments(spec):
    return int(spec) if isinstance(spec, int) else len(spec)
