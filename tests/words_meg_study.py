"""The simulated word-by-word reading study of ``encoding.demo.words_meg`` (story, raw FIF, word tables,
config; the README's example writes the same study with MiniLM), here with a tiny random-weight GPT-2
saved as a model folder, whose layer ``PLANTED_LAYER`` drives the planted effects.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from conftest_extractors import byte_tokenizer  # noqa: E402
from encoding.demo.words_meg import CHANNELS, EFFECT_1, EFFECT_2, PLANTED_LAYER, write_study  # noqa: E402,F401

HYPOTHESES = ["are about emotions or feelings", "are about food", "are animals", "are household objects or tools",
              "are places or buildings"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Width-32 models gain nothing from a second thread, and on a loaded 2-core machine the two threads'
    synchronisation makes each small matrix product tens of times slower; restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_tiny_gpt2(folder, seed=0, n_positions=256, width=32):
    """A two-layer GPT-2 (width 32 by default) with random weights and a byte-level tokenizer, saved to
    ``folder``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = byte_tokenizer(["<|endoftext|>"], bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                               pad_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=width, n_layer=2, n_head=2, n_positions=n_positions,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
