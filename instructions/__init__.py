"""Task prompts as data: short name -> exact prompt text, loaded from YAML files.

``video.yaml`` and ``audio.yaml`` ship with the package; a user adds a set of their own by
passing the path of a YAML file of the same shape (name: "prompt").
"""
from pathlib import Path

import yaml

BUILTIN_SETS = {
    "video": Path(__file__).with_name("video.yaml"),
    "audio": Path(__file__).with_name("audio.yaml"),
}


# The no-instruction control: the same model and clip with an empty task. Not a YAML entry, because an
# empty prompt in a user's set is far more often a mistake than a control.
NO_INSTRUCTION = "none"


class UnknownInstructionError(ValueError):
    """An instruction name that no loaded set defines."""


def load_set(path):
    """Read one YAML instruction set, checking it maps names to non-empty prompt strings."""
    path = Path(path)
    if not path.is_file():
        raise UnknownInstructionError(f"{path}: instruction file not found.")
    with open(path) as handle:
        prompts = yaml.safe_load(handle) or {}
    if not isinstance(prompts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in prompts.items()
    ):
        raise UnknownInstructionError(
            f"{path}: expected a mapping of instruction name to prompt text, found {type(prompts).__name__}."
        )
    return prompts


def load_instructions(modality=None, extra_files=()):
    """All known instructions as {name: prompt}.

    Parameters
    ----------
    modality : {"video", "audio", None}
        Only the built-in set of that modality; None loads both.
    extra_files : sequence of paths
        User YAML sets added after the built-in ones; a name defined twice is an error.
    """
    sets = [BUILTIN_SETS[modality]] if modality else list(BUILTIN_SETS.values())
    prompts = {}
    for path in [*sets, *map(Path, extra_files)]:
        for name, text in load_set(path).items():
            if name in (NO_INSTRUCTION, "all"):
                raise UnknownInstructionError(f"{path}: instruction name '{name}' is reserved.")
            if name in prompts and prompts[name] != text:
                raise UnknownInstructionError(f"{path}: instruction '{name}' is already defined with other text.")
            prompts[name] = text
    return prompts


def resolve(names, modality=None, extra_files=()):
    """Turn ``"caption"``, ``"caption,action"``, ``"all"`` or ``"all,none"`` into an ordered {name: prompt}.

    ``"all"`` means every instruction of the modality (both modalities when None); it may be combined
    with other names. ``"none"`` is the no-instruction control: the same model and clip with an empty
    task (prompt ``""``); ``"all"`` does not include it. An unknown name raises UnknownInstructionError
    listing the known ones.
    """
    known = load_instructions(modality, extra_files)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    unknown = [n for n in names if n not in known and n not in ("all", NO_INSTRUCTION)]
    if unknown or not names:
        raise UnknownInstructionError(
            f"--instruction: unknown instruction {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known: {', '.join(known)}, {NO_INSTRUCTION} (the no-instruction control), all."
        )
    chosen = {}
    for name in names:
        if name == "all":
            chosen.update(known)
        else:
            chosen[name] = known.get(name, "")
    return chosen
