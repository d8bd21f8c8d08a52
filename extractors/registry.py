"""The model registry: a short name -> default Hugging Face id, family, modality and frames per clip.

Adding a model means adding one entry to ``MODELS``; adding an architecture means adding one adapter
module ``extractors/models/<family>.py`` that defines ``Adapter`` (see ``extractors/models/_base.py``).
The family of an entry is the name of its adapter module, so there is no dispatch table to edit.

``--model`` takes a registry name, or a local folder (a model saved with ``save_pretrained``) together
with ``--family``; a folder whose name is a registry name needs no ``--family``.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, replace
from pathlib import Path

from features.errors import InputError

from . import models

MODALITIES = ("video", "audio", "audio+video")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes
    ----------
    name : str
        Short name, used for the features store ``<out>/<name>.h5``.
    source : str
        Hugging Face id (or, for a local model, the folder). Baselines made of two models join the
        two ids with ``+``.
    family : str
        Adapter module under ``extractors/models/``.
    modality : {"video", "audio", "audio+video"}
        What the model is given; it also picks which instruction set ``--instruction all`` means.
    frames : int
        Default frames per clip (0 for audio-only models).
    instructed : bool
        True for instruction-following MLLMs; False for baselines, which take no instruction and are
        stored under the instruction ``none``.
    note : str
        One line for ``--list``.
    """

    name: str
    source: str
    family: str
    modality: str
    frames: int
    instructed: bool = True
    note: str = ""


MODELS = {spec.name: spec for spec in (
    # Video MLLMs
    ModelSpec("instructblip-video", "Salesforce/instructblip-vicuna-7b", "instructblip_video", "video", 4,
              note="InstructBLIP (Vicuna-7B) run on frames: the Q-Former sees the instruction"),
    ModelSpec("video-llava", "LanguageBind/Video-LLaVA-7B-hf", "video_llava", "video", 8),
    ModelSpec("llava-next-video", "llava-hf/LLaVA-NeXT-Video-7B-hf", "llava_next_video", "video", 8),
    ModelSpec("qwen2.5-vl", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl", "video", 8),
    ModelSpec("videochat-r1", "OpenGVLab/VideoChat-R1_7B", "videochat_r1", "video", 8,
              note="Qwen2.5-VL architecture, reinforcement-fine-tuned; its evaluation's prompt order, budget and "
                   "thinking instructions (--family qwen2_5_vl: the study's)"),
    ModelSpec("llava-onevision", "llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava_onevision", "video", 8),
    # Audio MLLMs
    ModelSpec("qwen2-audio", "Qwen/Qwen2-Audio-7B-Instruct", "qwen2_audio", "audio", 0),
    ModelSpec("kimi-audio", "moonshotai/Kimi-Audio-7B-Instruct", "kimi_audio", "audio", 0,
              note="not in transformers: needs its own package and --trust-remote-code"),
    ModelSpec("qwen2.5-omni", "Qwen/Qwen2.5-Omni-7B", "qwen2_5_omni", "audio+video", 4,
              note="the thinker only (text output), given the clip's frames and its sound"),
    # Baselines: no instruction
    # VideoMAE-large, self-supervised on Kinetics-400: 24 layers, hidden 1024, 16 frames of 224 px (the sizes
    # of "large" in transformers' convert_videomae_to_pytorch.py; https://huggingface.co/MCG-NJU/videomae-large)
    ModelSpec("videomae", "MCG-NJU/videomae-large", "videomae", "video", 16, instructed=False,
              note="unimodal video baseline (self-supervised, 24 layers)"),
    ModelSpec("ast", "MIT/ast-finetuned-audioset-10-10-0.4593", "ast", "audio", 0, instructed=False,
              note="unimodal audio baseline"),
    ModelSpec("xclip-clap", "microsoft/xclip-base-patch32+laion/clap-htsat-unfused", "xclip_clap",
              "audio+video", 8, instructed=False,
              note="non-instruction-tuned multimodal baseline: X-CLIP video + CLAP audio layers"),
)}


def families() -> list[str]:
    """Adapter modules found under ``extractors/models/``."""
    return sorted(m.name for m in pkgutil.iter_modules(models.__path__) if not m.name.startswith("_"))


def resolve_model(model, family=None) -> ModelSpec:
    """The spec of a registry name, or of a local model folder.

    Parameters
    ----------
    model : str or Path
        A registry name, or a folder holding a saved model.
    family : str, optional
        Adapter family; required for a folder whose name is not a registry name, and overrides the
        registry's family otherwise.

    Raises
    ------
    InputError
        Unknown name (listing the registered ones), unknown family, or a folder without a family.
    """
    if family is not None and family not in families():
        raise InputError(f"--family: unknown family '{family}'; known: {', '.join(families())}.")
    folder = Path(model)
    if folder.is_dir():
        base = MODELS.get(folder.name)
        if base is None and family is None:
            raise InputError(f"--model {model}: a local model folder needs --family "
                             f"({', '.join(families())}).")
        if base is None:
            frames = _family_default_frames(family)
            base = ModelSpec(folder.name, str(folder), family, _adapter_class(family).modality, frames,
                             _adapter_class(family).instructed)
        return replace(base, source=str(folder.resolve()), family=family or base.family)
    if str(model) in MODELS:
        spec = MODELS[str(model)]
        return replace(spec, family=family) if family else spec
    raise InputError(f"--model: unknown model '{model}' (neither a registry name nor a folder); "
                     f"registered: {', '.join(MODELS)}.")


def _family_default_frames(family) -> int:
    frames = [spec.frames for spec in MODELS.values() if spec.family == family]
    return frames[0] if frames else _adapter_class(family).default_frames


def _adapter_class(family):
    module = importlib.import_module(f"{__package__}.models.{family}")
    return module.Adapter


def adapter_class(spec: ModelSpec):
    """The Adapter class of a spec's family (imports its module, not the model)."""
    if spec.family not in families():
        raise InputError(f"--family: unknown family '{spec.family}'; known: {', '.join(families())}.")
    return _adapter_class(spec.family)
