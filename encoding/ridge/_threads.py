"""How many BLAS (and torch) threads a fit uses, set around the fit with threadpoolctl.

OpenBLAS and MKL start one thread per core and spin while they wait for work. On small matrices the
threads cost more than they save, and on a machine other jobs are using (a shared lab server, a cluster
node) they fight those jobs for the cores: measured on a loaded 2-core machine, a 300 x 150 SVD took
0.14 s with 2 BLAS threads and 0.009 s with 1, and the embedded demo 3 min 32 s with the default threads
and 1 min 04 s with one (BENCHMARKS.md, "Threads"). Large products still gain from every core on an idle
machine. So:

- ``threads=None`` (auto): one thread when the fit's largest step is small (fewer than
  ``SMALL_WORK`` multiply-adds, about a 1,000-TR fold of 2,000 features) or when fewer than
  ``MIN_CORES`` cores are available, else every core this process may run on (``os.sched_getaffinity``,
  never more than a ``*_NUM_THREADS`` variable the user set). On 2 cores a 7B-shape fit (2,000 TRs,
  17,920 features) took 8.1-9.7 s with two threads and 8.5 s with one when idle, and 20.6-20.9 s against
  15.0 s with two busy processes beside it: two cores gain nothing from threads and lose under load;
- a number: that many, whatever the size;
- a Dask worker or a process under a launcher is given its share by the driver (one thread per worker).

Environment variables (``OMP_NUM_THREADS``...) are read by the BLAS when it loads, which is too late to
change from Python; threadpoolctl sets the running library's pool instead, and restores it afterwards.
"""
import logging
import os
import sys
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: Multiply-adds of a fit's largest step (n_train * n_features * min(n_train, n_features)) below which the
#: fit runs on one thread.
SMALL_WORK = 2e9
#: Fewer available cores than this: every fit runs on one thread.
MIN_CORES = 4


#: Thread counts a user may have set for the BLAS before starting Python: the auto choice never exceeds them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores():
    """Cores this process may run on: its CPU affinity (the CPU count where that cannot be read), at most
    what ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS`` say."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            cores = min(cores, int(value))
    return cores


def fit_threads(n_samples, n_features, threads=None):
    """The number of threads for a fit of ``n_samples`` training TRs and ``n_features`` features.

    Parameters
    ----------
    n_samples, n_features : int
    threads : int or None
        A number is used as given (at least 1); None chooses (module docstring).

    Returns
    -------
    int
    """
    if threads is not None:
        return max(int(threads), 1)
    work = float(n_samples) * float(n_features) * min(n_samples, n_features)
    cores = available_cores()
    return 1 if work < SMALL_WORK or cores < MIN_CORES else cores


@contextmanager
def limited_threads(threads):
    """Run the block with ``threads`` BLAS/OpenMP threads (threadpoolctl) and torch threads, restored after.

    ``threads`` None leaves everything as it is.
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")      # only a torch already imported is limited (the torch backends)
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=int(threads)):
        if torch is not None:
            torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)
