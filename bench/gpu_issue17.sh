#!/usr/bin/env bash
# Issue 17's GPU measurements in one call (about 9 minutes of one H200): the kernel-form table on
# torch_cuda and one whole-brain fit, each step under its own time limit so that one slow step leaves
# the others' logs.
#
#     bash bench/gpu_issue17.sh [OUTDIR]        # OUTDIR: default $OUT, else /tmp/gpu_issue17
#
# Writes OUTDIR/<step>.log per step and OUTDIR/table.jsonl (bench/ridge_kernel.py's records). Where
# himalaya is not importable (a bare image), a wheel in .whl/ (gitignored: pip download himalaya) is
# installed to a private folder first; nothing else is installed. The rows go to BENCHMARKS.md's
# issue-17 section by hand, with the machine line each log starts with.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/gpu_issue17}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ! python3 -c "import himalaya" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_issue17: himalaya is not importable and .whl/ holds no wheel of it" >&2; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu_issue17: torch sees no CUDA device" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1

step() {   # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s): $*" | tee "$out/$name.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$out/$name.log"
}

step smoke 90 python3 bench/ridge_kernel.py --backend torch_cuda --n 1000 --targets 2000 --referee-targets 200 \
    --competitors fast,himalaya-kernel
step whole_brain 200 python3 bench/whole_brain.py --backend torch_cuda --whole
step table_5000 200 python3 bench/ridge_kernel.py --backend torch_cuda --repeat 2 --n 2000,3000,4000 --targets 5000 \
    --json "$out/table.jsonl"
step table_15000 90 python3 bench/ridge_kernel.py --backend torch_cuda --repeat 2 --n 2000 --targets 15000 \
    --json "$out/table.jsonl"
