"""Qwen2.5-VL (and models of its architecture, e.g. VideoChat-R1): frames as one video, native transformers.

The clip's frames go in as a video whose frame rate is ``n_frames / window``, so the model's temporal
position ids (absolute time, ``tokens_per_second``) follow the real timing of the clip. Qwen2.5-VL merges
frames in pairs (``temporal_patch_size`` 2): use an even number of frames.
"""
from ._base import ChatAdapter


def video_kwargs(clip):
    """Processor arguments for already sampled frames at the clip's real frame rate."""
    n_frames = len(clip.frames)
    window = max(clip.offset_s - clip.onset_s, 1e-3)
    return {"videos": [clip.frames], "do_sample_frames": False,
            "video_metadata": [{"total_num_frames": n_frames, "fps": n_frames / window, "duration": window}]}


class Adapter(ChatAdapter):
    model_class = "Qwen2_5_VLForConditionalGeneration"
    media_content = ({"type": "video"},)

    def media_inputs(self, clip):
        # The per-frame pixel cap of the reference implementation (qwen-vl-utils).
        return {**video_kwargs(clip), "cap_pixels_per_frame": True}
