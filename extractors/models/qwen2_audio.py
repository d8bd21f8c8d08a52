"""Qwen2-Audio-Instruct: the clip's 16 kHz mono sound through its Whisper-style encoder, native transformers.

The feature extractor pads every clip to 30 s (the encoder's fixed input) and masks the padding, so a
clip shorter than 30 s gives as many audio tokens as its own length.
"""
from ._base import ChatAdapter


class Adapter(ChatAdapter):
    modality = "audio"
    default_frames = 0
    model_class = "Qwen2AudioForConditionalGeneration"
    media_content = ({"type": "audio"},)

    def media_inputs(self, clip):
        return {"audio": [clip.audio], "sampling_rate": 16000}
