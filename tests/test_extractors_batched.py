"""A clip's instructions decoded as one batch over the shared prefix cache give the one-by-one results.

Same answer tokens, features equal up to float rounding (rows of a batched matrix product round
differently from one row alone), each row stopping at its own end-of-turn token, and bit-identical
re-runs. Tiny random-weight models as in test_extractors_families.py.
"""
import numpy as np
import pytest

from conftest_extractors import TR, movies, tiny_models  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# family -> instructions: different lengths, so the rows are padded; "none" is the empty control.
FAMILIES = {
    "qwen2_5_vl": "caption,narrative,none",
    "llava_next_video": "caption,narrative,none",
    "llava_onevision": "caption,narrative,none",
    "video_llava": "caption,narrative,none",
    "qwen2_audio": "audio_caption,sound_events,none",
    "qwen2_5_omni": "audio_caption,narrative,none",
}
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def _load(tiny_models, movies, family):
    """A loaded adapter that records the answer token ids it decodes, and one clip of run-1."""
    from extractors.media import iter_clips
    from extractors.registry import adapter_class, resolve_model

    spec = resolve_model(tiny_models[family], family)
    adapter = adapter_class(spec)(tiny_models[family]).load()
    adapter.answers = []
    decode = adapter.decode

    def recording(tokens):
        adapter.answers.append(list(tokens))
        return decode(tokens)

    adapter.decode = recording
    return adapter, next(iter_clips(movies / "run-1.mp4", TR, spec.frames or 1, require_audio=True))


def _features(adapter, clip, prompts, pooling, batched, max_new_tokens=4):
    from extractors.extract import clip_features

    adapter.answers = []
    return clip_features(adapter, clip, prompts, pooling, max_new_tokens, batched=batched), adapter.answers


def _assert_close(batched, one_by_one):
    assert batched.keys() == one_by_one.keys()
    for name in batched:
        assert batched[name].text == one_by_one[name].text
        assert len(batched[name].layers) == len(one_by_one[name].layers)
        for x, y in zip(batched[name].layers, one_by_one[name].layers):
            assert x.shape == y.shape and x.dtype == np.float32
            np.testing.assert_allclose(x, y, **TOLERANCE)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pooling", ["generated_mean", "prompt_mean", "last_token"])
def test_batched_instructions_give_the_one_by_one_tokens_and_features(tiny_models, movies, family, pooling):
    from instructions import resolve

    adapter, clip = _load(tiny_models, movies, family)
    prompts = resolve(FAMILIES[family])
    one_by_one, answers = _features(adapter, clip, prompts, pooling, batched=False)
    batched, batched_answers = _features(adapter, clip, prompts, pooling, batched=True)
    assert batched_answers == answers  # token ids, in instruction order
    _assert_close(batched, one_by_one)


def test_batched_instructions_do_not_disturb_the_clip_prefix_cache(tiny_models, movies):
    """A one-by-one pass on the same prepared clip after a batched one gives its usual result."""
    import torch

    from extractors.extract import _batch_features, _instruction_features
    from instructions import resolve

    adapter, clip = _load(tiny_models, movies, "qwen2_5_vl")
    prompts = resolve("caption,narrative")
    with torch.inference_mode():
        media = adapter.prepare(clip)
        before = _instruction_features(adapter, media, prompts["caption"], "generated_mean", 4)
        _batch_features(adapter, media, list(prompts.values()), "generated_mean", 4)
        after = _instruction_features(adapter, media, prompts["caption"], "generated_mean", 4)
    assert after.text == before.text
    for x, y in zip(after.layers, before.layers):
        np.testing.assert_array_equal(x, y)


def _token_ending_some_answers_early(answers):
    """(token, position): the first place the answers differ, with a token not seen before in any answer."""
    for position in range(min(map(len, answers))):
        column = [answer[position] for answer in answers]
        for token in column:
            if column.count(token) < len(column) and all(token not in a[:position] for a in answers):
                return token, position
    raise AssertionError(f"the answers never differ: {answers}")


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_audio"])
def test_each_row_stops_at_its_own_end_of_turn_token(tiny_models, movies, family):
    """With end-of-turn set to a token that ends some answers midway, those rows stop there while the
    others run on to max_new_tokens, and a finished row adds nothing more to its mean."""
    from instructions import resolve

    adapter, clip = _load(tiny_models, movies, family)
    if family == "qwen2_5_vl":
        # At the default video budget the tiny movie's 96x128 frames are upscaled to 560 video tokens, under
        # which the random model gives every instruction the same answer. A 10,000-pixel cap gives 84x112 frames
        # (48 tokens, the size this test was written with), where the answers differ, which is what this test
        # needs to end some rows early.
        adapter.video_max_pixels = 10_000
    prompts = resolve(FAMILIES[family])
    free = _features(adapter, clip, prompts, "generated_mean", batched=False, max_new_tokens=6)[1]
    stop, position = _token_ending_some_answers_early(free)
    adapter.eos_ids = set(adapter.eos_ids) | {stop}

    one_by_one, answers = _features(adapter, clip, prompts, "generated_mean", batched=False, max_new_tokens=6)
    batched, batched_answers = _features(adapter, clip, prompts, "generated_mean", batched=True, max_new_tokens=6)
    assert batched_answers == answers
    lengths = [len(answer) for answer in answers]
    assert position + 1 in lengths and max(lengths) > position + 1
    _assert_close(batched, one_by_one)


def test_rows_ending_at_their_first_token_pool_only_the_last_prompt_state(tiny_models, movies):
    """The tiny LLaVA-OneVision ends every answer at once: the batch stops after the prompt pass, and each
    mean is the state at the row's last prompt token."""
    from instructions import resolve

    adapter, clip = _load(tiny_models, movies, "llava_onevision")
    prompts = resolve(FAMILIES["llava_onevision"])
    batched, answers = _features(adapter, clip, prompts, "generated_mean", batched=True)
    assert all(len(answer) == 1 and answer[0] in adapter.eos_ids for answer in answers)
    last = _features(adapter, clip, prompts, "last_token", batched=False)[0]
    _assert_close(batched, last)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_audio"])
def test_batched_rerun_gives_bit_identical_features(tiny_models, movies, family):
    from instructions import resolve

    adapter, clip = _load(tiny_models, movies, family)
    prompts = resolve(FAMILIES[family])
    first = _features(adapter, clip, prompts, "generated_mean", batched=True)[0]
    again = _features(adapter, clip, prompts, "generated_mean", batched=True)[0]
    for name in prompts:
        assert first[name].text == again[name].text
        for x, y in zip(first[name].layers, again[name].layers):
            np.testing.assert_array_equal(x, y)


def test_family_without_a_shared_prefix_runs_one_by_one_when_batched(tiny_models, movies):
    """InstructBLIP's Q-Former reads the instruction, so there is no prefix to batch over: same results."""
    from instructions import resolve

    adapter, clip = _load(tiny_models, movies, "instructblip_video")
    prompts = resolve("caption,narrative")
    one_by_one = _features(adapter, clip, prompts, "generated_mean", batched=False)[0]
    batched = _features(adapter, clip, prompts, "generated_mean", batched=True)[0]
    for name in prompts:
        assert batched[name].text == one_by_one[name].text
        for x, y in zip(batched[name].layers, one_by_one[name].layers):
            np.testing.assert_array_equal(x, y)


def test_batched_store_records_the_setting_and_refuses_to_mix_with_one_by_one(tiny_models, movies, tmp_path):
    """--batch-instructions is a parameter of the store: its numbers equal one-by-one decoding up to
    rounding, and a later run with the other setting is an error naming the field."""
    from conftest_extractors import read_store
    from extractors.run import ensure_features
    from features.errors import InputError

    settings = dict(family="qwen2_5_vl", max_new_tokens=3, progress=False)
    batched = ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption,narrative", tmp_path / "b",
                              batch_instructions=True, **settings)
    single = ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption,narrative", tmp_path / "s",
                             **settings)
    first, second = read_store(batched), read_store(single)
    assert first.keys() == second.keys()
    for key in first:
        assert first[key][1] == second[key][1]  # the same answers
        for x, y in zip(first[key][0], second[key][0]):
            np.testing.assert_allclose(x, y, **TOLERANCE)
    with pytest.raises(InputError, match="batch_instructions"):
        ensure_features(movies, TR, tiny_models["qwen2_5_vl"], "caption,narrative", tmp_path / "b", **settings)
