"""An output folder that appears complete or not at all, and never replaces one unasked.

Everything is written into a hidden sibling ``.<name>.partial-<host>-<pid>``, renamed to ``<name>`` when
the last file is written. With ``overwrite``, the old folder is first renamed aside
(``.<name>.old-<host>-<pid>``) and deleted only after the new one is in place, so a crash at any point
leaves either the old folder or the new one. The next run into the same place tidies what a killed run
of this machine left: its partial folder is deleted, and an old folder set aside is restored when no
new one replaced it, or deleted when one did.
"""
import logging
import os
import re
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

from features.errors import InputError

log = logging.getLogger(__name__)


def refuse_existing(out, overwrite=False):
    """InputError when ``out`` exists and ``overwrite`` is false (check before long work starts)."""
    out = Path(out)
    remove_stale(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: output folder already exists; pass --overwrite to replace it or --out to choose "
                         f"another.")


def _host():
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def pid_alive(pid):
    """Whether a process of this machine with this id is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # another user's live process
        return True
    return True


def remove_stale(out):
    """Tidy the siblings that killed runs of this machine left beside ``out`` (module docstring).

    Folders of live processes, and of other machines sharing the file system, are left alone.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(partial|old)-{re.escape(_host())}-(\d+)$")
    for sibling in sorted(out.parent.iterdir()):
        match = pattern.match(sibling.name)
        if not match or pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not out.exists():
            os.replace(sibling, out)
            log.warning("restored %s from %s, set aside by a run that was killed before it finished", out, sibling)
        else:
            shutil.rmtree(sibling, ignore_errors=True)
            log.info("removed %s, left by a killed run", sibling)


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
    tag = f"{_host()}-{os.getpid()}"
    partial = out.with_name(f".{out.name}.partial-{tag}")
    old = out.with_name(f".{out.name}.old-{tag}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    names = _FinalNames(partial, out)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(names)
    try:
        yield partial
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        for handler in root.handlers:
            handler.removeFilter(names)
        shutil.rmtree(partial, ignore_errors=True)


class _FinalNames(logging.Filter):
    """Log lines name the files where they will be, not the temporary folder they are written into."""

    def __init__(self, partial, out):
        super().__init__()
        self.partial, self.out = str(partial), str(out)

    def filter(self, record):
        message = record.getMessage()
        if self.partial in message:
            record.msg, record.args = message.replace(self.partial, self.out), ()
        return True
