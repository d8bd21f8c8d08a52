"""Video-LLaVA (Vicuna-7B, LanguageBind encoders): 8 frames as one video, native transformers.

Video-LLaVA was trained on exactly 8 frames per video; the registry's default is 8.
"""
from ._base import ChatAdapter


class Adapter(ChatAdapter):
    model_class = "VideoLlavaForConditionalGeneration"
    media_content = ({"type": "video"},)

    def media_inputs(self, clip):
        return {"videos": [clip.frames]}
