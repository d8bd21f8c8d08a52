"""The features store: one HDF5 file per (stimulus set, model).

Layout::

    /                              attrs: every parameter that changes the numbers (see PARAMETER_KEYS),
                                   and provenance that follows from them (the extractors write
                                   prompt_format, generation and n_hidden_states)
    /<instruction>                 attrs: prompt (the exact text the model was given)
    /<instruction>/<run>           attrs: order (the run's place among the stimuli), stimulus_file, n_clips
    /<instruction>/<run>/layer_<k> float (n_TR, hidden), k = 0 is the embedding output
    /<instruction>/<run>/text      utf-8 string per clip (the generated answer, "" when none)
    /<instruction>/<run>/done      bool per clip: the clip's row is written in every layer

A store opened with parameters that differ from those it was written with raises InputError naming
the file and the field, so features computed with other settings never mix silently. A compared key
added after a store was written is compared as the value it had then (LEGACY_VALUES), so an old store
is refused with one sentence when that value differs from this run's, and extended otherwise.
"""
import json
import re
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError

# Attributes that change the feature values: a store written with other values is another store.
PARAMETER_KEYS = (
    "model_id", "model_revision", "frames_per_clip", "window_s", "window_align", "tr",
    "pooling", "max_new_tokens", "dtype", "sample_rate",
    # written by the extractors (extractors/run.py): the adapter family, the extraction code's version,
    # the versions of the libraries that compute the numbers, how a last partial TR is treated, and the
    # kind of device (CPU and GPU kernels give slightly different numbers).
    "family", "extractor_version", "library_versions", "partial", "device_type", "batch_instructions",
    # the adapter's own version (bumped when one family's numbers change), and the per-frame pixel range
    # that video frames are resized into (Qwen2.5-VL-architecture and Qwen2.5-Omni adapters only)
    "adapter_version", "video_min_pixels", "video_max_pixels",
    # stores built from a word table or a per-TR table (extractors/transcript.py): the table's digest, the
    # onset offset, the context rule and the resampling
    "transcript",
)
# Compared keys recorded only since a later version: (the value every store written before then had, what
# it meant). A store without the key is compared as that value. Keys not listed here and missing from a
# store are not compared (they are recorded on the next write).
LEGACY_VALUES = {
    "batch_instructions": (False, "instructions decoded one by one"),
    "adapter_version": (1, "the first version of every adapter"),
    "video_min_pixels": (None, "the processor's own per-frame limits"),
    "video_max_pixels": (None, "the processor's own per-frame limits"),
}
_LAYER = re.compile(r"layer_(\d+)$")
_STR = h5py.string_dtype("utf-8")


class ClosedOnExit:
    """Base of the project's open files (features store, scores file, part files): ``with`` closes them."""

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_hdf5(path, what, mode="r", missing=""):
    """Open an HDF5 file; one InputError naming the file when it is absent (mode "r") or not HDF5.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file should be, for the messages ("features store", "triplet store", ...).
    mode : {"r", "a"}
        "a" creates the file (and its folder) when it is absent.
    missing : str
        Appended to the not-found sentence: how to make the file, or the flag that named it.

    Returns
    -------
    h5py.File
    """
    path = Path(path)
    if mode == "r" and not path.is_file():
        raise InputError(f"{path}: {what} not found{missing}.")
    if mode != "r":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return h5py.File(path, mode)
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 {what} ({str(err).splitlines()[0]}).") from None


class FeatureStore(ClosedOnExit):
    """Read and write one features store.

    Parameters
    ----------
    path : str or Path
        The HDF5 file.
    mode : {"r", "a"}
        "r" reads an existing store; "a" creates it or appends to it.
    parameters : dict or None
        Values for PARAMETER_KEYS (and any extra provenance). On an existing store every key given
        here that the store also records must match, else InputError.
    """

    def __init__(self, path, mode="r", parameters=None):
        self.path = Path(path)
        self._h5 = open_hdf5(self.path, "features store", mode)
        if parameters:
            self._check_or_record(parameters)

    # -- parameters -------------------------------------------------------------------------
    @property
    def parameters(self):
        """All root attributes as plain Python values."""
        return {key: from_attr(value) for key, value in self._h5.attrs.items()}

    def _check_or_record(self, parameters):
        recorded = self.parameters
        check_parameters(recorded, parameters, self.path)
        for key, value in parameters.items():
            if key not in recorded:
                self._h5.attrs[key] = to_attr(value)

    # -- reading --------------------------------------------------------------------------------
    def instructions(self):
        """Instruction names present in the store."""
        return sorted(self._h5.keys())

    def runs(self, instruction):
        """Run names of one instruction, by their ``order`` (their place among the stimuli), then name."""
        group = self._group(instruction)
        return sorted(group.keys(), key=lambda name: (int(group[name].attrs.get("order", 0)), name))

    def layers(self, instruction, run):
        """Layer indices stored for (instruction, run), ascending."""
        group = self._group(instruction, run)
        return sorted(int(m.group(1)) for m in map(_LAYER.match, group.keys()) if m)

    def prompt(self, instruction):
        """The exact prompt text the features of this instruction were computed with."""
        return from_attr(self._group(instruction).attrs.get("prompt", ""))

    def read_layer(self, instruction, run, layer):
        """Features of one layer, float32 array of shape (n_TR, hidden)."""
        group = self._group(instruction, run)
        name = f"layer_{layer}"
        if name not in group:
            raise InputError(
                f"{self.path}: field '{instruction}/{run}/{name}' does not exist; stored layers: "
                f"{self.layers(instruction, run)}."
            )
        return np.asarray(group[name][()], dtype=np.float32)

    def layer_shape(self, instruction, run, layer):
        """Shape (n_TR, hidden) of one layer, from the file's metadata (nothing is read)."""
        return tuple(self._group(instruction, run)[f"layer_{layer}"].shape)

    def read_text(self, instruction, run):
        """Generated answer per clip, list of str."""
        return [t.decode() if isinstance(t, bytes) else t for t in self._group(instruction, run)["text"][()]]

    def done(self, instruction, run):
        """Boolean completion mask per clip; all False when the run was never started."""
        try:
            return self._group(instruction, run)["done"][()].astype(bool)
        except InputError:
            return np.zeros(0, dtype=bool)

    def is_complete(self, instruction, run):
        """True when every clip of the run is written."""
        done = self.done(instruction, run)
        return done.size > 0 and bool(done.all())

    def _group(self, instruction, run=None):
        if instruction not in self._h5:
            raise InputError(f"{self.path}: field '{instruction}' does not exist; instructions stored: "
                             f"{', '.join(self.instructions()) or 'none'}.")
        if run is None:
            return self._h5[instruction]
        if run not in self._h5[instruction]:
            raise InputError(f"{self.path}: field '{instruction}/{run}' does not exist; runs stored: "
                             f"{', '.join(self.runs(instruction)) or 'none'}.")
        return self._h5[instruction][run]

    # -- writing --------------------------------------------------------------------------------
    def create_run(self, instruction, run, n_clips, hidden_sizes, prompt, dtype="float32", order=None):
        """Allocate a run's datasets (idempotent when they already exist with the same shapes).

        Parameters
        ----------
        hidden_sizes : sequence of int
            Hidden size per layer, index 0 = embedding output.
        order : int, optional
            The run's place among the stimuli (what :meth:`runs` sorts by); default: the number of runs
            the instruction already holds. Given explicitly, it does not depend on which runs were
            written first, so a resumed extraction writes the same value as an uninterrupted one.
        """
        inst = self._h5.require_group(instruction)
        if "prompt" in inst.attrs and from_attr(inst.attrs["prompt"]) != prompt:
            raise InputError(f"{self.path}: field '{instruction}' holds features for another prompt text.")
        inst.attrs["prompt"] = prompt
        if run in inst:
            group = inst[run]
            if group["done"].shape != (n_clips,):
                raise InputError(
                    f"{self.path}: field '{instruction}/{run}' has {group['done'].shape[0]} clips, "
                    f"this run has {n_clips}."
                )
            return group
        group = inst.create_group(run)
        group.attrs["order"] = len(inst) - 1 if order is None else int(order)
        for k, hidden in enumerate(hidden_sizes):
            group.create_dataset(f"layer_{k}", shape=(n_clips, hidden), dtype=dtype, chunks=(1, hidden))
        group.create_dataset("text", shape=(n_clips,), dtype=_STR)
        group.create_dataset("done", shape=(n_clips,), dtype=bool)
        return group

    def write_clips(self, instruction, run, index, layer_rows, texts=None):
        """Write rows ``index`` of every layer, then mark them done and flush.

        Parameters
        ----------
        index : slice or array of int
            Clip rows to write.
        layer_rows : sequence of arrays of shape (n_rows, hidden_k)
            One array per layer, in layer order.
        texts : sequence of str or None
        """
        group = self._group(instruction, run)
        for k, rows in enumerate(layer_rows):
            group[f"layer_{k}"][index] = rows
        if texts is not None:
            group["text"][index] = list(texts)
        # The mask is written last, so a clip counts as done only once all its rows are on disk.
        self._h5.flush()
        group["done"][index] = True
        self._h5.flush()

    def set_run_attrs(self, instruction, run, attrs):
        """Provenance attributes of one run group (e.g. the movie file it was extracted from)."""
        group = self._group(instruction, run)
        for key, value in attrs.items():
            group.attrs[key] = to_attr(value)

    def record_provenance(self, attrs):
        """Root attributes that describe the store without being compared on reopen (see PARAMETER_KEYS).

        A key already recorded keeps its value, except that a different value is an InputError: the
        store's rows would then not all be what the attribute says.
        """
        recorded = self.parameters
        for key, value in attrs.items():
            if key not in recorded:
                self._h5.attrs[key] = to_attr(value)
            elif recorded[key] != from_attr(to_attr(value)):
                raise InputError(f"{self.path}: field '{key}' was written as {recorded[key]!r}, these rows have "
                                 f"{value!r}.")

    def run_attrs(self, instruction, run):
        """The provenance attributes of one run group, as plain Python values."""
        return {key: from_attr(value) for key, value in self._group(instruction, run).attrs.items()}

    def close(self):
        self._h5.close()


def check_parameters(recorded, parameters, path):
    """Raise InputError when a parameter of PARAMETER_KEYS recorded in ``path`` differs from this run's.

    A key of LEGACY_VALUES that a written file does not record is compared as its legacy value.

    Parameters
    ----------
    recorded : dict
        What the file holds (plain Python values).
    parameters : dict
        What this run asks for.
    path : Path
        The file, for the message.
    """
    written = any(key in PARAMETER_KEYS for key in recorded)  # an existing store (or part file)
    for key, value in parameters.items():
        if key not in PARAMETER_KEYS:
            continue
        if key in recorded and recorded[key] != from_attr(to_attr(value)):
            raise InputError(
                f"{path}: field '{key}' was written as {recorded[key]!r} but this run asks for "
                f"{value!r}; use another features folder or delete the store to recompute."
            )
        if key not in recorded and written and key in LEGACY_VALUES:
            legacy, meaning = LEGACY_VALUES[key]
            if legacy != from_attr(to_attr(value)):
                raise InputError(
                    f"{path}: field '{key}' is not recorded: the file was written before it was, when it was "
                    f"{legacy!r} ({meaning}), but this run asks for {value!r}; use another features folder "
                    f"or delete the store to recompute."
                )


def to_attr(value):
    """An HDF5 attribute value: containers as sorted JSON, None as "None" (read back by ``from_attr``)."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return "None" if value is None else value


def from_attr(value):
    """A plain Python value from an attribute written by ``to_attr`` (bytes decoded, JSON containers parsed)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return None if value == "None" else value
