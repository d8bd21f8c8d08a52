"""Where a model's files come from: a local folder, the local Hugging Face cache, or the Hub, decided before
transformers is asked, so an offline machine never waits on retries.

Without ``HF_HUB_OFFLINE=1`` and without a network, ``from_pretrained("org/model")`` retries each file for
minutes before saying that the model is not cached. Here a Hub id already in the local cache is read from it
(``local_files_only=True``: no request at all; the store records the cached commit), and one that is not is
fetched only when the Hub answers a connection within a few seconds; otherwise one sentence says what to do.
"""
import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from features.errors import InputError

#: Seconds to wait for the Hub to accept a connection.
REACH_TIMEOUT_S = 3.0


def is_local_folder(source) -> bool:
    return Path(str(source)).expanduser().is_dir()


def is_cached(source) -> bool:
    """True when a Hub id's config.json is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(str(source), "config.json"), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot parse is not cached
        return False


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the Hub's host (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection quickly."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=REACH_TIMEOUT_S):
            return True
    except OSError:
        return False


def local_files_only(source, flag="--model") -> bool:
    """The ``local_files_only`` to load ``source`` with; InputError when it can be had neither here nor online.

    Parameters
    ----------
    source : str or Path
        A model folder or a Hugging Face id.
    flag : str
        The option or field that named it, for the message.
    """
    if is_local_folder(source) or is_cached(source):
        return True
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise InputError(f"{flag} {source}: not a folder and not in the local Hugging Face cache, and HF_HUB_OFFLINE "
                         f"is set; download it where there is a network (huggingface-cli download {source}) or give "
                         f"its folder.")
    if not hub_reachable():
        raise InputError(f"{flag} {source}: not a folder and not in the local Hugging Face cache, and the Hub cannot "
                         f"be reached from this machine; download it where there is a network (huggingface-cli "
                         f"download {source}) or give its folder.")
    return False
