"""VideoChat-R1 (Qwen2.5-VL-7B-Instruct after reinforcement fine-tuning): the Qwen2.5-VL architecture, used
the way its own evaluation code uses it (``extractors/checkpoints/videochat-r1.yaml``, OpenGVLab/VideoChat-R1
``src_eval/evaluate_qa_c8.py``):

- the instruction comes before the video in the user turn (``[text, video]``), so there is no media prefix to
  share across instructions: each instruction runs the whole prompt, as InstructBLIP's do;
- the video's pixel budget is its own: ``total_pixels`` 3584·28·28 and ``min_pixels`` 16·28·28 per video,
  through qwen-vl-utils' rule (per frame at most ``max(min(768·28·28, total / n_frames · 2), 1.05 · min)``);
  for 8 frames that is the same cap as Qwen2.5-VL's, 602,112 pixels, with a floor of 12,544 instead of 100,352;
- the thinking instructions of its evaluation prompt (``<think>``, then ``<answer>``) follow the instruction.

The study's settings (Qwen2.5-VL's media-first prompt, budget and no thinking instructions) remain available
as ``--family qwen2_5_vl``; the store records the family, the pixel limits and the prompt either way.
"""
from .. import checkpoints
from .qwen2_5_vl import Adapter as Qwen2_5_VLAdapter
from .qwen2_5_vl import reference_video_pixels, video_kwargs

TOTAL_PIXELS = 3584 * 28 * 28
MIN_PIXELS = 16 * 28 * 28


class Adapter(Qwen2_5_VLAdapter):
    shares_prefix = False
    version = 2  # 1: VideoChat-R1 run as Qwen2.5-VL (family qwen2_5_vl), media first, no thinking instructions

    @classmethod
    def video_pixels(cls, n_frames, max_pixels=None):
        return reference_video_pixels(n_frames, max_pixels, min_pixels=MIN_PIXELS, total_pixels=TOTAL_PIXELS)

    @staticmethod
    def think_instructions() -> str:
        return checkpoints.facts("videochat-r1")["think_instructions"]

    def messages(self, prompt):
        return [{"role": "user", "content": [{"type": "text", "text": prompt + self.think_instructions()},
                                             {"type": "video"}]}]

    def media_inputs(self, clip):
        return video_kwargs(clip, pixels=self.video_pixels(len(clip.frames), self.video_max_pixels))
