"""Memory of the fast ridge: what a fit holds and per target of a batch, and how many targets go in a batch.

From the shapes alone where it can (``per_target_bytes``, ``held_bytes``, ``banded_bytes``), so that the
sweep's planner sizes a fit before it runs exactly as the solver sizes it when it runs (``batch_for``).
"""
import logging
import os

from himalaya.backend import get_backend

log = logging.getLogger(__name__)

#: Fewer targets per batch than this would make the products too thin to be worth the memory saved.
_MIN_BATCH = 64
#: On CPU backends, batches above this many targets run slower: their (r, n_batch) float64 arrays
#: fall out of cache between the elementwise passes (20% slower at 20,000 than at 5,000 targets; at
#: r = 1,280, 8,192 targets took 10.0 s CPU in batches of 2,048, 10.1 s of 1,024, 11.3 s of 4,096).
_CPU_BATCH = 2048
#: The working memory when the memory available cannot be read.
DEFAULT_MEMORY_GB = 2.0


def nbytes(array):
    if array is None:
        return 0
    if hasattr(array, "element_size"):  # torch
        return array.numel() * array.element_size()
    return array.nbytes


def decomposition_bytes(decomposition):
    """Memory a decomposition holds for the whole fit (bases, maps, couplings, blocks)."""
    held = nbytes(decomposition.X_train)
    for part in decomposition.refit or ():   # arrays, and the refit's caches of per-alpha arrays
        held += sum(nbytes(array) for array in part.values()) if isinstance(part, dict) else nbytes(part)
    for fold in decomposition.folds + ([decomposition.full] if decomposition.full else []):
        held += nbytes(fold.basis) + nbytes(fold.val_map)
        if fold.fractions is not None:
            fractions = fold.fractions
            held += sum(nbytes(array) for array in (fractions.coupling, fractions.pair_rows, fractions.pair_cols,
                                                     fractions.pair_weights))
            held += sum(nbytes(near) for _, _, near in fractions.band or ())
    return held


def per_target_bytes(form, n_train, n_test, rank, n_val, side, n_folds, n_alphas, itemsize):
    """Memory per target of a batch (see ``batch_bytes``), from the shapes of the folds."""
    side += rank if form == "kernel" else 0
    return itemsize * (n_train + 3 * n_test + side + 4 * rank + 3 * n_val) \
        + 8 * (4 * rank + n_val + 2 * n_test) + 8 * (n_folds + 1) * n_alphas


def held_bytes(n_train, n_test, splits, n_alphas, itemsize):
    """Memory the kernel form holds while it scores targets: the largest fold, and the kernels (folds 1..K-1)
    or the refit (fold 0, once the kernels are dropped).

    From the shapes only (an upper bound: the coupling counted in float64, every alpha's Schur inverse and
    test map), so the same before and after the folds are decomposed.
    """
    largest = max(len(train) * (itemsize * (len(train) + len(val)) + 8 * len(train)) for train, val in splits)
    n_val = len(splits[0][1])
    rank = len(splits[0][0])
    # stacked (A over K_test,f Q), K_test,v, K_vv, and per alpha a Schur inverse and a test map
    refit = 8 * ((n_val + n_test) * rank + n_test * n_val + n_val ** 2 + n_alphas * n_val * (n_val + n_test))
    return largest + max(8 * n_train * (n_train + n_test), refit)


def banded_bytes(n_bands, n_train, n_test, splits, n_alphas, itemsize):
    """Memory the fast banded search holds (the per-band kernels, a sample's kernel, one fold and the refit)
    and per target of a batch (a single-band kernel-form fit's, plus each band's test prediction)."""
    rank, n_val = max(len(train) for train, _ in splits), max(len(val) for _, val in splits)
    held = (n_bands + 1) * 8 * n_train * (n_train + n_test) + held_bytes(n_train, n_test, splits, n_alphas, itemsize)
    per_target = per_target_bytes("kernel", n_train, n_test, rank, n_val, rank, len(splits), n_alphas, itemsize)
    return held, per_target + 8 * (n_bands + 1) * n_test


def batch_bytes(decomposition, n_train, n_test, n_alphas, itemsize):
    """Memory a fit holds throughout (the decomposition) and per target of a batch.

    Per target a batch holds: its training and test columns, X^T Y (primal) or the gathered training
    rows and fold 0's projection (kernel), the fold's projections and validation rows, the validation
    products (direct) or float64 copies (fractions, and the kernel form's float64 refit), the test
    prediction, and float64 scores. The kernel form holds the kernels, one fold and the refit at a time
    (``held_bytes``).

    Returns
    -------
    held, per_target : int, bytes
    """
    folds = decomposition.folds
    rank = max(fold.basis.shape[1] for fold in folds + ([decomposition.full] if decomposition.full else []))
    n_val = max(len(fold.val) for fold in folds)
    side = folds[0].basis.shape[0] if decomposition.form == "primal" else max(fold.basis.shape[0] for fold in folds)
    per_target = per_target_bytes(decomposition.form, n_train, n_test, rank, n_val, side, len(folds), n_alphas,
                                  itemsize)
    if decomposition.form == "kernel":
        return held_bytes(n_train, n_test, [(fold.train, fold.val) for fold in folds], n_alphas, itemsize), per_target
    return decomposition_bytes(decomposition), per_target


def batch_size(held, per_target, memory_gb, n_targets, warn=True):
    """How many targets fit in ``memory_gb`` of working memory once ``held`` bytes are held."""
    free = memory_gb * 2 ** 30 - held
    if free < _MIN_BATCH * per_target:
        if warn:
            log.warning("memory_gb=%.2f leaves room for fewer than %d targets once the decomposition (%.2f GB) is "
                        "held; using %d (memory_gb=%.1f would give batches of 1,024)", memory_gb, _MIN_BATCH,
                        held / 2 ** 30, _MIN_BATCH, (held + 1024 * per_target) / 2 ** 30)
        return min(n_targets, _MIN_BATCH)
    return int(min(n_targets, free // per_target))


def batch_for(held, per_target, memory_gb, n_targets, n_targets_batch=None, warn=True):
    """Targets per batch of a fit: ``batch_size``'s, at most ``n_targets_batch`` and, on CPU backends,
    ``_CPU_BATCH``."""
    batch = batch_size(held, per_target, memory_gb, max(n_targets, 1), warn)
    cap = _CPU_BATCH if get_backend().name in ("numpy", "torch") else None
    return min(batch, n_targets_batch or batch, cap or batch)


def working_memory_gb(n_processes=1):
    """The default working memory: half the memory available now (the GPU's on torch_cuda), shared by the
    launcher's processes on this machine; ``DEFAULT_MEMORY_GB`` (2) when it cannot be read.

    A fixed 2 GB does not hold the kernel form's working set at 10,000 TRs (the kernels, one fold and the
    refit: about 2.5 GB at p = 17,920), which left batches of 64 targets.
    """
    backend = get_backend()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", n_processes))
    try:
        if backend.name == "torch_cuda":
            import torch
            available = torch.cuda.mem_get_info()[0]
        else:
            available = _available_memory()
    except (OSError, ValueError, RuntimeError, ImportError):
        return DEFAULT_MEMORY_GB
    return 0.5 * available / 2 ** 30 / max(local, 1)


def _available_memory():
    """Bytes of memory available to new allocations (psutil, else Linux's /proc/meminfo)."""
    try:
        import psutil
        return psutil.virtual_memory().available
    except ImportError:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    raise OSError("no MemAvailable in /proc/meminfo")
