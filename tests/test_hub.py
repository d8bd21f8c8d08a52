"""An offline machine is told at once where a model must come from (issue 28): no minutes of retries."""
import time

import pytest

from extractors import hub
from features.errors import InputError


def test_a_model_neither_local_nor_cached_fails_at_once_when_the_hub_cannot_be_reached(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "is_cached", lambda source: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    start = time.perf_counter()
    with pytest.raises(InputError) as caught:
        hub.local_files_only("someone/not-downloaded-7b")
    assert str(caught.value).startswith("--model someone/not-downloaded-7b: not a folder and not in the local "
                                        "Hugging Face cache, and the Hub cannot be reached from this machine")
    assert time.perf_counter() - start < 1


def test_offline_mode_says_so_and_a_cached_id_or_a_folder_is_read_without_the_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "hub_reachable", lambda: pytest.fail("the network was asked"))
    monkeypatch.setattr(hub, "is_cached", lambda source: source == "org/cached")
    with pytest.raises(InputError, match="HF_HUB_OFFLINE is set"):
        hub.local_files_only("org/absent")
    assert hub.local_files_only("org/cached") is True
    assert hub.local_files_only(tmp_path) is True


def test_an_unreachable_endpoint_is_found_within_the_timeout(monkeypatch):
    hub.hub_reachable.cache_clear()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")     # the discard port: nothing listens
    try:
        start = time.perf_counter()
        assert hub.hub_reachable() is False
        assert time.perf_counter() - start <= hub.REACH_TIMEOUT_S + 1
    finally:
        hub.hub_reachable.cache_clear()


def test_the_adapter_stops_before_transformers_tries_the_network(monkeypatch):
    import transformers

    from extractors.models.llava_onevision import Adapter

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "is_cached", lambda source: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained",
                        classmethod(lambda cls, *a, **k: pytest.fail("transformers was asked")))
    with pytest.raises(InputError, match="the Hub cannot be reached"):
        Adapter("llava-hf/llava-onevision-qwen2-7b-ov-hf").load()
