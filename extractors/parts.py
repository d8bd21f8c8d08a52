"""Part files: what one extraction process writes while it runs, and their consolidation into the store.

Why not write the HDF5 store directly: HDF5 has no journal, so a process killed while the library
updates the file's internal metadata (new chunks, B-trees, the free-space list) can leave the whole file
unreadable, finished clips included. So a running process only *appends* to its own part file, and the
features store is only ever replaced whole (written to a temporary copy, synced, then renamed over the
old one), which a kill cannot tear.

A part file ``<store>.part-<rank>`` is a sequence of self-checking records::

    MAGIC (8 bytes) | header length (u32) | payload length (u64) | header (JSON) | payload | sha256 (32 bytes)

The first record holds the extraction parameters, the provenance and, per run, the attributes its
groups get in the store (its place among the stimuli, the movie file, the number of clips); every other
record is one clip of one instruction (run, clip index, prompt, generated text, layer shapes; the payload
is the float32 layer vectors). A part file thus carries everything the store needs from it: a store
consolidated from the parts of a killed run and those of its re-run equals, attribute for attribute,
the store of an uninterrupted run.
Each record is written with one ``write`` and synced before the next clip starts, so a kill leaves at
most one torn record at the end, which the checksum rejects and the next writer cuts off.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from features.errors import InputError
from features.store import ClosedOnExit, FeatureStore, check_parameters

log = logging.getLogger(__name__)

MAGIC = b"MLLMPRT1"
_FRAME = struct.Struct("<8sIQ")
_DIGEST = 32
_BATCH = 256  # rows buffered per (instruction, run) while consolidating


def part_path(store_path, rank) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(f"{store_path.name}.part-{rank}")


def part_files(store_path) -> list[Path]:
    store_path = Path(store_path)
    return sorted(store_path.parent.glob(f"{store_path.name}.part-*"))


def _encode(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    body = head + payload
    return _FRAME.pack(MAGIC, len(head), len(payload)) + body + hashlib.sha256(body).digest()


def _records(path: Path):
    """(end offset, header, payload) of each intact record, stopping at the first torn or bad one."""
    with open(path, "rb") as handle:
        data = handle.read()
    offset = 0
    while offset + _FRAME.size <= len(data):
        magic, n_head, n_payload = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        end = start + n_head + n_payload + _DIGEST
        if magic != MAGIC or end > len(data):
            return
        body = data[start:start + n_head + n_payload]
        if hashlib.sha256(body).digest() != data[end - _DIGEST:end]:
            return
        yield end, json.loads(body[:n_head]), body[n_head:]
        offset = end


class PartWriter(ClosedOnExit):
    """Appends clip records to one part file; holds an exclusive lock on it while open.

    Parameters
    ----------
    path : Path
    parameters : dict
        The extraction parameters (compared with a part file left by an earlier process).
    provenance : dict, optional
        Root attributes of the store that follow from the parameters (the prompt format, ...).
    runs : dict of {run: dict}, optional
        Per run, the attributes of its groups in the store: ``order``, ``stimulus_file``, ``n_clips``.
    check : callable, optional
        ``check(recorded, parameters, path)`` raises InputError when a part file left by an earlier
        process was started with other parameters; default: the features store's comparison. Other
        stores built on part files (the triplet judgments of ``encoding.triplets``) pass their own.
    """

    def __init__(self, path, parameters, provenance=None, runs=None, check=check_parameters):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise InputError(f"{self.path}: another extraction process is writing this part file; "
                             f"run one extraction per features store at a time.") from None
        if self._handle.tell() == 0:
            self._write(_encode({"parameters": parameters, "provenance": provenance or {}, "runs": runs or {}}))
        else:
            recorded, end = read_parameters(self.path), 0
            check(recorded, parameters, self.path)
            for end, _, _ in _records(self.path):
                pass
            self._handle.truncate(end)  # cut a record torn by a kill

    def _write(self, record: bytes):
        self._handle.write(record)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, instruction, prompt, run, n_clips, clip, layers, text):
        """Record one clip of one instruction; on return it is on disk."""
        layers = [np.ascontiguousarray(layer, dtype=np.float32) for layer in layers]
        header = {"instruction": instruction, "prompt": prompt, "run": run, "n_clips": int(n_clips),
                  "clip": int(clip), "text": text, "sizes": [int(layer.size) for layer in layers]}
        self.append_record(header, b"".join(layer.tobytes() for layer in layers))

    def append_record(self, header: dict, payload: bytes = b""):
        """Record any unit of finished work (a JSON header and raw bytes); on return it is on disk."""
        self._write(_encode(header, payload))

    def close(self):
        self._handle.close()


def read_parameters(path, key="parameters") -> dict:
    """The parameters (or, with ``key="provenance"`` or ``"runs"``, the provenance or the runs' attributes)
    a part file was started with."""
    for _, header, _ in _records(Path(path)):
        return header.get(key, {})
    return {}


def read_records(path):
    """Yield (header, payload bytes) for each intact work record of a part file (the first, the
    parameters, left out)."""
    for _, header, payload in _records(Path(path)):
        if "parameters" not in header:
            yield header, payload


def read_clips(path):
    """Yield (header, list of float32 layer vectors) for each intact clip record of a part file."""
    for header, payload in read_records(path):
        flat = np.frombuffer(payload, dtype=np.float32)
        yield header, np.split(flat, np.cumsum(header["sizes"])[:-1])


def done_in_parts(store_path) -> set:
    """(instruction, run, clip) of every intact record in the store's part files."""
    return {(h["instruction"], h["run"], h["clip"]) for part in part_files(store_path)
            for h, _ in read_clips(part)}


def checked_parts(store_path, parameters, check=check_parameters):
    """The part files of a store, each checked against this run's parameters, and their provenance merged.

    Parameters
    ----------
    store_path : Path
    parameters : dict
        This run's parameters.
    check : callable
        ``check(recorded, parameters, part)``, an InputError naming the part when they differ (the features
        store's :func:`features.store.check_parameters` by default).

    Returns
    -------
    parts : list of Path
    provenance : dict
        The union of the parts' provenance records.
    """
    parts = part_files(store_path)
    for part in parts:
        check(read_parameters(part), parameters, part)
    return parts, {k: v for part in parts for k, v in read_parameters(part, "provenance").items()}


def consolidate(store_path, parameters) -> bool:
    """Merge every part file of a store into it, atomically; returns whether anything was merged.

    The store is copied to a temporary file, the parts' rows are written into the copy, the copy is
    synced and renamed over the store, and only then are the parts deleted. A kill at any moment leaves
    either the old store and its parts, or the new store (and parts whose rows it already holds).

    Every run group that receives rows gets its attributes from the part that holds them (its order
    among the stimuli when the group is created; the movie file and the number of clips), and the store
    records how many hidden states each clip has (``n_hidden_states``), so the result does not depend on
    whether the rows arrive in one consolidation or, after a kill, in several.

    Parameters
    ----------
    store_path : Path
    parameters : dict
        The extraction parameters; a part or store written with others is an InputError.
    """
    store_path = Path(store_path)
    parts, provenance = checked_parts(store_path, parameters)
    if not parts:
        return False
    n_rows = 0
    with replaced_whole(store_path) as tmp, FeatureStore(tmp, "a", {**provenance, **parameters}) as store:
        buffers, run_attrs, n_hidden = {}, {}, set()
        for part in parts:
            runs = read_parameters(part, "runs")
            for header, layers in read_clips(part):
                key = (header["instruction"], header["run"])
                attrs = {"n_clips": header["n_clips"], **runs.get(header["run"], {})}
                if key not in buffers:
                    store.create_run(*key, header["n_clips"], header["sizes"], header["prompt"],
                                     order=attrs.get("order"))
                    buffers[key] = []
                run_attrs[key] = {k: v for k, v in attrs.items() if k != "order"}  # order: set at creation
                n_hidden.add(len(header["sizes"]))
                buffers[key].append((header["clip"], layers, header["text"]))
                n_rows += 1
                if len(buffers[key]) >= _BATCH:
                    _write_rows(store, key, buffers.pop(key))
                    buffers[key] = []
        for key, rows in buffers.items():
            _write_rows(store, key, rows)
        for key, attrs in run_attrs.items():
            store.set_run_attrs(*key, attrs)
        if len(n_hidden) > 1:
            raise InputError(f"{store_path}: the part files hold clips with {sorted(n_hidden)} hidden states; "
                             f"one model gives one number.")
        if n_hidden:
            store.record_provenance({"n_hidden_states": n_hidden.pop()})
    for part in parts:
        part.unlink()
    log.info("wrote %s: merged %d rows from %d part file(s)", store_path, n_rows, len(parts))
    return True


def _write_rows(store, key, rows):
    if not rows:
        return
    rows = sorted({clip: (clip, layers, text) for clip, layers, text in rows}.values(), key=lambda r: r[0])
    index = np.array([r[0] for r in rows])
    layer_rows = [np.stack([r[1][k] for r in rows]) for k in range(len(rows[0][1]))]
    store.write_clips(*key, index, layer_rows, [r[2] for r in rows])


@contextmanager
def replaced_whole(store_path):
    """Yield the path of a temporary copy of ``store_path`` (absent when the store is) to write into; on
    success the copy is synced and renamed over the store, so a kill at any moment leaves the old store
    or the new one, never a torn one. On error the store is left as it was."""
    store_path = Path(store_path)
    tmp = store_path.with_name(f"{store_path.name}.tmp")
    if store_path.exists():
        shutil.copyfile(store_path, tmp)
    else:
        tmp.unlink(missing_ok=True)
    yield tmp
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, store_path)
    _fsync_dir(store_path.parent)


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
