import numpy as np

from features.delays import delay_run, delay_runs
from features.timing import aligned_length
from features.errors import InputError
import pytest


def test_delays_shift_rows_by_the_delay():
    x = np.arange(1, 11, dtype=float)[:, None]          # 10 TRs, 1 feature
    delayed = delay_run(x, delays=[0, 2, -1])
    np.testing.assert_array_equal(delayed[:, 0], x[:, 0])
    np.testing.assert_array_equal(delayed[:, 1], [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(delayed[:, 2], [2, 3, 4, 5, 6, 7, 8, 9, 10, 0])


def test_delays_do_not_cross_run_boundaries():
    runs = [np.full((6, 3), 1.0), np.full((4, 3), 2.0)]
    delayed = delay_runs(runs, delays=[1, 2, 3])
    second = delayed[1]
    # The first d rows of run 2 at delay d are zero, never run 1's last rows (which are 1.0).
    assert second[0].tolist() == [0.0] * 9
    assert second[1, :3].tolist() == [2.0] * 3 and second[1, 3:].tolist() == [0.0] * 6
    assert second[3].tolist() == [2.0] * 9
    assert not np.any(second == 1.0)


def test_delay_longer_than_run_is_all_zero():
    delayed = delay_run(np.ones((3, 2)), delays=[5])
    assert delayed.shape == (3, 2) and not delayed.any()


def test_alignment_tolerance_names_both_counts():
    assert aligned_length(300, 302, tolerance=2) == 300
    with pytest.raises(InputError, match="302 TRs.*297 feature rows"):
        aligned_length(297, 302, tolerance=2, features_file="model.h5", fmri_file="run-1.nii.gz")
