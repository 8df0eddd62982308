"""Where and how numbers are computed: device, precision, seeds, data loading."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from labor_cli.compile_policy import COMPILE_BREAK_EVEN
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import COMPILE_CHOICES, PRECISIONS

DEVICES_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"
COMPILE_BACKEND = "inductor"  # torch.compile's backend (the tests use "eager": dynamo without code generation)


def resolve_device(spec: str, rank=None) -> torch.device:
    """``rank`` (a labor_cli.distributed.Rank): under torchrun, auto and cuda mean cuda:LOCAL_RANK."""
    if rank is not None and rank.distributed and torch.cuda.is_available():
        if spec in ("auto", "cuda"):
            spec = f"cuda:{rank.local_rank}"
        elif spec.startswith("cuda:"):
            raise LaborUsageError(
                f"--device {spec}: under torchrun use --device cuda (or auto); each process takes cuda:LOCAL_RANK"
            )
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


def resolve_compile(spec: str, device: torch.device, training: bool, iterations: int | None = None) -> bool:
    """auto = on CUDA for a training run (warmup, adapt) of at least COMPILE_BREAK_EVEN
    ``iterations`` (no count given: a long run), where compiling pays for itself; off for extract
    and evaluate (runs of minutes, which compiling could eat up) and on the CPU (the toy
    networks' steps are too short to pay for it)."""
    if spec not in COMPILE_CHOICES:
        raise LaborUsageError(f"--compile {spec!r}: use one of {', '.join(COMPILE_CHOICES)}")
    long_enough = iterations is None or iterations >= COMPILE_BREAK_EVEN
    return spec == "on" or (spec == "auto" and device.type == "cuda" and training and long_enough)


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning on CUDA: every stage feeds its networks one fixed size (the training
    crops, the extraction input), so timing the convolution algorithms once per shape pays
    (the dilated convolutions of DeepLab-v2 most of all). AdaptSegNet's training scripts, the
    published code LabOR's builds on, do the same."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class CompileFallback:
    """torch.compile on ``modules`` (nn.Module.compile, so state-dict keys stay as they are),
    with a way back: a call that raises while they are compiled is run again uncompiled, and
    compiling is given up for the rest of the run after a one-line warning. The modules are
    the ones the stage calls itself (A's features() and classify() bypass A's forward, so
    compiling A as a whole would miss them). Calls must be safe to repeat: a training step
    zeroes the gradients first and steps the optimisers last; an extraction batch only computes."""

    def __init__(self, modules, enabled: bool):
        self.modules = [module for module in modules if module is not None] if enabled else []
        for module in self.modules:
            # Static shapes: one graph per input shape (the source and the target crops, the
            # extraction input), each built once. By default a second shape makes dynamo rebuild
            # the graph with symbolic sizes, which compiles for minutes and runs slower.
            module.compile(backend=COMPILE_BACKEND, dynamic=False)

    @property
    def active(self) -> bool:
        return bool(self.modules)

    def __call__(self, fn, *args, **kwargs):
        if not self.modules:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure of compiled code: retried eagerly, and a real error raises again there
            from labor_cli.console import stderr

            root = exc  # torch wraps a compiler's own error (BackendCompilerFailed): say what went wrong underneath
            while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
                root = inner
            first_line = (str(root).strip().splitlines() or [""])[0][:200]
            stderr.print(
                f"warning: torch.compile failed ({type(root).__name__}: {first_line}); going on without it",
                soft_wrap=True,
            )
            self.undo()
            return fn(*args, **kwargs)

    def undo(self) -> None:
        for module in self.modules:
            module._compiled_call_impl = None  # what nn.Module.compile set
        self.modules = []


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
