"""Video-LLaVA (Vicuna-7B, LanguageBind encoders): 8 frames as one video, native transformers.

Video-LLaVA was trained on exactly 8 frames per video; the registry's default is 8.

Chat template: LanguageBind/Video-LLaVA-7B-hf was converted by a script that saves none (transformers'
``convert_video_llava_weights_to_hf.py``), and its main branch still has none (a pull request adding one is
open; see ``extractors/checkpoints/video-llava.yaml``). When the checkpoint has no template, the adapter uses
``extractors/checkpoints/video-llava.jinja``, which renders the reference prompt
``USER: <video>\\n{prompt} ASSISTANT:`` (transformers' Video-LLaVA tests); the store records that it did.
"""
from ._base import ChatAdapter


class Adapter(ChatAdapter):
    model_class = "VideoLlavaForConditionalGeneration"
    media_content = ({"type": "video"},)
    fallback_template = "video-llava.jinja"

    def media_inputs(self, clip):
        return {"videos": [clip.frames]}
