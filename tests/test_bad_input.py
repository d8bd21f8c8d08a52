"""Bad input ends in one sentence naming the file and the field, exit status 2, and nothing written (issue 12)."""
import os

import numpy as np
import pytest
import yaml

from encoding.run import main
from reference_recipe import write_study


@pytest.fixture
def study(tmp_path):
    return write_study(tmp_path / "study", hidden=6, n_targets=12)


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


def test_every_target_nan_or_constant_names_the_file_and_field(study, tmp_path, capsys):
    spec = yaml.safe_load(study.config.read_text())
    first = tmp_path / "study" / spec["subjects"]["sub-01"]["runs"][0]["path"]
    np.save(first, np.full_like(np.load(first), 3.0))           # every target constant in a training run
    assert main(["--config", str(study.config), "--out", str(tmp_path / "o")]) == 2
    assert _error(capsys) == (f"error: {first}: every target of sub-01 is NaN or constant in some training run "
                              f"(field 'subjects.sub-01.runs'); nothing can be fitted.")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("layers", ["x1", "1,,two", "1.5"])
def test_malformed_layers_flag_is_one_sentence(study, tmp_path, capsys, layers):
    assert main(["--config", str(study.config), "--out", str(tmp_path / "o"), "--layers", layers]) == 2
    assert _error(capsys).startswith(f"error: --layers: expected 'all' or a comma list of layer indices such as "
                                     f"0,8,16, found '{layers}'")
    assert not (tmp_path / "o").exists()


def test_a_relative_config_with_relative_run_paths_works_from_its_parent_and_from_elsewhere(study, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)                      # the README's form: --config study/study.yaml
    assert main(["--config", "study/study.yaml", "--out", "from_parent", "--quiet"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["--config", os.path.join("..", "study", "study.yaml"), "--out", "o", "--quiet"]) == 0
    assert (tmp_path / "from_parent" / "scores.h5").is_file() and (elsewhere / "o" / "scores.h5").is_file()


def test_a_run_entry_that_is_not_a_mapping_names_the_field(study, tmp_path, capsys):
    spec = yaml.safe_load(study.config.read_text())
    spec["subjects"]["sub-01"]["runs"][2] = "sub-01_run-3.npy"
    study.config.write_text(yaml.safe_dump(spec))
    assert main(["--config", str(study.config), "--out", str(tmp_path / "o")]) == 2
    assert "field 'subjects.sub-01.runs[2]' must be a mapping" in _error(capsys)


def test_a_missing_run_file_stops_the_analysis_before_any_run_is_read(study, tmp_path, capsys, monkeypatch):
    spec = yaml.safe_load(study.config.read_text())
    runs = spec["subjects"]["sub-01"]["runs"]
    spec["subjects"]["sub-02"] = {"runs": runs[:-1] + [{**runs[-1], "path": "sub-02_run-5.npy"}]}
    study.config.write_text(yaml.safe_dump(spec))
    read = []
    monkeypatch.setattr("encoding.design.load_run", lambda run, base: read.append(run) or pytest.fail("read"))
    assert main(["--config", str(study.config), "--out", str(tmp_path / "o")]) == 2
    assert _error(capsys) == (f"error: {tmp_path / 'study' / 'sub-02_run-5.npy'}: field "
                              f"'subjects.sub-02.runs[{len(runs) - 1}].path' must name an existing file, found no "
                              f"such file.")
    assert read == [] and not (tmp_path / "o").exists()
