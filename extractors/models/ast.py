"""AST (Audio Spectrogram Transformer, AudioSet): the unimodal audio baseline. No instruction.

The feature extractor turns the clip's sound into a 128-bin log-mel spectrogram with one frame per
10 ms (25 ms windows, Kaldi framing: ``1 + (n_samples - 400) // 160`` frames at 16 kHz) and zero-pads
it to the model's fixed input, ``max_length`` = 1024 frames (10.24 s), which is also how AST was
trained on shorter AudioSet clips. The model cuts that spectrogram into 16×16 patches with strides
``frequency_stride`` = ``time_stride`` = 10 (MIT/ast-finetuned-audioset-10-10-0.4593's config.json):
12 × 101 patch tokens, plus a [CLS] and a distillation token in front.

Pooling: per layer, the mean over the patch tokens whose time span overlaps the clip's real frames,
in every frequency row. A 1.49 s clip has 147 frames, so 15 of the 101 time columns (180 of 1,212
patch tokens); the mean over every token would be 85 % padding. Feeding the true length instead is
not possible without changing the model: its learned position embeddings are fixed to the 1024-frame
grid, and masking the padding out of attention would give an input AST never saw in training. The
real tokens still attend to the padding, as in AST's own use on short clips.

The [CLS] and distillation tokens are left out: they are not tied to any time-frequency region, at
layer 0 they are the same constant for every clip, and they summarize the padding as much as the
sound (AST's classifier reads them; this baseline averages the tokens that stand for the sound, as
VideoMAE's does for its patches).
"""
import numpy as np

from features.errors import InputError

from ._base import EncoderAdapter, torch_dtype
from ._rows import Prepared, stack_inputs

FRAME_LENGTH, FRAME_SHIFT = 400, 160  # samples at 16 kHz: Kaldi fbank's 25 ms windows every 10 ms
N_SUMMARY_TOKENS = 2  # [CLS] and distillation, before the patch tokens


def n_fbank_frames(n_samples, max_length) -> int:
    """Spectrogram frames of real sound in the feature extractor's output (before its zero padding)."""
    frames = 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT if n_samples >= FRAME_LENGTH else 0
    return min(frames, max_length)


def audio_token_index(n_frames, config) -> np.ndarray:
    """Sequence positions of the patch tokens that overlap the first ``n_frames`` spectrogram frames.

    The patch embedding is a convolution over (frequency, time) whose output is flattened frequency
    first, so patch (f, t) sits at ``2 + f * n_time + t`` and spans time frames
    ``[t * time_stride, t * time_stride + patch_size)``.
    """
    n_freq = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    n_time = (config.max_length - config.patch_size) // config.time_stride + 1
    columns = [t for t in range(n_time) if t * config.time_stride < n_frames]
    return np.array([N_SUMMARY_TOKENS + f * n_time + t for f in range(n_freq) for t in columns], dtype=np.int64)


class Adapter(EncoderAdapter):
    modality = "audio"
    default_frames = 0
    version = 2  # 1: the mean over every token, [CLS], distillation and padding included

    def load(self):
        from transformers import ASTFeatureExtractor, ASTModel

        self.processor = self._from_pretrained(ASTFeatureExtractor)
        self.model = self._from_pretrained(ASTModel, dtype=torch_dtype(self.dtype_name)).to(self.device).eval()
        if self.processor.max_length != self.model.config.max_length:
            raise InputError(f"--model {self.source}: its feature extractor pads to {self.processor.max_length} "
                             f"frames but the model takes {self.model.config.max_length}.")
        return self

    def preprocess(self, clip, prompts=None):
        n_frames = n_fbank_frames(clip.audio.size, self.processor.max_length)
        if n_frames == 0:
            raise InputError(f"--window: AST needs at least {FRAME_LENGTH / 16:.0f} ms of sound per clip, "
                             f"clip {clip.index} has {clip.audio.size / 16:.1f} ms.")
        inputs = dict(self.processor(clip.audio, sampling_rate=16000, return_tensors="pt"))
        return Prepared(clip=clip, prompts=dict(prompts or {}), inputs={"": inputs}, extra={"n_frames": n_frames})

    def encode(self, prepared):
        import torch

        inputs = stack_inputs([item.inputs[""] for item in prepared], pad_id=0)
        out = self.model(**self._to_device(inputs), output_hidden_states=True)
        features = []
        for row, item in enumerate(prepared):
            keep = torch.from_numpy(audio_token_index(item.extra["n_frames"], self.model.config)).to(self.device)
            features.append([h[row].index_select(0, keep).float().mean(0).cpu().numpy() for h in out.hidden_states])
        return features

    def describe(self):
        return {"pooled_tokens": "patch tokens overlapping the clip's real audio frames ([CLS], distillation "
                                 "and padding-only tokens left out)"}
