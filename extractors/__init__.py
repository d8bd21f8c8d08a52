"""Extractors: movies -> per-TR clips -> instruction-conditioned layer features of multimodal models.

- ``extractors.media``: PyAV decoding into per-TR clips (frames + 16 kHz mono audio).
- ``extractors.registry``: model names -> default Hugging Face id, family (adapter), modality, frames.
- ``extractors.models``: one adapter module per family.
- ``extractors.extract``: the greedy loop and the token pooling, the same for every family.
- ``extractors.parts``: crash-safe part files and their atomic consolidation into the features store.
- ``extractors.run``: the command line (``python -m extractors.run``) and ``ensure_features``.
- ``extractors.runtime``: a process's rank among the extraction processes, its dtype, the library versions.
"""
