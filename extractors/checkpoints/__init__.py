"""The facts of each registered model's released checkpoint, as data with their sources.

One YAML file per registry name (``<name>.yaml``): the checkpoint's config values (as its ``config.json``
ships them, so that a config class reads them as ``from_pretrained`` would), its processor settings, chat
template, generation config and reference usage, each value with the source it was read from, and "not
found" where none could be had. Chat templates that need shipping sit beside them as ``<name>.jinja``.

The tests build each architecture from these values at full size on the ``meta`` device; the adapters read
the templates a checkpoint lacks (Video-LLaVA) and the reference settings they follow (VideoChat-R1).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).parent


def names() -> list[str]:
    """Registry names that have a facts file."""
    return sorted(path.stem for path in FOLDER.glob("*.yaml"))


@lru_cache(maxsize=None)
def _read(name):
    import yaml

    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"no checkpoint facts for '{name}' in {FOLDER}")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def facts(name) -> dict:
    """The facts of one checkpoint; ``config_json_from`` / ``special_tokens_from`` pull in another file's."""
    data = dict(_read(name))
    for key in ("config_json", "special_tokens"):
        other = data.get(f"{key}_from")
        if other:
            data[key] = _read(Path(other).stem)[key]
    return data


def template(file) -> str:
    """The text of a shipped chat template (``<name>.jinja``), exactly as stored."""
    return (FOLDER / file).read_text(encoding="utf-8")
