"""Several processes (``torchrun --nproc_per_node N``): who this process is, and the few collectives labor uses.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; :func:`start` reads them, joins the process group
(NCCL on CUDA, gloo on the CPU) and yields a :class:`Rank` that the stages receive explicitly.
Without torchrun it yields ``Rank()`` and creates no process group, and every helper below does
nothing: one process runs as if distributed training did not exist. Under torchrun even one process joins a group
(of one), so that ``torchrun --nproc_per_node 1`` checks the multi-process path on a machine
with one GPU.

Small host-side traffic (flags, loss values, extraction results) goes through a gloo group
even when the gradients go through NCCL, so it never touches GPU memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist

from labor_cli.errors import LaborError

# How long a collective may wait for the other processes (rank 0 writing a checkpoint or a round
# of masks while the others wait, a rank that died): then it fails instead of hanging.
TIMEOUT = datetime.timedelta(minutes=15)
_BUCKET = 1 << 24  # gradient elements per all-reduce (64 MiB of fp32)


@dataclass(frozen=True)
class Rank:
    """This process's place among the processes of one run; ``Rank()`` is a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    host_group: Any = field(default=None, compare=False, repr=False)  # gloo group for host-side objects
    torchrun: bool = False  # started by torchrun: in a process group even when alone in it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.torchrun


def from_environment() -> Rank:
    """The rank torchrun describes in the environment, without joining any group."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise LaborError(f"WORLD_SIZE/RANK/LOCAL_RANK: not integers ({exc})") from None
    torchrun = "TORCHELASTIC_RUN_ID" in os.environ  # set by torchrun, whatever the number of processes
    if world_size <= 1 and not torchrun:
        return Rank()
    if not 0 <= rank < world_size:
        raise LaborError(f"RANK {rank} is outside WORLD_SIZE {world_size}")
    return Rank(rank, world_size, local_rank, torchrun=torchrun)


def backend_for(device_spec: str) -> str:
    """NCCL when the run computes on CUDA, gloo on the CPU."""
    return "nccl" if device_spec != "cpu" and torch.cuda.is_available() else "gloo"


@contextlib.contextmanager
def start(device_spec: str) -> Iterator[Rank]:
    """Join torchrun's process group for the length of a stage (nothing to join with one process)."""
    rank = from_environment()
    if not rank.distributed:
        yield rank
        return
    if not torch_dist.is_available():
        raise LaborError("this torch build has no torch.distributed; run one process")
    backend = backend_for(device_spec)
    if backend == "nccl":
        if rank.local_rank >= torch.cuda.device_count():
            raise LaborError(
                f"LOCAL_RANK {rank.local_rank}: only {torch.cuda.device_count()} CUDA device(s) here; "
                "start at most that many processes per node"
            )
        torch.cuda.set_device(rank.local_rank)
    torch_dist.init_process_group(backend, rank=rank.rank, world_size=rank.world_size, timeout=TIMEOUT)
    try:
        host_group = torch_dist.new_group(backend="gloo", timeout=TIMEOUT) if backend == "nccl" else None
        yield dataclasses.replace(rank, backend=backend, host_group=host_group)
        # Leave together: a process that tore down gloo while rank 0 was still writing the artifact
        # was seen to abort ("terminate called without an active exception"). Not on an error,
        # where the others may never get here.
        torch_dist.barrier(group=host_group)
    finally:
        torch_dist.destroy_process_group()


def barrier(rank: Rank) -> None:
    if rank.distributed:
        torch_dist.barrier(group=rank.host_group)


def all_reduce_sum(tensor: torch.Tensor, rank: Rank) -> torch.Tensor:
    """In place, over all ranks: a device tensor on the main group, a CPU tensor on the host group."""
    if rank.distributed:
        group = rank.host_group if tensor.device.type == "cpu" else None
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM, group=group)
    return tensor


def any_rank(flag: bool, rank: Rank) -> bool:
    """True on every rank when it is true on one (a stop request, say)."""
    if not rank.distributed:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX, group=rank.host_group)
    return bool(value.item())


def gather_to_main(obj: Any, rank: Rank) -> list | None:
    """Every rank's ``obj``, in rank order, on rank 0 (None on the others)."""
    if not rank.distributed:
        return [obj]
    gathered = [None] * rank.world_size if rank.is_main else None
    torch_dist.gather_object(obj, gathered, dst=0, group=rank.host_group)
    return gathered


def broadcast_parameters(module: torch.nn.Module, rank: Rank) -> None:
    """Rank 0's parameters and buffers everywhere (what DistributedDataParallel does at the start)."""
    if rank.distributed:
        for tensor in list(module.parameters()) + list(module.buffers()):
            torch_dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: list[torch.Tensor], rank: Rank) -> None:
    """Replace each gradient by its mean over the ranks (DistributedDataParallel's averaging).

    Parameters without a gradient are left out; which ones have none is the same on every rank
    (it depends on the options, not on the data).
    """
    if not rank.distributed:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0
    for grad in grads + [None]:
        if grad is not None and (not bucket or (grad.dtype == bucket[0].dtype and size + grad.numel() <= _BUCKET)):
            bucket.append(grad)
            size += grad.numel()
            continue
        if bucket:
            flat = torch.cat([g.reshape(-1) for g in bucket])
            torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
            flat /= rank.world_size
            for g, chunk in zip(bucket, flat.split([g.numel() for g in bucket])):
                g.copy_(chunk.view(g.shape))
        bucket, size = ([grad], grad.numel()) if grad is not None else ([], 0)


def check_in_sync(module: torch.nn.Module, rank: Rank, what: str) -> None:
    """Fail loudly if the ranks' copies of the weights have drifted apart (they never should)."""
    if not rank.distributed:
        return
    with torch.no_grad():
        checksum = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().cpu().reshape(1)
    low, high = checksum.clone(), checksum.clone()
    torch_dist.all_reduce(low, op=torch_dist.ReduceOp.MIN, group=rank.host_group)
    torch_dist.all_reduce(high, op=torch_dist.ReduceOp.MAX, group=rank.host_group)
    if not torch.equal(low, high):
        raise LaborError(
            f"{what}: the processes' weights differ (checksums {low.item()!r} to {high.item()!r}); "
            "this is a bug in labor's gradient synchronisation"
        )


def results_in_order(loader, rounds: int, compute, rank: Rank):
    """Per round, the (index, result) of every item of the round in order: on rank 0 gathered
    from all processes, on the others (after sending theirs) an empty list."""
    batches = iter(loader)
    for _ in range(rounds):
        batch = next(batches, None)  # a process's blocks run out before the others' do, never after
        local = compute(batch) if batch is not None else []
        if rank.distributed:
            gathered = gather_to_main(local, rank)
            local = [item for part in gathered for item in part] if rank.is_main else []
        yield local
