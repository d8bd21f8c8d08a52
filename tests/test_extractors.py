"""The extraction runner, store and resume, checked end to end on a tiny Qwen2.5-VL saved like a user's model.

Per-family checks (every family) are in test_extractors_families.py.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest_extractors import TR, assert_same_h5, assert_same_store, movies, read_store, tiny_models  # noqa: F401
from extractors import run as extractor_run
from extractors.parts import part_files
from extractors.registry import MODELS, resolve_model
from features.errors import InputError
from features.store import FeatureStore
from instructions import UnknownInstructionError, resolve

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SETTINGS = dict(family="qwen2_5_vl", max_new_tokens=4, progress=False)
REPO = Path(__file__).resolve().parents[1]


def _extract(tiny_models, movies, out, instructions="caption,action", **settings):
    return extractor_run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], instructions, out,
                                         **{**SETTINGS, **settings})


@pytest.fixture(scope="module")
def reference(tiny_models, movies, tmp_path_factory):
    """An uninterrupted extraction of two instructions and the control, over both runs."""
    return _extract(tiny_models, movies, tmp_path_factory.mktemp("reference"), "caption,action,none")


def test_store_holds_one_row_per_tr_for_every_layer_run_and_instruction(reference):
    stored = read_store(reference)
    assert sorted(stored) == [(i, r) for i in ("action", "caption", "none") for r in ("run-1", "run-2")]
    for (instruction, run), (layers, texts, done) in stored.items():
        n_trs = {"run-1": 3, "run-2": 2}[run]  # 4.5 s and 3 s at TR 1.5
        assert len(layers) == 3  # embedding output + 2 decoder layers
        assert all(layer.shape == (n_trs, 32) and np.isfinite(layer).all() for layer in layers)
        assert len(texts) == n_trs and all(isinstance(t, str) for t in texts)
        assert done.all()
    with FeatureStore(reference) as store:
        assert store.prompt("caption") == "Caption the video in a short sentence."
        assert store.prompt("none") == ""
        params = store.parameters
        assert params["frames_per_clip"] == 8 and params["tr"] == TR and params["window_s"] == TR
        assert params["pooling"] == "generated_mean" and params["max_new_tokens"] == 4
        assert params["family"] == "qwen2_5_vl" and params["model_revision"].startswith("sha256:")
        assert set(params["library_versions"]) == {"torch", "transformers", "av"}
        assert "<|video_pad|>" in params["prompt_format"]["chat_prefix"]
        assert params["n_hidden_states"] == 3 and params["adapter_version"] == 1
        assert params["generation"] == {"decoding": "greedy", "max_new_tokens": 4, "batch_instructions": False,
                                        "stop_tokens": ["<|im_end|>"],
                                        "stop_token_ids": params["generation"]["stop_token_ids"]}
        assert (params["video_min_pixels"], params["video_max_pixels"]) == (128 * 28 * 28, 768 * 28 * 28)
        for order, (run, n) in enumerate([("run-1", 3), ("run-2", 2)]):
            attrs = store.run_attrs("caption", run)
            assert attrs["stimulus_file"].endswith(f"{run}.mp4") and attrs["n_clips"] == n and attrs["order"] == order


def test_different_instructions_give_different_features(reference):
    stored = read_store(reference)
    for run in ("run-1", "run-2"):
        caption, action, control = (stored[i, run][0] for i in ("caption", "action", "none"))
        # Layer 0 (embeddings) of generated tokens only depends on the answer's tokens; deeper layers see the prompt.
        for k in (1, 2):
            assert np.abs(caption[k] - action[k]).max() > 1e-4
            assert np.abs(caption[k] - control[k]).max() > 1e-4


def test_same_inputs_give_bit_identical_features(reference, tiny_models, movies, tmp_path):
    assert_same_store(reference, _extract(tiny_models, movies, tmp_path, "caption,action,none"))


def test_an_instruction_alone_gives_the_features_it_gets_among_others(reference, tiny_models, movies, tmp_path):
    alone = read_store(_extract(tiny_models, movies, tmp_path, "action"))
    together = read_store(reference)
    for run in ("run-1", "run-2"):
        for x, y in zip(alone["action", run][0], together["action", run][0]):
            np.testing.assert_array_equal(x, y)


def test_shared_prefix_cache_matches_running_the_whole_prompt(tiny_models, movies):
    """The media prefix run once and reused gives the features of the whole prompt run each time."""
    from extractors.extract import clip_features
    from extractors.media import iter_clips
    from extractors.models.qwen2_5_vl import Adapter

    shared = Adapter(tiny_models["qwen2_5_vl"]).load()
    whole = Adapter(tiny_models["qwen2_5_vl"]).load()
    whole.shares_prefix = False
    clip = next(iter_clips(movies / "run-1.mp4", TR, 8))
    prompts = resolve("caption,spatial,none")
    for pooling in ("generated_mean", "prompt_mean", "last_token"):
        a = clip_features(shared, clip, prompts, pooling, 4)
        b = clip_features(whole, clip, prompts, pooling, 4)
        for name in prompts:
            assert a[name].text == b[name].text
            for x, y in zip(a[name].layers, b[name].layers):
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_generated_mean_is_the_mean_of_generate_hidden_states(tiny_models, movies):
    """Same tokens and the same pooled states as transformers' own greedy generate()."""
    import torch

    from extractors.extract import clip_features
    from extractors.media import iter_clips
    from extractors.models.qwen2_5_vl import Adapter

    adapter = Adapter(tiny_models["qwen2_5_vl"]).load()
    clip = next(iter_clips(movies / "run-1.mp4", TR, 8))
    prompt = resolve("caption")["caption"]
    ours = clip_features(adapter, clip, {"caption": prompt}, "generated_mean", 5)["caption"]
    inputs = adapter.processor(text=[adapter.render(prompt)], return_tensors="pt", **adapter.media_inputs(clip))
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, max_new_tokens=5, do_sample=False, output_hidden_states=True,
                                     return_dict_in_generate=True)
    n_prompt = inputs["input_ids"].shape[1]
    assert ours.text == adapter.decode(out.sequences[0, n_prompt:].tolist())
    for k, layer in enumerate(ours.layers):
        steps = torch.stack([step[k][0, -1] for step in out.hidden_states])
        np.testing.assert_allclose(layer, steps.mean(0).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("pooling", ["prompt_mean", "last_token"])
def test_one_pass_poolings_store_no_text_and_record_no_token_budget(tiny_models, movies, tmp_path, pooling):
    path = _extract(tiny_models, movies / "run-2.mp4", tmp_path, "caption", pooling=pooling)
    layers, texts, done = read_store(path)["caption", "run-2"]
    assert [layer.shape for layer in layers] == [(2, 32)] * 3 and texts == ["", ""] and done.all()
    with FeatureStore(path) as store:
        assert store.parameters["pooling"] == pooling and store.parameters["max_new_tokens"] == 0


def test_rerun_skips_finished_clips_and_adds_new_instructions(reference, tiny_models, movies, tmp_path, monkeypatch):
    out = tmp_path / "features"
    _extract(tiny_models, movies, out, "caption,action,none")
    calls = []
    original = extractor_run.clip_features

    def counting(adapter, clip, prompts, *args, **kwargs):
        calls.append(sorted(prompts))
        return original(adapter, clip, prompts, *args, **kwargs)

    monkeypatch.setattr(extractor_run, "clip_features", counting)
    _extract(tiny_models, movies, out, "caption,action,none")
    assert calls == []
    _extract(tiny_models, movies, out, "caption,objects")
    assert calls == [["objects"]] * 5  # 5 clips, only the new instruction
    stored = read_store(out / "qwen2_5_vl.h5")
    for key, (layers, texts, _) in read_store(reference).items():
        for x, y in zip(layers, stored[key][0]):
            np.testing.assert_array_equal(x, y)


KILLABLE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(2)
    from extractors import extract, parts, run
    delay = {delay!r}
    original_features, original_rows = run.clip_features, parts._write_rows
    def slow_features(*args, **kwargs):
        time.sleep(delay.get("clip", 0))
        return original_features(*args, **kwargs)
    def slow_rows(*args):
        original_rows(*args)
        time.sleep(delay.get("rows", 0))
    run.clip_features, parts._write_rows = slow_features, slow_rows
    sys.exit(run.main({argv!r}))
""")


def _start_killable(tiny_models, movies, out, delay):
    argv = ["--stimuli", str(movies), "--tr", str(TR), "--model", str(tiny_models["qwen2_5_vl"]), "--family",
            "qwen2_5_vl", "--instruction", "caption,action,none", "--out", str(out), "--max-new-tokens", "4",
            "--quiet"]
    code = KILLABLE.format(tests=str(Path(__file__).parent), delay=delay, argv=argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(condition, process, timeout=120):
    start = time.time()
    while not condition():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() - start < timeout
        time.sleep(0.05)


def _n_records(out):
    from extractors.parts import read_clips

    return sum(1 for part in part_files(out / "qwen2_5_vl.h5") for _ in read_clips(part))


# Killed inside run-1 (4 of 15 (clip, instruction) records), or inside run-2 once run-1 is finished (10 of 15):
# then run-1's groups are merged at start-up only, and must still get the attributes of an uninterrupted run.
@pytest.mark.parametrize("records_at_kill", [4, 10])
def test_kill_9_during_extraction_then_rerun_gives_the_uninterrupted_store(reference, tiny_models, movies, tmp_path,
                                                                            records_at_kill):
    out = tmp_path / "features"
    process = _start_killable(tiny_models, movies, out, {"clip": 0.3})
    _wait_for(lambda: _n_records(out) >= records_at_kill, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "qwen2_5_vl.h5").exists() and _n_records(out) >= records_at_kill
    _extract(tiny_models, movies, out, "caption,action,none")
    assert_same_store(reference, out / "qwen2_5_vl.h5")
    assert_same_h5(reference, out / "qwen2_5_vl.h5")  # every dataset and attribute, run groups' included
    assert part_files(out / "qwen2_5_vl.h5") == []


def test_file_comparison_sees_every_attribute_and_value(reference, tmp_path):
    """The comparison the kill tests rely on fails on one missing attribute, one attribute of another type, one
    extra root attribute and one feature value moved by one float32 step."""
    import shutil

    def nudge(raw):
        layer = raw["none/run-2/layer_1"]
        layer[0, 0] = np.nextafter(layer[0, 0], np.float32(1))

    changes = [lambda raw: raw["caption/run-1"].attrs.__delitem__("stimulus_file"),
               lambda raw: raw["caption/run-1"].attrs.__setitem__("n_clips", np.int32(3)),
               lambda raw: raw.attrs.__setitem__("note", "x"), nudge]
    assert_same_h5(reference, reference)
    for k, change in enumerate(changes):
        copy = shutil.copyfile(reference, tmp_path / f"copy-{k}.h5")
        with h5py.File(copy, "a") as raw:
            change(raw)
        with pytest.raises(AssertionError):
            assert_same_h5(reference, copy)


def test_kill_9_during_consolidation_keeps_the_previous_store_readable(reference, tiny_models, movies, tmp_path):
    out = tmp_path / "features"
    _extract(tiny_models, movies / "run-1.mp4", out, "caption,action,none")  # a finished store to protect
    before = read_store(out / "qwen2_5_vl.h5")
    process = _start_killable(tiny_models, movies, out, {"rows": 30})
    _wait_for(lambda: (out / "qwen2_5_vl.h5.tmp").exists() and _n_records(out) == 6, process)
    time.sleep(0.5)  # inside the consolidation, between row writes
    process.send_signal(signal.SIGKILL)
    process.wait()
    after = read_store(out / "qwen2_5_vl.h5")
    assert after.keys() == before.keys()
    _extract(tiny_models, movies, out, "caption,action,none")
    assert_same_store(reference, out / "qwen2_5_vl.h5")
    assert_same_h5(reference, out / "qwen2_5_vl.h5")


def test_sharded_over_two_processes_gives_the_single_process_store(reference, tiny_models, movies, tmp_path):
    """torchrun sets what `accelerate launch` sets; each rank writes its part and rank 0 consolidates."""
    out = tmp_path / "features"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "extractors.run",
               "--stimuli", str(movies), "--tr", str(TR), "--model", str(tiny_models["qwen2_5_vl"]),
               "--family", "qwen2_5_vl", "--instruction", "caption,action,none", "--out", str(out),
               "--max-new-tokens", "4", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(3 on this process of 2)" in done.stderr and "(2 on this process of 2)" in done.stderr
    assert "from 2 part file(s)" in done.stderr
    assert_same_store(reference, out / "qwen2_5_vl.h5")
    assert_same_h5(reference, out / "qwen2_5_vl.h5")


def test_store_written_with_other_settings_is_an_error_naming_the_field(reference, tiny_models, movies, tmp_path):
    out = tmp_path / "features"
    _extract(tiny_models, movies / "run-2.mp4", out, "caption")
    with pytest.raises(InputError, match=r"qwen2_5_vl.h5: field 'frames_per_clip' was written as 8 .* 4"):
        _extract(tiny_models, movies / "run-2.mp4", out, "caption", frames=4)
    with pytest.raises(InputError, match="'window_s'"):
        _extract(tiny_models, movies / "run-2.mp4", out, "caption", window=3.0)
    with pytest.raises(InputError, match="'max_new_tokens'"):
        _extract(tiny_models, movies / "run-2.mp4", out, "caption", max_new_tokens=8)


def test_unfinished_part_file_with_other_settings_is_an_error(tiny_models, movies, tmp_path):
    from extractors.parts import PartWriter

    out = tmp_path / "features"
    PartWriter(out / "qwen2_5_vl.h5.part-0", {"frames_per_clip": 16, "tr": TR}).close()
    with pytest.raises(InputError, match=r"part-0: field 'frames_per_clip' was written as 16"):
        _extract(tiny_models, movies / "run-2.mp4", out, "caption")


def test_torn_last_record_is_cut_and_the_clip_recomputed(reference, tiny_models, movies, tmp_path):
    out = tmp_path / "features"
    process = _start_killable(tiny_models, movies, out, {"clip": 0.3})
    _wait_for(lambda: _n_records(out) >= 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    part = part_files(out / "qwen2_5_vl.h5")[0]
    n_intact = _n_records(out)
    with open(part, "ab") as handle:  # what a kill inside write() leaves: half a record
        handle.write(part.read_bytes()[-300:-100])
    assert _n_records(out) == n_intact
    _extract(tiny_models, movies, out, "caption,action,none")
    assert_same_store(reference, out / "qwen2_5_vl.h5")
    assert_same_h5(reference, out / "qwen2_5_vl.h5")


def test_missing_and_corrupt_movies_are_errors_naming_the_file(tiny_models, tmp_path):
    with pytest.raises(InputError, match="nothing.mp4.*no such file"):
        _extract(tiny_models, tmp_path / "nothing.mp4", tmp_path / "f")
    corrupt = tmp_path / "movies" / "run-1.mp4"
    corrupt.parent.mkdir()
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match="run-1.mp4"):
        _extract(tiny_models, corrupt.parent, tmp_path / "f")
    assert not (tmp_path / "f" / "qwen2_5_vl.h5").exists()


def test_audio_model_on_a_silent_movie_is_an_error_naming_the_file(tmp_path):
    from encoding.demo.movie import write_movie

    silent = write_movie(tmp_path / "silent.mp4", [np.zeros((32, 32, 3), np.uint8)] * 20, fps=10)
    folder = tmp_path / "qwen2-audio"
    folder.mkdir()  # the runner reads the movie before it loads any model
    with pytest.raises(InputError, match="silent.mp4'?: audio stream"):
        extractor_run.ensure_features(silent, TR, folder, "audio_caption", tmp_path / "f", progress=False)


def test_unknown_model_instruction_family_and_pooling_list_the_known_ones(tiny_models, movies, tmp_path):
    with pytest.raises(InputError, match="unknown model 'gpt-9'.*registered: .*llava-next-video.*qwen2.5-vl"):
        extractor_run.ensure_features(movies, TR, "gpt-9", "caption", tmp_path)
    with pytest.raises(UnknownInstructionError, match="'captoin'.*known: .*caption.*none"):
        _extract(tiny_models, movies, tmp_path, "captoin")
    with pytest.raises(UnknownInstructionError, match="'caption'.*known: audio_understanding"):
        extractor_run.ensure_features(movies, TR, "qwen2-audio", "caption", tmp_path)
    with pytest.raises(InputError, match="unknown family 'qwen9'.*qwen2_5_vl"):
        extractor_run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption", tmp_path, family="qwen9")
    with pytest.raises(InputError, match="needs --family"):
        extractor_run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption", tmp_path)
    with pytest.raises(InputError, match="'token_mean' is not available.*generated_mean"):
        _extract(tiny_models, movies, tmp_path, pooling="token_mean")


def test_registry_names_default_ids_families_and_frames():
    assert MODELS["qwen2.5-vl"].source == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert MODELS["qwen2.5-vl"].family == "qwen2_5_vl" and MODELS["videochat-r1"].family == "videochat_r1"
    assert MODELS["llava-next-video"].source == "llava-hf/LLaVA-NeXT-Video-7B-hf"
    assert not MODELS["videomae"].instructed and MODELS["qwen2-audio"].modality == "audio"
    assert resolve_model("videochat-r1", family="qwen2_5_vl").source == "OpenGVLab/VideoChat-R1_7B"
    from extractors.registry import adapter_class, families

    for spec in MODELS.values():  # every entry has an adapter with its modality and kind
        adapter = adapter_class(spec)
        assert spec.family in families()
        assert adapter.instructed == spec.instructed and adapter.modality == spec.modality


def test_cli_lists_models_and_instructions_and_extracts(tiny_models, movies, tmp_path, capsys):
    assert extractor_run.main(["--list"]) == 0
    listing = capsys.readouterr().out
    for name in [*MODELS, "caption", "audio_caption", "none", "generated_mean"]:
        assert name in listing
    argv = ["--stimuli", str(movies / "run-2.mp4"), "--tr", str(TR), "--model", str(tiny_models["qwen2_5_vl"]),
            "--family", "qwen2_5_vl", "--out", str(tmp_path), "--max-new-tokens", "2", "--quiet"]
    assert extractor_run.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "qwen2_5_vl.h5")
    assert extractor_run.main([*argv[:-1], "--frames", "6"]) == 2
    assert "frames_per_clip" in capsys.readouterr().err
    with h5py.File(tmp_path / "qwen2_5_vl.h5") as raw:  # the contract's layout, readable without our code
        assert raw["caption/run-2/layer_2"].shape == (2, 32) and raw["caption/run-2/done"][()].all()
