"""Qwen2.5-Omni (thinker only, text output): the clip's frames and its sound, native transformers.

The frames go in as a video at the clip's real frame rate (as for Qwen2.5-VL), followed by the clip's
16 kHz sound as a separate audio item; the prompt is media first, then the instruction, so the media
prefix is shared across instructions. Audio and video tokens are not interleaved in time
(``use_audio_in_video`` needs the movie file itself, not a decoded clip). The talker (speech output) is
never loaded.
"""
from ._base import ChatAdapter
from .qwen2_5_vl import video_kwargs


class Adapter(ChatAdapter):
    modality = "audio+video"
    default_frames = 4
    model_class = "Qwen2_5OmniThinkerForConditionalGeneration"
    processor_class = "Qwen2_5OmniProcessor"
    media_content = ({"type": "video"}, {"type": "audio"})

    def media_inputs(self, clip):
        # The Omni processor takes the frame rate as ``fps`` (for the video's temporal positions).
        fps = video_kwargs(clip)["video_metadata"][0]["fps"]
        return {"videos": [clip.frames], "audio": [clip.audio], "do_sample_frames": False, "fps": fps,
                "sampling_rate": 16000, "cap_pixels_per_frame": True}
