"""A run's size from its headers (what a sweep's dry run plans with) equals what the loader returns."""
import pytest
import yaml

from encoding.fmri import load_run
from encoding.fmri import run_shape
from native_layouts import LAYOUTS, SUBJECT, write_layout_study


@pytest.mark.parametrize("layout", LAYOUTS)
def test_header_sizes_equal_the_loaded_arrays(tmp_path, layout):
    config = write_layout_study(tmp_path, layout)
    runs = yaml.safe_load(config.read_text())["subjects"][SUBJECT]["runs"]
    for run in runs:
        data, _ = load_run(run, tmp_path)
        assert run_shape(run, tmp_path) == data.shape
