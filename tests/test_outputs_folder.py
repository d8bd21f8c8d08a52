"""An output folder appears complete or not at all; an existing one survives a failed overwrite."""
import os

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


def _dead_pid():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_killed_runs_partial_folder_is_removed_by_the_next_run(tmp_path):
    from encoding.outputs.folder import _host
    stale = tmp_path / f".out.partial-{_host()}-{_dead_pid()}"
    stale.mkdir()
    (stale / "scores.h5").write_text("half")
    live = tmp_path / f".out.partial-{_host()}-{os.getppid()}"             # a live process's: kept
    other_host = tmp_path / f".out.partial-elsewhere-{_dead_pid()}"                # another machine's: kept
    live.mkdir()
    other_host.mkdir()
    with atomic_folder(tmp_path / "out") as partial:
        (partial / "report.html").write_text("new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert stale.name not in names and {live.name, other_host.name, "out"} <= set(names)


def test_an_old_folder_set_aside_by_a_killed_overwrite_is_restored_not_lost(tmp_path):
    from encoding.outputs.folder import _host
    aside = tmp_path / f".out.old-{_host()}-{_dead_pid()}"     # killed between the two renames
    aside.mkdir()
    (aside / "alignment.csv").write_text("old")
    with pytest.raises(InputError, match="already exists"):
        with atomic_folder(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "alignment.csv").read_text() == "old" and not aside.exists()


def test_log_lines_written_inside_name_the_final_folder(tmp_path, capsys):
    import logging
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        with atomic_folder(tmp_path / "out") as partial:
            logging.getLogger("encoding.test").warning("wrote %s", partial / "scores.h5")
    finally:
        logging.getLogger().removeHandler(handler)
    assert capsys.readouterr().err.strip() == f"wrote {tmp_path / 'out' / 'scores.h5'}"
