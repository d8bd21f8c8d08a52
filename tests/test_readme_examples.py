"""The README's command lines work from any working directory (issue 28): each CLI is run the README's way
(a relative config or folder) from the folder above it and from a sibling folder, and its outputs land where
the README says, never in a doubled folder such as ``rsa/rsa/``."""
import os
import subprocess
import sys

import pandas as pd
import yaml

from encoding.config import REPO_ROOT

from reference_recipe import write_study
from test_rsa import _word_study


def _run(module, *args, cwd):
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=600)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done


def test_rsa_readme_command_from_the_parent_and_from_a_sibling_folder(tmp_path):
    study = tmp_path / "rsa"
    study.mkdir()
    _, subjects = _word_study(study)
    config = {"features_dir": "features", "models": ["toy"], "subjects": subjects, "rois": {"atlas": "rois.yaml"},
              "n_permutations": 19, "n_bootstrap": 10}
    (study / "rsa.yaml").write_text(yaml.safe_dump(config))
    done = _run("encoding.rsa", "--config", "rsa/rsa.yaml", "--out", "from_parent", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    sibling = tmp_path / "elsewhere"
    sibling.mkdir()
    done = _run("encoding.rsa", "--config", "../rsa/rsa.yaml", "--out", "out", "--quiet", cwd=sibling)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = pd.read_csv(tmp_path / "from_parent" / "rsa.csv"), pd.read_csv(sibling / "out" / "rsa.csv")
    pd.testing.assert_frame_equal(first, second)
    assert not (study / "rsa").exists() and not list(tmp_path.rglob("rsa/rsa"))


def test_encoding_run_and_its_analyses_from_another_folder(tmp_path):
    """``encoding.run --config study/study.yaml``, then ``encoding.hierarchy`` and ``encoding.flatmap`` on the
    output folder named relatively, from a sibling folder."""
    write_study(tmp_path / "study", hidden=6, n_targets=12)
    sibling = tmp_path / "elsewhere"
    sibling.mkdir()
    done = _run("encoding.run", "--config", "../study/study.yaml", "--out", "out", "--quiet", cwd=sibling)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (sibling / "out" / "alignment.csv").is_file()
    done = _run("encoding.hierarchy", "out", "--output-dir", "hierarchy", cwd=sibling)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (sibling / "hierarchy" / "hierarchy_tests.csv").is_file()


def test_the_alice_config_plans_from_any_folder(tmp_path):
    """``python -m encoding.run --config configs/alice.yaml --dry-run`` with the config named relatively from
    elsewhere: its data paths are the config's own, so the plan finds all 28 participants' files."""
    relative = os.path.relpath(REPO_ROOT / "configs" / "alice.yaml", tmp_path)
    done = _run("encoding.run", "--config", relative, "--dry-run", "--out", "alice", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "280 fits, 0 already done" in done.stdout                # 28 participants x (7 + 1 + 1 + 1)
    assert not (tmp_path / "alice").exists()


def test_the_extractors_list_from_any_folder(tmp_path):
    done = _run("extractors.run", "--list", cwd=tmp_path)
    assert done.returncode == 0 and "qwen2.5-vl" in done.stdout and "caption" in done.stdout
