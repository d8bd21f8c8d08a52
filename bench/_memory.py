"""Peak memory of a block of code, for the benchmarks: resident memory sampled every 5 ms (numpy, torch and
BLAS alike), and optionally numpy's own peak allocations as tracemalloc counts them."""
import os
import threading
import tracemalloc


class PeakMemory:
    """``with PeakMemory(trace=True) as memory: ...`` then ``memory.extra_gb`` (peak resident memory above
    the level at entry) and, with ``trace``, ``memory.traced_gb`` (tracemalloc's peak within the block: exact
    where the allocator's reuse hides a small run from the sampled resident set)."""

    def __init__(self, trace=False):
        self.trace = trace
        self.traced_gb = None

    def __enter__(self):
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


def rss():
    """This process's resident memory in bytes."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
