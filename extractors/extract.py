"""The extraction core: one clip, one or more instructions -> one pooled vector per layer, and the answer.

Pooling (every layer, index 0 = the embedding output, the last = the final normed output as
transformers reports it):

- ``generated_mean`` (default for MLLMs, the literature's choice): greedy decoding of at most
  ``max_new_tokens`` tokens (stopping at an end-of-turn token); the mean, over the answer's tokens, of the
  hidden state that produced each token: the last prompt position for the first token, then each
  generated token fed back. This is what ``generate(output_hidden_states=True)`` returns, step by step.
- ``prompt_mean``: one forward pass; the mean over every prompt token (system prompt, media tokens and
  instruction). No answer is generated (the stored text is "").
- ``last_token``: one forward pass; the hidden state at the last prompt token. No answer generated.
- ``token_mean`` (baselines): the mean over the encoder's tokens.

Determinism: one clip at a time (``clip_features``), greedy argmax, no sampling and fixed shapes, so the
same inputs and settings give bit-identical features on the same machine and software; a clip's features do
not depend on which other clips or instructions ran in the same process.

Batched instructions (``batched=True``): a clip's instructions run as one batch on the shared prefix
cache (see ``extractors/models/_rows.py``), each row stopping at its own end-of-turn token or
``max_new_tokens``; a finished row leaves the batch and adds nothing more to its mean. Same tokens, and
features equal to the one-by-one run up to float rounding (about 1e-7 of the largest feature in float32):
an instruction's features then depend, at that level, on which instructions shared its batch, so re-runs
are bit-identical only with the same instruction set. Families without a shared prefix (InstructBLIP,
whose Q-Former reads the instruction; VideoChat-R1, whose instruction comes before the video) run one by one.

Batched clips (``clips_features``, ``--batch-clips``): several clips' prefixes run as one left-padded batch,
then their (clip, instruction) rows, one batch per instruction or, with ``batched=True``, all at once;
families without a shared prefix batch the clips of one instruction (whole prompts), baselines encode the
clips as one batch. Same answers, and features equal to one clip at a time within the README's tolerance
(float32: 1e-5 of each layer's largest feature; bfloat16: 1e-2), depending at that level on which clips
shared the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.errors import InputError

POOLINGS = {
    "generated_mean": "mean over generated tokens (greedy decoding)",
    "prompt_mean": "mean over prompt tokens (one forward pass)",
    "last_token": "last prompt token (one forward pass)",
    "token_mean": "mean over the encoder's tokens (baselines)",
}


@dataclass
class ClipFeatures:
    """Per layer a float32 vector of shape (hidden_k,), and the generated answer ("" when none)."""

    layers: list
    text: str


def check_pooling(adapter_class, pooling):
    """The pooling to use (the family's default when None); InputError when the family cannot do it."""
    pooling = pooling or adapter_class.poolings[0]
    if pooling not in adapter_class.poolings:
        raise InputError(f"--pooling: '{pooling}' is not available for this model; "
                         f"available: {', '.join(adapter_class.poolings)}.")
    return pooling


def clip_features(adapter, clip, prompts, pooling, max_new_tokens=32, batched=False, prepared=None) -> dict:
    """Features of one clip for each instruction.

    The clip's media are processed once (and, for prefix-sharing families, the media prefix is run
    once) and reused by every instruction.

    Parameters
    ----------
    adapter : a loaded adapter
    clip : extractors.media.Clip
    prompts : dict of {instruction name: prompt text}
    pooling : str
        One of POOLINGS supported by the adapter.
    max_new_tokens : int
        Cap on the answer length for ``generated_mean``.
    batched : bool
        Run the instructions as one batch over the shared prefix where the family allows it.
    prepared : Prepared, optional
        The clip's processor outputs made ahead (``adapter.preprocess``); made here when None.

    Returns
    -------
    dict of {instruction name: ClipFeatures}
    """
    import torch

    with torch.inference_mode():
        if not adapter.instructed:
            layers = adapter.layer_features(clip, prepared)
            return {name: ClipFeatures(layers, "") for name in prompts}
        media = adapter.prepare(clip, keep_prefix_hidden=pooling == "prompt_mean", prepared=prepared)
        if batched and len(prompts) > 1 and adapter.can_batch(media):
            return dict(zip(prompts, _batch_features(adapter, media, list(prompts.values()), pooling,
                                                     max_new_tokens)))
        return {name: _instruction_features(adapter, media, prompt, pooling, max_new_tokens)
                for name, prompt in prompts.items()}


def clips_features(adapter, prepared, pooling, max_new_tokens=32, batched=False) -> list:
    """Features of several clips, run as batches of (clip, instruction) rows.

    Parameters
    ----------
    adapter : a loaded adapter
    prepared : list of Prepared
        The clips (``adapter.preprocess(clip, prompts)``), each with the instructions it needs.
    pooling, max_new_tokens :
        As :func:`clip_features`.
    batched : bool
        Decode every row of the clips as one batch (``--batch-instructions``); otherwise one batch per
        instruction, a row per clip. Families without a shared prefix always run one batch per
        instruction, clips of one prompt length together.

    Returns
    -------
    list of dict of {instruction name: ClipFeatures}, one per clip, in the order of ``prepared``
    """
    import torch

    with torch.inference_mode():
        if not adapter.instructed:
            return [{name: ClipFeatures(layers, "") for name in item.prompts}
                    for item, layers in zip(prepared, adapter.encode(prepared))]
        want_sums = pooling == "prompt_mean"
        rows = [(k, name) for k, item in enumerate(prepared) for name in item.prompts]
        results = [{} for _ in prepared]
        if adapter.shares_prefix:
            media = adapter.prepare_clips(prepared, keep_prefix_hidden=want_sums) if adapter.prefix_batches else None
            if media is None or not adapter.can_batch(media):
                adapter.prefix_batches = False
                return [clip_features(adapter, item.clip, item.prompts, pooling, max_new_tokens, batched, item)
                        for item in prepared]
            for group in [rows] if batched else _by_instruction(rows):
                batch = adapter.rows_prompt_pass(media, [(k, prepared[k].prompts[name]) for k, name in group],
                                                 want_sums)
                for (k, name), features in zip(group, _pool_rows(adapter, batch, pooling, max_new_tokens)):
                    results[k][name] = features
        else:
            for group in _by_instruction(rows):
                inputs = {}  # prompt length -> rows
                for k, name in group:
                    whole = prepared[k].inputs[prepared[k].prompts[name]]
                    inputs.setdefault(whole["input_ids"].shape[1], []).append((k, name, whole))
                for same in inputs.values():
                    batch = adapter.whole_prompts_pass([whole for _, _, whole in same], want_sums)
                    for (k, name, _), features in zip(same, _pool_rows(adapter, batch, pooling, max_new_tokens)):
                        results[k][name] = features
        return [{name: result[name] for name in item.prompts} for item, result in zip(prepared, results)]


def _by_instruction(rows) -> list:
    """The rows grouped by instruction, in the order the instructions first appear."""
    groups = {}
    for k, name in rows:
        groups.setdefault(name, []).append((k, name))
    return list(groups.values())


def _instruction_features(adapter, media, prompt, pooling, max_new_tokens) -> ClipFeatures:
    first = adapter.prompt_pass(media, prompt, want_sums=pooling == "prompt_mean")
    if pooling == "prompt_mean":
        return ClipFeatures(_numpy([s / first.count for s in first.sums]), "")
    if pooling == "last_token":
        return ClipFeatures(_numpy(first.last), "")
    sums = [h.clone() for h in first.last]
    tokens = [int(first.logits.argmax())]
    while len(tokens) < max_new_tokens and tokens[-1] not in adapter.eos_ids:
        hidden, logits = adapter.token_pass(tokens[-1], first.cache)
        for total, h in zip(sums, hidden):
            total += h
        tokens.append(int(logits.argmax()))
    return ClipFeatures(_numpy([s / len(tokens) for s in sums]), adapter.decode(tokens))


def _batch_features(adapter, media, prompts, pooling, max_new_tokens) -> list:
    """One clip's instructions as one batch: the same pooling and stopping as one by one, per row."""
    batch = adapter.batch_prompt_pass(media, prompts, want_sums=pooling == "prompt_mean")
    return _pool_rows(adapter, batch, pooling, max_new_tokens)


def _pool_rows(adapter, batch, pooling, max_new_tokens) -> list:
    """Each row's ClipFeatures from its prompt pass (a BatchPass), decoding the rows together for
    ``generated_mean``: each row stops at its own end-of-turn token or ``max_new_tokens``, and a finished
    row leaves the batch and adds nothing more to its mean."""
    import torch

    n_rows = len(batch.counts)
    if pooling == "prompt_mean":
        return [ClipFeatures(_numpy([s[row] / count for s in batch.sums]), "")
                for row, count in enumerate(batch.counts)]
    if pooling == "last_token":
        return [ClipFeatures(_numpy([h[row] for h in batch.last]), "") for row in range(n_rows)]
    sums = [h.clone() for h in batch.last]  # per layer (n_rows, hidden), rows in prompt order
    tokens = [[int(t)] for t in batch.logits.argmax(-1)]
    eos = torch.tensor(sorted(adapter.eos_ids), dtype=torch.long)
    active = torch.arange(n_rows)  # prompt row of each batch row still generating
    while True:
        last = torch.tensor([tokens[row][-1] for row in active.tolist()])
        going = ~torch.isin(last, eos) & (len(tokens[int(active[0])]) < max_new_tokens)
        if not going.all():
            if not going.any():
                break
            adapter.batch_keep_rows(batch, going.nonzero()[:, 0])
            active, last = active[going], last[going]
        hidden, logits = adapter.batch_token_pass(last, batch)
        rows = active.to(sums[0].device)
        for total, h in zip(sums, hidden):
            total.index_add_(0, rows, h)
        for row, token in zip(active.tolist(), logits.argmax(-1).tolist()):
            tokens[row].append(token)
    return [ClipFeatures(_numpy([s[row] / len(answer) for s in sums]), adapter.decode(answer))
            for row, answer in enumerate(tokens)]


def _numpy(tensors) -> list:
    return [np.ascontiguousarray(t.float().cpu().numpy(), dtype=np.float32) for t in tensors]
