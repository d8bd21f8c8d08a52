"""Segments of one long run used like runs, and plain-text time courses.

A planted leak: the features are 1 on the test segment's TRs and 0 elsewhere, so a training design row
that is not all zero holds stimulus of the test segment.
"""
import numpy as np
import pytest

from encoding.config import load_config
from encoding.design import layer_design, load_subject, run_parts
from encoding.fmri import load_run
from features.errors import InputError
from features.store import FeatureStore

N_TRS = 100


def _study(tmp_path, delays=(1, 2, 3), segments=5, test="story:3", trim=None):
    bounds = [round(k * N_TRS / 5) for k in range(6)]
    in_test = np.zeros((N_TRS, 1), np.float32)
    in_test[bounds[2]:bounds[3]] = 1.0            # the third of five segments
    with FeatureStore(tmp_path / "features" / "marker.h5", "a", {"model_id": "marker", "tr": 2.0}) as store:
        store.create_run("none", "story", N_TRS, [1], prompt="")
        store.write_clips("none", "story", slice(None), [in_test])
    rng = np.random.default_rng(0)
    np.save(tmp_path / "bold.npy", rng.standard_normal((N_TRS, 4)).astype(np.float32))
    config = load_config({"features_dir": "features", "models": ["marker"],
                          "subjects": {"sub-01": {"runs": [{"path": "bold.npy", "stimulus_run": "story", "tr": 2.0}]}},
                          "segments": {"story": segments}, "test_runs": [test], "delays": list(delays),
                          "trim": trim or {"start": 0, "end": 0}, "rois": {"atlas": "parcels"}},
                         base_dir=tmp_path)
    rows = {"story": [(str(tmp_path / "features" / "marker.h5"), N_TRS, 2.0)]}
    return config, rows, in_test


def _leaked_rows(config, rows, tmp_path, design_delays):
    data = load_subject(config, "sub-01", rows)
    with FeatureStore(tmp_path / "features" / "marker.h5") as store:
        design = layer_design(store, "none", 0, data, design_delays, config["trim"])
    return data, design, int(sum(np.count_nonzero(design[i]) for i in data.train))


def test_no_test_segment_stimulus_enters_a_training_design(tmp_path):
    config, rows, in_test = _study(tmp_path)
    data, design, leaked = _leaked_rows(config, rows, tmp_path, config["delays"])
    assert data.stimulus_runs == [f"story:{k}" for k in range(1, 6)]
    assert [data.stimulus_runs[i] for i in data.test] == ["story:3"]
    assert leaked == 0
    # the test segment itself sees its own stimulus at every delay it can
    test_design = design[data.test[0]]
    assert test_design.shape == (20, 3) and np.count_nonzero(test_design) == 20 * 3 - (1 + 2 + 3)
    # its neighbours lose exactly max |delay| = 3 TRs on the side facing it
    lengths = [b.shape[0] for b in data.bold]
    assert lengths == [20, 17, 20, 17, 20]
    assert data.rows == [(0, 20), (20, 37), (40, 60), (63, 80), (80, 100)]


def test_the_planted_leak_is_found_when_the_gap_is_shorter_than_the_delays(tmp_path):
    """The check above can fail: with delays longer than the gap the engine left, a training row leaks."""
    config, rows, _ = _study(tmp_path, delays=(1, 2, 3))
    _, _, leaked = _leaked_rows(config, rows, tmp_path, design_delays=[1, 2, 3, 4, 5])
    assert leaked == (1 + 2)          # delays 4 and 5 reach 2 + 1 test TRs from the next segment's first rows


def test_features_are_standardized_without_the_test_segment(tmp_path):
    config, rows, in_test = _study(tmp_path, delays=(0,))
    data, design, _ = _leaked_rows(config, rows, tmp_path, [0])
    # the marker is 0 on every fitted row (std 0): it stays 0 there and 1 on the test rows; a z-score fitted
    # on the whole run would have shifted the training rows to -0.5
    assert all(np.all(design[i] == 0) for i in data.train) and np.all(design[data.test[0]] == 1)
    assert data.fit_rows[0] == [(0, 40), (60, 100)]


def test_explicit_segments_and_their_mistakes_are_one_sentence(tmp_path):
    config, rows, _ = _study(tmp_path, segments=[[0, 30], [30, 70], [70, 100]], test="story:2")
    parts, fit_rows = run_parts(config, "story", N_TRS, "bold.npy")
    assert parts == [("story:1", (0, 27)), ("story:2", (30, 70)), ("story:3", (73, 100))]
    assert fit_rows == [(0, 27), (73, 100)]
    for segments, expected in (([[0, 30], [20, 60]], "is not an increasing, non-overlapping range"),
                               ([[0, 30], [30, 130]], "is not an increasing, non-overlapping range"),
                               (60, "asks for 60 segments; expected 2 to 50"),
                               ([[0, 50]], "expected two or more segments")):
        bad, rows, _ = _study(tmp_path, segments=segments, test="story:1")
        with pytest.raises(InputError, match=expected) as caught:
            run_parts(bad, "story", N_TRS, "bold.npy")
        assert str(caught.value).startswith(f"{bad['config_file']}: field 'segments.story'")


def test_a_test_segment_that_leaves_a_neighbour_empty_is_refused(tmp_path):
    config, rows, _ = _study(tmp_path, segments=[[0, 40], [40, 42], [42, 100]], test="story:3")
    with pytest.raises(InputError, match="training segment story:2 .* keeps nothing"):
        run_parts(config, "story", N_TRS, "bold.npy")


def test_a_run_without_segments_is_split_as_before(tmp_path):
    config, rows, _ = _study(tmp_path, trim={"start": 2, "end": 1})
    assert run_parts({**config, "segments": {}}, "story", N_TRS, "x") == ([("story", (2, 99))], None)


def test_text_time_courses_read_their_names_from_a_header_or_the_run_entry(tmp_path):
    values = np.arange(12, dtype=float).reshape(4, 3)
    (tmp_path / "plain.txt").write_text("\n".join("  ".join(f"{v:.3e}" for v in row) for row in values))
    (tmp_path / "named.csv").write_text("A,B,C\n" + "\n".join(",".join(str(v) for v in row) for row in values))
    data, space = load_run({"path": "plain.txt", "names": ["x", "y", "z"]}, tmp_path)
    np.testing.assert_array_equal(data, values.astype(np.float32))
    assert (space.kind, space.file_format, space.names) == ("parcels", "text", ("x", "y", "z"))
    data, space = load_run({"path": "named.csv"}, tmp_path)
    np.testing.assert_array_equal(data, values.astype(np.float32))
    assert space.names == ("A", "B", "C")
    assert load_run({"path": "plain.txt"}, tmp_path)[1].names is None


def test_bad_text_time_courses_are_one_sentence_naming_the_file(tmp_path):
    (tmp_path / "cell.tsv").write_text("1\t2\n3\tx\n")
    with pytest.raises(InputError) as caught:
        load_run({"path": "cell.tsv"}, tmp_path)
    assert str(caught.value) == f"{tmp_path / 'cell.tsv'}: expected numbers in every cell, found 'x' in line 2, column 2."
    (tmp_path / "two.txt").write_text("1 2\n3 4\n")
    with pytest.raises(InputError, match=r"two.txt: field 'names' lists 3 names for the file's 2 columns\."):
        load_run({"path": "two.txt", "names": ["a", "b", "c"]}, tmp_path)
