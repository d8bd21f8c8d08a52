"""An output folder appears complete or not at all; an existing one survives a failed overwrite."""
import pytest

from encoding.outputs.folder import atomic_folder
from features.errors import InputError


def test_failure_leaves_no_folder_and_no_partial(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "out") as partial:
            (partial / "scores.h5").write_text("half")
            raise RuntimeError("killed mid-way")
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_refused_then_kept_through_a_failed_overwrite_then_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "alignment.csv").write_text("old")
    with pytest.raises(InputError, match="already exists"):
        with atomic_folder(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_folder(out, overwrite=True) as partial:
            (partial / "alignment.csv").write_text("new, unfinished")
            raise RuntimeError("killed mid-way")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "alignment.csv").read_text() == "old"
    with atomic_folder(out, overwrite=True) as partial:
        (partial / "report.html").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
