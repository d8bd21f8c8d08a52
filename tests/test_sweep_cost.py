"""The dry run's cost model: its coefficients are recovered from timings that follow it exactly, small fits
included, and its relative fit keeps a small shape's share where an absolute fit gives it up."""
import numpy as np
from scipy.optimize import nnls

from encoding.sweep._cost import _CALIBRATION, fit_coefficients, terms

PLANTED = np.array([0.015, 1.5e-10, 2e-11, 8e-12, 3e-9, 2.5e-11])   # seconds per unit of each term


def _rows(shapes):
    return np.array([terms({"n_train": n, "n_test": m, "n_features": p, "n_targets": t, "n_folds": folds,
                            "n_alphas": 17, "n_permutations": n_perm}) for n, m, p, t, folds, n_perm in shapes])


def test_planted_coefficients_are_recovered_from_noise_free_timings():
    rows = _rows(_CALIBRATION)
    seconds = rows @ PLANTED
    assert seconds.max() / seconds.min() > 20   # shapes whose times span more than a factor of 20
    np.testing.assert_allclose(fit_coefficients(rows, seconds), PLANTED, rtol=1e-6)


def test_a_small_shape_keeps_its_relative_accuracy_against_the_large_ones():
    rows = _rows(_CALIBRATION)
    seconds = rows @ PLANTED
    seconds[np.argsort(seconds)[-3:]] *= 1.3   # the three longest fits measured 30 % over the model
    relative = rows @ fit_coefficients(rows, seconds) / seconds
    scale = rows.max(0)
    absolute = rows @ (nnls(rows / scale, seconds)[0] / scale) / seconds
    small = np.argmin(seconds)
    assert abs(relative[small] - 1) < 0.15
    assert abs(relative[small] - 1) < abs(absolute[small] - 1)
    assert np.all(np.abs(relative - 1) < 0.3)
