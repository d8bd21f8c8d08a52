"""One adapter module per model family; a module's name is the family name used by the registry.

Each module defines ``Adapter``, a subclass of :class:`extractors.models._base.ChatAdapter` (an
instruction-following MLLM) or :class:`extractors.models._base.EncoderAdapter` (a baseline), and
imports transformers only inside methods, so listing the registry stays fast.
"""
