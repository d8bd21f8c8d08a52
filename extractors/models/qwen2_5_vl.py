"""Qwen2.5-VL (and models of its architecture, e.g. VideoChat-R1): frames as one video, native transformers.

The clip's frames go in as a video whose frame rate is ``n_frames / window``, so the model's temporal
position ids (absolute time, ``tokens_per_second``) follow the real timing of the clip. Qwen2.5-VL merges
frames in pairs (``temporal_patch_size`` 2): use an even number of frames.

Frame size: the video budget of the reference preprocessing, qwen-vl-utils (``fetch_video`` in
https://github.com/QwenLM/Qwen2.5-VL/blob/main/qwen-vl-utils/src/qwen_vl_utils/vision_process.py,
version 0.0.10), not the image limits of the checkpoint's ``preprocessor_config.json`` (min 3136, max
12,845,056 pixels for Qwen/Qwen2.5-VL-7B-Instruct), which let a 720p frame through at full size:

- each frame between ``VIDEO_MIN_PIXELS`` = 128·28·28 and ``max(min(VIDEO_MAX_PIXELS, VIDEO_TOTAL_PIXELS /
  n_frames · FRAME_FACTOR), 1.05 · VIDEO_MIN_PIXELS)`` pixels, with ``VIDEO_MAX_PIXELS`` = 768·28·28,
  ``VIDEO_TOTAL_PIXELS`` = 128000·28·28·0.9 (its default) and ``FRAME_FACTOR`` = 2;
- height and width rounded to multiples of ``IMAGE_FACTOR`` = 28 by ``smart_resize`` (transformers'
  video processor applies the same function once given these limits).

For 8 frames of a 1280×720 movie: 560×1008 pixels per frame, 2,880 video tokens (the processor's own
limits give 728×1288 and 4,784). ``video_max_pixels`` (``--video-max-pixels``) replaces the cap; it is
used as given (qwen-vl-utils would lower a larger value to its computed cap), and the floor never exceeds
it. Both limits are recorded in the store.
"""
from features.errors import InputError

from ._base import ChatAdapter

# qwen-vl-utils' constants (vision_process.py, see the module docstring).
IMAGE_FACTOR = 28
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 768 * 28 * 28
VIDEO_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)
FRAME_FACTOR = 2


def reference_video_pixels(n_frames, max_pixels=None, min_pixels=VIDEO_MIN_PIXELS,
                           total_pixels=VIDEO_TOTAL_PIXELS) -> dict:
    """Per-frame pixel range of a video of ``n_frames`` frames: qwen-vl-utils' budget, or ``max_pixels``.

    ``min_pixels`` and ``total_pixels`` are the per-video settings ``fetch_video`` reads from a message's video
    item (VideoChat-R1's evaluation sets both); the defaults are qwen-vl-utils' own.
    """
    if max_pixels is None:
        cap = max(min(VIDEO_MAX_PIXELS, total_pixels / max(n_frames, 1) * FRAME_FACTOR), int(min_pixels * 1.05))
        max_pixels = int(cap) if float(cap).is_integer() else cap
    elif not (isinstance(max_pixels, int) and not isinstance(max_pixels, bool) and max_pixels >= IMAGE_FACTOR ** 2):
        raise InputError(f"--video-max-pixels: expected a whole number of pixels per frame of at least "
                         f"{IMAGE_FACTOR ** 2} (one {IMAGE_FACTOR}x{IMAGE_FACTOR} patch), found {max_pixels!r}.")
    # the cap first: a store written with another one names the field the user sets
    return {"video_max_pixels": max_pixels, "video_min_pixels": min(min_pixels, max_pixels)}


def video_kwargs(clip, max_pixels=None, pixels=None):
    """Processor arguments for already sampled frames at the clip's real frame rate, resized to the budget
    (``pixels``, as :func:`reference_video_pixels` returns it; qwen-vl-utils' budget when None)."""
    n_frames = len(clip.frames)
    window = max(clip.offset_s - clip.onset_s, 1e-3)
    pixels = pixels or reference_video_pixels(n_frames, max_pixels)
    # cap_pixels_per_frame=False: the per-frame cap is the one computed here (the processor's own share of
    # a total budget would otherwise apply on top).
    return {"videos": [clip.frames], "do_sample_frames": False,
            "video_metadata": [{"total_num_frames": n_frames, "fps": n_frames / window, "duration": window}],
            "size": {"shortest_edge": pixels["video_min_pixels"], "longest_edge": pixels["video_max_pixels"]},
            "cap_pixels_per_frame": False}


class Adapter(ChatAdapter):
    model_class = "Qwen2_5_VLForConditionalGeneration"
    media_content = ({"type": "video"},)

    @classmethod
    def video_pixels(cls, n_frames, max_pixels=None):
        return reference_video_pixels(n_frames, max_pixels)

    def media_inputs(self, clip):
        return video_kwargs(clip, self.video_max_pixels)
