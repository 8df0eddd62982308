"""labor bench: the reference path (fp32, eager, channels-first: how the published codes run)
against the default path (bf16 autocast, channels_last, optionally torch.compile), side by side
in one run, on random data of the paper's shapes (small shapes and the small arch on a CPU).

Workloads: one adapt iteration (all losses, A, B and D, the optimiser steps), one warmup
iteration, and extraction (A and B forward, then the masks artifact's per-image data at the
native resolution, copied to the host).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from labor_cli.models import build_networks, fold_frozen_batchnorm
from labor_cli.runtime import CompileFallback, configure_backends, resolve_compile, resolve_device
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
    peak_memory_gib: float | None  # CUDA only
    tflops: float
    compiled: bool = False
    host_syncs: int | None = None  # times one call makes the host wait for the GPU (CUDA only)


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
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def run_bench(arch: str | None = None, device: str = "auto", repeats: int = 5, warmup: int = 2,
              compile: str = "auto", selector_backbone: str = "separate", workloads: tuple[str, ...] = ("adapt", "warmup", "extract"),
              profile_dir: Path | None = None) -> list[Measurement]:
    """The default path is what the stages do by default (``compile`` as their --compile: auto
    compiles the training workloads on CUDA, not extraction); both paths get cuDNN autotuning,
    which the published codes switch on too. ``profile_dir``: also write where each workload's
    time goes (torch.profiler's top operators and kernels)."""
    torch_device = resolve_device(device)
    configure_backends(torch_device)
    compiled = {workload: resolve_compile(compile, torch_device, training=workload != "extract") for workload in workloads}
    on_gpu = torch_device.type == "cuda"
    arch = arch or ("deeplabv2-r101" if on_gpu else "small")
    shapes = SHAPES["paper" if arch != "small" else "small"]
    # (precision, memory format, compiled per workload, FrozenBN folded for extraction as `labor extract` does)
    paths = {"reference": ("fp32", torch.contiguous_format, dict.fromkeys(workloads, False), False),
             "default": ("bf16" if on_gpu else "fp32", torch.channels_last if on_gpu else torch.contiguous_format, compiled, True)}
    results: list[Measurement] = []
    for path_name, (precision, fmt, compile_by_workload, fold) in paths.items():
        results += _measure_path(path_name, precision, fmt, compile_by_workload, fold, arch, selector_backbone, torch_device, repeats, warmup,
                                 workloads, shapes, results, profile_dir)
        if on_gpu:
            torch.cuda.empty_cache()  # the path's networks are gone: the next path's peak is its own
    return results


def _measure_path(path_name, precision, fmt, compiled: dict[str, bool], fold: bool, arch, selector_backbone, torch_device, repeats, warmup,
                  workloads, shapes, earlier: list[Measurement], profile_dir: Path | None = None) -> list[Measurement]:
    """One path's workloads on freshly built networks (freed when this returns)."""
    source_hw, target_hw, native_hw, input_hw, batch = shapes
    results = []
    torch.manual_seed(0)
    networks = build_networks(arch, 19, selector_backbone=selector_backbone).to(torch_device, memory_format=fmt).train()
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
    def extract_step(nets):
        autocast = torch.autocast(torch_device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with autocast:
            features = nets.segmenter.features(extraction_images)
            logits = nets.segmenter.classify(features)
            heads = nets.selector(features=features) if nets.selector.shared else nets.selector(extraction_images)
        for j in range(batch):
            extract_image(logits[j], heads[0][j], heads[1][j], native_hw, None, 256, 4096)

    for workload in workloads:
        nets = networks
        if workload == "extract" and fold:  # on a copy: the training workloads keep their FrozenBNs
            nets = copy.deepcopy(networks)
            fold_frozen_batchnorm(nets)
        chosen = {"adapt": adapt_step, "warmup": warmup_step, "extract": functools.partial(extract_step, nets)}
        guard = CompileFallback(nets.called_modules(), compiled[workload])

        def fn(step=chosen[workload], guard=guard):
            return guard(step)

        ms, peak = _time(fn, torch_device, repeats, warmup + (3 if guard.active else 0))
        flops = _flops(fn) if not guard.active else next((r.tflops * r.ms / 1000 * 1e12 for r in earlier if r.workload == workload), 0.0)
        images = 2 * batch if workload != "extract" else batch
        syncs = _count_host_syncs(fn) if torch_device.type == "cuda" else None
        results.append(Measurement(workload, path_name, ms, images * 1000 / ms, peak, flops / (ms / 1000) / 1e12, guard.active, syncs))
        if profile_dir is not None:
            _profile(fn, torch_device, Path(profile_dir) / f"{path_name}-{workload}.txt")
        guard.undo()  # each workload compiles (or not) as its stage does
    return results


def _count_host_syncs(fn) -> int:
    """How many times one call of ``fn`` makes the host wait for the GPU (an item(), a copy to
    the host, a copy from pageable memory, a nonzero...), by CUDA's sync debug mode."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(warning.message) for warning in caught)


def _profile(fn, device: torch.device, path: Path) -> None:
    """torch.profiler's table of two calls of ``fn``, the operators that took most time first."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(2):
            fn()
        _synchronize(device)
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profiler.key_averages().table(sort_by=sort_by, row_limit=30, max_name_column_width=70) + "\n")


def speedups(results: list[Measurement]) -> dict[str, float]:
    reference = {r.workload: r.ms for r in results if r.path == "reference"}
    return {r.workload: reference[r.workload] / r.ms for r in results if r.path == "default"}


def print_bench(results: list[Measurement], device: str) -> None:
    from rich.table import Table

    from labor_cli.console import stdout

    table = Table("workload", "path", "ms", "images/s", "peak GiB", "TFLOP/s", "host syncs", "speed-up", title=f"labor bench on {device}")
    ups = speedups(results)
    for r in results:
        table.add_row(r.workload, r.path + (" + compile" if r.compiled else ""), f"{r.ms:.1f}", f"{r.images_per_s:.1f}",
                      "-" if r.peak_memory_gib is None else f"{r.peak_memory_gib:.2f}", f"{r.tflops:.2f}",
                      "-" if r.host_syncs is None else str(r.host_syncs), f"{ups[r.workload]:.2f}x" if r.path == "default" else "")
    stdout.print(table)


def as_json(results: list[Measurement]) -> list[dict]:
    return [asdict(r) for r in results]


def write_synthetic_cityscapes(root, images: int, size: tuple[int, int], seed: int = 0) -> None:
    """A Cityscapes-layout folder of street-like PNGs (smooth regions, edges, mild noise)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    height, width = size
    folder = Path(root) / "leftImg8bit" / "train" / "benchcity"
    folder.mkdir(parents=True, exist_ok=True)

    def draw(i: int) -> None:
        rng = np.random.default_rng([seed, i])
        y = np.linspace(0, 1, height)[:, None, None]
        image = (np.array([70, 130, 180]) * (1 - y) + np.array([128, 64, 128]) * y) * np.ones((1, width, 1))
        for _ in range(12):  # buildings, cars: flat blocks
            top, left = rng.integers(0, height // 2), rng.integers(0, width - 64)
            image[top : top + rng.integers(32, height // 2), left : left + rng.integers(32, width // 4)] = rng.integers(0, 255, 3)
        image += rng.normal(0, 4, image.shape)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"benchcity_{i:06d}_000019_leftImg8bit.png", compress_level=1)

    with ThreadPoolExecutor() as pool:
        list(pool.map(draw, range(images)))


def bench_extract_end_to_end(arch: str | None = None, device: str = "auto", images: int = 200, workers: int = 8,
                             batch_size: int = 4, selector_backbone: str = "separate", precision: str = "auto",
                             compile: str = "auto") -> dict:
    """`labor extract` on real PNG files: decoding, the networks, the masks data and the artifact written."""
    import tempfile

    from labor_cli import artifacts
    from labor_cli.artifacts import TrainingState
    from labor_cli.data.labels import class_names
    from labor_cli.options import ExtractOptions
    from labor_cli.stages.extract import run_extract

    torch_device = resolve_device(device)
    arch = arch or ("deeplabv2-r101" if torch_device.type == "cuda" else "small")
    native = SHAPES["paper" if arch != "small" else "small"][2]
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_cityscapes(Path(tmp) / "cityscapes", images, native)
        (Path(tmp) / "cityscapes" / "labor-dataset.json").write_text(
            '{"train_size": [%d, %d]}' % (native[1] // 2, native[0] // 2))
        torch.manual_seed(0)
        networks = build_networks(arch, 19, selector_backbone=selector_backbone)
        checkpoint = Path(tmp) / "model.h5"
        with artifacts.create_artifact(checkpoint, "checkpoint", {"bench": True}) as f:
            artifacts.write_checkpoint(f, networks, "cityscapes19", list(class_names("cityscapes19")),
                                       TrainingState("warmup", 0, 1, {}, {}))
        output = Path(tmp) / "masks.h5"
        started = time.perf_counter()
        result = run_extract(ExtractOptions(model=checkpoint, target=f"cityscapes:{Path(tmp) / 'cityscapes'}", output=output,
                                            device=device, precision=precision, workers=workers, batch_size=batch_size,
                                            quiet=True, compile=compile))
        seconds = time.perf_counter() - started
    return {"arch": arch, "images": images, "native_size": list(native), "workers": workers, "batch_size": batch_size,
            "selector_backbone": selector_backbone, "compile": compile, "seconds": seconds, "images_per_s": images / seconds,
            "mask_percent": result.mask_share, "bytes_per_image": result.bytes_per_image}
