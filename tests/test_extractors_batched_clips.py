"""Clips run as one batch (``--batch-clips``) give the per-clip features, within the README's tolerances.

Every registered family, tiny random-weight models (tests/conftest_extractors.py). Three clips per batch: two
of run-1 and one of run-2 cut narrower and shorter, so that the families whose media token count follows the
frame size or the sound's length (Qwen2.5-VL, Qwen2.5-Omni, Qwen2-Audio) pad their prefixes, and VideoChat-R1's
whole prompts of two lengths run as two batches. The tolerance is on each layer vector: the largest absolute
difference over the largest absolute feature.
"""
import logging
import threading
from dataclasses import replace

import numpy as np
import pytest

from conftest_extractors import TR, movies, read_store, tiny_models  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Batched against per-clip, max |difference| / max |feature| of each layer vector (the README states these).
FLOAT32_TOLERANCE = 1e-5
BFLOAT16_TOLERANCE = 1e-2

INSTRUCTIONS = {
    "qwen2_5_vl": "caption,narrative,none",
    "videochat_r1": "caption,narrative,none",
    "llava_next_video": "caption,narrative,none",
    "llava_onevision": "caption,narrative,none",
    "video_llava": "caption,narrative,none",
    "instructblip_video": "caption,narrative",
    "qwen2_audio": "audio_caption,sound_events,none",
    "qwen2_5_omni": "audio_caption,narrative,none",
    "videomae": "none",
    "ast": "none",
    "xclip_clap": "none",
}
PADDED = ("qwen2_5_vl", "qwen2_audio", "qwen2_5_omni")  # prefixes of different lengths in these tests


def _adapter(tiny_models, family, dtype="float32"):
    from extractors.registry import adapter_class, resolve_model

    spec = resolve_model(tiny_models[family], family)
    # A 10,000-pixel cap: the frames' size sets the video token count (the default budget upscales them all).
    pixels = 10_000 if family in ("qwen2_5_vl", "videochat_r1", "qwen2_5_omni") else None
    return spec, adapter_class(spec)(tiny_models[family], dtype, video_max_pixels=pixels).load()


def _clips(movies, spec):
    from extractors.media import iter_clips

    frames = spec.frames or 1
    first = list(iter_clips(movies / "run-1.mp4", TR, frames, require_audio=True))[:2]
    other = next(iter_clips(movies / "run-2.mp4", TR, frames, require_audio=True))
    narrow = replace(other, frames=np.ascontiguousarray(other.frames[:, :, :64]),
                     audio=other.audio[:len(other.audio) * 2 // 3])
    return first + [narrow]


def _prompts(spec, family):
    from instructions import resolve

    return resolve(INSTRUCTIONS[family]) if spec.instructed else {"none": ""}


def _worst(batched, single):
    """max over clips, instructions and layers of max|difference| / max|feature|; whether every text agrees."""
    worst, same_text = 0.0, True
    for many, one in zip(batched, single):
        assert many.keys() == one.keys()
        for name in one:
            same_text &= many[name].text == one[name].text
            assert len(many[name].layers) == len(one[name].layers)
            for x, y in zip(many[name].layers, one[name].layers):
                assert x.shape == y.shape and x.dtype == np.float32
                worst = max(worst, float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)))
    return worst, same_text


def _compare(adapter, clips, prompts, pooling, batched, max_new_tokens=4):
    from extractors.extract import clip_features, clips_features

    single = [clip_features(adapter, clip, prompts, pooling, max_new_tokens, batched=batched) for clip in clips]
    prepared = [adapter.preprocess(clip, prompts) for clip in clips]
    return _worst(clips_features(adapter, prepared, pooling, max_new_tokens, batched=batched), single), prepared


@pytest.mark.parametrize("family", list(INSTRUCTIONS))
def test_batched_clips_equal_per_clip_features_in_float32(tiny_models, movies, family):
    spec, adapter = _adapter(tiny_models, family)
    clips, prompts = _clips(movies, spec), _prompts(spec, family)
    for pooling in adapter.poolings:
        # --batch-instructions applies to generated_mean only (the runner turns it off for one-pass poolings)
        modes = (False, True) if pooling == "generated_mean" and adapter.shares_prefix else (False,)
        for batched in modes:
            (worst, same_text), prepared = _compare(adapter, clips, prompts, pooling, batched)
            assert same_text, (pooling, batched)
            assert worst <= FLOAT32_TOLERANCE, (pooling, batched, worst)
    if family in PADDED:
        lengths = {item.inputs[""]["input_ids"].shape[1] for item in prepared}
        assert len(lengths) > 1  # the prefixes were padded


@pytest.mark.parametrize("family", [f for f in INSTRUCTIONS if f not in ("videomae", "ast", "xclip_clap")])
def test_batched_clips_in_bfloat16_give_the_same_answers_and_features_within_tolerance(tiny_models, movies, family):
    spec, adapter = _adapter(tiny_models, family, "bfloat16")
    (worst, same_text), _ = _compare(adapter, _clips(movies, spec), _prompts(spec, family), "generated_mean",
                                     batched=True)
    assert same_text
    assert worst <= BFLOAT16_TOLERANCE, worst


def test_rows_of_batched_clips_stop_at_their_own_end_of_turn_token(tiny_models, movies):
    """End-of-turn set to a token that ends some rows midway: those rows stop there, the others run on to
    max_new_tokens, and each row's mean is its per-clip mean."""
    from extractors.extract import clip_features, clips_features

    spec, adapter = _adapter(tiny_models, "qwen2_5_vl")
    clips, prompts = _clips(movies, spec), _prompts(spec, "qwen2_5_vl")
    answers = []
    decode = adapter.decode
    adapter.decode = lambda tokens: answers.append(list(tokens)) or decode(tokens)
    for clip in clips:
        clip_features(adapter, clip, prompts, "generated_mean", 6)
    column = [answer[2] for answer in answers]
    adapter.eos_ids = set(adapter.eos_ids) | {max(set(column), key=column.count)}  # ends some rows at 3 tokens
    answers.clear()
    single = [clip_features(adapter, clip, prompts, "generated_mean", 6) for clip in clips]
    lengths = [len(answer) for answer in answers]
    assert 3 in lengths and max(lengths) == 6
    answers.clear()
    batched = clips_features(adapter, [adapter.preprocess(clip, prompts) for clip in clips], "generated_mean", 6,
                             batched=True)
    assert [len(answer) for answer in answers] == lengths
    worst, same_text = _worst(batched, single)
    assert same_text and worst <= FLOAT32_TOLERANCE


def test_clips_needing_different_instructions_share_a_batch(tiny_models, movies):
    """On a resume clips may lack different instructions: each gets exactly its own."""
    from extractors.extract import clip_features, clips_features
    from instructions import resolve

    spec, adapter = _adapter(tiny_models, "llava_onevision")
    clips = _clips(movies, spec)
    wanted = [resolve("caption"), resolve("narrative,none"), resolve("caption,none")]
    for batched in (False, True):
        single = [clip_features(adapter, clip, prompts, "generated_mean", 4) for clip, prompts in zip(clips, wanted)]
        prepared = [adapter.preprocess(clip, prompts) for clip, prompts in zip(clips, wanted)]
        many = clips_features(adapter, prepared, "generated_mean", 4, batched=batched)
        assert [list(result) for result in many] == [list(prompts) for prompts in wanted]
        worst, same_text = _worst(many, single)
        assert same_text and worst <= FLOAT32_TOLERANCE


# -- the runner ----------------------------------------------------------------------------------------------

def _extract(tiny_models, movies, out, **settings):
    from extractors.run import ensure_features

    return ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption,narrative", out, family="qwen2_5_vl",
                           max_new_tokens=3, progress=False, **settings)


def _assert_store_close(batched, single):
    first, second = read_store(batched), read_store(single)
    assert first.keys() == second.keys()
    for key in first:
        assert first[key][1] == second[key][1]  # the answers
        assert first[key][2].all() and second[key][2].all()
        for x, y in zip(first[key][0], second[key][0]):
            assert np.abs(x - y).max() <= FLOAT32_TOLERANCE * np.abs(y).max()


def test_a_store_written_with_one_batch_size_resumes_with_another(tiny_models, movies, tmp_path, monkeypatch):
    """Killed after its first batch of 2 clips, a run resumes with batches of 3 and then of 1 (a new instruction),
    and holds the per-clip run's store within the tolerance: the batch size is not a store parameter."""
    from extractors import run
    from features.store import FeatureStore

    single = _extract(tiny_models, movies, tmp_path / "single", batch_instructions=True)
    original, sizes = run.clips_features, []

    def crashing(adapter, batch, *args, **kwargs):
        if sizes:
            raise KeyboardInterrupt
        sizes.append(len(batch))
        return original(adapter, batch, *args, **kwargs)

    monkeypatch.setattr(run, "clips_features", crashing)
    out = tmp_path / "batched"
    with pytest.raises(KeyboardInterrupt):
        run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption", out, family="qwen2_5_vl",
                            max_new_tokens=3, progress=False, batch_instructions=True, batch_clips=2)
    assert sizes == [2]
    monkeypatch.setattr(run, "clips_features", lambda adapter, batch, *a, **kw: sizes.append(len(batch))
                        or original(adapter, batch, *a, **kw))
    run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption", out, family="qwen2_5_vl",
                        max_new_tokens=3, progress=False, batch_instructions=True, batch_clips=3)
    assert sizes == [2, 3]  # 5 clips: 2 before the kill, then 3
    _extract(tiny_models, movies, out, batch_instructions=True, batch_clips=1)  # adds 'narrative' clip by clip
    assert sizes == [2, 3]
    _assert_store_close(out / "qwen2_5_vl.h5", single)
    with FeatureStore(out / "qwen2_5_vl.h5") as batched, FeatureStore(single) as one:
        assert batched.parameters == one.parameters and "batch_clips" not in batched.parameters


def test_auto_batch_size_runs_the_first_clip_alone_and_fits_the_free_memory(tiny_models, movies, tmp_path,
                                                                            monkeypatch, caplog):
    from extractors import run

    class Measured:
        def __init__(self, device):
            self.extra_bytes, self.free_bytes = 2 ** 30, 2.6 * 2 ** 30  # 80 % of 2.6 GiB: 2 clips of 1 GiB

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    sizes = []
    single, many = run.clip_features, run.clips_features
    monkeypatch.setattr(run, "PeakMemory", Measured)
    monkeypatch.setattr(run, "clip_features", lambda *a, **kw: sizes.append(1) or single(*a, **kw))
    monkeypatch.setattr(run, "clips_features", lambda adapter, batch, *a, **kw: sizes.append(len(batch))
                        or many(adapter, batch, *a, **kw))
    with caplog.at_level(logging.INFO, logger="extractors.batching"):
        store = _extract(tiny_models, movies, tmp_path / "auto", batch_clips="auto")
    assert sizes == [1, 2, 2]  # 5 clips
    assert "one clip took 1.00 GiB of cpu above the model, 2.6 GiB are free: 2 clips per batch" in caplog.text
    _assert_store_close(store, _extract(tiny_models, movies, tmp_path / "single"))


def test_auto_batch_size_measures_this_process_on_the_cpu(tiny_models, movies, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="extractors.batching"):
        _extract(tiny_models, movies / "run-2.mp4", tmp_path / "auto", batch_clips="auto")
    assert "clips per batch" in caplog.text


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many", ""])
def test_batch_clips_must_be_a_positive_whole_number_or_auto(tiny_models, movies, tmp_path, value):
    from features.errors import InputError

    with pytest.raises(InputError, match=r"--batch-clips: expected a whole number of clips >= 1 or 'auto'"):
        _extract(tiny_models, movies, tmp_path, batch_clips=value)


def test_clips_are_preprocessed_in_the_prefetching_thread_on_their_own_processor(tiny_models, movies, tmp_path,
                                                                                  monkeypatch):
    from extractors.models import qwen2_5_vl

    seen = []
    original = qwen2_5_vl.Adapter.preprocess

    def recording(self, clip, prompts=None):
        seen.append((threading.current_thread() is threading.main_thread(), id(self.processor),
                     id(self.tokenizer), id(self.model)))
        return original(self, clip, prompts)

    monkeypatch.setattr(qwen2_5_vl.Adapter, "preprocess", recording)
    loads = []
    load = qwen2_5_vl.Adapter.load
    monkeypatch.setattr(qwen2_5_vl.Adapter, "load", lambda self: loads.append(self) or load(self))
    _extract(tiny_models, movies / "run-2.mp4", tmp_path, batch_clips=2)
    (adapter,) = loads
    assert len(seen) == 2 and not any(on_main for on_main, *_ in seen)
    assert {(processor, tokenizer) for _, processor, tokenizer, _ in seen} == {(seen[0][1], seen[0][2])}
    assert seen[0][1] != id(adapter.processor) and seen[0][2] != id(adapter.tokenizer)
    assert seen[0][3] == id(adapter.model)
