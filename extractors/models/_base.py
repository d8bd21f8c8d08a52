"""What every adapter provides, and the shared machinery of the chat (instruction-following) families.

An adapter turns clips into model inputs and runs the model; the greedy loop and the pooling are in
``extractors/extract.py`` and are the same for every family. Every adapter splits its work in two:
``preprocess(clip, prompts)`` runs the processors (frame resizing, spectrograms, tokenizing) on the CPU and
returns a :class:`~extractors.models._rows.Prepared`, which the extraction runner makes in its prefetching
thread (on :meth:`Adapter.for_thread`'s copy of the processors) while the model works on earlier clips; the
model passes then take those outputs.

Two kinds:

- :class:`EncoderAdapter` (baselines): ``encode(prepared)`` returns, per clip, one vector per layer, the
  mean over the model's tokens; several clips run as one batch (they have the same input size). No
  instruction.
- :class:`ChatAdapter` (MLLMs): ``prompt_pass(media, prompt)`` runs the chat prompt (media, then the
  instruction) and ``token_pass(token, cache)`` feeds back one generated token.

Shared prefix. In a chat prompt whose media come before the instruction, everything up to the end of
the media (system prompt, user header, frame/audio tokens) is the same for every instruction. A chat
adapter runs that prefix once per clip (the vision/audio tower included) and keeps its key/value
cache; each instruction then runs only its own tokens on top of it, and the cache is cropped back to the
prefix afterwards. The split is done on token ids: the prompt rendered with the instruction is
tokenized whole and compared with the tokenized prefix, so the tokens the model sees are exactly those
of the whole prompt (where a tokenizer merges across the boundary, the merged tail is recomputed).
The features of an instruction therefore do not depend on which other instructions ran with it.

Batched rows (several instructions of a clip, several clips): ``extractors/models/_rows.py``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.errors import InputError

from .. import checkpoints
from ..hub import local_files_only
from ._rows import Prepared, RowBatching

# Text inserted where the instruction goes, to find the instruction's place in a rendered template.
_SENTINEL = "\u2063INSTRUCTION\u2063"


def model_revision(source) -> str:
    """A revision string for a model: the Hub commit for a cached Hub id, a content fingerprint for a folder.

    The fingerprint hashes every small file and, for weight files, their size and three 1 MiB blocks
    (start, middle, end), so it is cheap on 15 GB checkpoints yet changes when weights are replaced.
    """
    folder = Path(source)
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(source), "config.json")
            if isinstance(cached, str):
                return Path(cached).parent.name  # .../snapshots/<commit>/config.json
        except Exception:  # noqa: BLE001 - a revision we cannot read is recorded as unknown
            pass
        return "unknown"
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= 8 << 20:
                digest.update(handle.read())
                continue
            for offset in (0, size // 2, size - (1 << 20)):
                handle.seek(offset)
                digest.update(handle.read(1 << 20))
    return "sha256:" + digest.hexdigest()[:16]


def torch_dtype(name):
    import torch

    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise InputError(f"--dtype: expected float32, bfloat16, float16 or auto, found '{name}'.") from None


class Adapter:
    """Base of every family.

    Class attributes
    ----------------
    modality : {"video", "audio", "audio+video"}
    instructed : bool
        Whether the model takes an instruction (chat MLLM) or not (baseline encoder).
    default_frames : int
        Frames per clip for a local folder of this family that is not in the registry.
    poolings : tuple of str
        Poolings it supports; the first is the default.
    version : int
        Bumped when a change to the adapter changes the numbers it writes; recorded in the store as
        ``adapter_version``, so a store written by an older version is refused instead of mixed.
    """

    modality = "video"
    instructed = True
    default_frames = 8
    poolings = ("generated_mean", "prompt_mean", "last_token")
    version = 1
    # The attributes holding processors, which :meth:`for_thread` copies.
    processor_attributes = ("processor",)

    def __init__(self, source, dtype="float32", device="cpu", trust_remote_code=False, video_max_pixels=None):
        self.source = str(source)
        self.local = Path(source).is_dir()
        self.dtype_name = dtype
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.video_max_pixels = video_max_pixels

    @classmethod
    def video_pixels(cls, n_frames, max_pixels=None) -> dict | None:
        """The per-frame pixel range video frames are resized into, for families that resize to a budget.

        Returns ``{"video_max_pixels": int, "video_min_pixels": int}`` (recorded in the store), or None
        for families whose processor works at a fixed size. ``max_pixels`` overrides the family's default
        cap; a family without a budget refuses one (InputError) rather than ignore it.
        """
        if max_pixels is not None:
            raise InputError(f"--video-max-pixels: the {cls.__module__.rsplit('.', 1)[-1]} family resizes "
                             f"frames to a fixed size and takes no pixel budget.")
        return None

    def describe(self) -> dict:
        """Provenance for the store's root attributes (not compared on reopen)."""
        return {}

    @classmethod
    def check_available(cls, trust_remote_code=False):
        """Raise InputError with what to install when the family cannot run here."""

    def load(self):
        """Load weights and processors (called once, only when there is work to do)."""
        raise NotImplementedError

    def _from_pretrained(self, loader, source=None, **kwargs):
        source = self.source if source is None else source
        local = Path(source).is_dir()
        try:
            return loader.from_pretrained(source, local_files_only=local_files_only(source),
                                          trust_remote_code=self.trust_remote_code, **kwargs)
        except OSError as err:
            where = "folder" if local else "Hugging Face id"
            raise InputError(f"--model {source}: cannot load it as a {where} ({err}).") from None

    def for_thread(self):
        """A copy of this adapter, with processors of its own, for :meth:`preprocess` in another thread.

        The model is shared (the copy only preprocesses); the processors are not, since a fast tokenizer
        changes its padding settings on every call and must not be used by two threads at once.
        """
        import copy

        twin = copy.copy(self)
        for name in self.processor_attributes:
            setattr(twin, name, copy.deepcopy(getattr(self, name)))
        if hasattr(self, "tokenizer"):
            twin.tokenizer = getattr(twin.processor, "tokenizer", twin.processor)
        return twin

    def preprocess(self, clip, prompts=None) -> Prepared:
        """The processors' outputs for one clip and the instructions it still needs (CPU only, no model)."""
        raise NotImplementedError

    def _to_device(self, inputs, float_keys=("pixel_values", "input_features", "input_values")):
        """Tensors to the model's device; pixel/audio features also to its dtype."""
        import torch

        out = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                cast = value.is_floating_point() and key.startswith(float_keys)
                value = value.to(self.device, self.model.dtype) if cast else value.to(self.device)
            out[key] = value
        return out


class EncoderAdapter(Adapter):
    """A baseline encoder: per layer, the mean over its tokens (patches, frames, time-frequency bins)."""

    instructed = False
    poolings = ("token_mean",)

    def encode(self, prepared) -> list[list[np.ndarray]]:
        """Per clip, per layer, a float32 array of shape (hidden,): the clips run as one batch.

        ``prepared`` : list of Prepared from :meth:`preprocess`, of one input size (each baseline's
        processor gives every clip the same size).
        """
        raise NotImplementedError

    def layer_features(self, clip, prepared=None) -> list[np.ndarray]:
        """One clip's features: per layer, float32 array of shape (hidden,)."""
        return self.encode([prepared or self.preprocess(clip)])[0]


def _token_means(hidden_states) -> list[list[np.ndarray]]:
    """Per clip (the first axis), the mean over every other axis but the last of each layer's hidden states,
    as float32 numpy."""
    return [[h[clip].float().reshape(-1, h.shape[-1]).mean(0).cpu().numpy() for h in hidden_states]
            for clip in range(len(hidden_states[0]))]


@dataclass
class PromptPass:
    """What the prompt's forward pass leaves for pooling and generation.

    Attributes
    ----------
    last : list of tensors of shape (hidden,)
        Per layer, the hidden state at the last prompt token (the one that predicts the first answer token).
    sums : list of tensors of shape (hidden,) or None
        Per layer, the sum over all prompt tokens (only when asked for).
    count : int
        Number of prompt tokens.
    logits : tensor of shape (vocab,)
        Next-token logits at the last prompt token.
    cache : transformers Cache
        Key/value cache over the prompt, extended by :meth:`ChatAdapter.token_pass`.
    """

    last: list
    sums: list | None
    count: int
    logits: object
    cache: object


@dataclass
class ClipMedia:
    """One clip, prepared once for every instruction.

    ``inputs`` are the processor outputs of the shared prefix (media included); ``cache`` and
    ``prefix_hidden`` hold the prefix's forward pass when the family shares it.
    """

    inputs: dict
    n_prefix: int = 0
    cache: object = None
    prefix_hidden: list | None = None
    extra: dict = field(default_factory=dict)


class ChatAdapter(RowBatching, Adapter):
    """An instruction-following MLLM driven through its processor's chat template.

    Subclasses set ``model_class`` (a transformers class name), ``media_content`` (the content items of
    the media in the user turn) and implement :meth:`media_inputs`.
    """

    model_class = "AutoModelForImageTextToText"
    processor_class = "AutoProcessor"
    media_content = ({"type": "video"},)
    shares_prefix = True
    # A template file in extractors/checkpoints/ rendering the reference prompt, for checkpoints that ship none.
    fallback_template = None

    def load(self):
        import transformers

        processor = self._from_pretrained(getattr(transformers, self.processor_class))
        model = self._from_pretrained(getattr(transformers, self.model_class), dtype=torch_dtype(self.dtype_name))
        return self.attach(processor, model.to(self.device).eval())

    def attach(self, processor, model):
        """Use this processor and model (``load`` reads them from the source; benchmarks build them)."""
        self.processor, self.model = processor, model
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.template_source = "the checkpoint's chat template"
        if getattr(self.processor, "chat_template", None) is None:
            if self.fallback_template is None:
                raise InputError(f"--model {self.source}: its processor has no chat template "
                                 f"(chat_template.jinja), which instruction prompts are built from.")
            self.processor.chat_template = checkpoints.template(self.fallback_template)
            self.template_source = (f"extractors/checkpoints/{self.fallback_template} (the checkpoint ships no "
                                    f"chat template)")
        self.eos_ids = self._eos_ids()
        self._prefix_text, self._rest_text = self._split_template()
        self._suffixes = {}
        return self

    def _eos_ids(self):
        ids = set()
        for value in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if value is not None:
                ids.update([value] if isinstance(value, int) else value)
        return ids

    def generation_settings(self) -> dict:
        """How answers are decoded: greedy (argmax, whatever the checkpoint's generation_config says about
        sampling or repetition penalties), stopping at any of these tokens or at max_new_tokens."""
        ids = sorted(self.eos_ids)
        return {"decoding": "greedy", "stop_token_ids": ids,
                "stop_tokens": self.tokenizer.convert_ids_to_tokens(ids)}

    # -- prompt text ---------------------------------------------------------------------------
    def messages(self, prompt):
        content = [dict(item) for item in self.media_content]
        return [{"role": "user", "content": content + [{"type": "text", "text": prompt}]}]

    def render(self, prompt) -> str:
        """The whole chat prompt as text, media placeholders unexpanded, ready for generation."""
        return self.processor.apply_chat_template(self.messages(prompt), add_generation_prompt=True,
                                                  tokenize=False)

    def _split_template(self):
        text = self.render(_SENTINEL)
        if text.count(_SENTINEL) != 1:
            raise InputError(f"--model {self.source}: its chat template does not place the instruction "
                             f"text exactly once.")
        self._check_placeholders(text)
        prefix, rest = text.split(_SENTINEL)
        return prefix, rest

    def _check_placeholders(self, text):
        """Every media item must leave its placeholder token in the prompt: the processor expands that token
        into the clip's frames or sound, so a template that renders none would silently drop the media."""
        for kind in ("image", "video", "audio"):
            wanted = sum(item.get("type") == kind for item in self.media_content)
            token = getattr(self.processor, f"{kind}_token", None)
            if wanted and isinstance(token, str) and text.count(token) != wanted:
                raise InputError(f"--model {self.source}: its chat template renders {text.count(token)} "
                                 f"{token} for the clip's {wanted} {kind} item(s) ({self.template_source}), so "
                                 f"the {kind} would not reach the model.")

    def _token_ids(self, text):
        return self.tokenizer(text)["input_ids"]

    # -- media -----------------------------------------------------------------------------------
    def media_inputs(self, clip) -> dict:
        """Processor keyword arguments carrying the clip's media (``videos=...``, ``audio=...``)."""
        raise NotImplementedError

    def preprocess(self, clip, prompts=None) -> Prepared:
        """The processor's outputs: of the shared prefix (under ``""``), or of each prompt's whole text."""
        prompts = dict(prompts or {})
        media = self.media_inputs(clip)
        if self.shares_prefix:
            inputs = {"": dict(self.processor(text=[self._prefix_text], return_tensors="pt", **media))}
        else:
            inputs = {prompt: dict(self.processor(text=[self.render(prompt)], return_tensors="pt", **media))
                      for prompt in dict.fromkeys(prompts.values())}
        return Prepared(clip=clip, prompts=prompts, inputs=inputs)

    def prepare(self, clip, keep_prefix_hidden=False, prepared=None) -> ClipMedia:
        """Process the clip once (unless ``prepared`` holds it); for prefix-sharing families also run the
        shared prefix."""
        import torch

        if not self.shares_prefix:
            return ClipMedia(inputs=self.media_inputs(clip), extra={"whole": prepared.inputs if prepared else {}})
        # The attention mask (all ones: one clip, no padding) stays: some families (Qwen2.5-Omni) build their
        # 3D rope positions from it. Later passes give none, so positions continue from the cache.
        inputs = prepared.inputs[""] if prepared else self.preprocess(clip).inputs[""]
        inputs = self._to_device(dict(inputs))
        with torch.inference_mode():
            out = self.model(**inputs, use_cache=True, output_hidden_states=keep_prefix_hidden, logits_to_keep=1)
        hidden = [h[0].float() for h in out.hidden_states] if keep_prefix_hidden else None
        return ClipMedia(inputs=inputs, n_prefix=inputs["input_ids"].shape[1], cache=out.cache,
                         prefix_hidden=hidden)

    def _suffix(self, prompt):
        """(tokens of the prefix to drop, token ids to run after the kept prefix) for one instruction.

        Both come from tokenizing the whole unexpanded prompt: where it agrees with the tokenized prefix,
        the prefix's cache is used; a tail of the prefix that the tokenizer merged differently is dropped
        from the cache and run again with the instruction.
        """
        if prompt not in self._suffixes:
            whole = self._token_ids(self.render(prompt))
            prefix = self._token_ids(self._prefix_text)
            common = 0
            while common < min(len(whole), len(prefix)) and whole[common] == prefix[common]:
                common += 1
            media_ids = set(self._media_token_ids())
            if media_ids & set(prefix[common:]):
                raise InputError(f"--model {self.source}: the instruction changes how the media tokens "
                                 f"are tokenized; this family cannot share the media prefix.")
            self._suffixes[prompt] = (len(prefix) - common, whole[common:])
        return self._suffixes[prompt]

    def _media_token_ids(self):
        return [getattr(self.model.config, key) for key in
                ("image_token_id", "video_token_id", "audio_token_id", "image_token_index",
                 "video_token_index", "audio_token_index") if isinstance(getattr(self.model.config, key, None), int)]

    # -- forward passes ----------------------------------------------------------------------------
    def prompt_pass(self, media: ClipMedia, prompt, want_sums=False) -> PromptPass:
        """Run the instruction on top of the clip's prefix (or the whole prompt when not shared)."""
        import torch

        if not self.shares_prefix:
            return self._whole_prompt_pass(media, prompt, want_sums)
        drop, suffix = self._suffix(prompt)
        keep = media.n_prefix - drop
        media.cache.crop(keep - media.cache.get_seq_length())
        ids = torch.tensor([suffix], device=self.device)
        out = self.model(input_ids=ids, cache=media.cache, use_cache=True,
                         output_hidden_states=True, logits_to_keep=1)
        sums = None
        if want_sums:
            sums = [p[:keep].sum(0) + h[0].float().sum(0) for p, h in zip(media.prefix_hidden, out.hidden_states)]
        return PromptPass(last=[h[0, -1].float() for h in out.hidden_states], sums=sums,
                          count=keep + len(suffix), logits=out.logits[0, -1], cache=out.cache)

    def _whole_prompt_pass(self, media, prompt, want_sums):
        inputs = media.extra.get("whole", {}).get(prompt)
        if inputs is None:
            inputs = self.processor(text=[self.render(prompt)], return_tensors="pt", **media.inputs)
        out = self._whole_forward(self._to_device(dict(inputs)))
        sums = [h[0].float().sum(0) for h in out.hidden_states] if want_sums else None
        return PromptPass(last=[h[0, -1].float() for h in out.hidden_states], sums=sums,
                          count=out.hidden_states[0].shape[1], logits=out.logits[0, -1],
                          cache=out.cache)

    def _whole_forward(self, inputs):
        """A whole prompt's forward pass (processor outputs on the device): hidden_states, logits, cache."""
        return self.model(**inputs, use_cache=True, output_hidden_states=True, logits_to_keep=1)

    def _decoder(self):
        """The module that takes generated tokens (the language model of families that wrap it otherwise)."""
        return self.model

    def token_pass(self, token, cache):
        """Feed one generated token; returns (per-layer hidden of shape (hidden,), next-token logits)."""
        import torch

        ids = torch.tensor([[token]], device=self.device)
        out = self._decoder()(input_ids=ids, cache=cache, use_cache=True, output_hidden_states=True,
                              logits_to_keep=1)
        return [h[0, -1].float() for h in out.hidden_states], out.logits[0, -1]

    def decode(self, tokens) -> str:
        # HDF5 strings cannot hold NUL, which an untrained or byte-level model may emit.
        return self.tokenizer.decode(tokens, skip_special_tokens=True).replace("\x00", "").strip()

    # -- provenance --------------------------------------------------------------------------------
    def describe(self) -> dict:
        """Extra provenance for the store (the prompt format, so a result says what was asked)."""
        described = {"chat_prefix": self._prefix_text, "chat_suffix": self._rest_text}
        if self.template_source != "the checkpoint's chat template":
            described["chat_template_source"] = self.template_source
        return described
