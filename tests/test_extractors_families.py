"""Every implemented family, on a tiny random-weight model saved like a user's model folder and loaded back
with ``from_pretrained(folder, local_files_only=True)``, run on a generated movie with sound."""
import numpy as np
import pytest

from conftest_extractors import TR, assert_same_h5, assert_same_store, movies, read_store, tiny_models  # noqa: F401
from extractors import run as extractor_run
from extractors.registry import MODELS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# family -> (instructions asked, layers stored: embedding output + 2 decoder layers)
VIDEO_TASKS, N_LAYERS = "caption,action,none", 3
CHAT_FAMILIES = {"qwen2_5_vl": (VIDEO_TASKS, N_LAYERS), "llava_next_video": (VIDEO_TASKS, N_LAYERS),
                 "llava_onevision": (VIDEO_TASKS, N_LAYERS), "video_llava": (VIDEO_TASKS, N_LAYERS),
                 "qwen2_audio": ("audio_caption,speaker,none", N_LAYERS),
                 "qwen2_5_omni": ("audio_caption,caption,none", N_LAYERS),
                 "instructblip_video": (VIDEO_TASKS, N_LAYERS), "videochat_r1": (VIDEO_TASKS, N_LAYERS)}
BASELINES = {  # family -> hidden size per stored layer
    "videomae": [32] * 3,
    "ast": [32] * 3,
    "xclip_clap": [32] * 5 + [16, 32, 32],
}
N_TRS = {"run-1": 3, "run-2": 2}
# family -> the end-of-turn token its tiny model's chat template and tokenizer define (the stop token)
STOP_TOKENS = {"qwen2_5_vl": "<|im_end|>", "llava_next_video": "</s>", "llava_onevision": "<|im_end|>",
               "video_llava": "</s>", "qwen2_audio": "<|im_end|>", "qwen2_5_omni": "<|im_end|>",
               "instructblip_video": "</s>", "videochat_r1": "<|im_end|>"}


def _extract(tiny_models, movies, family, out, instructions, **settings):
    return extractor_run.ensure_features(movies, TR, tiny_models[family], instructions, out, family=family,
                                         max_new_tokens=3, progress=False, **settings)


@pytest.fixture(scope="module")
def stores(tiny_models, movies, tmp_path_factory):
    """One extraction per family, built lazily."""
    cache = {}

    def get(family):
        if family not in cache:
            instructions = CHAT_FAMILIES[family][0] if family in CHAT_FAMILIES else "none"
            cache[family] = _extract(tiny_models, movies, family, tmp_path_factory.mktemp(family), instructions)
        return cache[family]

    return get


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_chat_family_stores_n_tr_by_hidden_for_every_layer_and_instruction(stores, family):
    stored = read_store(stores(family))
    names = CHAT_FAMILIES[family][0].split(",")
    assert sorted(stored) == sorted((name, run) for name in names for run in N_TRS)
    for (name, run), (layers, texts, done) in stored.items():
        assert len(layers) == CHAT_FAMILIES[family][1]
        assert all(layer.shape == (N_TRS[run], 32) and np.isfinite(layer).all() for layer in layers)
        assert len(texts) == N_TRS[run] and done.all()


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_chat_family_gives_different_features_per_instruction(stores, family):
    stored = read_store(stores(family))
    first, second, control = CHAT_FAMILIES[family][0].split(",")
    for run in N_TRS:
        for k in range(1, CHAT_FAMILIES[family][1]):  # layer 0 of generated tokens sees only the answer
            assert np.abs(stored[first, run][0][k] - stored[second, run][0][k]).max() > 1e-5
            assert np.abs(stored[first, run][0][k] - stored[control, run][0][k]).max() > 1e-5


@pytest.mark.parametrize("family", [*CHAT_FAMILIES, *BASELINES])
def test_family_is_deterministic(stores, tiny_models, movies, tmp_path, family):
    instructions = CHAT_FAMILIES[family][0] if family in CHAT_FAMILIES else "none"
    assert_same_store(stores(family), _extract(tiny_models, movies, family, tmp_path, instructions))


# qwen2_5_vl: in test_extractors.py; InstructBLIP-Video shares no prefix (its Q-Former reads the instruction)
@pytest.mark.parametrize("family", [f for f in CHAT_FAMILIES if f not in ("qwen2_5_vl", "instructblip_video")])
def test_chat_family_shared_prefix_matches_the_whole_prompt(tiny_models, movies, family):
    from extractors.extract import clip_features
    from extractors.media import iter_clips
    from extractors.registry import adapter_class, resolve_model
    from instructions import resolve

    spec = resolve_model(tiny_models[family], family)
    shared = adapter_class(spec)(tiny_models[family]).load()
    whole = adapter_class(spec)(tiny_models[family]).load()
    whole.shares_prefix = False
    clip = next(iter_clips(movies / "run-1.mp4", TR, spec.frames or 1, require_audio=True))
    prompts = resolve(CHAT_FAMILIES[family][0])
    for pooling in ("generated_mean", "prompt_mean"):
        a, b = (clip_features(m, clip, prompts, pooling, 3) for m in (shared, whole))
        for name in prompts:
            assert a[name].text == b[name].text
            for x, y in zip(a[name].layers, b[name].layers):
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", BASELINES)
def test_baseline_stores_every_layer_under_the_no_instruction_control(stores, family):
    stored = read_store(stores(family))
    assert sorted(stored) == [("none", run) for run in N_TRS]
    for (_, run), (layers, texts, done) in stored.items():
        assert [layer.shape for layer in layers] == [(N_TRS[run], h) for h in BASELINES[family]]
        assert texts == [""] * N_TRS[run] and done.all()
        # clips differ, so rows differ: the features follow the stimulus
        assert all(np.abs(np.diff(layer, axis=0)).max() > 0 for layer in layers)


@pytest.mark.parametrize("family", [*CHAT_FAMILIES, *BASELINES])
def test_family_resumes_after_a_crash_with_identical_results(stores, tiny_models, movies, tmp_path, monkeypatch,
                                                             family):
    """A crash at the first clip of run-2 leaves run-1's three clips in the part file; the re-run merges them at
    start-up, computes only the rest, and writes the store an uninterrupted run writes, attributes included."""
    instructions = CHAT_FAMILIES[family][0] if family in CHAT_FAMILIES else "none"
    original, calls = extractor_run.clip_features, []

    def crashing(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[1].index)
        return original(*args, **kwargs)

    monkeypatch.setattr(extractor_run, "clip_features", crashing)
    with pytest.raises(KeyboardInterrupt):
        _extract(tiny_models, movies, family, tmp_path, instructions)
    assert not (tmp_path / f"{family}.h5").exists()
    calls.clear()
    monkeypatch.setattr(extractor_run, "clip_features", lambda *args, **kw: calls.append(1) or original(*args, **kw))
    _extract(tiny_models, movies, family, tmp_path, instructions)
    assert len(calls) == 2  # 5 clips, 3 finished before the crash
    assert_same_store(stores(family), tmp_path / f"{family}.h5")
    assert_same_h5(stores(family), tmp_path / f"{family}.h5")  # every attribute too


@pytest.mark.parametrize("family", [*CHAT_FAMILIES, *BASELINES])
def test_family_store_records_its_hidden_states_decoding_and_versions(stores, family):
    from features.store import FeatureStore

    with FeatureStore(stores(family)) as store:
        params = store.parameters
        n_layers = {len(store.layers(name, run)) for name in store.instructions() for run in store.runs(name)}
    expected = CHAT_FAMILIES[family][1] if family in CHAT_FAMILIES else len(BASELINES[family])
    assert n_layers == {expected} and params["n_hidden_states"] == expected
    if family in CHAT_FAMILIES:
        reference = {"reference_generation": params["generation"]["reference_generation"]} if (
            family == "instructblip_video") else {}  # the model card's beam search, recorded, not applied
        assert params["generation"] == {"decoding": "greedy", "max_new_tokens": 3, "batch_instructions": False,
                                        "stop_tokens": [STOP_TOKENS[family]],
                                        "stop_token_ids": params["generation"]["stop_token_ids"], **reference}
        assert len(params["generation"]["stop_token_ids"]) == 1
    else:
        assert "generation" not in params
    assert params["adapter_version"] == (2 if family in ("ast", "qwen2_audio", "videochat_r1") else 1)
    budgeted = family in ("qwen2_5_vl", "qwen2_5_omni", "videochat_r1")
    assert ("video_max_pixels" in params) == ("video_min_pixels" in params) == budgeted
    if budgeted:  # VideoChat-R1's evaluation floors frames at 16·28·28, qwen-vl-utils at 128·28·28
        floor = 16 * 28 * 28 if family == "videochat_r1" else 128 * 28 * 28
        assert (params["video_min_pixels"], params["video_max_pixels"]) == (floor, 768 * 28 * 28)


def test_every_registered_family_but_external_ones_has_a_tiny_model_test():
    tested = {*CHAT_FAMILIES, *BASELINES}
    untested = {spec.family for spec in MODELS.values()} - tested
    assert untested == {"kimi_audio"}, untested  # not in transformers: see test_kimi_audio_*


def test_kimi_audio_without_its_package_says_what_to_install(movies, tmp_path):
    from features.errors import InputError

    with pytest.raises(InputError, match="Kimi-Audio is not in transformers.*pip install .*--trust-remote-code"):
        extractor_run.ensure_features(movies, TR, "kimi-audio", "audio_caption", tmp_path)


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_generated_mean_equals_transformers_generate(tiny_models, movies, family):
    """Same answer tokens and the same pooled states as the model's own greedy generate(), per layer."""
    import torch

    from extractors.extract import clip_features
    from extractors.media import iter_clips
    from extractors.registry import adapter_class, resolve_model
    from instructions import resolve

    spec = resolve_model(tiny_models[family], family)
    adapter = adapter_class(spec)(tiny_models[family]).load()
    clip = next(iter_clips(movies / "run-2.mp4", TR, spec.frames or 1, require_audio=True))
    name, prompt = next(iter(resolve(CHAT_FAMILIES[family][0]).items()))
    ours = clip_features(adapter, clip, {name: prompt}, "generated_mean", 4)[name]
    inputs = adapter.processor(text=[adapter.render(prompt)], return_tensors="pt", **adapter.media_inputs(clip))
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, max_new_tokens=4, do_sample=False, output_hidden_states=True,
                                     return_dict_in_generate=True)
    answer = out.sequences[0, -len(out.hidden_states):].tolist()
    assert ours.text == adapter.decode(answer)
    for k, layer in enumerate(ours.layers):
        steps = torch.stack([step[k][0, -1] for step in out.hidden_states])
        np.testing.assert_allclose(layer, steps.mean(0).numpy(), rtol=1e-4, atol=1e-5)
