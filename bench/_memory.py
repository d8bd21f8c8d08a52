"""Peak memory of a block of code, for the benchmarks: resident memory sampled every 5 ms (numpy, torch and
BLAS alike), optionally numpy's own peak allocations as tracemalloc counts them, and the GPU's peak where
torch has initialised CUDA."""
import os
import sys
import threading
import tracemalloc


class PeakMemory:
    """``with PeakMemory(trace=True) as memory: ...`` then ``memory.extra_gb`` (peak resident memory above
    the level at entry) and, with ``trace``, ``memory.traced_gb`` (tracemalloc's peak within the block: exact
    where the allocator's reuse hides a small run from the sampled resident set). ``memory.gpu_gb`` is the
    peak of torch's CUDA allocations within the block above the level at entry (None where torch has not
    initialised CUDA)."""

    def __init__(self, trace=False):
        self.trace = trace
        self.traced_gb = None
        self.gpu_gb = None

    def __enter__(self):
        self._cuda = _cuda()
        if self._cuda is not None:
            self._cuda.synchronize()
            self._cuda.reset_peak_memory_stats()
            self._gpu_base = self._cuda.memory_allocated()
        self.base = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        if self.trace:
            tracemalloc.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        if self.trace:
            self.traced_gb = tracemalloc.get_traced_memory()[1] / 2 ** 30
            tracemalloc.stop()
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
        self.extra_gb = (self.peak - self.base) / 2 ** 30
        if self._cuda is not None:
            self._cuda.synchronize()
            self.gpu_gb = (self._cuda.max_memory_allocated() - self._gpu_base) / 2 ** 30


def _cuda():
    """torch.cuda where torch is imported and has a CUDA device, else None (nothing is imported here)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda


def rss():
    """This process's resident memory in bytes."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
