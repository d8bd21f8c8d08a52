"""The extractors call transformers' current API: an extraction of every tiny family, one instruction at a time
and batched, raises no FutureWarning or DeprecationWarning and logs no deprecation notice.

transformers 5.24 renamed ``past_key_values`` to ``cache`` (argument and output); the old name still works
until 5.40 but warns (``deprecate_kwarg``) and logs "`past_key_values`/`cache_params` are deprecated" once
per process. A warning here is the first sign that the pinned range in setup.cfg needs moving.
"""
import logging
import warnings

import pytest

from conftest_extractors import TR, movies, tiny_models  # noqa: F401
from extractors import run as extractor_run

CHAT = {"qwen2_5_vl": "caption,action", "llava_next_video": "caption,action", "llava_onevision": "caption,action",
        "video_llava": "caption,action", "qwen2_audio": "audio_caption,speaker",
        "qwen2_5_omni": "audio_caption,caption", "instructblip_video": "caption,action",
        "videochat_r1": "caption,action"}
BASELINES = ("videomae", "ast", "xclip_clap")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _forget_logged_once():
    from transformers.utils import logging as transformers_logging

    transformers_logging.warning_once.cache_clear()


def _extract_recording(tiny_models, movies, tmp_path, family, instructions, **settings):
    """(warnings raised, transformers log messages) of one extraction of run-2."""
    # transformers logs each deprecation notice once per process (warning_once is an lru_cache): forget the
    # notices other tests caused, so this extraction's own are seen.
    _forget_logged_once()
    handler = _Records()
    library = logging.getLogger("transformers")
    library.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            extractor_run.ensure_features(movies / "run-2.mp4", TR, tiny_models[family], instructions, tmp_path,
                                          family=family, max_new_tokens=2, progress=False, **settings)
    finally:
        library.removeHandler(handler)
    return caught, handler.messages


def _deprecations(caught, messages):
    raised = [f"{w.category.__name__}: {w.message}" for w in caught
              if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    return raised + [m for m in messages if "deprecat" in m.lower()]


@pytest.mark.parametrize("family", [*CHAT, *BASELINES])
def test_extraction_raises_no_deprecation_warning(tiny_models, movies, tmp_path, family):
    instructions = CHAT[family].split(",")[0] if family in CHAT else "none"
    caught, messages = _extract_recording(tiny_models, movies, tmp_path, family, instructions)
    assert _deprecations(caught, messages) == []


# InstructBLIP-Video and VideoChat-R1 share no media prefix (instruction before or inside the media): nothing to batch
@pytest.mark.parametrize("family", [f for f in CHAT if f not in ("instructblip_video", "videochat_r1")])
def test_batched_extraction_raises_no_deprecation_warning(tiny_models, movies, tmp_path, family):
    caught, messages = _extract_recording(tiny_models, movies, tmp_path, family, CHAT[family],
                                          batch_instructions=True)
    assert _deprecations(caught, messages) == []


def test_the_recorder_sees_transformers_deprecations(tiny_models):
    """The check above can fail: the old names, used on purpose, are caught (the argument as a FutureWarning,
    the output attribute as a log message)."""
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.cache_utils import DynamicCache

    model = AutoModelForImageTextToText.from_pretrained(tiny_models["qwen2_5_vl"], local_files_only=True)
    _forget_logged_once()
    handler = _Records()
    logging.getLogger("transformers").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
            warnings.simplefilter("always")
            out = model(input_ids=torch.tensor([[1, 2, 3]]), past_key_values=DynamicCache(), use_cache=True)
            out.past_key_values  # the old output name: logged, not raised
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    found = _deprecations(caught, handler.messages)
    assert any("FutureWarning: `past_key_values` is deprecated" in m for m in found)
    assert "`past_key_values`/`cache_params` are deprecated. Use `cache` instead." in found
