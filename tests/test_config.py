"""The config is read once (issue 29): its loaders resolve every path and parse every list, so no stage
calls ``expand_path`` or ``parse_list``; the outputs still record the config as it was given."""
import ast
from pathlib import Path

import pytest
import yaml

from encoding.config import as_given, load_config
from features.errors import InputError

PACKAGE = Path(__file__).parents[1] / "encoding"
LOADERS = {"config.py", "rsa/_config.py", "words/_config.py"}


def test_no_stage_calls_expand_path_or_parse_list():
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if called in ("expand_path", "parse_list") and name not in LOADERS:
                    calls.append(f"{name}:{node.lineno} {called}")
    assert calls == []
    # the walk sees calls: the loaders' own are found
    assert "expand_path(" in (PACKAGE / "config.py").read_text()


def test_load_config_resolves_paths_once_and_keeps_them_as_given_for_the_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLLM_ENCODING_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "configs"
    folder.mkdir()
    given = {"features_dir": "{cache}/features", "models": "a, b", "layers": "0,4",
             "rois": {"atlas": "glasser_groups", "networks": "../networks.tsv"},
             "subjects": {"sub-01": {"runs": [{"path": "../{subject}/run-1.npy", "tr": 2.0,
                                               "stimulus_run": "run-1"}]}}}
    (folder / "study.yaml").write_text(yaml.safe_dump(given))
    config = load_config(folder / "study.yaml")
    assert config["features_dir"] == str(tmp_path / "cache" / "features")
    assert config["models"] == ["a", "b"] and config["layers"] == [0, 4]
    assert config["rois"] == {"atlas": "glasser_groups", "networks": str(tmp_path / "networks.tsv")}
    assert config["subjects"]["sub-01"]["runs"][0]["path"] == str(tmp_path / "sub-01" / "run-1.npy")
    written = as_given(config)
    assert {k: written[k] for k in given} == given and "given" not in written
    config["subjects"] = {}                         # --subjects leaves a subject out: so does the record
    assert as_given(config)["subjects"] == {}


def test_instruction_files_are_read_beside_the_config_from_any_working_directory(tmp_path, monkeypatch):
    from instructions import resolve

    folder, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    folder.mkdir(), elsewhere.mkdir()
    (folder / "tasks.yaml").write_text(yaml.safe_dump({"count": "How many people are in the video?"}))
    (folder / "study.yaml").write_text(yaml.safe_dump({"instruction_files": "tasks.yaml"}))
    monkeypatch.chdir(elsewhere)
    config = load_config(folder / "study.yaml")
    assert config["instruction_files"] == [str(folder / "tasks.yaml")]
    assert resolve("caption,count", extra_files=config["instruction_files"])["count"] == \
        "How many people are in the video?"
    assert as_given(config)["instruction_files"] == "tasks.yaml"


def test_an_unknown_placeholder_in_a_path_is_one_sentence_naming_the_config_and_the_path(tmp_path):
    with pytest.raises(InputError, match=r"<config mapping>: path '\{foo\}/features' holds a placeholder it "
                                         r"cannot fill \('foo'\); known: \{cache\}\."):
        load_config({"features_dir": "{foo}/features"}, base_dir=tmp_path)


def test_the_output_stages_receive_only_their_own_fields():
    """After the fits, the assembly, ceilings, tables and figures are handed their fields, not the config: every
    field they read is one their module declares, and the mapping they get holds nothing else."""
    from encoding import encoders
    from encoding.config import fields
    from encoding.pipeline import _assemble, _ceilings, _inputs

    stages = {"pipeline/_assemble.py": ("assemble_subject", "_best_maps", "_write_subject"),
              "pipeline/_ceilings.py": ("repeat_ceiling", "noise_ceilings", "_cross_subject"),
              "pipeline/_tables.py": ("alignment_table",),
              "pipeline/_figures.py": ("draw_flatmap", "hierarchy_and_flatmaps"),
              "pipeline/_inputs.py": ("output_folder", "work_folder", "open_stores", "choose_instructions",
                                      "choose_layers"),
              "encoders.py": ("save_fitted_encoders",)}
    declared = {"pipeline/_assemble.py": set(_assemble.FIELDS), "pipeline/_ceilings.py": set(_ceilings.FIELDS),
                "encoders.py": set(encoders.SAVE_FIELDS)}
    for name, functions in stages.items():
        tree = ast.parse((PACKAGE / name).read_text())
        found = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        for function in functions:
            assert "config" not in [a.arg for a in found[function].args.args], (name, function)
        read = {node.slice.value for node in ast.walk(tree) if isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name) and node.value.id == "settings"
                and isinstance(node.slice, ast.Constant)}
        assert read <= declared.get(name, set()), (name, read)
        if name in declared:
            assert read, name            # the walk sees the reads
    # extraction reads the config through its own fields' mapping
    extraction = ast.parse((PACKAGE / "pipeline/_inputs.py").read_text())
    extract = [node for node in ast.walk(extraction) if getattr(node, "name", None) in ("extract_missing", "_first_tr")]
    read = {node.slice.value for function in extract for node in ast.walk(function) if isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant) and getattr(node.value, "id", None) == "config"}
    assert read and read <= set(_inputs.EXTRACTION_FIELDS)
    config = load_config()
    handed = fields(config, _ceilings.FIELDS)
    assert dict(handed) == {"noise_ceiling": config["noise_ceiling"], "seed": config["seed"]}
    with pytest.raises(KeyError):
        handed["fdr_q"]
    with pytest.raises(TypeError):
        handed["seed"] = 1
