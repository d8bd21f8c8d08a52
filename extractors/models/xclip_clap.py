"""X-CLIP video + CLAP audio: the non-instruction-tuned multimodal baseline. No instruction.

Why this pair: the literature's non-instruction-tuned audio-visual baseline, TVLT, is gone from
transformers 5. X-CLIP (video-text) and CLAP (audio-text) are contrastively trained on natural
language but never instruction-tuned, are native in transformers, and together see both the picture
and the sound of a clip, so they separate "multimodal and language-aligned" from "instruction-tuned".

Stored layers, in order (the store's ``layer_map`` attribute repeats this):

- X-CLIP vision transformer: embedding output and each layer, mean over frames and patches;
- X-CLIP multi-frame integration transformer: its input (the frames' projected [CLS] plus position
  embeddings) and each layer's output, mean over frames;
- CLAP audio encoder (HTSAT): each stage's output, mean over its time-frequency grid.

CLAP takes 48 kHz audio: the 16 kHz clip is resampled by 3 (polyphase), which adds no content above
8 kHz. Clips must be shorter than CLAP's 10 s input (longer ones would be cropped at random).
Sources: ``<video id>+<audio id>``, or a folder with ``video/`` and ``audio/`` sub-folders.
"""
from pathlib import Path

from features.errors import InputError

from ._base import EncoderAdapter, _token_means, torch_dtype
from ._rows import Prepared, stack_inputs

CLAP_RATE = 48000


class Adapter(EncoderAdapter):
    modality = "audio+video"
    default_frames = 8
    processor_attributes = ("video_processor", "audio_processor")

    def _sources(self):
        folder = Path(self.source)
        if folder.is_dir():
            if not (folder / "video").is_dir() or not (folder / "audio").is_dir():
                raise InputError(f"--model {folder}: an X-CLIP + CLAP folder holds 'video/' (X-CLIP) and "
                                 f"'audio/' (CLAP) sub-folders.")
            return str(folder / "video"), str(folder / "audio")
        if self.source.count("+") != 1:
            raise InputError(f"--model {self.source}: expected '<X-CLIP id>+<CLAP id>'.")
        return tuple(self.source.split("+"))

    def load(self):
        from transformers import AutoImageProcessor, ClapFeatureExtractor, ClapModel, XCLIPModel

        video, audio = self._sources()
        dtype = torch_dtype(self.dtype_name)
        self.video_processor = self._from_pretrained(AutoImageProcessor, video)
        self.video_model = self._from_pretrained(XCLIPModel, video, dtype=dtype).to(self.device).eval()
        self.audio_processor = self._from_pretrained(ClapFeatureExtractor, audio)
        self.audio_model = self._from_pretrained(ClapModel, audio, dtype=dtype).to(self.device).eval()
        self.model = self.video_model  # for the dtype of inputs
        return self

    def preprocess(self, clip, prompts=None):
        if clip.audio.size > 10 * 16000:
            raise InputError(f"--window: CLAP takes at most 10 s of sound, this clip has "
                             f"{clip.audio.size / 16000:.1f} s.")
        from scipy.signal import resample_poly

        pixels = self.video_processor(list(clip.frames), return_tensors="pt")["pixel_values"]
        audio = resample_poly(clip.audio, CLAP_RATE // 16000, 1).astype("float32")
        # The unfused checkpoint takes one mel channel; clips under CLAP's 10 s are padded, never cropped.
        fusion = self.audio_model.config.audio_config.enable_fusion
        sound = self.audio_processor(audio, sampling_rate=CLAP_RATE, return_tensors="pt",
                                     truncation="fusion" if fusion else "rand_trunc")
        return Prepared(clip=clip, prompts=dict(prompts or {}), inputs={"video": {"pixel_values": pixels},
                                                                        "audio": dict(sound)})

    def encode(self, prepared):
        import torch

        pixels = torch.cat([item.inputs["video"]["pixel_values"] for item in prepared])
        pixels = pixels.to(self.device, self.video_model.dtype)
        n_clips, n_frames = pixels.shape[:2]
        vision = self.video_model.vision_model(pixel_values=pixels.flatten(0, 1), output_hidden_states=True)
        cls = self.video_model.visual_projection(vision.pooler_output).view(n_clips, n_frames, -1)
        mit = _mit_hidden_states(self.video_model.mit, cls)
        inputs = stack_inputs([item.inputs["audio"] for item in prepared], pad_id=0)
        inputs = {k: v.to(self.device, self.audio_model.dtype) if v.is_floating_point() else v.to(self.device)
                  for k, v in inputs.items()}
        sound = self.audio_model.audio_model(**inputs, output_hidden_states=True)
        stages = [torch.movedim(h, 1, -1) for h in sound.hidden_states]  # (batch, C, H, W) -> channels last
        # the vision tower's batch is clips x frames: each clip's rows are its frames
        frames = [h.unflatten(0, (n_clips, n_frames)) for h in vision.hidden_states]
        return [a + b + c for a, b, c in zip(_token_means(frames), _token_means(mit), _token_means(stages))]

    def describe(self):
        return {"layer_map": "X-CLIP vision (embeddings + layers), X-CLIP MIT (input + layers), "
                             "CLAP audio stages"}


def _mit_hidden_states(mit, cls):
    """Input and per-layer outputs of X-CLIP's multi-frame integration transformer (whose forward drops them)."""
    outputs = [cls + mit.position_embedding]

    def keep(module, args, output):
        outputs.append(output[0] if isinstance(output, tuple) else output)

    hooks = [layer.register_forward_hook(keep) for layer in mit.encoder.layers]
    try:
        mit(cls)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs
