"""Rows in one batch: several (clip, instruction) pairs decoded together.

A *row* is one instruction on one clip. The chat adapters run rows as batches in two ways:

- **On a shared prefix** (every family whose media come before the instruction). The clips' prefixes
  (system prompt, user header, frame/audio tokens) run as one batch, one row per clip
  (:meth:`RowBatching.prepare_clips`); each (clip, instruction) row then runs only its instruction's tokens
  on a copy of its clip's key/value cache (:meth:`RowBatching.rows_prompt_pass`). One clip with several
  instructions (``--batch-instructions``) is the case of a single prefix.
- **Whole prompts** (InstructBLIP, whose Q-Former reads the instruction, and VideoChat-R1, whose instruction
  comes before the video): the rows' whole prompts run as one batch (:meth:`RowBatching.whole_prompts_pass`).
  Their rows are the clips of one instruction, and only prompts of the same length share a batch, so they
  are never padded.

Padding and positions. Prefixes differ in length only where clips give different numbers of media tokens
(frames of another size, sound of another length): they are left-padded, so that every prefix ends at the
same column. Instructions differ in length: they are right-padded after the prefix. The attention mask hides
every padding position from every later token, and each row gets the positions it has alone: the padded
column plus a per-row ``offset``, minus its left padding, plus, for the multimodal rope of Qwen2.5-VL and
Qwen2.5-Omni, the clip's ``rope_deltas`` on all three axes (which the model computes from the unpadded tokens).
Generated tokens then follow in every row at once (:meth:`RowBatching.batch_token_pass`); a row that has
stopped leaves the batch (:meth:`RowBatching.batch_keep_rows`).

A row computes what it computes alone up to float rounding: matrix products over a batch round differently
from one row alone, and by how much depends on which other rows share the batch. The tolerances are in the
README and ``tests/test_extractors_batched_clips.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Per-token processor outputs, padded on the left with these values (None: the tokenizer's pad token).
_PER_TOKEN = {"input_ids": None, "attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0}


@dataclass
class Prepared:
    """A clip made ready for the model ahead of time (in the prefetching thread): the processor's outputs.

    Attributes
    ----------
    clip : extractors.media.Clip
    prompts : dict of {instruction name: prompt text}
        The instructions this clip still needs.
    inputs : dict
        Processor outputs (CPU tensors): under ``""`` those of the shared media prefix (or a baseline's
        input); for families without a shared prefix, under each prompt text those of its whole prompt.
    extra : dict
        What else an adapter computed from the clip (a baseline's count of real audio frames, ...).
    tag : object
        The caller's (the extraction runner keeps the run there).
    """

    clip: object
    prompts: dict
    inputs: dict
    extra: dict = field(default_factory=dict)
    tag: object = None


@dataclass
class BatchMedia:
    """Several clips' shared prefixes run as one left-padded batch, one row per clip.

    Attributes
    ----------
    ids, mask : tensors of shape (n_clips, width)
        The prefixes' token ids and attention mask (0 on the left padding).
    offsets : tensor of shape (n_clips,)
        The position of a text token in column ``c`` is ``c + offset`` (see the module docstring).
    cache : transformers DynamicCache
        Key/value cache of the prefixes, n_clips rows.
    prefix_hidden : list of tensors of shape (n_clips, width, hidden), or None
        Per layer, the prefixes' hidden states (zero on padding), kept for ``prompt_mean``.
    """

    ids: object
    mask: object
    offsets: object
    cache: object
    prefix_hidden: list | None = None


@dataclass
class BatchPass:
    """Rows run on their prompts; what generation continues from.

    Attributes
    ----------
    last : list of tensors of shape (n_rows, hidden)
        Per layer, the hidden state at each row's last prompt token.
    sums : list of tensors of shape (n_rows, hidden) or None
        Per layer, each row's sum over all its prompt tokens (only when asked for).
    counts : list of int
        Each row's number of prompt tokens.
    logits : tensor of shape (n_rows, vocab)
        Next-token logits at each row's last prompt token.
    cache : transformers DynamicCache
        Key/value cache of batch n_rows.
    mask : tensor of shape (n_rows, cache length)
        1 where a row's cache entry is one of its tokens, 0 on padding.
    next_positions : tensor of shape (n_rows,)
        The column of each row's next token (its position is that plus ``offsets``).
    offsets : tensor of shape (n_rows,)
        Per row, position minus column (see :class:`BatchMedia`).
    """

    last: list
    sums: list | None
    counts: list
    logits: object
    cache: object
    mask: object
    next_positions: object
    offsets: object = None


def stack_inputs(inputs, pad_id):
    """One batch from several clips' processor outputs.

    Per-token tensors (``input_ids``, ``attention_mask``, ...) are left-padded to the longest; every other
    tensor is concatenated along its first axis, which the processors give per clip (videos, sounds, their
    grids) or per patch (Qwen's flattened frame patches); anything else must be the same for every clip.
    """
    import torch

    width = max((item["input_ids"].shape[1] for item in inputs if "input_ids" in item), default=0)
    out = {}
    for key, first in inputs[0].items():
        values = [item[key] for item in inputs]
        if not isinstance(first, torch.Tensor):
            if any(value != first for value in values):
                raise ValueError(f"processor output '{key}' differs between the clips of one batch")
            out[key] = first
            continue
        if key in _PER_TOKEN:
            fill = pad_id if _PER_TOKEN[key] is None else _PER_TOKEN[key]
            values = [torch.nn.functional.pad(value, (width - value.shape[1], 0), value=fill) for value in values]
        out[key] = torch.cat(values)
    return out


class RowBatching:
    """The row-batched passes of :class:`extractors.models._base.ChatAdapter` (mixed into it)."""

    # False once a batch of prefixes came back in a cache that rows cannot share (``can_batch``): that depends
    # on the model, not the clips, so later batches go clip by clip without a batched prefix pass first
    prefix_batches = True

    def can_batch(self, media) -> bool:
        """Whether rows can run as one batch on this prefix cache (a ClipMedia or BatchMedia).

        Needs a shared prefix held in a plain DynamicCache (no sliding-window or quantized layers, whose
        cropping and padding rules differ); otherwise rows run one after another.
        """
        from transformers.cache_utils import DynamicCache, DynamicLayer

        return (self.shares_prefix and type(media.cache) is DynamicCache
                and all(type(layer) is DynamicLayer for layer in media.cache.layers))

    def prepare_clips(self, prepared, keep_prefix_hidden=False) -> BatchMedia:
        """Run several clips' shared prefixes (media included) as one batch, left-padded to the longest."""
        inputs = self._to_device(stack_inputs([item.inputs[""] for item in prepared], self._pad_id()))
        mask = inputs["attention_mask"]
        # Multimodal rope computes its positions from the mask; 1D rope is given each row's own count.
        positions = {} if self._mrope() else {"position_ids": (mask.cumsum(1) - 1).clamp(min=0)}
        out = self.model(**inputs, **positions, use_cache=True, output_hidden_states=keep_prefix_hidden,
                         logits_to_keep=1)
        offsets = -(mask == 0).sum(1)
        deltas = self._rope_deltas()
        if deltas is not None:
            offsets = offsets + deltas.to(offsets.device).reshape(-1)
        hidden = None
        if keep_prefix_hidden:
            hidden = [h.float().masked_fill(mask[..., None] == 0, 0) for h in out.hidden_states]
        return BatchMedia(ids=inputs["input_ids"], mask=mask, offsets=offsets, cache=out.cache,
                          prefix_hidden=hidden)

    def clip_as_batch(self, media) -> BatchMedia:
        """One clip's prepared prefix (a ClipMedia) as a batch of one clip; its cache is shared, not copied."""
        import torch

        ids = media.inputs["input_ids"][:, :media.n_prefix]
        deltas = self._rope_deltas()
        offsets = torch.zeros(1, dtype=torch.long, device=ids.device)
        if deltas is not None:
            offsets = offsets + deltas.to(ids.device).reshape(-1)
        hidden = None if media.prefix_hidden is None else [p[None] for p in media.prefix_hidden]
        return BatchMedia(ids=ids, mask=torch.ones_like(ids), offsets=offsets, cache=media.cache,
                          prefix_hidden=hidden)

    def batch_prompt_pass(self, media, prompts, want_sums=False) -> BatchPass:
        """Several instructions on one clip's prefix (a ClipMedia) as one batch; its cache is left as it was."""
        return self.rows_prompt_pass(self.clip_as_batch(media), [(0, prompt) for prompt in prompts], want_sums)

    def rows_prompt_pass(self, media: BatchMedia, rows, want_sums=False) -> BatchPass:
        """Run (clip row, prompt) rows on their clips' prefixes as one batch, right-padded to the longest.

        Every row keeps the prefix up to the shortest kept prefix (see :meth:`_suffix`); a row whose
        tokenization keeps more re-runs those prefix tokens itself. The prefixes' cache is left as it was
        (the batch works on a copy).
        """
        import torch
        from transformers.cache_utils import DynamicCache

        split = [self._suffix(prompt) for _, prompt in rows]
        end = media.ids.shape[1]  # every prefix ends there (left padding)
        keep = end - max(drop for drop, _ in split)
        clips = torch.tensor([clip for clip, _ in rows], device=media.ids.device)
        tokens = [media.ids[clip, keep:end - drop].tolist() + list(suffix)
                  for (clip, _), (drop, suffix) in zip(rows, split)]
        lengths = torch.tensor([len(row) for row in tokens], device=self.device)
        width = int(lengths.max())
        pad = self._pad_id(tokens[0][-1])
        ids = torch.tensor([row + [pad] * (width - len(row)) for row in tokens], device=self.device)
        own = torch.arange(width, device=self.device)[None] < lengths[:, None]
        prefix_mask = media.mask[clips, :keep]
        mask = torch.cat([prefix_mask, own.long()], 1)
        cache = DynamicCache([(layer.keys[clips, :, :keep], layer.values[clips, :, :keep])
                              for layer in media.cache.layers])
        offsets = media.offsets[clips]
        positions = keep + torch.arange(width, device=self.device)[None] + offsets[:, None]
        # Logits at each row's last token only (families without logits_to_keep return all positions).
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=self._text_positions(positions),
                         cache=cache, use_cache=True, output_hidden_states=True,
                         logits_to_keep=(lengths - 1)[:, None])
        at_last = (lengths - 1)[:, None, None]
        last = [h.float().take_along_dim(at_last, 1)[:, 0] for h in out.hidden_states]
        logits = out.logits[:, 0] if out.logits.shape[1] == 1 else out.logits.take_along_dim(at_last, 1)[:, 0]
        sums = None
        if want_sums:
            sums = [p[clips, :keep].sum(1) + (h.float() * own[..., None]).sum(1)
                    for p, h in zip(media.prefix_hidden, out.hidden_states)]
        return BatchPass(last=last, sums=sums, counts=(prefix_mask.sum(1) + lengths).tolist(), logits=logits,
                         cache=out.cache, mask=mask, next_positions=keep + lengths, offsets=offsets)

    def whole_prompts_pass(self, inputs, want_sums=False) -> BatchPass:
        """Run whole prompts (processor outputs of the same length, media included) as one batch."""
        import torch

        lengths = {item["input_ids"].shape[1] for item in inputs}
        if len(lengths) > 1:
            raise ValueError(f"whole prompts of one batch must have one length, found {sorted(lengths)}")
        batch = self._to_device(stack_inputs(inputs, self._pad_id()))
        out = self._whole_forward(batch)
        n_rows, width = out.hidden_states[0].shape[:2]  # the language model's sequence (its cache's length)
        offsets = torch.zeros(n_rows, dtype=torch.long, device=self.device)
        deltas = self._rope_deltas()
        if deltas is not None:
            offsets = offsets + deltas.to(self.device).reshape(-1)
        sums = [h.float().sum(1) for h in out.hidden_states] if want_sums else None
        return BatchPass(last=[h[:, -1].float() for h in out.hidden_states], sums=sums, counts=[width] * n_rows,
                         logits=out.logits[:, -1], cache=out.cache,
                         mask=torch.ones(n_rows, width, dtype=torch.long, device=self.device),
                         next_positions=torch.full((n_rows,), width, device=self.device), offsets=offsets)

    def batch_token_pass(self, tokens, batch: BatchPass):
        """Feed one generated token per row; returns (per-layer hidden of shape (n_rows, hidden), logits).

        ``tokens`` : long tensor of shape (n_rows,). The batch's mask and positions advance by one.
        """
        batch.mask = _append_ones(batch.mask)
        positions = (batch.next_positions + batch.offsets)[:, None]
        out = self._decoder()(input_ids=tokens[:, None].to(self.device), attention_mask=batch.mask,
                              position_ids=self._text_positions(positions), cache=batch.cache, use_cache=True,
                              output_hidden_states=True, logits_to_keep=1)
        batch.next_positions = batch.next_positions + 1
        return [h[:, -1].float() for h in out.hidden_states], out.logits[:, -1]

    @staticmethod
    def batch_keep_rows(batch: BatchPass, rows):
        """Drop finished rows from the batch: keep only ``rows`` (long tensor of row indices)."""
        rows = rows.to(batch.mask.device)
        batch.cache.batch_select_indices(rows)
        batch.mask = batch.mask[rows]
        batch.next_positions = batch.next_positions[rows]
        batch.offsets = batch.offsets[rows]

    # -- helpers ---------------------------------------------------------------------------------------
    def _pad_id(self, fallback=0):
        pad = self.tokenizer.pad_token_id
        return fallback if pad is None else pad

    def _mrope(self) -> bool:
        """Whether the model takes 3-axis (time, height, width) positions: Qwen2.5-VL, Qwen2.5-Omni."""
        return any(hasattr(module, "rope_deltas") for module in (self.model, getattr(self.model, "model", None)))

    def _rope_deltas(self):
        """The rope deltas the model computed on its last prompt pass, shape (n_rows, 1); None for 1D rope."""
        for module in (self.model, getattr(self.model, "model", None)):
            deltas = getattr(module, "rope_deltas", None)
            if deltas is not None:
                return deltas
        return None

    def _text_positions(self, positions):
        """Position ids to pass for text tokens at ``positions`` (n_rows, n_tokens): the same on all three axes
        of a multimodal rope."""
        return positions.unsqueeze(0).expand(3, -1, -1) if self._mrope() else positions


def _append_ones(mask):
    """The attention mask with one more column of ones (a token every row keeps)."""
    import torch

    return torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
