"""bench/gpu_issue30.sh, the one prepared GPU run: its control flow on the CPU.

With a stub interpreter (seconds): every step runs under its own limit, a step out of time or failing leaves the
others running and its log says so, STEPS picks steps, and --dry gives the CPU commands. The real dry run (every
step's program at tiny shapes on the CPU, the same limits) is the slow test at the end.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_issue30.sh"
STEPS = ["extract_qwen", "extract_llava", "shard", "ridge_smoke", "ridge_table", "whole_brain"]

STUB = """#!/usr/bin/env bash
case "$*" in
  *extract.py*qwen2.5-vl-7b*) sleep 20 ;;
  *extract_sharded.py*) echo "the sharded store differs"; exit 3 ;;
  *) echo "ran: $*" ;;
esac
"""


def _run(tmp_path, *args, **env):
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    environment = {**os.environ, "PY": str(stub), "GPU30_LIMIT": "2", **env}
    done = subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=60)
    return done


def _exits(out):
    return {step: int(re.search(rf"== {step}: exit (\d+)", (out / f"{step}.log").read_text()).group(1))
            for step in STEPS if (out / f"{step}.log").exists()}


def test_a_step_out_of_time_or_failing_leaves_the_others_running(tmp_path):
    out = tmp_path / "out"
    done = _run(tmp_path, "--dry", str(out))
    assert done.returncode == 0, done.stderr
    assert _exits(out) == {"extract_qwen": 124, "extract_llava": 0, "shard": 3, "ridge_smoke": 0, "ridge_table": 0,
                           "whole_brain": 0}
    assert "the sharded store differs" in (out / "shard.log").read_text()
    assert (out / "gpu.txt").read_text().startswith("dry run")


def test_dry_steps_run_on_the_cpu_at_tiny_shapes(tmp_path):
    out = tmp_path / "out"
    _run(tmp_path, "--dry", str(out))
    commands = {step: (out / f"{step}.log").read_text().splitlines()[0] for step in STEPS}
    assert all("--device cpu" in commands[s] and "--tiny" in commands[s] for s in ("extract_qwen", "extract_llava"))
    assert all("--backend torch " in commands[s] for s in ("ridge_smoke", "ridge_table", "whole_brain"))
    assert "--referee-targets" in commands["whole_brain"] and "cuda" not in "".join(commands.values())


def test_steps_picks_the_steps_to_rerun_and_out_defaults_to_OUT(tmp_path):
    out = tmp_path / "elsewhere"
    done = _run(tmp_path, "--dry", STEPS="ridge_table whole_brain", OUT=str(out))
    assert done.returncode == 0, done.stderr
    assert _exits(out) == {"ridge_table": 0, "whole_brain": 0}


def test_the_gpu_run_stops_at_once_without_a_gpu(tmp_path):
    """Not dry: the image's packages are checked, then CUDA; on this machine it ends before any step."""
    out = tmp_path / "out"
    done = _run(tmp_path, str(out), PY="python3")
    assert done.returncode == 1 and ("no CUDA device" in done.stderr or ".whl/" in done.stderr)
    assert _exits(out) == {}


@pytest.mark.slow
def test_dry_run_of_every_step_runs_the_real_programs(tmp_path):
    """The real programs at tiny shapes on the CPU (about 2 minutes on 2 cores). Plain --dry keeps the GPU's limits
    (and ran within them here at a load of 5); under a test suite's load the limits are raised, since this checks
    what the steps do, not how fast a shared CPU does it."""
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(SCRIPT), "--dry", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "PY": "python", "GPU30_LIMIT": "300"})
    assert done.returncode == 0, done.stderr
    assert _exits(out) == dict.fromkeys(STEPS, 0)
    for step in ("extract_qwen", "extract_llava"):
        log = (out / f"{step}.log").read_text()
        assert "x per-clip" in log and re.search(r"\n  2 .* True ", log)  # batch of 2: the per-clip answers
    assert "same answers True" in (out / "shard.log").read_text()
    assert "float64 referee" in (out / "whole_brain.log").read_text()
    assert len((out / "extract.jsonl").read_text().splitlines()) == 8  # 2 models x 2 modes x batches of 1 and 2
