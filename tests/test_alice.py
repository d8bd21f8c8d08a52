"""Real fMRI end to end: Brennan et al. (2016)'s 28 participants hearing chapter 1 of Alice in Wonderland.

The files are the package's own copy (``encoding/datasets/alice``, CC BY 4.0): six ROI time courses per
participant, one run of 362 volumes at TR 2 s, and the words with their times. Each test checks a number
against something known: the authors' own word-rate regressor, an independent implementation of the
recipe on the same segments, a circular-shift null, the zeros of s33.
"""
import json
import logging
import os

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from encoding.config import REPO_ROOT, load_config
from features.store import FeatureStore

from reference_recipe import reference_segment_fit

ALICE = REPO_ROOT / "encoding" / "datasets" / "alice"
CONFIG = REPO_ROOT / "configs" / "alice.yaml"
ROIS = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="session")
def alice_run(tmp_path_factory):
    """``python -m encoding.run --config configs/alice.yaml`` for s18, s22 and s33, from another folder.

    The features stores (MiniLM over the 2,127 words, word rate, sound power) go to a fresh cache.
    """
    from encoding.run import main

    root = tmp_path_factory.mktemp("alice")
    handler = _Records()
    logging.getLogger().addHandler(handler)
    previous_cache, previous_cwd = os.environ.get("MLLM_ENCODING_CACHE"), os.getcwd()
    os.environ["MLLM_ENCODING_CACHE"] = str(root / "cache")
    os.chdir(root)                       # the config's paths resolve against its own folder
    try:
        code = main(["--config", str(CONFIG), "--subjects", "s18,s22,s33", "--out", "out", "--quiet"])
    finally:
        os.chdir(previous_cwd)
        logging.getLogger().removeHandler(handler)
        if previous_cache is None:
            os.environ.pop("MLLM_ENCODING_CACHE")
        else:
            os.environ["MLLM_ENCODING_CACHE"] = previous_cache
    return code, root / "out", root / "cache" / "alice" / "features", handler.messages


def _hrf_convolved(values):
    from nilearn.glm.first_level import spm_hrf

    return np.convolve(values, spm_hrf(2.0, oversampling=1))[:len(values)]


def test_word_rate_built_from_the_word_table_follows_the_authors_regressor(tmp_path):
    from extractors.transcript import main

    store = tmp_path / "word_rate.h5"
    assert main(["--words", str(ALICE / "words.csv"), "--model", "word_rate", "--tr", "2", "--n-trs", "362",
                 "--onset-offset", "-20", "--out", str(store)]) == 0
    with FeatureStore(store) as features:
        rate = features.read_layer("none", "run-1", 0)[:, 0]
    assert rate.shape == (362,) and rate.sum() == 2127            # every word in one volume
    authors = np.loadtxt(ALICE / "word_rate_hrf.txt")           # the authors' s18-rate.txt (HRF-convolved)
    assert np.corrcoef(_hrf_convolved(rate), authors)[0, 1] >= 0.95


def test_a_store_written_with_another_onset_offset_is_refused_and_kept(tmp_path, capsys):
    from extractors.transcript import main

    store = tmp_path / "word_rate.h5"
    args = ["--words", str(ALICE / "words.csv"), "--model", "word_rate", "--tr", "2", "--n-trs", "362", "--out",
            str(store)]
    assert main(args + ["--onset-offset", "-20"]) == 0
    written = store.read_bytes()
    assert main(args + ["--onset-offset", "-20"]) == 0 and store.read_bytes() == written   # reused as it is
    assert main(args + ["--onset-offset", "0"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"error: {store}: field 'transcript' was written as") and "Traceback" not in message
    assert store.read_bytes() == written


@pytest.mark.slow
def test_the_alice_run_excludes_s33_by_name_and_fits_the_others(alice_run):
    code, out, _, messages = alice_run
    assert code == 0
    s33 = str(ALICE / "timecourses_6mm" / "s33-timecourses.txt")
    excluded = [m for m in messages if m.startswith("excluded:")]
    assert len(excluded) == 1 and s33 in excluded[0] and "every target of s33 is NaN or constant" in excluded[0]
    table = pd.read_csv(out / "alignment.csv")
    assert sorted(table["subject"].unique()) == ["s18", "s22"]
    assert sorted(table["model"].unique()) == ["minilm", "sound_power", "word_rate"]
    assert sorted(table["roi"].unique()) == sorted(ROIS)
    assert sorted(table.loc[table["model"] == "minilm", "layer"].unique()) == list(range(7))   # MiniLM-L6 + emb.
    assert table["n_permutations"].eq(1000).all() and table["p_perm"].between(0, 1).all()
    assert table["ceiling_method"].eq("cross_subject").all()
    partition = pd.read_csv(out / "variance_partition.csv")
    assert len(partition) == 2 * len(ROIS) and partition["band_a"].str.startswith("minilm").all()
    report = (out / "report.md").read_text()
    assert f"- excluded: {excluded[0].removeprefix('excluded: ')}" in report
    assert "run alice cut into 5 segments used like runs" in report
    tests = pd.read_csv(out / "hierarchy_tests.csv")
    assert tests["note"].str.startswith("too little to rank").all()        # no ROI of Alice has a level
    with h5py.File(out / "scores.h5", "r") as scores:
        assert json.loads(scores["s18"].attrs["test_runs"]) == ["alice:5"]
        assert json.loads(scores["s18"].attrs["train_runs"]) == [f"alice:{k}" for k in range(1, 5)]
        assert json.loads(scores["s18"].attrs["test_run_lengths"]) == [362 - round(4 * 362 / 5)]


@pytest.mark.slow
def test_language_model_held_out_r_equals_the_independent_recipe_on_the_same_segments(alice_run):
    from encoding.outputs.scores_file import ScoresFile

    _, out, features, _ = alice_run
    config = load_config(CONFIG)
    alphas = np.asarray(config["alphas"])
    bounds = [(round(k * 362 / 5), round((k + 1) * 362 / 5)) for k in range(5)]
    worst = 0.0
    with FeatureStore(features / "minilm.h5") as store, ScoresFile(out / "scores.h5") as scores:
        for subject in ("s18", "s22"):
            bold = np.loadtxt(ALICE / "timecourses_6mm" / f"{subject}-timecourses.txt")
            for layer in (0, 4, 6):
                r, chosen = reference_segment_fit(store.read_layer("none", "alice", layer), bold, bounds, 4,
                                                  config["delays"], alphas)
                engine = scores.read(f"{subject}/minilm/none/layer_{layer}", "test_r")
                engine_alphas = scores.read(f"{subject}/minilm/none/layer_{layer}", "alpha")
                worst = max(worst, float(np.abs(engine - r).max()))
                np.testing.assert_allclose(engine_alphas, chosen, rtol=1e-6)
    assert worst < 1e-4


def test_word_rate_predicts_every_held_out_segment_of_the_group_mean_in_every_roi(tmp_path):
    """Every segment held out in turn (the engine's gaps, z-scoring and CV), the 27 participants' mean time
    course: held-out r positive in every ROI and beyond a circular-shift null (p < 0.05)."""
    from extractors.transcript import write_transcript_store

    from encoding.segments import predict_segments_in_turn

    runs = [np.loadtxt(path) for path in sorted((ALICE / "timecourses_6mm").glob("s*-timecourses.txt"))]
    usable = [run for run in runs if run.std() > 0]
    assert len(runs) == 28 and len(usable) == 27                       # s33 is all zeros
    mean = np.mean([(run - run.mean(0)) / run.std(0) for run in usable], axis=0)
    np.savetxt(tmp_path / "group.txt", mean)
    write_transcript_store(tmp_path / "features" / "word_rate.h5", ALICE / "words.csv", 2.0, {"alice": 362},
                           "word_rate", onset_offset=-20, run="alice")
    config = yaml.safe_load(CONFIG.read_text())
    config.update(features_dir="features", models=["word_rate"], transcript={}, runs=None,
                  subjects={"group": {"runs": [{"path": "group.txt", "names": ROIS, "stimulus_run": "alice",
                                                "tr": 2.0}]}})
    held_out = predict_segments_in_turn(load_config(config, base_dir=tmp_path), "group", "word_rate", "none", 0)
    assert held_out.segments == [f"alice:{k}" for k in range(1, 6)] and sum(held_out.lengths) == 362
    r = held_out.r
    rng = np.random.default_rng(0)
    shifts = rng.integers(20, 362 - 20, 999)
    null = np.array([_pearson(held_out.responses, np.roll(held_out.prediction, s, axis=0)) for s in shifts])
    p = (1 + (null >= r).sum(0)) / (1 + len(shifts))
    assert (r > 0).all(), r
    assert (p < 0.05).all(), p


def _pearson(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def test_s33_alone_stops_the_run_with_the_sentence_naming_its_file(tmp_path, capsys, monkeypatch):
    from encoding.run import main

    monkeypatch.setenv("MLLM_ENCODING_CACHE", str(tmp_path / "cache"))
    config = yaml.safe_load(CONFIG.read_text())
    config.update(models=["word_rate"], transcript={**config["transcript"], "tables": {}},
                  joint=[], n_permutations=0)
    path = tmp_path / "alice_s33.yaml"
    path.write_text(yaml.safe_dump(config).replace("../encoding", str(REPO_ROOT / "encoding")))
    assert main(["--config", str(path), "--subjects", "s33", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message == (f"error: {ALICE / 'timecourses_6mm' / 's33-timecourses.txt'}: every target of s33 is NaN "
                       f"or constant in some training run (field 'subjects.s33.runs'); nothing can be fitted.")
    assert not (tmp_path / "out").exists()
