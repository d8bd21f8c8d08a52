"""InstructBLIP (Vicuna-7B) on video: 4 frames through EVA-ViT and the Q-Former, native transformers.

The Q-Former reads the instruction, so the visual tokens themselves depend on it: there is no media
prefix to share across instructions (each instruction runs the whole model). The prompt is the bare
instruction (InstructBLIP has no chat template); the frames' query tokens come first. transformers'
InstructBLIP-Video takes exactly 4 frames per clip.

The checkpoint is the image model, Salesforce/instructblip-vicuna-7b (config type ``instructblip``), which
transformers' InstructBLIP-Video classes read as is. The processor writes 4 x 32 ``<video>`` tokens and the
model puts the frames' query outputs where ``config.video_token_index`` says they are: the hub's config.json
has carried ``"video_token_index": 32002`` since 2024-11-18 (``extractors/checkpoints/instructblip-video.yaml``),
an older snapshot has none. Without it the tokens would be misplaced, so such a config is refused.

Decoding is greedy like every family's (the features are defined on it); the model card's 5-beam search with a
repetition penalty of 1.5 is recorded in the store as ``reference_generation``, so the stored answers are
known to differ from the card's.
"""
from features.errors import InputError

from ._base import ChatAdapter, torch_dtype

N_FRAMES = 4
# The model card's and transformers' conversion script's generate() settings (not applied: decoding is greedy).
REFERENCE_GENERATION = "num_beams=5, repetition_penalty=1.5, length_penalty=1.0, max_length=256, min_length=1"


def check_video_token(config, tokenizer, source):
    """InputError unless the config names the token the processor writes for the frames' query outputs."""
    index = config.video_token_index
    if not isinstance(index, int):
        raise InputError(f"--model {source}: its config.json has no video_token_index, where InstructBLIP-Video "
                         f"places the frames' query tokens (Salesforce/instructblip-vicuna-7b has "
                         f"\"video_token_index\": 32002 since 2024-11-18: update the download).")
    written = tokenizer.convert_tokens_to_ids("<video>")
    if written != index:
        raise InputError(f"--model {source}: config.json's video_token_index is {index} but its tokenizer writes "
                         f"<video> as {written}, so the frames' query tokens would be misplaced.")


class Adapter(ChatAdapter):
    model_class = "InstructBlipVideoForConditionalGeneration"
    shares_prefix = False
    default_frames = N_FRAMES

    def load(self):
        import transformers

        config = self._from_pretrained(transformers.InstructBlipVideoConfig)
        self.processor = self._from_pretrained(transformers.InstructBlipVideoProcessor)
        self.tokenizer = self.processor.tokenizer
        check_video_token(config, self.tokenizer, self.source)  # before 7B of weights are read
        self.model = self._from_pretrained(getattr(transformers, self.model_class), config=config,
                                           dtype=torch_dtype(self.dtype_name)).to(self.device).eval()
        self.eos_ids = self._eos_ids()
        return self

    def generation_settings(self):
        return {**super().generation_settings(), "reference_generation": REFERENCE_GENERATION}

    def render(self, prompt):
        return prompt

    def describe(self):
        return {"chat_prefix": "", "chat_suffix": "", "note": "bare instruction after the frames' query tokens"}

    def media_inputs(self, clip):
        if len(clip.frames) != N_FRAMES:
            raise InputError(f"--frames: InstructBLIP-Video takes exactly {N_FRAMES} frames per clip, "
                             f"found {len(clip.frames)}.")
        return {"images": [clip.frames]}

    def _whole_forward(self, inputs):
        return self.model(**inputs, use_cache=True, output_hidden_states=True).language_model_outputs

    def _decoder(self):
        return self.model.language_model
