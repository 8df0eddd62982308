"""labor bench: the reference path (fp32, eager, channels-first: how the published codes run)
against the default path (bf16 autocast, channels_last, optionally torch.compile), side by side
in one run, on random data of the paper's shapes (small shapes and the small arch on a CPU).

Workloads: one adapt iteration (all losses, A, B and D, the optimiser steps), one warmup
iteration, and extraction (A and B forward, then the masks artifact's per-image data at the
native resolution, copied to the host).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from labor_cli.models import build_networks
from labor_cli.runtime import resolve_device
from labor_cli.stages.extract import extract_image
from labor_cli.training import TrainConfig, build_optimizers, training_step

# (source (H, W), target (H, W), extraction native (H, W), extraction input (H, W), batch)
SHAPES = {
    "paper": ((720, 1280), (512, 1024), (1024, 2048), (512, 1024), 2),
    "small": ((144, 256), (128, 256), (256, 512), (128, 256), 2),
}


@dataclass
class Measurement:
    workload: str
    path: str
    ms: float
    images_per_s: float
    peak_memory_gib: float
    tflops: float


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int, warmup: int) -> tuple[float, float]:
    """Median milliseconds of ``fn`` and its peak memory (GiB, CUDA only)."""
    for _ in range(warmup):
        fn()
    _synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _synchronize(device)
        times.append((time.perf_counter() - started) * 1000)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return statistics.median(times), peak


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def run_bench(arch: str | None = None, device: str = "auto", repeats: int = 5, warmup: int = 2,
              compile_model: bool = False, selector_backbone: str = "separate", workloads: tuple[str, ...] = ("adapt", "warmup", "extract")) -> list[Measurement]:
    torch_device = resolve_device(device)
    on_gpu = torch_device.type == "cuda"
    arch = arch or ("deeplabv2-r101" if on_gpu else "small")
    source_hw, target_hw, native_hw, input_hw, batch = SHAPES["paper" if arch != "small" else "small"]
    paths = {"reference": ("fp32", torch.contiguous_format, False),
             "default": ("bf16" if on_gpu else "fp32", torch.channels_last if on_gpu else torch.contiguous_format, compile_model)}
    results = []
    for path_name, (precision, fmt, compiled) in paths.items():
        torch.manual_seed(0)
        networks = build_networks(arch, 19, selector_backbone=selector_backbone).to(torch_device, memory_format=fmt).train()
        if compiled:
            for name in ("segmenter", "selector", "discriminator"):
                getattr(networks, name).compile()
        config = TrainConfig(lr=1e-5)
        optimizers = build_optimizers(networks, config)
        generator = torch.Generator(device="cpu").manual_seed(0)
        source = {"image": torch.randn(batch, 3, *source_hw, generator=generator).to(torch_device).contiguous(memory_format=fmt),
                  "label": torch.randint(0, 19, (batch, *source_hw), generator=generator).to(torch_device)}
        target = {"image": torch.randn(batch, 3, *target_hw, generator=generator).to(torch_device).contiguous(memory_format=fmt)}
        points = [{"yx": torch.stack([torch.randint(0, target_hw[0], (40,)), torch.randint(0, target_hw[1], (40,))], 1).to(torch_device),
                   "label": torch.randint(0, 19, (40,)).to(torch_device), "size": target_hw} for _ in range(batch)]
        extraction_images = torch.randn(batch, 3, *input_hw, generator=generator).to(torch_device).contiguous(memory_format=fmt)

        def adapt_step():
            training_step(networks, optimizers, config, source, target, points, precision, adapt=True)

        def warmup_step():
            training_step(networks, optimizers, config, source, target, [], precision, adapt=False)

        @torch.no_grad()
        def extract_step():
            autocast = torch.autocast(torch_device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
            with autocast:
                features = networks.segmenter.features(extraction_images)
                logits = networks.segmenter.classify(features)
                heads = networks.selector(features=features) if networks.selector.shared else networks.selector(extraction_images)
            for j in range(batch):
                extract_image(logits[j], heads[0][j], heads[1][j], native_hw, None, 256, 4096)

        chosen = {"adapt": adapt_step, "warmup": warmup_step, "extract": extract_step}
        for workload in workloads:
            fn = chosen[workload]
            ms, peak = _time(fn, torch_device, repeats, warmup + (3 if compiled else 0))
            flops = _flops(fn) if not compiled else next((r.tflops * r.ms / 1000 * 1e12 for r in results if r.workload == workload), 0.0)
            images = 2 * batch if workload != "extract" else batch
            results.append(Measurement(workload, path_name, ms, images * 1000 / ms, peak, flops / (ms / 1000) / 1e12))
        del networks, optimizers
        if on_gpu:
            torch.cuda.empty_cache()
    return results


def speedups(results: list[Measurement]) -> dict[str, float]:
    reference = {r.workload: r.ms for r in results if r.path == "reference"}
    return {r.workload: reference[r.workload] / r.ms for r in results if r.path == "default"}


def print_bench(results: list[Measurement], device: str) -> None:
    from rich.table import Table

    from labor_cli.console import stdout

    table = Table("workload", "path", "ms", "images/s", "peak GiB", "TFLOP/s", "speed-up", title=f"labor bench on {device}")
    ups = speedups(results)
    for r in results:
        table.add_row(r.workload, r.path, f"{r.ms:.1f}", f"{r.images_per_s:.1f}", f"{r.peak_memory_gib:.2f}",
                      f"{r.tflops:.2f}", f"{ups[r.workload]:.2f}x" if r.path == "default" else "")
    stdout.print(table)


def as_json(results: list[Measurement]) -> list[dict]:
    return [asdict(r) for r in results]
