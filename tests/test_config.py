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


def _fields_read(path, functions=None):
    """The config fields a module (or some of its functions) reads by name: ``config["key"]``, ``settings["key"]``
    and ``config.get("key")``."""
    tree = ast.parse((PACKAGE / path).read_text())
    roots = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
             and (functions is None or node.name in functions)]
    read = set()
    for root in roots:
        # ``settings`` is a stage's fields where the function takes it (elsewhere it may be a local of its own)
        names = {"config"} | ({"settings"} & {a.arg for a in root.args.args})
        read |= {node.slice.value for node in ast.walk(root) if isinstance(node, ast.Subscript)
                 and getattr(node.value, "id", None) in names and isinstance(node.slice, ast.Constant)}
    for node in (n for root in roots for n in ast.walk(root)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and getattr(node.func.value, "id", None) == "config" and node.args \
                and isinstance(node.args[0], ast.Constant):
            read.add(node.args[0].value)
    return read


def test_every_stage_receives_only_its_own_fields():
    """run_analysis hands each stage its fields, not the config: the inputs as arguments, the others a read-only
    mapping of the fields their module declares; every field a stage reads is one it declares, and only the
    record of the run (config.yaml, scores.h5's root) gets the whole config."""
    from encoding import encoders
    from encoding.config import fields
    from encoding.pipeline import _assemble, _ceilings, _dry_run, _inputs
    from encoding.roi_sets import ROI_FIELDS
    from encoding.sweep import PLANNER_FIELDS
    from encoding.transcript_stores import TRANSCRIPT_FIELDS

    stages = [
        (("sweep/_plan.py", None), ("sweep/_units.py", None), ("design.py", None), ("roi_sets.py", None),
         ("layer_weights.py", {"layer_weights_settings"}),
         ("pipeline/_inputs.py", {"prepare_subjects", "subject_names"}),
         PLANNER_FIELDS),
        (("pipeline/_dry_run.py", None), _dry_run.DRY_RUN_FIELDS),
        (("roi_sets.py", None), ROI_FIELDS),
        (("transcript_stores.py", None), TRANSCRIPT_FIELDS),
        (("pipeline/_inputs.py", {"extract_missing", "_first_tr"}), _inputs.EXTRACTION_FIELDS),
        (("pipeline/_assemble.py", None), _assemble.FIELDS),
        (("pipeline/_ceilings.py", None), _ceilings.FIELDS),
        (("encoders.py", {"save_fitted_encoders"}), encoders.SAVE_FIELDS),
    ]
    for *parts, declared in stages:
        read = set().union(*(_fields_read(path, functions) for path, functions in parts))
        assert read and read <= set(declared), (parts, read - set(declared))
    # the functions that take plain arguments read no config at all
    assert not _fields_read("pipeline/_inputs.py", {"output_folder", "work_folder", "open_stores",
                                                    "choose_instructions", "choose_layers"})
    assert not _fields_read("pipeline/_tables.py", {"alignment_table"})
    assert not _fields_read("pipeline/_figures.py")
    # run_analysis passes the whole config only to the loader, the field picker and the run's record
    tree = ast.parse((PACKAGE / "pipeline/_run.py").read_text())
    whole = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and any(isinstance(a, ast.Name) and a.id == "config" for a in node.args)}
    assert whole == {"load_config", "fields", "_write_outputs", "write_inputs", "jsonable"}
    config = load_config()
    handed = fields(config, _ceilings.FIELDS)
    assert dict(handed) == {"noise_ceiling": config["noise_ceiling"], "seed": config["seed"]}
    with pytest.raises(KeyError):
        handed["fdr_q"]
    with pytest.raises(TypeError):
        handed["seed"] = 1
