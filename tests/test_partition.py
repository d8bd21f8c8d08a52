"""Variance partitioning recovers the shared and unique variance planted in two feature spaces."""
import numpy as np
import pytest

from encoding.partition import VariancePartition, fit_partition, roi_partition_rows

# per ROI: variance of the response carried by features both spaces hold, by A only, by B only
PLANTED = {"mostly_a": {"shared": 0.2, "unique_a": 0.3, "unique_b": 0.1},
           "mostly_b": {"shared": 0.1, "unique_a": 0.05, "unique_b": 0.4}}
N_TARGETS_PER_ROI, N_FEATURES, RUN_LENGTH = 30, 8, 200


def _component(rng, X, variance, n_targets):
    """X @ w scaled so that the component has the planted variance in every target."""
    part = X @ rng.standard_normal((X.shape[1], n_targets))
    return part / part.std(0) * np.sqrt(variance)


def _planted_study(seed=0):
    rng = np.random.default_rng(seed)
    n = 5 * RUN_LENGTH
    shared, only_a, only_b = (rng.standard_normal((n, N_FEATURES)) for _ in range(3))
    blocks = []
    for parts in PLANTED.values():
        noise = 1 - sum(parts.values())
        blocks.append(_component(rng, shared, parts["shared"], N_TARGETS_PER_ROI)
                      + _component(rng, only_a, parts["unique_a"], N_TARGETS_PER_ROI)
                      + _component(rng, only_b, parts["unique_b"], N_TARGETS_PER_ROI)
                      + np.sqrt(noise) * rng.standard_normal((n, N_TARGETS_PER_ROI)))
    Y = np.concatenate(blocks, axis=1).astype(np.float32)
    Xa = np.concatenate([shared, only_a], axis=1).astype(np.float32)
    Xb = np.concatenate([shared, only_b], axis=1).astype(np.float32)
    rois = {name: np.arange(i * N_TARGETS_PER_ROI, (i + 1) * N_TARGETS_PER_ROI) for i, name in enumerate(PLANTED)}
    return Xa, Xb, Y, rois


@pytest.fixture(scope="module")
def partition():
    Xa, Xb, Y, rois = _planted_study()
    train, test = slice(0, 4 * RUN_LENGTH), slice(4 * RUN_LENGTH, None)
    runs = np.repeat(np.arange(4), RUN_LENGTH)
    result = fit_partition(Xa[train], Xb[train], Y[train], runs, Xa[test], Xb[test], Y[test], n_iter=10,
                           alphas=np.logspace(-2, 4, 7))
    return result, rois


@pytest.mark.parametrize("roi", list(PLANTED))
def test_recovers_planted_shared_and_unique_variance_per_roi(partition, roi):
    result, rois = partition
    rows = {row["roi"]: row for row in roi_partition_rows(result, rois, subject="sim")}
    for part, planted in PLANTED[roi].items():
        assert rows[roi][f"mean_{part}"] == pytest.approx(planted, abs=0.05), part


def test_joint_r2_holds_all_planted_variance(partition):
    result, rois = partition
    for roi, parts in PLANTED.items():
        assert result.r2_joint[rois[roi]].mean() == pytest.approx(sum(parts.values()), abs=0.05)


def test_parts_add_up_to_each_single_and_joint_r2():
    partition = VariancePartition(np.array([0.6, 0.2]), np.array([0.5, 0.15]), np.array([0.3, 0.1]))
    np.testing.assert_allclose(partition.shared + partition.unique_a, partition.r2_a)
    np.testing.assert_allclose(partition.shared + partition.unique_a + partition.unique_b, partition.r2_joint)
    np.testing.assert_allclose(partition.parts()["shared"], [0.2, 0.05])
