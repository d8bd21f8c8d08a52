"""Collect odd-one-out judgments from a model into a resumable, crash-safe store.

::

    python -m encoding.triplets collect --items things.tsv --model <hf id or folder> [--images folder/] \\
        --n-triplets 100000 --out triplets/
    accelerate launch -m encoding.triplets collect ...      # batches dealt to the processes

The plan (which triplets, in which order, which are held out and repeated) follows from the items, the
sampling settings and the seed, so every process and every re-run computes the same one. Judgments are
made in fixed batches (batch ``b`` holds rows ``b * batch_size`` onwards, whatever the number of processes
or how many were already done), each appended to the process's part file when it is finished; the first
process consolidates the parts into the store (``_store.py``). A killed run loses at most the batch in
flight and the next one judges only what is missing.
"""
from __future__ import annotations

import logging
from pathlib import Path

import h5py
from tqdm import tqdm

from extractors.parts import PartWriter, part_path
from extractors.runtime import Ranks, library_versions, resolve_dtype
from features.errors import InputError

from ._items import read_items
from ._judges import JUDGE_VERSION, make_judge
from ._sampling import make_plan, read_triplet_file, sample_triplets
from ._store import check_judgment_parameters, consolidate, read_store_parameters, store_path

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = {"similarity": 4096, "chat": 8}


def collect_judgments(items, model, out, n_triplets=None, triplet_file=None, images=None, judge="auto",
                      family=None, prompt_file=None, test_fraction=0.1, repeats=None, seed=0, batch_size=None,
                      layer=-1, templates=None, dtype="auto", device=None, trust_remote_code=False,
                      progress=True) -> Path:
    """Make sure ``<out>/triplets.h5`` holds a judgment of every planned triplet; judge what is missing.

    Parameters
    ----------
    items : str or Path
        Items file (``_items.py``): names, optionally with images (then ``images`` is their folder).
    model : str or Path
        A registry name, a local model folder or a cached Hugging Face id.
    out : str or Path
        Collection folder.
    n_triplets : int, optional
        Triplets to draw uniformly with ``seed`` (or give ``triplet_file``).
    triplet_file : str or Path, optional
        Three item names per line.
    judge : {"auto", "similarity", "chat"}
        See ``_judges.make_judge``.
    test_fraction : float
        Share held out for ``evaluate``.
    repeats : int, optional
        Test triplets shown a second time in another order (default: up to 1,000).
    batch_size : int, optional
        Triplets per forward pass (recorded: it is what fixes the batches).
    dtype : {"auto", "float32", "bfloat16", "float16"}
        ``auto``: bfloat16 on GPU, float32 on CPU.

    Returns
    -------
    Path of the store.
    """
    items = read_items(items, images)
    if (n_triplets is None) == (triplet_file is None):
        raise InputError("--n-triplets / --triplets: give exactly one (how many to draw, or a triplet file).")
    if triplet_file is not None:
        triplets = read_triplet_file(triplet_file, items)
        sampling = {"method": "file", "file": str(Path(triplet_file).resolve()), "n_triplets": len(triplets)}
    else:
        triplets = sample_triplets(len(items), int(n_triplets), seed)
        sampling = {"method": "uniform", "n_triplets": int(n_triplets)}
    n_test = int(round(float(test_fraction) * len(triplets)))
    repeats = min(1000, n_test or len(triplets)) if repeats is None else int(repeats)
    plan = make_plan(triplets, test_fraction, repeats, seed, sampling)
    ranks = Ranks(device)
    device = "cpu" if str(device).startswith("cpu") else (device or ranks.device)
    judge = make_judge(model, items, judge, family, prompt_file, layer, templates, resolve_dtype(dtype, device),
                       device, trust_remote_code)
    batch_size = int(batch_size or DEFAULT_BATCH_SIZE[judge.kind])
    if batch_size < 1:
        raise InputError(f"--batch-size: expected at least 1, found {batch_size}.")
    parameters = {**judge.parameters(), "items": items.fingerprint, "n_items": len(items),
                  "sampling": plan.sampling, "batch_size": batch_size, "device_type": str(device).split(":")[0],
                  "judge_version": JUDGE_VERSION, "library_versions": library_versions()}
    path = store_path(Path(out))
    if ranks.is_main:
        if path.exists():
            check_judgment_parameters(read_store_parameters(path), parameters, path)
        consolidate(path, parameters, plan, items)   # parts left by a killed run
    ranks.wait()
    pending = _pending_batches(path, len(plan), batch_size)
    mine = pending[ranks.rank::ranks.world]
    log.info("%s: %d of %d batches of %d triplets to judge (%d on this process of %d)", path, len(pending),
             -(-len(plan) // batch_size), batch_size, len(mine), ranks.world)
    if mine:
        _judge_batches(judge, plan, mine, batch_size, path, parameters, ranks.rank, progress)
    ranks.wait()
    if ranks.is_main:
        consolidate(path, parameters, plan, items)
    ranks.wait()
    return path


def _pending_batches(path, n, batch_size) -> list:
    done = None
    if path.exists():
        with h5py.File(path, "r") as h5:
            done = h5["done"][()]
    starts = range(0, n, batch_size)
    return [b for b, start in enumerate(starts) if done is None or not done[start:start + batch_size].all()]


def _judge_batches(judge, plan, batches, batch_size, path, parameters, rank, progress):
    judge.load()
    with PartWriter(part_path(path, rank), parameters, judge.provenance(),
                    check=check_judgment_parameters) as writer:
        for b in tqdm(batches, desc="triplet batches", unit="batch", disable=not progress):
            rows = slice(b * batch_size, min((b + 1) * batch_size, len(plan)))
            scores = judge.score(plan.triplets[rows])
            writer.append_record({"first": rows.start, "n": rows.stop - rows.start}, scores.tobytes())
