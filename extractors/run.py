"""Extract instruction-conditioned layer features of movie clips into a features store.

::

    python -m extractors.run --list
    python -m extractors.run --stimuli movies/ --tr 1.49 --model qwen2.5-vl --instruction caption --out features/
    accelerate launch -m extractors.run --stimuli movies/ --tr 1.49 --model qwen2.5-vl --instruction all

One store per (stimulus set, model): ``<out>/<model>.h5``, layout in ``features/store.py``. Every
parameter that changes the numbers is recorded in it, and a store (or an unfinished part file) written
with other parameters is an error. Finished clips are skipped on a re-run; a process killed at any
moment loses at most the clips it was computing (one, or a batch with ``--batch-clips``; see
``extractors/parts.py``).

Sharding: under ``accelerate launch`` the (run, clip) pairs are dealt round-robin to the processes;
each process appends to its own part file and the first process consolidates them into the store. One
process on a CPU takes the same path with one part.
"""
from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from features.errors import InputError
from features.store import FeatureStore, check_parameters
from instructions import NO_INSTRUCTION, UnknownInstructionError, load_instructions, resolve

from .batching import AUTO, PeakMemory, auto_batch_size, check_batch_clips, chunks
from .extract import POOLINGS, check_pooling, clip_features, clips_features
from .media import count_clips, iter_clips, list_runs, probe_movie
from .models import model_revision
from .parts import PartWriter, consolidate, part_path
from .registry import MODELS, adapter_class, families, resolve_model
from .runtime import Ranks, library_versions, resolve_dtype

log = logging.getLogger("extractors.run")

# Bump when a change to this package changes the numbers it writes.
EXTRACTOR_VERSION = "1"
SAMPLE_RATE = 16000
DEFAULT_MAX_NEW_TOKENS = 32


def ensure_features(stimuli, tr, model, instructions="caption", out="features", **settings) -> Path:
    """Make sure ``<out>/<model>.h5`` holds the features of every clip; extract what is missing.

    Parameters
    ----------
    stimuli : str, Path or list of paths
        A folder of movie files (one per run, natural order), one file, or a list of files.
    tr : float
        Repetition time in seconds; one clip per TR.
    model : str or Path
        A registry name (see ``python -m extractors.run --list``) or a local model folder.
    instructions : str or sequence of str
        A name, a comma list, ``all`` (the model's modality) and/or ``none`` (the no-instruction
        control). Baselines take no instruction and are stored under ``none``.
    out : str or Path
        Folder of the features stores.
    **settings
        ``family``, ``frames``, ``window``, ``align`` ("end", "start", "center"), ``pooling``,
        ``max_new_tokens``, ``dtype`` ("auto", "float32", "bfloat16", "float16"), ``device``,
        ``trust_remote_code``, ``instruction_files``, ``partial`` ("drop", "keep"), ``progress``, and
        ``name``: the store's name (default: the registry name, or the local folder's name); a registry
        name given for a local folder also gives its family. ``batch_instructions``: decode a clip's
        instructions as one batch over the shared prefix (generated_mean only; recorded in the store,
        since batched and one-by-one numbers differ at float rounding). ``video_max_pixels``: the
        per-frame pixel cap of the families that resize video frames to a budget (Qwen2.5-VL,
        VideoChat-R1, Qwen2.5-Omni; default: the model's reference budget, qwen-vl-utils' or VideoChat-R1's
        evaluation's), recorded in the store. ``batch_clips``: clips run as one batch, a whole number
        (default 1) or ``"auto"`` (as many as the free memory holds, from the first clip's need; see
        ``extractors/batching.py``); not recorded in the store (see the README: batched features equal
        per-clip ones within a stated tolerance, so stores resume with any batch size).

    Returns
    -------
    Path
        The features store.

    Raises
    ------
    InputError, UnknownInstructionError
        Bad input, in one sentence naming the file or option.
    """
    job = _Job(stimuli, tr, model, instructions, out, **settings)
    return job.run()


class _Job:
    def __init__(self, stimuli, tr, model, instructions, out, family=None, frames=None, window=None,
                 align="end", pooling=None, max_new_tokens=DEFAULT_MAX_NEW_TOKENS, dtype="auto", device=None,
                 trust_remote_code=False, instruction_files=(), partial="drop", progress=True, name=None,
                 batch_instructions=False, video_max_pixels=None, batch_clips=1):
        if not float(tr) > 0:
            raise InputError(f"--tr: expected a positive repetition time in seconds, found {tr}.")
        if name in MODELS and family is None and Path(model).is_dir():
            family = MODELS[name].family  # a registered model's weights in a local folder
        self.spec = resolve_model(model, family)
        if name:
            self.spec = replace(self.spec, name=name)
        self.adapter_class = adapter_class(self.spec)
        self.adapter_class.check_available(trust_remote_code)
        self.pooling = check_pooling(self.adapter_class, pooling)
        self.prompts = _prompts(self.spec, instructions, instruction_files)
        self.tr = float(tr)
        self.frames = int(frames or self.spec.frames)
        self.video_max_pixels = video_max_pixels
        self.video_pixels = self.adapter_class.video_pixels(self.frames, video_max_pixels)  # None: no budget
        self.window = float(window or tr)
        self.align, self.partial = align, partial
        self.max_new_tokens = int(max_new_tokens) if self.pooling == "generated_mean" else 0
        if self.pooling == "generated_mean" and self.max_new_tokens < 1:
            raise InputError(f"--max-new-tokens: expected at least 1, found {max_new_tokens}.")
        self.trust_remote_code = trust_remote_code
        # only generation gains from batching the instructions (one-pass poolings are already cheap)
        self.batch_instructions = bool(batch_instructions) and self.pooling == "generated_mean"
        self.batch_clips = check_batch_clips(batch_clips)
        self.progress = progress
        self.runs = list_runs(stimuli)
        self.run_names = [path.stem for path in self.runs]
        if len(set(self.run_names)) != len(self.run_names):
            raise InputError(f"--stimuli {stimuli}: two movie files share a name "
                             f"({', '.join(n for n in self.run_names if self.run_names.count(n) > 1)}); "
                             f"runs are named by file name without extension.")
        self.n_clips = [count_clips(path, self.tr, self.window, align, partial) for path in self.runs]
        if "audio" in self.spec.modality:
            for path in self.runs:  # before any model is loaded
                if not probe_movie(path).has_audio:
                    raise InputError(f"Movie file '{path}': audio stream: expected an audio track for "
                                     f"{self.spec.name} ({self.spec.modality}), found video only.")
        self.ranks = Ranks(device)
        self.device = "cpu" if str(device).startswith("cpu") else (device or self.ranks.device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.store = Path(out) / f"{self.spec.name}.h5"

    @property
    def parameters(self) -> dict:
        return {
            "model_id": self.spec.source, "model_name": self.spec.name, "family": self.spec.family,
            "model_revision": model_revision(self.spec.source), "frames_per_clip": self.frames,
            "window_s": self.window, "window_align": self.align, "tr": self.tr, "partial": self.partial,
            "pooling": self.pooling, "max_new_tokens": self.max_new_tokens, "dtype": self.dtype,
            "batch_instructions": self.batch_instructions, **(self.video_pixels or {}),
            "sample_rate": SAMPLE_RATE, "extractor_version": EXTRACTOR_VERSION,
            "adapter_version": self.adapter_class.version,
            "device_type": str(self.device).split(":")[0],
            "library_versions": library_versions(),
        }

    def run(self) -> Path:
        parameters = self.parameters
        if self.ranks.is_main:
            if self.store.exists():
                with FeatureStore(self.store) as store:
                    check_parameters(store.parameters, parameters, self.store)
            consolidate(self.store, parameters)  # parts left by a killed run
        self.ranks.wait()
        work = self._pending()
        mine = [item for i, item in enumerate(work) if i % self.ranks.world == self.ranks.rank]
        log.info("%s: %d clips to extract (%d on this process of %d), %d instruction(s)", self.store,
                 len(work), len(mine), self.ranks.world, len(self.prompts))
        if mine:
            self._extract(mine, parameters)
        self.ranks.wait()
        if self.ranks.is_main:
            consolidate(self.store, parameters)
        self.ranks.wait()
        return self.store

    def _pending(self) -> list:
        """(run index, clip index, [instruction names]) of every clip not yet done in the store."""
        done = {}
        if self.store.exists():
            with FeatureStore(self.store) as store:
                for name in self.prompts:
                    if name in store.instructions():
                        if store.prompt(name) != self.prompts[name]:
                            raise InputError(f"{self.store}: field '{name}' holds features for the prompt "
                                             f"{store.prompt(name)!r}, not {self.prompts[name]!r}.")
                        for run in store.runs(name):
                            done[name, run] = store.done(name, run)
        work = []
        for r, (run, n) in enumerate(zip(self.run_names, self.n_clips)):
            masks = {name: done.get((name, run), np.zeros(n, bool)) for name in self.prompts}
            for name, mask in masks.items():
                if len(mask) != n:
                    raise InputError(f"{self.store}: field '{name}/{run}' has {len(mask)} clips but "
                                     f"{self.runs[r]} now gives {n}; was the movie replaced?")
            for clip in range(n):
                names = [name for name, mask in masks.items() if not mask[clip]]
                if names:
                    work.append((r, clip, names))
        return work

    def _extract(self, mine, parameters):
        from tqdm import tqdm

        adapter = self.adapter_class(self.spec.source, self.dtype, self.device, self.trust_remote_code,
                                     video_max_pixels=self.video_max_pixels).load()
        # The run groups' attributes travel in the part file, so that rows merged after a kill get them too.
        runs = {run: {"order": r, "stimulus_file": str(path), "n_clips": n}
                for r, (run, path, n) in enumerate(zip(self.run_names, self.runs, self.n_clips))}
        by_run = {}
        for r, clip, names in mine:
            by_run.setdefault(r, {})[clip] = names
        bar = tqdm(total=len(mine), desc=f"{self.spec.name} clips", unit="clip", disable=not self.progress)
        # Clips are decoded and their processors run (frames resized, sound to spectrograms, prompts tokenized)
        # in a background thread, on the adapter's own copy of its processors, while the model runs.
        prepared = self._prepared(adapter.for_thread(), by_run)
        size = self.batch_clips
        with PartWriter(part_path(self.store, self.ranks.rank), parameters, self._provenance(adapter),
                        runs) as writer:
            if size == AUTO:
                first = next(prepared)
                with PeakMemory(adapter.device) as memory:
                    self._write(adapter, [first], writer, bar)
                size = auto_batch_size(memory.extra_bytes, memory.free_bytes, adapter.device)
            for batch in chunks(_prefetch(prepared, depth=2 * size), size):
                self._write(adapter, batch, writer, bar)
        bar.close()

    def _prepared(self, worker, by_run):
        """Each pending clip with the instructions it needs, its processors' outputs made (a Prepared whose
        ``tag`` is the run's index)."""
        for r, wanted in by_run.items():
            log.info("read %s: %d clips", self.runs[r], len(wanted))
            for clip in self._clips(r, wanted):
                item = worker.preprocess(clip, {name: self.prompts[name] for name in wanted[clip.index]})
                item.tag = r
                yield item

    def _write(self, adapter, batch, writer, bar):
        """Run one batch of prepared clips and append each clip's rows to the part file."""
        if len(batch) == 1:
            item = batch[0]
            results = [clip_features(adapter, item.clip, item.prompts, self.pooling, self.max_new_tokens,
                                     batched=self.batch_instructions, prepared=item)]
        else:
            results = clips_features(adapter, batch, self.pooling, self.max_new_tokens,
                                     batched=self.batch_instructions)
        for item, result in zip(batch, results):
            r = item.tag
            for name, features in result.items():
                writer.append(name, self.prompts[name], self.run_names[r], self.n_clips[r], item.clip.index,
                              features.layers, features.text)
            bar.update()

    def _provenance(self, adapter) -> dict:
        """Root attributes that follow from the parameters: the prompt format and how answers are decoded
        (chat families), or what the encoder's layers are (baselines)."""
        if not adapter.instructed:
            return dict(adapter.describe())
        if self.pooling == "generated_mean":
            generation = {**adapter.generation_settings(), "max_new_tokens": self.max_new_tokens,
                          "batch_instructions": self.batch_instructions}
        else:
            generation = {"decoding": f"none: {POOLINGS[self.pooling]}"}
        return {"prompt_format": adapter.describe(), "generation": generation}

    def _clips(self, r, wanted):
        needs_audio = "audio" in self.spec.modality
        for clip in iter_clips(self.runs[r], self.tr, max(self.frames, 1), self.window, self.align,
                               SAMPLE_RATE, self.partial, require_audio=needs_audio):
            if clip.index in wanted:
                yield clip


def _prompts(spec, instructions, instruction_files) -> dict:
    if not spec.instructed:
        asked = [n for n in (instructions.split(",") if isinstance(instructions, str) else instructions)
                 if n.strip() and n.strip() != NO_INSTRUCTION]
        if asked:
            log.info("%s is a baseline without instructions: its features are stored under '%s'",
                     spec.name, NO_INSTRUCTION)
        return {NO_INSTRUCTION: ""}
    modality = None if spec.modality == "audio+video" else spec.modality
    return resolve(instructions, modality, instruction_files)


def _prefetch(clips, depth=4):
    """Run the generator ``clips`` in a background thread, up to ``depth`` items ahead of the consumer."""
    buffer = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for clip in clips:
                while not stop.is_set():
                    try:
                        buffer.put(clip, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            buffer.put(err)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _list() -> str:
    lines = ["Models (name, default source, family, modality, frames per clip):"]
    for spec in MODELS.values():
        kind = "" if spec.instructed else " [baseline, no instruction]"
        lines.append(f"  {spec.name:20s} {spec.source:55s} {spec.family:20s} {spec.modality:12s} "
                     f"{spec.frames:3d}{kind}" + (f"  - {spec.note}" if spec.note else ""))
    lines.append(f"Families (for --family with a local folder): {', '.join(families())}")
    for modality in ("video", "audio"):
        lines.append(f"{modality.capitalize()} instructions:")
        lines += [f"  {name:20s} {text}" for name, text in load_instructions(modality).items()]
    lines.append(f"  {NO_INSTRUCTION:20s} (empty task: the no-instruction control; not part of 'all')")
    lines.append("Poolings: " + "; ".join(f"{k} = {v}" for k, v in POOLINGS.items()))
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m extractors.run", description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list registered models and instructions")
    parser.add_argument("--stimuli", help="folder of movie files (one per run), or one file")
    parser.add_argument("--tr", type=float, help="repetition time in seconds (one clip per TR)")
    parser.add_argument("--model", help="registry name or a local model folder (then also --family)")
    parser.add_argument("--family", help="adapter family of a local model folder")
    parser.add_argument("--instruction", default="caption",
                        help="name, comma list, 'all' and/or 'none' (no-instruction control); default caption")
    parser.add_argument("--instruction-file", action="append", default=[],
                        help="a YAML file of extra instructions (name: prompt); repeatable")
    parser.add_argument("--out", default="features", help="folder of the features stores (default features/)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the model's)")
    parser.add_argument("--window", type=float, help="clip length in seconds (default: the TR)")
    parser.add_argument("--align", default="end", choices=("end", "start", "center"),
                        help="where the window sits relative to its TR (default end)")
    parser.add_argument("--partial", default="drop", choices=("drop", "keep"),
                        help="whether a last partial TR gets a clip (default drop)")
    parser.add_argument("--pooling", choices=list(POOLINGS), help="default: generated_mean (baselines token_mean)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                        help=f"answer length cap for generated_mean (default {DEFAULT_MAX_NEW_TOKENS})")
    parser.add_argument("--batch-instructions", action="store_true",
                        help="decode a clip's instructions as one batch over the shared media prefix "
                             "(generated_mean only; faster, equal to one-by-one decoding to ~1e-6, not bit for bit)")
    parser.add_argument("--batch-clips", default="1",
                        help="clips run as one batch: a number, or 'auto' (as many as the free GPU memory holds, "
                             "sized from the first clip and logged); default 1. Features equal per-clip ones "
                             "within the README's tolerance; not a store parameter")
    parser.add_argument("--video-max-pixels", type=int,
                        help="pixels per video frame at most, for Qwen2.5-VL, VideoChat-R1 and Qwen2.5-Omni "
                             "(default: the reference video budget, 602112 for 8 frames)")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, "
                        "bfloat16, float16")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: accelerate's device for this process)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a model's own code to run (needed by Kimi-Audio)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.list:
        print(_list())
        return 0
    missing = [flag for flag, value in (("--stimuli", args.stimuli), ("--tr", args.tr), ("--model", args.model))
               if value is None]
    if missing:
        print(f"error: {', '.join(missing)} required (or --list).", file=sys.stderr)
        return 2
    try:
        store = ensure_features(
            args.stimuli, args.tr, args.model, args.instruction, args.out, family=args.family,
            frames=args.frames, window=args.window, align=args.align, pooling=args.pooling,
            max_new_tokens=args.max_new_tokens, dtype=args.dtype, device=args.device,
            trust_remote_code=args.trust_remote_code, instruction_files=args.instruction_file,
            partial=args.partial, progress=not args.quiet, batch_instructions=args.batch_instructions,
            video_max_pixels=args.video_max_pixels, batch_clips=args.batch_clips)
    except (InputError, UnknownInstructionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
