"""Where and how numbers are computed: device, precision, seeds, data loading."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from labor_cli.errors import LaborError, LaborUsageError

DEVICES_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(spec: str, rank=None) -> torch.device:
    """``rank`` (a labor_cli.distributed.Rank): under torchrun, auto and cuda mean cuda:LOCAL_RANK."""
    if rank is not None and rank.distributed and torch.cuda.is_available():
        if spec in ("auto", "cuda"):
            spec = f"cuda:{rank.local_rank}"
        elif spec.startswith("cuda:"):
            raise LaborUsageError(f"--device {spec}: under torchrun use --device cuda (or auto); "
                                  "each process takes cuda:LOCAL_RANK")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise LaborUsageError(f"--device {spec!r}: not a device; use {DEVICES_HELP}") from exc
    if device.type not in ("cpu", "cuda"):
        raise LaborUsageError(f"--device {spec!r}: not supported; use {DEVICES_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LaborError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LaborError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def resolve_precision(spec: str, device: torch.device) -> str:
    """'bf16' or 'fp32'. auto = bf16 autocast on CUDA, fp32 on the CPU (CPU bf16 is slow)."""
    if spec not in PRECISIONS:
        raise LaborUsageError(f"--precision {spec!r}: use one of {', '.join(PRECISIONS)}")
    if spec == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return spec


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last pays on tensor-core GPUs; the CPU reference keeps the default layout."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """Data-loader workers derive their seeds from torch's per-worker seed (itself from the run's)."""
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def default_workers() -> int:
    return min(8, max(0, (os.cpu_count() or 1) - 1))
