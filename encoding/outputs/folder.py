"""An output folder that appears complete or not at all, and never replaces one unasked.

Everything is written into a hidden sibling ``.<name>.partial-<pid>``, renamed to ``<name>`` when the
last file is written. With ``overwrite``, the old folder is first renamed aside and deleted only after
the new one is in place, so a crash at any point leaves either the old folder or the new one.
"""
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from features.errors import InputError


def refuse_existing(out, overwrite=False):
    """InputError when ``out`` exists and ``overwrite`` is false (check before long work starts)."""
    if Path(out).exists() and not overwrite:
        raise InputError(f"{out}: output folder already exists; pass --overwrite to replace it or --out to choose "
                         f"another.")


@contextmanager
def atomic_folder(out, overwrite=False):
    """Yield a temporary folder; on success it becomes ``out``, on error it is removed.

    Parameters
    ----------
    out : str or Path
        The finished folder.
    overwrite : bool
        Replace an existing ``out``; otherwise its existence is an InputError.
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
