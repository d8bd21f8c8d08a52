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
    nested = ("trim", "rois", "noise_ceiling", "extraction", "transcript")
    expected = [k for k in DEFAULTS if k not in nested]
    expected += [f"{k}.{sub}" for k in nested for sub in _schema.sections()[k].model_fields]
    assert sorted(keys) == sorted(expected)
    assert "| `fdr_q` | `0.05` | Benjamini-Hochberg level for 'significant' |" in rows


def test_extraction_settings_are_checked_when_the_config_is_read(tmp_path):
    """A bad `extraction` value is one sentence naming the config and the key before any model loads; the
    schema's poolings are the extractors'."""
    from extractors.extract import POOLINGS

    assert _schema.POOLINGS == tuple(POOLINGS)
    config = tmp_path / "study.yaml"
    for key, value, expected in [("align", "middle", "one of end, start, center"),
                                 ("tr", 0, "a positive number of seconds"),
                                 ("batch_clips", "many", "a whole number >= 1 or auto"),
                                 ("pooling", "max", "one of " + ", ".join(POOLINGS))]:
        config.write_text(yaml.safe_dump({"extraction": {key: value}}))
        with pytest.raises(InputError) as caught:
            load_config(config)
        assert str(caught.value) == f"{config}: field 'extraction.{key}' expected {expected}, found {value!r}."
    accepted = load_config({"extraction": {"batch_clips": "auto", "tr": 1.49, "frames": 8}})["extraction"]
    assert accepted == {"batch_clips": "auto", "tr": 1.49, "frames": 8}   # only what was given reaches the extractor


def test_every_command_says_a_bad_value_in_the_same_sentence(tmp_path, capsys):
    from encoding.rsa._config import load_rsa_config
    from encoding.triplets.__main__ import main as triplets_main
    from encoding.words._config import load_words_config

    with pytest.raises(InputError) as caught:
        load_config({"fdr_q": 1.5})
    assert str(caught.value) == f"{MAPPING_LABEL}: field 'fdr_q' expected a number in (0, 1), found 1.5."
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump({"models": ["toy"], "subjects": {"s": {}}, "ci": 1.5}))
    with pytest.raises(InputError) as caught:
        load_rsa_config(tmp_path / "rsa.yaml")
    assert str(caught.value) == f"{tmp_path / 'rsa.yaml'}: field 'ci' expected a number in (0, 1), found 1.5."
    (tmp_path / "words.yaml").write_text(yaml.safe_dump({"models": ["gpt2"], "windows": {"width": 0}}))
    with pytest.raises(InputError) as caught:
        load_words_config(tmp_path / "words.yaml")
    assert str(caught.value) == (f"{tmp_path / 'words.yaml'}: field 'windows.width' expected a number of seconds "
                                 f"> 0, found 0.")
    (tmp_path / "words.yaml").write_text(yaml.safe_dump({"models": ["gpt2"], "epochs": {"tmn": 0}}))
    with pytest.raises(InputError, match=r"unknown config key 'epochs\.tmn'; known: tmin, tmax, baseline"):
        load_words_config(tmp_path / "words.yaml")
    assert triplets_main(["evaluate", str(tmp_path), "--out", str(tmp_path / "ev"), "--permutations", "-1"]) == 2
    assert capsys.readouterr().err.strip() == ("error: python -m encoding.triplets evaluate: field '--permutations' "
                                               "expected a whole number >= 0, found -1.")
    assert not (tmp_path / "ev").exists()


def test_the_readme_holds_every_commands_generated_reference():
    from encoding.rsa._config import RsaConfig
    from encoding.triplets._config import COMMANDS
    from encoding.words._config import DEFAULTS as WORDS_DEFAULTS, NESTED, WordsConfig

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for reference in [_schema.render_config_reference(), _schema.render_config_reference(RsaConfig),
                      _schema.render_config_reference(WordsConfig)] + [
                          _schema.render_config_reference(section, "--") for section in COMMANDS.values()]:
        assert reference in readme
    assert NESTED["diverge"]["k"] == 50 and WORDS_DEFAULTS["diverge"] == NESTED["diverge"]
    assert WORDS_DEFAULTS["segments"] == 4 and "| `--n-triplets` | — |" in readme
