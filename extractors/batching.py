"""How many clips run as one batch (``--batch-clips N`` or ``auto``), and the memory measurements ``auto`` rests on.

``auto`` runs the first clip alone and measures how much memory it took above what was in use before it (on
CUDA: torch's peak allocation; on the CPU: the process's peak resident memory, after resetting that mark
through ``/proc/self/clear_refs``), then fits as many clips as ``AUTO_SHARE`` of the memory free after it
holds, at most ``AUTO_MOST``. A clip's memory (its prefix cache, its instructions' rows, the towers'
activations) grows with the batch about linearly, so the first clip's need, times N, is what N clips need.
Where the measurement is not possible, ``auto`` is 1, and the log says why.
"""
from __future__ import annotations

import logging
from pathlib import Path

from features.errors import InputError

log = logging.getLogger(__name__)

AUTO = "auto"
AUTO_SHARE = 0.8  # of the memory free after the first clip
AUTO_MOST = 64  # clips per batch at most (the prefetching thread holds two batches of processed clips)
GIB = 2 ** 30


def check_batch_clips(value):
    """``value`` as a whole number >= 1, or "auto"; InputError otherwise."""
    if value == AUTO:
        return AUTO
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < 1 or str(number) != str(value).strip():
        raise InputError(f"--batch-clips: expected a whole number of clips >= 1 or 'auto', found {value!r}.")
    return number


def chunks(items, size):
    """Lists of ``size`` consecutive items (the last one shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def auto_batch_size(per_clip_bytes, free_bytes, device) -> int:
    """Clips per batch from one clip's measured memory and the memory free; logged."""
    if per_clip_bytes is None or free_bytes is None:
        log.info("--batch-clips auto: the memory of %s cannot be measured here; 1 clip per batch", device)
        return 1
    size = AUTO_MOST if per_clip_bytes <= 0 else int(AUTO_SHARE * free_bytes // per_clip_bytes)
    size = max(1, min(AUTO_MOST, size))
    log.info("--batch-clips auto: one clip took %.2f GiB of %s above the model, %.1f GiB are free: %d clips per "
             "batch (%d %% of the free memory, at most %d)", per_clip_bytes / GIB, device, free_bytes / GIB, size,
             round(100 * AUTO_SHARE), AUTO_MOST)
    return size


class PeakMemory:
    """Memory a block takes above what was in use when it started (``extra_bytes``), and what is free after it
    (``free_bytes``); both None where they cannot be measured."""

    def __init__(self, device):
        self.device = str(device)
        self.extra_bytes = self.free_bytes = None

    def __enter__(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = _reset_peak_rss()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            self.extra_bytes = torch.cuda.max_memory_allocated(self.device) - self._start
            free, _ = torch.cuda.mem_get_info(self.device)
            # memory torch holds in its cache is free for the next batch too
            self.free_bytes = free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        elif self._start is not None:
            status = _proc_status()
            self.extra_bytes = status.get("VmHWM", 0) - self._start
            self.free_bytes = _mem_available()


def _proc_status() -> dict:
    """This process's memory counters from /proc/self/status, in bytes ({} where there is none)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: int(rest.split()[0]) * 1024 for key, rest in (line.split(":", 1) for line in lines)
            if key.startswith("Vm") and rest.strip().endswith("kB")}


def _reset_peak_rss():
    """Reset the process's peak resident memory to its current one (Linux: clear_refs 5); the current, or None."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    status = _proc_status()
    return status.get("VmRSS") if "VmHWM" in status else None


def _mem_available():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
