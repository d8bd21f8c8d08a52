"""The config as a mapping and its schema (issue 14): the same keys, checks and sentences as from YAML; the
README's reference is rendered from the schema."""
from pathlib import Path

import pytest
import yaml

from encoding import _schema
from encoding.config import DEFAULTS, MAPPING_LABEL, NESTED_KEYS, expand_path, load_config
from features.errors import InputError

BAD = [
    ({"alphass": [1, 2]}, "unknown config key 'alphass'; known keys: name, out, demo,"),
    ({"trim": {"begin": 2}}, "unknown config key 'trim.begin'; known: end, start."),
    ({"fdr_q": 1.5}, "field 'fdr_q' expected a number in (0, 1), found 1.5."),
    ({"n_permutations": -1}, "field 'n_permutations' expected a whole number >= 0, found -1."),
    ({"noise_ceiling": {"method": "twice"}}, "field 'noise_ceiling.method' expected one of auto, repeat, split_half, "
                                             "cross_subject, none, found 'twice'."),
    ({"permutation_tail": "student"}, "field 'permutation_tail' expected normal or none, found 'student'."),
    ({"delays": [1, "2"]}, "field 'delays' expected a list of whole numbers of TRs, found [1, '2']."),
    ({"cv_folds": 1}, "field 'cv_folds' expected a whole number >= 2 or null, found 1."),
    ({"workers": 0}, "field 'workers' expected a whole number >= 1 or null, found 0."),
]


@pytest.mark.parametrize("raw, sentence", BAD, ids=[str(next(iter(raw))) for raw, _ in BAD])
def test_a_mapping_gets_the_sentence_a_yaml_file_gets(tmp_path, raw, sentence):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError) as from_file:
        load_config(path)
    with pytest.raises(InputError) as from_mapping:
        load_config(raw)
    assert str(from_file.value).startswith(f"{path}: {sentence}")
    assert str(from_mapping.value) == str(from_file.value).replace(str(path), MAPPING_LABEL)


def test_the_schema_holds_every_key_with_its_default():
    assert list(DEFAULTS)[-3:] == ["work_dir", "workers", "scheduler"]
    assert list(DEFAULTS) == list(_schema.EncodingConfig.model_fields)
    assert NESTED_KEYS["rois"] == {"atlas", "lut", "names", "networks", "parcellation", "levels"}
    assert DEFAULTS["rois"] == {"atlas": "auto"} and DEFAULTS["delays"] == [1, 2, 3, 4, 5]
    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        load_config(path)                     # every shipped config passes the schema


def test_a_mappings_paths_resolve_against_its_base_dir(tmp_path):
    config = load_config({"features_dir": "features", "models": "a,b", "test_runs": "run-5"}, base_dir=tmp_path)
    base = Path(config["config_file"]).parent
    assert base == tmp_path.resolve() and config["name"] == "analysis"
    assert expand_path(config["features_dir"], config, base) == tmp_path.resolve() / "features"
    assert config["test_runs"] == ["run-5"]
    overridden = load_config({"name": "x"}, {"out": str(tmp_path / "o"), "layers": None})
    assert overridden["out"] == str(tmp_path / "o") and overridden["layers"] == "all"


def test_the_config_reference_lists_every_key_from_the_schema():
    reference = _schema.render_config_reference()
    rows = [line for line in reference.splitlines() if line.startswith("| `")]
    keys = [row.split("`")[1] for row in rows]
    expected = [k for k in DEFAULTS if k not in ("trim", "rois", "noise_ceiling", "transcript")]
    expected += [f"{k}.{sub}" for k in ("trim", "rois", "noise_ceiling", "transcript") for sub in _schema.sections()[k].model_fields]
    assert sorted(keys) == sorted(expected)
    assert "| `fdr_q` | `0.05` | Benjamini-Hochberg level for 'significant' |" in rows
