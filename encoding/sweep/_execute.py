"""Running the pending fits of a sweep: in this process, on a local Dask cluster, or on an existing one.

Each fit is :func:`compute_fit` on a small spec; it reads its inputs from the shared file system and
writes its fit file atomically, so a fit that finished is kept whatever happens next, a worker that
dies mid-fit leaves nothing but a temporary file, and Dask retries that fit on another worker. One
progress bar counts every fit of the sweep, wherever it runs.

- No flag: the fits run here, one after another, through the same function.
- ``workers=N``: a ``LocalCluster`` of N worker processes with one thread each (Dask's nannies set
  OMP/MKL/OpenBLAS to one thread in them, and each fit limits its BLAS to one thread through threadpoolctl,
  which also holds on an existing cluster whose workers were started otherwise).
- ``scheduler=ADDRESS``: an existing cluster (e.g. started on SLURM or PBS by dask-jobqueue).

Under ``torchrun`` every process takes part in each fit (the ridge fits split their targets across the
processes) and rank 0 alone writes the fit files; that cannot be combined with Dask.
"""
import logging

from tqdm import tqdm

from features.errors import InputError

from ..ridge import MIN_CORES, SMALL_WORK, available_cores
from ._units import compute_fit

log = logging.getLogger(__name__)

#: How often Dask runs a fit again after the worker running it died.
RETRIES = 3


def run_pending(specs, work, workers=None, scheduler=None, rank=0, world=1, threads=None):
    """Compute every spec whose fit file does not exist yet; returns how many were computed.

    ``threads``: BLAS/torch threads per fit in this process (None: chosen per fit from its size); a Dask
    worker always uses one, and each of ``world`` launched processes at most its share of the cores.
    """
    pending = [spec for spec in specs if not work.done(spec["fingerprint"])]
    reused = len(specs) - len(pending)
    log.info("%d of %d fits already done in %s (reused), %d to compute", reused, len(specs), work.path,
             len(pending))
    if not pending:
        return 0
    if (workers or scheduler) and world > 1:
        raise InputError("--workers/--scheduler: a Dask sweep cannot run under torchrun or accelerate launch; "
                         "use one or the other.")
    share = max(available_cores() // world, 1) if world > 1 else None
    cores = share or available_cores()
    log.info("threads per fit: %s", "1 (one per Dask worker)" if workers or scheduler else
             f"{threads} (config 'threads')" if threads else
             f"1 (chosen: {cores} core(s) available, fewer than {MIN_CORES})" if cores < MIN_CORES else
             f"chosen per fit: 1 below {SMALL_WORK:.0e} multiply-adds, else {cores} (the cores this process may "
             f"use{', its share under the launcher' if share else ''})")
    bar = tqdm(total=len(specs), initial=reused, desc="fits", unit="fit", smoothing=0.05)
    try:
        if workers or scheduler:
            _run_dask(pending, work, workers, scheduler, bar)
        else:
            for spec in pending:
                compute_fit(spec, work.fit_path(spec["fingerprint"]), write=rank == 0, threads=threads,
                            max_threads=share, progress=rank == 0)
                bar.update()
    finally:
        bar.close()
    return len(pending)


def _run_dask(pending, work, workers, scheduler, bar):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("--workers/--scheduler: Dask is not installed; pip install \"mllm-encoding[dask]\" (or "
                         "dask[distributed]).") from None
    # Dask's own INFO lines (about thirty per run, and a dashboard hint) say nothing a user needs
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as error:
            raise InputError(f"--scheduler: no Dask scheduler answers at {scheduler} ({error}).") from None
    else:
        if not isinstance(workers, int) or workers < 1:
            raise InputError(f"--workers: expected a whole number of worker processes >= 1, found {workers!r}.")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    log.info("fitting on Dask: %s", client.dashboard_link if cluster is None else f"{workers} local workers")
    try:
        futures = [client.submit(compute_fit, spec, str(work.fit_path(spec["fingerprint"])), threads=1,
                                 key=f"fit-{spec['fingerprint']}", pure=False, retries=RETRIES)
                   for spec in pending]
        for future in as_completed(futures):
            future.result()            # a fit that failed for a reason of its own stops the sweep here
            bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
