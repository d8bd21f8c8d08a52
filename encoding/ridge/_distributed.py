"""Targets split across processes under a launcher (torchrun, ``accelerate launch``), results gathered.

A launcher sets torch.distributed's environment (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT). Each
process then fits a contiguous share of the targets and the per-target results are all-gathered, so
every process returns the full arrays. Without a launcher (WORLD_SIZE unset or 1) a process is rank 0
of 1: it owns every target and gathering is the identity, the same code path.
"""
import atexit
import os
from contextlib import contextmanager

import numpy as np


def launcher_world():
    """(rank, world_size) from the launcher's environment; (0, 1) when no launcher started us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if "RANK" not in os.environ:
        raise RuntimeError(f"ridge: WORLD_SIZE={world} is set but RANK is not; launch with torchrun or "
                           f"accelerate launch, or unset WORLD_SIZE.")
    return int(os.environ["RANK"]), world


def target_share(n_targets, rank, world):
    """The contiguous slice of targets rank ``rank`` of ``world`` fits (shares differ by at most one)."""
    return slice(n_targets * rank // world, n_targets * (rank + 1) // world)


def _process_group(on_cuda):
    """torch.distributed, its default group initialised from the environment if the launcher did not."""
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        if on_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if on_cuda else "gloo")
        # a group left to interpreter teardown aborts the process now and then ("terminate called
        # without an active exception"); the group we opened, we close, once every rank is done
        atexit.register(_close_process_group)
    return dist


@contextmanager
def main_process_first(on_cuda=False):
    """Under a launcher, rank 0 runs the block while the other ranks wait, then they run it (reusing its work).

    For work every process needs but only one may write, such as the demo data in the cache. Alone, a
    process just runs the block.
    """
    rank, world = launcher_world()
    if world > 1 and rank > 0:
        _process_group(on_cuda).barrier()
    yield
    if world > 1 and rank == 0:
        _process_group(on_cuda).barrier()


def barrier(on_cuda=False):
    """Under a launcher, wait until every process gets here; alone, return at once."""
    if launcher_world()[1] > 1:
        _process_group(on_cuda).barrier()


def _close_process_group():
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather_targets(arrays, n_targets, world, on_cuda=False):
    """All-gather per-target numpy arrays whose last axis is this rank's share of targets.

    Parameters
    ----------
    arrays : dict of name -> numpy array of shape (..., n_share)
        The same names, dtypes and leading shapes on every rank.
    n_targets : int
        Targets over all ranks.
    world : int
    on_cuda : bool
        Gather through NCCL on the current CUDA device (the torch_cuda backend), else through gloo.

    Returns
    -------
    dict of name -> numpy array of shape (..., n_targets), in rank order, identical on every rank.
    """
    import torch
    dist = _process_group(on_cuda)
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    shares = [target_share(n_targets, rank, world) for rank in range(world)]
    widest = max(share.stop - share.start for share in shares)
    gathered = {}
    for name, array in arrays.items():
        # all_gather needs equal shapes: pad every share to the widest, trim after
        padded = np.zeros(array.shape[:-1] + (widest,), dtype=array.dtype)
        padded[..., :array.shape[-1]] = array
        mine = torch.from_numpy(padded).to(device)
        parts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(parts, mine)
        gathered[name] = np.concatenate([part.cpu().numpy()[..., :share.stop - share.start]
                                         for part, share in zip(parts, shares)], axis=-1)
    return gathered
