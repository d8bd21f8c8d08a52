"""Kimi-Audio-7B-Instruct: not in transformers; only through its own package and an explicit opt-in.

Kimi-Audio ships its model code in its own package (``kimia_infer``, from the MoonshotAI/Kimi-Audio
repository, not on PyPI) and in remote code on the Hub. Running either executes code that is not part of
transformers, so this adapter requires ``--trust-remote-code``; without the package, or without the
flag, it stops with one sentence saying what to do.

Status: the availability checks are implemented and tested; feature extraction through ``kimia_infer``
is not implemented yet (its package could not be installed where this was written), and says so.
"""
import importlib.util

from features.errors import InputError

from ._base import ChatAdapter

INSTALL = ("pip install git+https://github.com/MoonshotAI/Kimi-Audio (its package 'kimia_infer'), "
           "then pass --trust-remote-code")


class Adapter(ChatAdapter):
    modality = "audio"
    default_frames = 0
    media_content = ({"type": "audio"},)

    @classmethod
    def check_available(cls, trust_remote_code=False):
        if importlib.util.find_spec("kimia_infer") is None:
            raise InputError(f"--model kimi-audio: Kimi-Audio is not in transformers and needs its own "
                             f"package: {INSTALL}.")
        if not trust_remote_code:
            raise InputError("--model kimi-audio: Kimi-Audio runs code from its own package; pass "
                             "--trust-remote-code to allow it.")
        raise InputError("--model kimi-audio: extraction through kimia_infer is not implemented yet in "
                         "extractors/models/kimi_audio.py.")
