"""LLaVA-NeXT-Video (Vicuna-7B): frames as one video, spatially pooled 2x2 per frame, native transformers."""
from ._base import ChatAdapter


class Adapter(ChatAdapter):
    model_class = "LlavaNextVideoForConditionalGeneration"
    media_content = ({"type": "video"},)

    def media_inputs(self, clip):
        return {"videos": [clip.frames]}
