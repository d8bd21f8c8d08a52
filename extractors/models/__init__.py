"""One adapter module per model family; a module's name is the family name used by the registry.

Each module defines ``Adapter``, a subclass of :class:`extractors.models._base.ChatAdapter` (an
instruction-following MLLM) or :class:`extractors.models._base.EncoderAdapter` (a baseline), and
imports transformers only inside methods, so listing the registry stays fast.

The base classes, the revision of a model source and the torch dtype of a dtype name are public here, for
every module that loads a model the same way (the word models and the runner of ``extractors``, the triplet
judges of ``encoding.triplets``).
"""
from ._base import ChatAdapter, EncoderAdapter, model_revision, torch_dtype

__all__ = ["ChatAdapter", "EncoderAdapter", "model_revision", "torch_dtype"]
