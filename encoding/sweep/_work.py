"""The work folder of a sweep: finished fits and cached responses, kept so the same command resumes.

Layout (beside the output folder, ``<out>.work`` unless ``work_dir`` says otherwise)::

    work.json                          the fit format and the code that wrote the folder
    subjects/<subject>-<key>.h5        one subject's preprocessed responses and ROIs (see SubjectCache)
    fits/<fingerprint>.h5              one finished fit: its per-target arrays under its scores.h5 key,
                                       and the spec it was computed from (attrs ``spec``)
    hashes.json                        content hashes of feature layers, by store file identity

Every file is written under a temporary name and renamed when complete, so a kill -9 at any moment
leaves only whole files (and temporary ones, removed by the next run). A fit's file name is the
fingerprint of everything that changes its numbers; a rerun reuses a file whose name matches and
never a file of other settings. A folder written by another fit format or another version of this
package is refused with one sentence.
"""
import functools
import hashlib
import json
import logging
import os
import pickle
from pathlib import Path

import h5py
import numpy as np

from features.errors import InputError

from ..design import SubjectData
from ..outputs.folder import pid_alive

log = logging.getLogger(__name__)

#: Bumped whenever the layout of a fit file or the meaning of its numbers changes.
FIT_FORMAT = 1


def package_version():
    from importlib import metadata
    try:
        return metadata.version("mllm-encoding")
    except metadata.PackageNotFoundError:
        return "unknown"


def digest(value):
    """A short stable fingerprint of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def content_digest(parts):
    """Content hash of a sequence of arrays (shape, dtype and bytes) and JSON-able values, in order.

    What names a finished fit by its inputs: the arrays it was computed from and its settings.
    """
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part)
            hasher.update(f"{part.shape}{part.dtype}".encode())
            hasher.update(part.tobytes())
        else:
            hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
    return hasher.hexdigest()


def array_digest(arrays):
    """Content hash of a sequence of arrays (shape, dtype and bytes)."""
    return content_digest(np.asarray(array) for array in arrays)


def file_identity(path):
    """What tells a file apart without reading it: resolved path, size and modification time."""
    path = Path(path)
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def atomic_path(path):
    """A temporary sibling of ``path`` for this process, renamed over it by :func:`publish`."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def publish(tmp, path):
    """Flush ``tmp`` to disk and rename it over ``path`` (one step: ``path`` is whole or absent)."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def remove_stale_temporaries(*folders):
    """Delete the temporary files (:func:`atomic_path`) that killed processes of this machine left in ``folders``;
    those of live processes are kept."""
    for folder in folders:
        for tmp in Path(folder).glob(".*.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)


class WorkFolder:
    """The work folder of one sweep (module docstring).

    Parameters
    ----------
    path : Path
    create : bool
        Make the folder when it does not exist (the dry run creates nothing).
    """

    def __init__(self, path, create=True):
        self.path = Path(path)
        self.writable = create
        self.fits = self.path / "fits"
        self.subjects = self.path / "subjects"
        manifest = self.path / "work.json"
        expected = {"fit_format": FIT_FORMAT, "package_version": package_version()}
        if manifest.is_file():
            try:
                found = json.loads(manifest.read_text())
            except ValueError:
                found = {}
            for key, value in expected.items():
                if found.get(key) != value:
                    raise InputError(f"{manifest}: field '{key}' is {found.get(key)!r}, this code writes {value!r}; "
                                     f"its fits are not mixed with new ones: delete {self.path} or set another "
                                     f"work_dir.")
        elif create:
            if self.path.exists() and any(self.path.iterdir()):
                raise InputError(f"{self.path}: field 'work_dir' names a folder that holds other files and no "
                                 f"work.json; choose an empty or new folder.")
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = atomic_path(manifest)
            tmp.write_text(json.dumps(expected, indent=2))
            publish(tmp, manifest)
        if create:
            self.fits.mkdir(exist_ok=True)
            self.subjects.mkdir(exist_ok=True)
            remove_stale_temporaries(self.path, self.fits, self.subjects)

    def fit_path(self, fingerprint):
        return self.fits / f"{fingerprint}.h5"

    def done(self, fingerprint):
        return self.fit_path(fingerprint).is_file()

    def specs_by_key(self):
        """Scores key -> spec of every finished fit, to say which setting changed when one is not reused."""
        found = {}
        for path in sorted(self.fits.glob("*.h5")):
            try:
                with h5py.File(path, "r") as handle:
                    spec = json.loads(handle.attrs["spec"])
            except (OSError, KeyError, ValueError):
                continue
            found.setdefault(spec["key"], spec)
        return found

    # -- content hashes of feature layers, cached by store file identity -------------------------
    def layer_hash(self, store, instruction, layer, runs):
        """Content hash of one layer of one instruction over ``runs``, cached while the store is unchanged."""
        cache_file = self.path / "hashes.json"
        try:
            cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        except ValueError:
            cache = {}
        key = digest([file_identity(store.path), instruction, int(layer), list(runs)])
        if key not in cache:
            cache[key] = array_digest(store.read_layer(instruction, run, layer) for run in runs)
            if self.writable:
                tmp = atomic_path(cache_file)
                tmp.write_text(json.dumps(cache))
                publish(tmp, cache_file)
        return cache[key]


# -- one subject's preprocessed responses -------------------------------------------------------------
def write_subject_cache(path, data, rois, dropped):
    """Write a subject's SubjectData (responses, masks, runs, space) and ROIs to ``path`` atomically.

    Returns
    -------
    str : the content hash of the responses and ROIs (part of every fit's fingerprint)
    """
    responses_hash = array_digest([data.valid, data.untestable, *data.bold])
    if data.rows is not None:   # runs cut into segments: which rows of which run each entry's design takes
        responses_hash += "-" + digest({"feature_runs": data.feature_runs, "rows": data.rows,
                                        "fit_rows": data.fit_rows})[:16]
    rois_hash = digest({name: np.asarray(index).tolist() for name, index in rois.items()})
    tmp = atomic_path(path)
    with h5py.File(tmp, "w") as handle:
        for i, bold in enumerate(data.bold):
            handle.create_dataset(f"bold/{i}", data=bold)
        handle.create_dataset("valid", data=data.valid)
        handle.create_dataset("untestable", data=data.untestable)
        group = handle.create_group("rois")
        sizes = [len(index) for index in rois.values()]
        group.create_dataset("indices", data=np.concatenate([np.asarray(i, np.int64) for i in rois.values()]))
        group.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
        handle.attrs.update(subject=data.subject, fields=json.dumps({
            "run_names": data.run_names, "stimulus_runs": data.stimulus_runs, "files": data.files,
            "n_keep": [int(n) for n in data.n_keep], "trs": data.trs, "train": data.train, "test": data.test,
            "rois": list(rois), "dropped": list(dropped),
            **({"feature_runs": data.feature_runs, "rows": [list(r) for r in data.rows],
                "fit_rows": data.fit_rows} if data.rows is not None else {})}),
            responses_hash=responses_hash, rois_hash=rois_hash)
        # the space (masker, CIFTI brain models) as pickled bytes: the work folder's version check guards them
        handle.create_dataset("space", data=np.frombuffer(pickle.dumps(data.space), dtype=np.uint8))
    publish(tmp, path)
    return f"{responses_hash}-{rois_hash}"


def read_subject_cache(path, with_space=True):
    """SubjectData, ROIs (name -> target indices), dropped ROI names and the content hash from ``path``.

    Without the space (what fits need), the last file read is kept in this process: a worker that runs
    several fits of one subject reads its responses once. Callers must not modify the arrays.
    """
    if not with_space:
        return _read_cached(str(path), os.stat(path).st_mtime_ns)
    return _read(path, with_space)


@functools.lru_cache(maxsize=1)
def _read_cached(path, mtime_ns):
    return _read(path, False)


def _read(path, with_space):
    with h5py.File(path, "r") as handle:
        fields = json.loads(handle.attrs["fields"])
        bold = [handle[f"bold/{i}"][()] for i in range(len(handle["bold"]))]
        indices, offsets = handle["rois/indices"][()], handle["rois/offsets"][()]
        rois = {name: indices[offsets[i]:offsets[i + 1]] for i, name in enumerate(fields["rois"])}
        space = pickle.loads(handle["space"][()].tobytes()) if with_space else None
        data = SubjectData(str(handle.attrs["subject"]), fields["run_names"], fields["stimulus_runs"],
                           fields["files"], fields["n_keep"], bold, handle["valid"][()], space, fields["trs"],
                           fields["train"], fields["test"], handle["untestable"][()], fields.get("feature_runs"),
                           [tuple(r) for r in fields["rows"]] if "rows" in fields else None,
                           fields.get("fit_rows"))
        content = f"{handle.attrs['responses_hash']}-{handle.attrs['rois_hash']}"
    return data, rois, fields["dropped"], content
