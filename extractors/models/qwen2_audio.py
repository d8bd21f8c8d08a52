"""Qwen2-Audio-Instruct: the clip's 16 kHz mono sound through its Whisper-style encoder, native transformers.

The feature extractor pads every clip to 30 s (the encoder's fixed input) and masks the padding, so a
clip shorter than 30 s gives as many audio tokens as its own length.

The audio item of the user turn carries an ``audio`` key as well as its type: the template shipped with
Qwen/Qwen2-Audio-7B-Instruct (in its tokenizer_config.json, and in every processor saved from it) renders
``<|AUDIO|>`` only for items with an ``audio`` or ``audio_url`` key, transformers' own default (used when a
checkpoint has no chat_template.json) also for ``{"type": "audio"}``. With both, the placeholder is there
whichever template the checkpoint ships (``extractors/checkpoints/qwen2-audio.yaml``); the key's value is
never read, since the prompt is rendered as text and the sound passed to the processor separately.
"""
from ._base import ChatAdapter


class Adapter(ChatAdapter):
    modality = "audio"
    default_frames = 0
    model_class = "Qwen2AudioForConditionalGeneration"
    media_content = ({"type": "audio", "audio": "clip"},)
    version = 2  # 1: {"type": "audio"} items, which the checkpoint's own template renders without <|AUDIO|>

    def media_inputs(self, clip):
        return {"audio": [clip.audio], "sampling_rate": 16000}
