"""Where an extraction process runs: its place among the processes (accelerate), the dtype its device takes,
and the versions of the libraries that compute its numbers (recorded as provenance).

The extraction runner (``extractors.run``) and the triplet judgments (``encoding.triplets``) start their
processes the same way, with these.
"""
from __future__ import annotations

from features.errors import InputError


def resolve_dtype(dtype, device) -> str:
    """The model dtype: ``auto`` (or None) is bfloat16 on a GPU and float32 elsewhere; else one of float32,
    bfloat16 or float16."""
    if dtype in (None, "auto"):
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise InputError(f"--dtype: expected auto, float32, bfloat16 or float16, found '{dtype}'.")
    return dtype


def library_versions() -> dict:
    """The versions of torch, transformers and PyAV, as recorded with every store's parameters."""
    import av
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "av": av.__version__}


class Ranks:
    """This process's place among the extraction processes (accelerate's state; one process alone).

    Parameters
    ----------
    device : str, optional
        The device asked for (``cpu``, ``cuda``, ``cuda:1``); None leaves it to accelerate.

    Attributes
    ----------
    rank, world : int
        This process's index and the number of processes.
    is_main : bool
        Whether this is the first process (the one that consolidates).
    device : str
        accelerate's device for this process (``cpu`` rather than ``cpu:0``).
    """

    def __init__(self, device=None):
        import torch
        from accelerate import PartialState

        # On CPU, accelerate joins the processes of a launcher (torchrun, accelerate launch) only when asked to.
        # A device given with its index (cuda:0) pins every process to it, so several processes can share one
        # GPU: they then meet over gloo (CPU), since NCCL refuses two processes on one GPU and accelerate would
        # give each process the GPU of its local rank. The processes exchange no tensors, only barriers.
        pinned = str(device).startswith("cuda:")
        self._state = PartialState(cpu=str(device).startswith("cpu") or pinned or not torch.cuda.is_available())
        self.rank, self.world = self._state.process_index, self._state.num_processes
        self.is_main = self._state.is_main_process
        device = self._state.device
        # "cpu:0" (what accelerate names the CPU of a rank) takes other kernels than "cpu" in transformers.
        self.device = "cpu" if device.type == "cpu" else str(device)

    def wait(self):
        """Wait until every process reaches this point (nothing to wait for alone)."""
        if self.world > 1:
            self._state.wait_for_everyone()
