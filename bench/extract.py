"""Extraction speed, side by side: all instructions with the shared media prefix vs the naive loop.

::

    python bench/extract.py                      # small random Qwen2.5-VL on CPU, 13 video instructions
    python bench/extract.py --poolings generated_mean,prompt_mean,last_token
    python bench/extract.py --hidden 512 --layers 8 --max-pixels 200704 --device cuda

Prints, per clip and pooling: one instruction; all instructions reusing the clip's processed media and
the prefilled media prefix, one instruction after another (``batched=False``) and as one batch over the
prefix cache (``batched=True``); all instructions run naively (media processed and the whole prompt run
for each instruction); the ratios all/one and naive/shared (the issue's target: all 13 instructions at
most 3x one), and the largest difference between batched and one-by-one features (relative to the
feature's scale). Then a whole ``ensure_features`` run (batched as ``--batched`` says), with the share of
wall time spent outside ``clip_features`` (decoding in the background thread, store writes; target
under 10 %).

Random weights: answers run to ``--max-new-tokens`` (a trained model often stops earlier), so the
generated part weighs as much as it can.

**Clips in batches** (``--batch-clips``, issue 30): throughput of ``--clips`` clips run one by one
(``clip_features``, what ``--batch-clips 1`` does) against batches of N (``clips_features``), with all
``--instructions`` per clip decoded as one batch (``--modes batched``, ``--batch-instructions``) and/or one
instruction per pass (``--modes one-by-one``: then a batch of N clips decodes N rows at a time; its one clip at a
time runs on the first ``--one-by-one-clips``)::

    python bench/extract.py --model llava-onevision-0.5b --batch-clips 4 --clips 4          # CPU, full-size 0.9B
    python bench/extract.py --model llava-onevision-0.5b --batch-clips 4 --clips 4 --modes one-by-one \
        --one-by-one-clips 2
    python bench/extract.py --model qwen2.5-vl-7b --device cuda --batch-clips 4,16 --clips 16 --modes both \
        --one-by-one-clips 2 --json out.jsonl
    python bench/extract.py --model llava-onevision-7b --tiny --batch-clips 2 --clips 2     # CPU stand-in

Prints per batch size: seconds, clips/s, generated tokens/s, the ratio to one clip at a time, the largest
difference of the features from the per-clip ones (relative to each layer's largest feature) and whether
every answer is the same, and on CUDA the peak memory and the language model's prefill throughput (FLOP/s of
its forward pass over the batch's prefixes, as a fraction of the card's bf16 peak: the data sheet's and a
measured 8192^3 matrix product's). ``--model``: ``small`` (the random Qwen2.5-VL above),
``llava-onevision-0.5b`` (``bench/extract_fullsize.py``'s real architecture, built once into its cache),
``qwen2.5-vl-7b`` and ``llava-onevision-7b`` (``bench/fullsize_models.py``: random weights drawn on the device;
``--tiny`` shrinks them for a CPU dry run).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]


def _best_times(fns, repeat, clock):
    """Best time of each function over ``repeat`` rounds, the functions taking turns within a round (so a
    load change on a shared machine hits every variant alike)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = clock()
            fn()
            best[i] = min(best[i], clock() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vision-depth", type=int, default=4)
    parser.add_argument("--max-pixels", type=int, default=448 * 448,
                        help="pixels per frame at most (the adapter's video_max_pixels, and the processor's cap)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--poolings", default="generated_mean",
                        help="comma-separated, each timed in turn on the same model")
    parser.add_argument("--batched", choices=("yes", "no"), default="yes",
                        help="batched instructions in the ensure_features run")
    parser.add_argument("--skip-run", action="store_true", help="no ensure_features run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time (steadier on a shared machine; use with --threads 1)")
    throughput = parser.add_argument_group("clips in batches (issue 30)")
    throughput.add_argument("--batch-clips", help="comma-separated batch sizes > 1, timed against one clip at a time")
    throughput.add_argument("--model", default="small",
                            choices=("small", "llava-onevision-0.5b", "qwen2.5-vl-7b", "llava-onevision-7b"))
    throughput.add_argument("--tiny", action="store_true", help="the 7B architectures shrunk (CPU dry run)")
    throughput.add_argument("--clips", type=int, default=4)
    throughput.add_argument("--instructions", default="all", help="video instructions: all, or a comma list")
    throughput.add_argument("--dtype", default="auto", help="auto: bfloat16 on CUDA, float32 on the CPU")
    throughput.add_argument("--movie-size", default="720x1280", help="HEIGHTxWIDTH of the synthetic movie")
    throughput.add_argument("--modes", default="batched", choices=("batched", "one-by-one", "both"),
                            help="a clip's instructions decoded as one batch, one per pass, or both")
    throughput.add_argument("--one-by-one-batch-clips",
                            help="batch sizes > 1 of the one-instruction-per-pass mode (default: --batch-clips)")
    throughput.add_argument("--one-by-one-clips", type=int,
                            help="clips of the one-clip-at-a-time run with one instruction per pass (default all)")
    throughput.add_argument("--json", help="append one JSON record per variant to this file")
    throughput.add_argument("--cache", default=str(Path.home() / ".cache" / "mllm-encoding" / "bench"),
                            help="where llava-onevision-0.5b is built once (bench/extract_fullsize.py)")
    args = parser.parse_args(argv)
    if args.batch_clips:
        return clips_throughput(args)

    import torch

    from conftest_extractors import build_qwen2_5_vl
    from encoding.demo.movie import write_synthetic_movie
    from extractors import run as extractor_run
    from extractors.extract import clip_features
    from extractors.media import iter_clips
    from extractors.models.qwen2_5_vl import Adapter
    from instructions import load_instructions

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        folder = build_qwen2_5_vl(work / "model", hidden=args.hidden, layers=args.layers,
                                  vision_depth=args.vision_depth, max_pixels=args.max_pixels)
        movie = work / "movies" / "run-1.mp4"
        movie.parent.mkdir()
        write_synthetic_movie(movie, duration_s=6.0, seed=3, size=(480, 640))
        clip = next(iter_clips(movie, 1.5, args.frames))
        prompts = load_instructions("video")
        first = dict([next(iter(prompts.items()))])
        shared = Adapter(folder, device=args.device, video_max_pixels=args.max_pixels).load()
        naive = Adapter(folder, device=args.device, video_max_pixels=args.max_pixels).load()
        naive.shares_prefix = False
        media = shared.processor(text=[shared._prefix_text], return_tensors="pt", **shared.media_inputs(clip))
        n_media = int((media["input_ids"] == shared.model.config.video_token_id).sum())

        print(f"Qwen2.5-VL random weights: hidden {args.hidden}, {args.layers} layers, vision depth "
              f"{args.vision_depth}; {args.frames} frames -> {n_media} video tokens; max_new_tokens "
              f"{args.max_new_tokens}; device {args.device}, {args.threads} threads; best of {args.repeat}, "
              f"{args.clock} clock")
        n = len(prompts)
        for pooling in args.poolings.split(","):
            def run(adapter, chosen, batched=False):
                return lambda: clip_features(adapter, clip, chosen, pooling, args.max_new_tokens, batched=batched)

            run(shared, first)()  # warm-up
            one, sequential, batched, all_naive = _best_times(
                [run(shared, first), run(shared, prompts), run(shared, prompts, batched=True), run(naive, prompts)],
                args.repeat, clock)
            print(f" {pooling}")
            print(f"  1 instruction                            {one:8.3f} s/clip")
            for label, took in ((f"{n} instructions, shared prefix, one by one", sequential),
                                (f"{n} instructions, shared prefix, batched   ", batched)):
                print(f"  {label} {took:8.3f} s/clip  {took / one:5.2f}x one instruction, naive/this "
                      f"{all_naive / took:5.2f}x")
            print(f"  {n} instructions, naive loop               {all_naive:8.3f} s/clip  "
                  f"{all_naive / one:5.2f}x one instruction")
            a, b = run(shared, prompts)(), run(shared, prompts, batched=True)()
            diff = max(float(abs(x - y).max() / max(abs(x).max(), 1e-12))
                       for name in prompts for x, y in zip(a[name].layers, b[name].layers))
            same_text = all(a[name].text == b[name].text for name in prompts)
            print(f"  batched vs one by one: max |difference| / max |feature| {diff:.1e}, same answers: "
                  f"{same_text}")
        if args.skip_run:
            return

        inside = []
        original = extractor_run.clip_features

        def timed(*a, **kw):
            start = time.perf_counter()
            out = original(*a, **kw)
            inside.append(time.perf_counter() - start)
            return out

        pooling = args.poolings.split(",")[0]
        extractor_run.clip_features = timed
        start = time.perf_counter()
        extractor_run.ensure_features(movie, 1.5, folder, "all", work / "features", family="qwen2_5_vl",
                                      frames=args.frames, pooling=pooling, device=args.device,
                                      max_new_tokens=args.max_new_tokens, progress=False,
                                      batch_instructions=args.batched == "yes", video_max_pixels=args.max_pixels)
        total = time.perf_counter() - start
        extractor_run.clip_features = original
        print(f"  ensure_features ({pooling}, batched {args.batched}), {len(inside)} clips x {n} instructions: "
              f"{total:.2f} s wall, {100 * (1 - sum(inside) / total):.1f} % outside clip_features "
              f"(model load, decoding, store)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- clips in batches ------------------------------------------------------------------------------------------

# Dense bf16 peak of the data sheets, FLOP/s (NVIDIA H100 SXM and H200: 989.4 TFLOP/s without sparsity).
BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362.05e12}


def _adapter(args, dtype):
    """(loaded adapter, parameters of its decoder without embeddings, a description)."""
    if args.model == "small":
        from conftest_extractors import build_qwen2_5_vl
        from extractors.models.qwen2_5_vl import Adapter

        folder = build_qwen2_5_vl(Path(tempfile.mkdtemp(prefix="bench-extract-")) / "model", hidden=args.hidden,
                                  layers=args.layers, vision_depth=args.vision_depth, max_pixels=args.max_pixels)
        adapter = Adapter(folder, dtype, args.device, video_max_pixels=args.max_pixels).load()
        shutil.rmtree(folder.parent, ignore_errors=True)
        return adapter, None, f"random Qwen2.5-VL, hidden {args.hidden}, {args.layers} layers"
    if args.model == "llava-onevision-0.5b":
        from extract_fullsize import ensure_model
        from extractors.models.llava_onevision import Adapter

        folder, _ = ensure_model(args.cache)
        adapter = Adapter(folder, dtype, args.device).load()
        return adapter, None, "LLaVA-OneVision-Qwen2-0.5B architecture (bench/extract_fullsize.py), random weights"
    from fullsize_models import build

    adapter, n_decoder = build(args.model, args.device, dtype, tiny=args.tiny)
    return adapter, n_decoder, f"{args.model}{' (tiny)' if args.tiny else ''}, random weights drawn on the device"


def _sync(device):
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


class _Tokens:
    """Counts the tokens of every answer an adapter decodes, and keeps the answers' ids."""

    def __init__(self, adapter):
        self.count, self.answers, decode = 0, [], adapter.decode

        def counting(tokens):
            self.count += len(tokens)
            self.answers.append(list(tokens))
            return decode(tokens)

        adapter.decode = counting


def _worst(results, reference):
    """(max over clips, instructions and layers of max|difference| / max|feature|, every answer the same)."""
    import numpy as np

    worst, same = 0.0, True
    for got, want in zip(results, reference):
        for name in want:
            same &= got[name].text == want[name].text
            for x, y in zip(got[name].layers, want[name].layers):
                worst = max(worst, float(np.abs(x - y).max() / max(float(np.abs(y).max()), 1e-30)))
    return worst, same


def _timed_clips(adapter, counter, prepared, size, args, batched=True):
    """Run the prepared clips in batches of ``size``: (results per clip, wall s, CPU s, tokens, peak GiB)."""
    from extractors.batching import chunks
    from extractors.extract import clip_features, clips_features

    counter.count = 0
    peak = _reset_peak(args.device)
    _sync(args.device)
    start, cpu = time.perf_counter(), time.process_time()
    results = []
    for batch in chunks(prepared, size):
        if size == 1:
            item = batch[0]
            results.append(clip_features(adapter, item.clip, item.prompts, "generated_mean", args.max_new_tokens,
                                         batched=batched, prepared=item))
        else:
            results += clips_features(adapter, batch, "generated_mean", args.max_new_tokens, batched=batched)
    _sync(args.device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return results, wall, cpu, counter.count, peak()


def _reset_peak(device):
    """A function giving the peak GiB of torch's CUDA allocations since now (None off CUDA)."""
    if not str(device).startswith("cuda"):
        return lambda: None
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return lambda: torch.cuda.max_memory_allocated(device) / 2 ** 30


def _prefill_rate(adapter, n_clips, n_tokens, n_decoder, device):
    """FLOP/s of the language model's forward pass over ``n_clips`` prefixes of ``n_tokens`` (random embeddings,
    best of 2): 2 per parameter and token, plus causal attention, 2 n_layers L^2 hidden per clip."""
    import torch

    model = adapter.model.model if hasattr(adapter.model, "model") else adapter.model
    decoder = model.language_model
    config = decoder.config
    embeds = torch.randn(n_clips, n_tokens, config.hidden_size, device=device, dtype=adapter.model.dtype)
    kwargs = {}
    if adapter._mrope():
        kwargs["position_ids"] = torch.arange(n_tokens, device=device)[None, None].expand(3, n_clips, -1)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(2):
            _sync(device)
            start = time.perf_counter()
            decoder(inputs_embeds=embeds, use_cache=False, **kwargs)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    flops = n_clips * (2 * n_decoder * n_tokens + 2 * config.num_hidden_layers * n_tokens ** 2 * config.hidden_size)
    return flops / best, best


def _matmul_peak(device, size=8192):
    """A measured bf16 peak: a size^3 matrix product, mean of 10 after 3 warm-ups, FLOP/s."""
    import torch

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    _sync(device)
    return 10 * 2 * size ** 3 / (time.perf_counter() - start)


def clips_throughput(args):
    import torch

    from encoding.demo.movie import write_synthetic_movie
    from extractors.media import iter_clips
    from instructions import load_instructions, resolve

    torch.set_num_threads(args.threads)
    cuda = str(args.device).startswith("cuda")
    dtype = ("bfloat16" if cuda else "float32") if args.dtype == "auto" else args.dtype
    sizes = sorted({int(n) for n in args.batch_clips.split(",")} - {1})
    prompts = load_instructions("video") if args.instructions == "all" else resolve(args.instructions, "video")
    start = time.perf_counter()
    adapter, n_decoder, described = _adapter(args, dtype)
    built = time.perf_counter() - start
    counter = _Tokens(adapter)
    height, width = (int(v) for v in args.movie_size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-clips-"))
    try:
        movie = work / "run-1.mp4"
        write_synthetic_movie(movie, duration_s=1.5 * args.clips, seed=3, size=(height, width))
        clips = list(iter_clips(movie, 1.5, args.frames))[:args.clips]
        prepared = [adapter.preprocess(clip, prompts) for clip in clips]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n_prefix = prepared[0].inputs[""]["input_ids"].shape[1]
    name = torch.cuda.get_device_name(args.device) if cuda else f"CPU, {os.cpu_count()} cores, {args.threads} threads"
    print(f"{described}; {dtype} on {name}; built in {built:.0f} s")
    print(f"{len(clips)} clips of {args.frames} frames ({height}x{width}), {n_prefix} prefix tokens; {len(prompts)} "
          f"instructions ({args.modes}); max_new_tokens {args.max_new_tokens}; load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    _timed_clips(adapter, counter, prepared[:1], 1, args)  # warm-up (CUDA kernels, allocator)
    record = {"model": args.model, "tiny": args.tiny, "device": name, "dtype": dtype, "frames": args.frames,
              "prefix_tokens": n_prefix, "instructions": len(prompts), "max_new_tokens": args.max_new_tokens}
    if n_decoder:  # first: cheap, and kept where a large batch runs out of time or memory (CPU: the dry run)
        record.update(_prefill_report(adapter, [1] + sizes, n_prefix, n_decoder, args.device, name))
    variants = []
    if args.modes in ("batched", "both"):
        variants += [dict(batch_clips=size, clips=len(prepared)) for size in [1] + sizes]
    if args.modes in ("one-by-one", "both"):
        first = min(args.one_by_one_clips or len(prepared), len(prepared))
        one_sizes = sorted({int(n) for n in (args.one_by_one_batch_clips or args.batch_clips).split(",")} - {1})
        variants += [dict(batch_clips=size, instructions="one by one", clips=first if size == 1 else len(prepared))
                     for size in [1] + one_sizes]
    print(f"  best of {args.repeat} round(s), wall clock")
    print(f"  {'batch of clips':28s} {'s/clip':>8s} {'CPU s/clip':>10s} {'clips/s':>8s} {'tokens/s':>9s} "
          f"{'x per-clip':>10s} {'max rel diff':>12s} {'same text':>9s} {'peak GiB':>8s}", flush=True)
    reference = {}  # per mode: the results of one clip at a time
    for round_ in range(args.repeat):  # the variants take turns, so that a change of load hits them alike
        for row in variants:
            try:
                results, wall, cpu, tokens, peak = _timed_clips(adapter, counter, prepared[:row["clips"]],
                                                                row["batch_clips"], args,
                                                                batched="instructions" not in row)
            except torch.cuda.OutOfMemoryError as err:
                row["error"] = f"out of GPU memory: {str(err).splitlines()[0]}"
                torch.cuda.empty_cache()
                continue
            mode = row.get("instructions", "batched")
            reference.setdefault(mode, results)
            if wall < row.get("wall", float("inf")):
                row.update(wall=wall, cpu=cpu, tokens=tokens, peak_gib=peak)
            row["worst"], row["same"] = _worst(results, reference[mode])
            if round_ == args.repeat - 1:
                first = next(v for v in variants if v.get("instructions", "batched") == mode)
                _print_row(row, first, args.json, record)
    return variants


def _print_row(row, first, path, record):
    """One variant's line (and JSON record): its rates and its speed-up over one clip at a time (``first``, in
    the same mode); its features' difference from that run's, on the clips both ran."""
    label = f"{row['batch_clips']}" + (", one instruction per pass" if row.get("instructions") else "")
    if "wall" not in row:
        print(f"  {label:28s} {row.get('error', 'not run')}", flush=True)
    else:
        n = row["clips"]
        row.update(seconds_per_clip=row["wall"] / n, clips_per_s=n / row["wall"],
                   tokens_per_s=row["tokens"] / row["wall"], speedup=first["wall"] / first["clips"] / (row["wall"] / n))
        print(f"  {label:28s} {row['seconds_per_clip']:8.3f} {row['cpu'] / n:10.3f} {row['clips_per_s']:8.3f} "
              f"{row['tokens_per_s']:9.1f} {row['speedup']:10.2f} "
              f"{'-' if row['worst'] is None else format(row['worst'], '.1e'):>12s} {str(row['same']):>9s} "
              f"{'-' if row['peak_gib'] is None else format(row['peak_gib'], '.1f'):>8s}", flush=True)
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({**record, **row}) + "\n")


def _prefill_report(adapter, sizes, n_prefix, n_decoder, device, name):
    """The language model's prefill FLOP/s at each batch size, against a measured and the data sheet's bf16 peak."""
    import torch

    cuda = str(device).startswith("cuda")
    size = 8192 if cuda else 512
    measured = _matmul_peak(device, size)
    sheet = next((v for k, v in BF16_PEAK.items() if k in name), None)
    report = {"matmul_bf16_flops_per_s": measured, "sheet_bf16_flops_per_s": sheet,
              "model_gib": torch.cuda.memory_allocated(device) / 2 ** 30 if cuda else None}
    print(("" if not cuda else f"  GPU memory held by the model: {report['model_gib']:.1f} GiB; ")
          + f"  a {size}^3 bf16 product: {measured / 1e12:.2f} TFLOP/s"
          + ("" if sheet is None else f" (data sheet: {sheet / 1e12:.0f})"))
    for n_clips in sizes:
        try:
            rate, took = _prefill_rate(adapter, n_clips, n_prefix, n_decoder, device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            print(f"  prefill of {n_clips} x {n_prefix} tokens: out of GPU memory")
            continue
        report[f"prefill_{n_clips}"] = dict(flops_per_s=rate, seconds=took, of_matmul=rate / measured,
                                         of_sheet=None if sheet is None else rate / sheet)
        print(f"  prefill of {n_clips} x {n_prefix} tokens (language model): {took:.3f} s, {rate / 1e12:.2f} TFLOP/s = "
              f"{rate / measured:.0%} of the measured product" + ("" if sheet is None else
                                                                   f", {rate / sheet:.0%} of the data sheet's"),
              flush=True)
    return report


if __name__ == "__main__":
    main()
