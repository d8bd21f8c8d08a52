"""Qwen2.5-Omni (thinker only, text output): the clip's frames and its sound, native transformers.

The frames go in as a video at the clip's real frame rate (as for Qwen2.5-VL), followed by the clip's
16 kHz sound as a separate audio item; the prompt is media first, then the instruction, so the media
prefix is shared across instructions. Audio and video tokens are not interleaved in time
(``use_audio_in_video`` needs the movie file itself, not a decoded clip). The talker (speech output) is
never loaded.

Frame size: the same video budget as Qwen2.5-VL (see ``qwen2_5_vl.py``). Qwen2.5-Omni's reference
preprocessing, qwen-omni-utils (``fetch_video`` in
https://github.com/QwenLM/Qwen2.5-Omni/blob/main/qwen-omni-utils/src/qwen_omni_utils/v2_5/vision_process.py),
has the same constants (``VIDEO_MIN_PIXELS`` 128·28·28, ``VIDEO_MAX_PIXELS`` 768·28·28,
``VIDEO_TOTAL_PIXELS`` 128000·28·28·0.9, ``FRAME_FACTOR`` 2), and transformers' ``Qwen2_5OmniProcessor``
already defaults its video size to that range, so the budget is made explicit and recorded here rather
than changed.
"""
from ._base import ChatAdapter
from .qwen2_5_vl import reference_video_pixels, video_kwargs


class Adapter(ChatAdapter):
    modality = "audio+video"
    default_frames = 4
    model_class = "Qwen2_5OmniThinkerForConditionalGeneration"
    processor_class = "Qwen2_5OmniProcessor"
    media_content = ({"type": "video"}, {"type": "audio"})

    @classmethod
    def video_pixels(cls, n_frames, max_pixels=None):
        return reference_video_pixels(n_frames, max_pixels)

    def media_inputs(self, clip):
        video = video_kwargs(clip, self.video_max_pixels)
        # The Omni processor takes the frame rate as ``fps`` (for the video's temporal positions).
        return {"videos": video["videos"], "audio": [clip.audio], "do_sample_frames": False,
                "fps": video["video_metadata"][0]["fps"], "size": video["size"],
                "cap_pixels_per_frame": video["cap_pixels_per_frame"], "sampling_rate": 16000}
