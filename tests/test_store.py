import h5py
import numpy as np
import pytest

from features.errors import InputError
from features.store import FeatureStore

PARAMS = {"model_id": "org/model", "model_revision": "abc", "frames_per_clip": 8, "window_s": 1.49,
          "window_align": "end", "tr": 1.49, "pooling": "generated_mean", "dtype": "float32"}


def test_store_round_trips_layers_text_and_prompt(tmp_path):
    rng = np.random.default_rng(0)
    layers = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 6)).astype(np.float32)]
    path = tmp_path / "m.h5"
    with FeatureStore(path, "a", PARAMS) as store:
        store.create_run("caption", "s01e01a", 5, [4, 6], "Caption the video in a short sentence.")
        store.write_clips("caption", "s01e01a", slice(0, 5), layers, [f"clip {i}" for i in range(5)])
    with FeatureStore(path) as store:
        assert store.layers("caption", "s01e01a") == [0, 1]
        np.testing.assert_array_equal(store.read_layer("caption", "s01e01a", 1), layers[1])
        assert store.read_text("caption", "s01e01a")[3] == "clip 3"
        assert store.prompt("caption") == "Caption the video in a short sentence."
        assert store.is_complete("caption", "s01e01a")
        assert store.parameters["tr"] == pytest.approx(1.49)
    with h5py.File(path) as raw:   # the layout of the contract, readable without our code
        assert raw["caption/s01e01a/layer_0"].shape == (5, 4)


def test_partially_written_run_reports_which_clips_are_done(tmp_path):
    with FeatureStore(tmp_path / "m.h5", "a", PARAMS) as store:
        store.create_run("caption", "r1", 4, [3], "p")
        store.write_clips("caption", "r1", [0, 2], [np.ones((2, 3))])
        assert store.done("caption", "r1").tolist() == [True, False, True, False]
        assert not store.is_complete("caption", "r1")


def test_opening_with_other_parameters_is_an_error_naming_the_field(tmp_path):
    path = tmp_path / "m.h5"
    FeatureStore(path, "a", PARAMS).close()
    with pytest.raises(InputError, match="m.h5.*'frames_per_clip'.*8.*16"):
        FeatureStore(path, "a", {**PARAMS, "frames_per_clip": 16})
    with FeatureStore(path) as store:   # nothing was changed by the refused open
        assert store.parameters["frames_per_clip"] == 8


def test_missing_store_and_missing_layer_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="nope.h5"):
        FeatureStore(tmp_path / "nope.h5")
    with FeatureStore(tmp_path / "m.h5", "a", PARAMS) as store:
        store.create_run("caption", "r1", 2, [3], "p")
        with pytest.raises(InputError, match="layer_7"):
            store.read_layer("caption", "r1", 7)
        with pytest.raises(InputError, match="'action'"):
            store.read_layer("action", "r1", 0)


def test_compared_key_added_later_is_compared_as_the_value_old_stores_had(tmp_path):
    """'batch_instructions' and 'video_max_pixels' were not recorded by early stores: such a store is extended
    when this run asks for the value it was written with, and refused with one sentence otherwise."""
    path = tmp_path / "m.h5"
    FeatureStore(path, "a", PARAMS).close()  # a store written before either key was recorded
    with FeatureStore(path, "a", {**PARAMS, "batch_instructions": False}) as store:
        assert store.parameters["batch_instructions"] is False  # recorded from now on
    with pytest.raises(InputError, match=r"m.h5: field 'video_max_pixels' is not recorded: the file was written "
                                         r"before it was, when it was None .* asks for 602112"):
        FeatureStore(path, "a", {**PARAMS, "video_max_pixels": 602112})
    with pytest.raises(InputError, match=r"field 'batch_instructions' was written as False"):
        FeatureStore(path, "a", {**PARAMS, "batch_instructions": True})
    with FeatureStore(path) as store:  # nothing was changed by the refused opens
        assert "video_max_pixels" not in store.parameters


def test_run_order_is_given_explicitly_and_sorts_the_runs(tmp_path):
    with FeatureStore(tmp_path / "m.h5", "a", PARAMS) as store:
        store.create_run("caption", "run-2", 2, [3], "p", order=1)  # written first, e.g. by a resumed extraction
        store.create_run("caption", "run-1", 2, [3], "p", order=0)
        assert store.runs("caption") == ["run-1", "run-2"]
        assert store.run_attrs("caption", "run-2")["order"] == 1
