"""LLaVA-OneVision (Qwen2-7B): frames as one video (SigLIP tokens, 2x2 bilinear pooling), native transformers."""
from ._base import ChatAdapter


class Adapter(ChatAdapter):
    model_class = "LlavaOnevisionForConditionalGeneration"
    media_content = ({"type": "video"},)

    def media_inputs(self, clip):
        return {"videos": [clip.frames]}
