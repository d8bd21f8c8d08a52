"""Extractor defaults that follow the study's models and the checkpoints' reference usage: VideoMAE-large,
AST pooled over the tokens that real audio reaches, Qwen2.5-VL's reference video budget (and its override),
and what a store records about decoding and hidden states. Tiny random-weight models as in
test_extractors_families.py."""
import math

import h5py
import numpy as np
import pytest

from conftest_extractors import TR, build_qwen2_5_vl, movies, tiny_models  # noqa: F401
from extractors import run as extractor_run
from extractors.registry import MODELS
from features.errors import InputError
from features.store import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_videomae_default_is_the_24_layer_large_checkpoint():
    spec = MODELS["videomae"]
    assert spec.source == "MCG-NJU/videomae-large" and spec.frames == 16 and not spec.instructed


# -- AST -------------------------------------------------------------------------------------------------

# (samples, spectrogram frames of real sound, time columns of patches they reach) at 16 kHz: 1.49 s, 1.5 s,
# 3 s, one 25 ms window, less than one window, and 12 s (cut to AST's 1024 frames, all 101 columns).
AST_LENGTHS = [(23840, 147, 15), (24000, 148, 15), (48000, 298, 30), (400, 1, 1), (399, 0, 0), (192000, 1024, 101)]


@pytest.mark.parametrize("n_samples, n_frames, n_columns", AST_LENGTHS)
def test_ast_real_frames_and_tokens_follow_the_clip_length(n_samples, n_frames, n_columns):
    from transformers import ASTConfig, ASTFeatureExtractor

    from extractors.models.ast import audio_token_index, n_fbank_frames

    config = ASTConfig()  # the geometry of MIT/ast-finetuned-audioset-10-10-0.4593: 1024 x 128, patches 16, strides 10
    assert n_fbank_frames(n_samples, config.max_length) == n_frames
    assert audio_token_index(n_frames, config).size == 12 * n_columns  # 12 frequency rows of patches
    if n_frames:  # the feature extractor's own output: rows of real sound, then exact zeros (its padding)
        sound = np.random.default_rng(0).standard_normal(n_samples).astype(np.float32) * 0.1
        rows = ASTFeatureExtractor(do_normalize=False)(sound, sampling_rate=16000)["input_values"][0]
        assert rows.shape == (1024, 128) and int(np.any(rows != 0, axis=1).sum()) == n_frames


def test_ast_features_are_the_mean_over_the_patch_tokens_that_real_audio_reaches(tiny_models, movies):
    """Which tokens real audio reaches is found from the model itself: the layer-0 tokens that change when only
    the real spectrogram frames change. Per layer, the feature is the mean over exactly those tokens."""
    import torch
    from transformers import ASTFeatureExtractor

    from extractors.media import iter_clips
    from extractors.models.ast import Adapter

    adapter = Adapter(tiny_models["ast"]).load()
    clip = next(iter_clips(movies / "run-1.mp4", TR, 1, require_audio=True))
    raw = ASTFeatureExtractor(do_normalize=False)(clip.audio, sampling_rate=16000)["input_values"][0]
    n_real = int(np.any(raw != 0, axis=1).sum())
    assert clip.audio.size == 24000 and n_real == 148  # 1.5 s: 25 ms windows every 10 ms
    with torch.inference_mode():
        ours = adapter.layer_features(clip)
        inputs = adapter.processor(clip.audio, sampling_rate=16000, return_tensors="pt")["input_values"]
        moved = inputs.clone()
        moved[:, :n_real] += 1.0
        embeddings = adapter.model.embeddings
        reached = (embeddings(moved) - embeddings(inputs)).abs().amax(-1)[0] > 0
        hidden = adapter.model(input_values=inputs, output_hidden_states=True).hidden_states
    assert reached.shape == (2 + 12 * 101,) and not reached[:2].any()  # [CLS], distillation: left out
    assert int(reached.sum()) == 12 * 15  # the time columns starting before frame 148: 0, 10, ..., 140
    assert len(ours) == len(hidden) == 3
    for layer, states in zip(ours, hidden):
        np.testing.assert_allclose(layer, states[0, reached].mean(0).numpy(), rtol=1e-5, atol=1e-6)
        assert np.abs(layer - states[0].mean(0).numpy()).max() > 1e-3  # the mean over every token differs


def test_ast_store_records_its_pooling_version(tiny_models, movies, tmp_path):
    path = extractor_run.ensure_features(movies / "run-2.mp4", TR, tiny_models["ast"], "none", tmp_path,
                                         family="ast", progress=False)
    with FeatureStore(path) as store:
        params = store.parameters
    assert params["adapter_version"] == 2 and params["n_hidden_states"] == 3
    assert "real audio" in params["pooled_tokens"] and "generation" not in params


# -- Qwen2.5-VL's video budget -----------------------------------------------------------------------------

def reference_video_tokens(height, width, n_frames, max_pixels=None):
    """Video tokens of qwen-vl-utils 0.0.10 (fetch_video and smart_resize in
    QwenLM/Qwen2.5-VL qwen-vl-utils/src/qwen_vl_utils/vision_process.py), written out here on their own."""
    factor, min_pixels = 28, 128 * 28 * 28
    if max_pixels is None:
        max_pixels = max(min(768 * 28 * 28, 128000 * 28 * 28 * 0.9 / n_frames * 2), int(min_pixels * 1.05))
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return n_frames // 2 * (h // 28) * (w // 28)  # frames merged in pairs, 2x2 patches of 14 px per token


def _hd_clip(n_frames):
    from extractors.media import Clip

    frames = np.random.default_rng(0).integers(0, 256, (n_frames, 720, 1280, 3), dtype=np.uint8)
    return Clip(0, 0.0, 1.49, frames, np.zeros(23840, np.float32))


@pytest.mark.parametrize("max_pixels, expected", [(None, 2880), (256 * 28 * 28, 1008)])
def test_qwen2_5_vl_720p_clip_gets_the_reference_video_budget(tmp_path, max_pixels, expected):
    import torch

    from extractors.models.qwen2_5_vl import Adapter

    # A tiny model whose processor carries the released checkpoint's image limits (min 3136, max 12845056
    # pixels: Qwen/Qwen2.5-VL-7B-Instruct preprocessor_config.json).
    adapter = Adapter(build_qwen2_5_vl(tmp_path / "qwen", max_pixels=12845056), video_max_pixels=max_pixels).load()
    clip = _hd_clip(8)
    with torch.inference_mode():
        media = adapter.prepare(clip)
    n_video = int((media.inputs["input_ids"] == adapter.processor.video_token_id).sum())
    assert n_video == reference_video_tokens(720, 1280, 8, max_pixels) == expected
    if max_pixels is None:  # the processor's own limits: the 4,784 tokens of the issue
        own = adapter.processor(text=[adapter._prefix_text], videos=[clip.frames], do_sample_frames=False,
                                video_metadata=[{"total_num_frames": 8, "fps": 8 / 1.49, "duration": 1.49}],
                                cap_pixels_per_frame=True, return_tensors="pt")
        assert int((own["input_ids"] == adapter.processor.video_token_id).sum()) == 4784 == reference_video_tokens(
            720, 1280, 8, 12845056)


@pytest.mark.parametrize("max_pixels, expected", [(None, 1440), (256 * 28 * 28, 504)])
def test_qwen2_5_omni_720p_clip_gets_the_same_video_budget(tiny_models, max_pixels, expected):
    import torch

    from extractors.models.qwen2_5_omni import Adapter

    adapter = Adapter(tiny_models["qwen2_5_omni"], video_max_pixels=max_pixels).load()
    with torch.inference_mode():
        media = adapter.prepare(_hd_clip(4))
    n_video = int((media.inputs["input_ids"] == adapter.processor.video_token_id).sum())
    assert n_video == reference_video_tokens(720, 1280, 4, max_pixels) == expected


def test_store_records_the_video_budget_and_refuses_to_mix_budgets(tiny_models, movies, tmp_path):
    settings = dict(family="qwen2_5_vl", max_new_tokens=2, progress=False)
    model, movie = tiny_models["qwen2_5_vl"], movies / "run-2.mp4"
    path = extractor_run.ensure_features(movie, TR, model, "caption", tmp_path / "a", **settings)
    with FeatureStore(path) as store:
        assert store.parameters["video_min_pixels"] == 128 * 28 * 28
        assert store.parameters["video_max_pixels"] == 768 * 28 * 28
    with pytest.raises(InputError, match=r"a/qwen2_5_vl.h5: field 'video_max_pixels' was written as 602112 .* 12544"):
        extractor_run.ensure_features(movie, TR, model, "caption", tmp_path / "a", video_max_pixels=112 * 112,
                                      **settings)
    argv = ["--stimuli", str(movie), "--tr", str(TR), "--model", str(model), "--family", "qwen2_5_vl",
            "--out", str(tmp_path / "b"), "--max-new-tokens", "2", "--video-max-pixels", "12544", "--quiet"]
    assert extractor_run.main(argv) == 0
    with FeatureStore(tmp_path / "b" / "qwen2_5_vl.h5") as store:
        assert store.parameters["video_min_pixels"] == store.parameters["video_max_pixels"] == 12544


def test_store_written_before_the_budget_was_recorded_is_refused_with_one_sentence(tiny_models, movies, tmp_path):
    settings = dict(family="qwen2_5_vl", max_new_tokens=2, progress=False)
    path = extractor_run.ensure_features(movies / "run-2.mp4", TR, tiny_models["qwen2_5_vl"], "caption", tmp_path,
                                         **settings)
    with h5py.File(path, "a") as raw:  # what a store of the previous version holds
        del raw.attrs["video_min_pixels"], raw.attrs["video_max_pixels"]
    with pytest.raises(InputError, match=r"field 'video_max_pixels' is not recorded: the file was written before "
                                         r"it was, when it was None \(the processor's own per-frame limits\)"):
        extractor_run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption", tmp_path, **settings)


def test_pixel_budget_for_a_family_without_one_is_an_error(tiny_models, movies, tmp_path):
    with pytest.raises(InputError, match="--video-max-pixels: the llava_onevision family .* takes no pixel budget"):
        extractor_run.ensure_features(movies, TR, tiny_models["llava_onevision"], "caption", tmp_path,
                                      family="llava_onevision", video_max_pixels=200704, progress=False)
    with pytest.raises(InputError, match="--video-max-pixels: expected a whole number .* found 100"):
        extractor_run.ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption", tmp_path,
                                      family="qwen2_5_vl", video_max_pixels=100, progress=False)
