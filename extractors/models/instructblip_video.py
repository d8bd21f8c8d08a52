"""InstructBLIP (Vicuna-7B) on video: 4 frames through EVA-ViT and the Q-Former, native transformers.

The Q-Former reads the instruction, so the visual tokens themselves depend on it: there is no media
prefix to share across instructions (each instruction runs the whole model). The prompt is the bare
instruction (InstructBLIP has no chat template); the frames' query tokens come first. transformers'
InstructBLIP-Video takes exactly 4 frames per clip.
"""
from features.errors import InputError

from ._base import ChatAdapter, ClipMedia, PromptPass, torch_dtype

N_FRAMES = 4


class Adapter(ChatAdapter):
    model_class = "InstructBlipVideoForConditionalGeneration"
    shares_prefix = False
    default_frames = N_FRAMES

    def load(self):
        import transformers

        self.processor = self._from_pretrained(transformers.InstructBlipVideoProcessor)
        self.tokenizer = self.processor.tokenizer
        self.model = self._from_pretrained(getattr(transformers, self.model_class),
                                           dtype=torch_dtype(self.dtype_name)).to(self.device).eval()
        self.eos_ids = self._eos_ids()
        return self

    def render(self, prompt):
        return prompt

    def describe(self):
        return {"chat_prefix": "", "chat_suffix": "", "note": "bare instruction after the frames' query tokens"}

    def media_inputs(self, clip):
        if len(clip.frames) != N_FRAMES:
            raise InputError(f"--frames: InstructBLIP-Video takes exactly {N_FRAMES} frames per clip, "
                             f"found {len(clip.frames)}.")
        return {"images": [clip.frames]}

    def prepare(self, clip, keep_prefix_hidden=False):
        return ClipMedia(inputs=self.media_inputs(clip))

    def prompt_pass(self, media, prompt, want_sums=False):
        inputs = self.processor(text=[prompt], return_tensors="pt", **media.inputs)
        out = self.model(**self._to_device(dict(inputs)), use_cache=True, output_hidden_states=True)
        lm = out.language_model_outputs
        sums = [h[0].float().sum(0) for h in lm.hidden_states] if want_sums else None
        return PromptPass(last=[h[0, -1].float() for h in lm.hidden_states], sums=sums,
                          count=lm.hidden_states[0].shape[1], logits=lm.logits[0, -1], cache=lm.cache)

    def token_pass(self, token, cache):
        import torch

        ids = torch.tensor([[token]], device=self.device)
        out = self.model.language_model(input_ids=ids, cache=cache, use_cache=True,
                                        output_hidden_states=True, logits_to_keep=1)
        return [h[0, -1].float() for h in out.hidden_states], out.logits[0, -1]
