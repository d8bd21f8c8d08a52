"""Tiny random-weight models of each extractor family, saved the way a user's model folder is.

Each builder makes a model from its transformers Config class (two layers, hidden 32, tiny vision or
audio tower), a real processor, and a tokenizer built offline with the ``tokenizers`` library (a
byte-level vocabulary plus the special tokens the processor and chat template need), and saves all of
it with ``save_pretrained`` into a folder that the extractors load back with
``from_pretrained(folder, local_files_only=True)``. Chat templates follow the released models'.

Imported by the extractor tests (``from conftest_extractors import ...``); fixtures are session-scoped so
every model and movie is built once.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from extractors import checkpoints  # noqa: E402

TR = 1.5

QWEN_VL_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                   "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# The released Qwen2.5-VL-Instruct chat template.
QWEN_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer(special_tokens, **kwargs):
    """A byte-level BPE tokenizer (256 byte symbols, no merges) plus special tokens, built offline.

    Any text encodes; special tokens are single ids placed after the bytes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)
    tokenizer.add_tokens(list(special_tokens), special_tokens=True)
    return tokenizer


def _mrope(head_dim):
    """Qwen's 3D rope sections (time, height, width) for a head size: [16, 24, 24] at 128."""
    time = head_dim // 8
    return [time, (head_dim // 2 - time) // 2, (head_dim // 2 - time) - (head_dim // 2 - time) // 2]


def _ids(tokenizer, tokens):
    return {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}


def _save(folder, model, processor):
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_qwen2_5_vl(folder, seed=0, hidden=32, layers=2, vision_depth=2, max_pixels=112 * 112):
    """Tiny by default; the benchmark asks for a larger one."""
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    tokenizer = byte_tokenizer(QWEN_VL_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = _ids(tokenizer, QWEN_VL_SPECIAL)
    pixels = {"min_pixels": 56 * 56, "max_pixels": max_pixels}
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels),
                                    video_processor=Qwen2VLVideoProcessor(**pixels),
                                    tokenizer=tokenizer, chat_template=QWEN_VL_TEMPLATE)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=32768, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"],
                         rope_parameters={"rope_type": "default", "mrope_section": _mrope(hidden // 2),
                                          "rope_theta": 1e4}),
        vision_config=dict(depth=vision_depth, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=2,
                           out_hidden_size=hidden, window_size=56, fullatt_block_indexes=[vision_depth - 1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    return _save(folder, Qwen2_5_VLForConditionalGeneration(config).eval(), processor)


LLAVA_SPECIAL = ["<s>", "</s>", "<unk>", "<pad>", "<image>", "<video>"]

# The released llava-hf/LLaVA-NeXT-Video-7B-hf (Vicuna) chat template.
VICUNA_VIDEO_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all video then #}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}"
    "{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# The template transformers' conversion script writes into the llava-hf LLaVA-OneVision checkpoints
# (extractors/checkpoints/llava-onevision.yaml says where it comes from).
ONEVISION_TEMPLATE = checkpoints.template("llava-onevision.jinja")


def _llama_tokenizer():
    """Byte-level tokenizer with Llama's special tokens, adding <s> in front like the Llama tokenizer."""
    from tokenizers import processors

    tokenizer = byte_tokenizer(LLAVA_SPECIAL, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                               pad_token="<pad>")
    bos = tokenizer.convert_tokens_to_ids("<s>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return tokenizer


def _clip_vision(image_size=56):
    return dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, image_size=image_size, patch_size=14, projection_dim=32)


def _llama_text(tokenizer, model_type="llama"):
    return dict(model_type=model_type, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)


def build_llava_next_video(folder, seed=0):
    import torch
    from transformers import (LlavaNextImageProcessor, LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration,
                              LlavaNextVideoProcessor, LlavaNextVideoVideoProcessor)

    tokenizer = _llama_tokenizer()
    ids = _ids(tokenizer, LLAVA_SPECIAL)
    size = {"size": {"shortest_edge": 56}, "crop_size": {"height": 56, "width": 56}}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(**size),
        image_processor=LlavaNextImageProcessor(**size, image_grid_pinpoints=[[56, 56]]),
        tokenizer=tokenizer, chat_template=VICUNA_VIDEO_TEMPLATE, patch_size=14,
        vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = LlavaNextVideoConfig(vision_config=_clip_vision(), text_config=_llama_text(tokenizer),
                                  image_token_index=ids["<image>"], video_token_index=ids["<video>"],
                                  image_grid_pinpoints=[[56, 56]], spatial_pool_stride=2)
    torch.manual_seed(seed)
    return _save(folder, LlavaNextVideoForConditionalGeneration(config).eval(), processor)


def build_llava_onevision(folder, seed=0):
    import torch
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    tokenizer = byte_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = _ids(tokenizer, ["<image>", "<video>"])
    size = {"size": {"height": 56, "width": 56}}
    processor = LlavaOnevisionProcessor(
        video_processor=LlavaOnevisionVideoProcessor(**size),
        image_processor=LlavaOnevisionImageProcessor(**size, image_grid_pinpoints=[[56, 56]]),
        tokenizer=tokenizer, chat_template=ONEVISION_TEMPLATE, num_image_tokens=16,
        vision_feature_select_strategy="full")
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=56, patch_size=14)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=_llama_text(tokenizer, "qwen2"),
                                  image_token_index=ids["<image>"], video_token_index=ids["<video>"],
                                  image_grid_pinpoints=[[56, 56]], vision_feature_select_strategy="full",
                                  vision_feature_layer=-1)
    torch.manual_seed(seed)
    return _save(folder, LlavaOnevisionForConditionalGeneration(config).eval(), processor)


def build_video_llava(folder, seed=0):
    import torch
    from transformers import (VideoLlavaConfig, VideoLlavaForConditionalGeneration, VideoLlavaImageProcessor,
                              VideoLlavaProcessor, VideoLlavaVideoProcessor)

    tokenizer = _llama_tokenizer()
    ids = _ids(tokenizer, LLAVA_SPECIAL)
    size = {"size": {"shortest_edge": 56}, "crop_size": {"height": 56, "width": 56}}
    processor = VideoLlavaProcessor(image_processor=VideoLlavaImageProcessor(**size),
                                    video_processor=VideoLlavaVideoProcessor(**size), tokenizer=tokenizer,
                                    chat_template=VICUNA_VIDEO_TEMPLATE, patch_size=14,
                                    vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = VideoLlavaConfig(vision_config=_clip_vision(), text_config=_llama_text(tokenizer),
                              image_token_index=ids["<image>"], video_token_index=ids["<video>"])
    torch.manual_seed(seed)
    return _save(folder, VideoLlavaForConditionalGeneration(config).eval(), processor)


def build_qwen2_audio(folder, seed=0, chat_template=None):
    import torch
    from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    tokenizer = byte_tokenizer(special, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = _ids(tokenizer, special)
    # chat_template=None: transformers' default, which renders {"type": "audio"} items (the checkpoint's own
    # does not: test_checkpoints.py)
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128),
                                    tokenizer=tokenizer, chat_template=chat_template)
    audio = dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=128,
                 max_source_positions=1500)
    config = Qwen2AudioConfig(audio_config=audio, text_config=_llama_text(tokenizer, "qwen2"),
                              audio_token_index=ids["<|AUDIO|>"])
    torch.manual_seed(seed)
    return _save(folder, Qwen2AudioForConditionalGeneration(config).eval(), processor)


def build_videomae(folder, seed=0):
    import torch
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    processor = VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = VideoMAEConfig(image_size=32, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(seed)
    return _save(folder, VideoMAEModel(config).eval(), processor)


def build_ast(folder, seed=0):
    """The released AST's input geometry (MIT/ast-finetuned-audioset-10-10-0.4593: 1024 frames x 128 mel bins,
    16x16 patches with strides 10, so 12 x 101 patch tokens), with a tiny transformer on top."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    processor = ASTFeatureExtractor(max_length=1024, num_mel_bins=128)
    config = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       max_length=1024, num_mel_bins=128, patch_size=16, frequency_stride=10, time_stride=10)
    torch.manual_seed(seed)
    return _save(folder, ASTModel(config).eval(), processor)


def build_xclip_clap(folder, seed=0):
    import torch
    from transformers import (ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig,
                              VideoMAEImageProcessor, XCLIPConfig, XCLIPModel)

    torch.manual_seed(seed)
    xclip = XCLIPConfig(
        text_config=dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=16, num_frames=8, mit_hidden_size=32,
                           mit_intermediate_size=64, mit_num_hidden_layers=1, mit_num_attention_heads=2),
        projection_dim=32, prompt_layers=1, prompt_attention_heads=2, prompt_num_attention_heads=2)
    _save(folder / "video", XCLIPModel(xclip).eval(),
          VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    clap = ClapConfig(
        text_config=ClapTextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, projection_dim=32).to_dict(),
        audio_config=ClapAudioConfig(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16,
                                     hidden_size=32, window_size=8, spec_size=256, num_mel_bins=64,
                                     patch_size=8, patch_stride=[8, 8],
                                     projection_dim=32).to_dict(),
        projection_dim=32)
    _save(folder / "audio", ClapModel(clap).eval(), ClapFeatureExtractor(feature_size=64))
    return folder


def build_instructblip_video(folder, seed=0):
    import torch
    from transformers import (InstructBlipVideoConfig, InstructBlipVideoForConditionalGeneration,
                              InstructBlipVideoProcessor, InstructBlipVideoVideoProcessor)

    tokenizer = _llama_tokenizer()
    tokenizer.add_tokens(["<video>"], special_tokens=True)
    qformer_tokenizer = byte_tokenizer(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]")
    processor = InstructBlipVideoProcessor(
        video_processor=InstructBlipVideoVideoProcessor(size={"height": 28, "width": 28}),
        tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer, num_query_tokens=2)
    config = InstructBlipVideoConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, patch_size=14),
        qformer_config=dict(vocab_size=len(qformer_tokenizer), hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64, encoder_hidden_size=32,
                            pad_token_id=qformer_tokenizer.pad_token_id),
        text_config=_llama_text(tokenizer), num_query_tokens=2,
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"))
    torch.manual_seed(seed)
    return _save(folder, InstructBlipVideoForConditionalGeneration(config).eval(), processor)


OMNI_SPECIAL = {"image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
                "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
                "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}

# The released Qwen2.5-Omni-7B chat template (its default system prompt included).
OMNI_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are Qwen, a virtual human "
    "developed by the Qwen Team, Alibaba Group, capable of perceiving auditory and visual inputs, as well as "
    "generating text and speech.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content %}{% set audio_count.value = audio_count.value + 1 %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_qwen2_5_omni(folder, seed=0):
    import torch
    from transformers import (Qwen2_5OmniProcessor, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor, WhisperFeatureExtractor)

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *OMNI_SPECIAL.values()]
    tokenizer = byte_tokenizer(special, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               extra_special_tokens=OMNI_SPECIAL)
    ids = _ids(tokenizer, special)
    pixels = {"min_pixels": 56 * 56, "max_pixels": 112 * 112}
    processor = Qwen2_5OmniProcessor(image_processor=Qwen2VLImageProcessor(**pixels),
                                     video_processor=Qwen2VLVideoProcessor(**pixels),
                                     feature_extractor=WhisperFeatureExtractor(feature_size=128),
                                     tokenizer=tokenizer, chat_template=OMNI_TEMPLATE)
    config = Qwen2_5OmniThinkerConfig(
        audio_config=dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                          d_model=32, output_dim=32, n_window=100),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           window_size=56, fullatt_block_indexes=[1]),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e4}),
        audio_token_index=ids["<|AUDIO|>"], image_token_index=ids["<|IMAGE|>"], video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"], audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"], vision_end_token_id=ids["<|vision_eos|>"],
        user_token_id=ids["<|im_start|>"])
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    return _save(folder, model, processor)


BUILDERS = {
    "qwen2_5_omni": build_qwen2_5_omni,
    "instructblip_video": build_instructblip_video,
    "videomae": build_videomae,
    "ast": build_ast,
    "xclip_clap": build_xclip_clap,
    "qwen2_audio": build_qwen2_audio,
    "qwen2_5_vl": build_qwen2_5_vl,
    "videochat_r1": build_qwen2_5_vl,  # VideoChat-R1 is a Qwen2.5-VL checkpoint
    "llava_next_video": build_llava_next_video,
    "llava_onevision": build_llava_onevision,
    "video_llava": build_video_llava,
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{family: folder} of tiny saved models, built on first use."""
    root = tmp_path_factory.mktemp("tiny_models")
    built = {}

    class Models(dict):
        def __missing__(self, family):
            built[family] = BUILDERS[family](root / family)
            self[family] = built[family]
            return built[family]

    return Models()


@pytest.fixture(scope="session")
def movies(tmp_path_factory):
    """A stimulus folder of two short movies with sound: run-1 (4.5 s, 3 TRs) and run-2 (3 s, 2 TRs)."""
    from encoding.demo.movie import write_synthetic_movie

    folder = tmp_path_factory.mktemp("movies")
    write_synthetic_movie(folder / "run-1.mp4", duration_s=4.5, seed=1, scene_s=(1.5, 2.5))
    write_synthetic_movie(folder / "run-2.mp4", duration_s=3.0, seed=2, scene_s=(1.0, 2.0))
    return folder


def read_store(path):
    """{(instruction, run): (list of layer arrays, texts, done mask)} of a whole store."""
    from features.store import FeatureStore

    with FeatureStore(path) as store:
        return {(name, run): ([store.read_layer(name, run, k) for k in store.layers(name, run)],
                              store.read_text(name, run), store.done(name, run))
                for name in store.instructions() for run in store.runs(name)}


# Attributes that may legitimately differ between two extractions of the same clips with the same settings.
# None: the store records no timestamps, host names, process ids or temporary paths, so every attribute
# must match. (HDF5 itself keeps creation times in the object headers of groups, which is why two stores'
# bytes differ; those are not attributes and not part of the store's contract.)
ATTRIBUTES_ALLOWED_TO_DIFFER = frozenset()


def assert_same_h5(a, b, ignore_attrs=ATTRIBUTES_ALLOWED_TO_DIFFER):
    """Two HDF5 files hold the same tree: every group, every dataset (shape, dtype, values) and every
    attribute of every group, dataset and the file itself, compared by type and value."""
    import h5py

    def attrs(node):
        return {k: v for k, v in node.attrs.items() if k not in ignore_attrs}

    def same_value(x, y):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype.kind in "biufc":  # numbers: bit for bit
            return x.tobytes() == y.tobytes()
        return bool(np.array_equal(x, y))  # strings

    def compare(x, y, where):
        first, second = attrs(x), attrs(y)
        assert sorted(first) == sorted(second), f"{where}: attributes {sorted(first)} != {sorted(second)}"
        for key in first:
            assert type(first[key]) is type(second[key]) and same_value(first[key], second[key]), \
                f"{where}: attribute {key!r}: {first[key]!r} != {second[key]!r}"
        if isinstance(x, h5py.Dataset):
            assert isinstance(y, h5py.Dataset), f"{where}: dataset in one file, group in the other"
            assert x.shape == y.shape and x.dtype == y.dtype, \
                f"{where}: {x.shape} {x.dtype} != {y.shape} {y.dtype}"
            assert same_value(x[()], y[()]), f"{where}: values differ"
            return
        assert isinstance(y, h5py.Group), f"{where}: group in one file, dataset in the other"
        assert sorted(x) == sorted(y), f"{where}: members {sorted(x)} != {sorted(y)}"
        for name in x:
            compare(x[name], y[name], f"{where.rstrip('/')}/{name}")

    with h5py.File(a, "r") as first, h5py.File(b, "r") as second:
        compare(first, second, "/")


def assert_same_store(a, b):
    first, second = read_store(a), read_store(b)
    assert first.keys() == second.keys()
    for key in first:
        for x, y in zip(first[key][0], second[key][0]):
            np.testing.assert_array_equal(x, y)
        assert first[key][1] == second[key][1]
        assert first[key][2].tolist() == second[key][2].tolist()
