"""VideoMAE (self-supervised, Kinetics): the unimodal video baseline. No instruction.

Per layer, the mean over its space-time patch tokens (VideoMAE has no [CLS] token in transformers).
The default checkpoint, MCG-NJU/videomae-large (self-supervised on Kinetics-400), takes 16 frames of
224×224 px in tubelets of 2 (1,568 tokens) and has 24 layers of width 1024: 25 hidden states stored.
"""
from features.errors import InputError

from ._base import EncoderAdapter, _token_means, torch_dtype
from ._rows import Prepared, stack_inputs


class Adapter(EncoderAdapter):
    modality = "video"
    default_frames = 16

    def load(self):
        from transformers import AutoImageProcessor, VideoMAEModel

        self.processor = self._from_pretrained(AutoImageProcessor)
        self.model = self._from_pretrained(VideoMAEModel, dtype=torch_dtype(self.dtype_name)).to(self.device).eval()
        return self

    def preprocess(self, clip, prompts=None):
        expected = self.model.config.num_frames
        if len(clip.frames) != expected:
            raise InputError(f"--frames: {self.source} takes exactly {expected} frames per clip (its config's "
                             f"num_frames), found {len(clip.frames)}.")
        return Prepared(clip=clip, prompts=dict(prompts or {}),
                        inputs={"": dict(self.processor(list(clip.frames), return_tensors="pt"))})

    def encode(self, prepared):
        inputs = stack_inputs([item.inputs[""] for item in prepared], pad_id=0)
        out = self.model(**self._to_device(inputs), output_hidden_states=True)
        return _token_means(out.hidden_states)
