"""labor bench: the reference path against the default path, eager and compiled, side by side.

The reference path is fp32, eager and channels-first (how the published codes run); the default
path bf16 autocast and channels_last. They run on random data of the paper's shapes (small shapes
and the small arch on a CPU).

Workloads: one adapt iteration (all losses, A, B and D, the optimiser steps), one warmup
iteration, and extraction (A and B forward, then the masks artifact's per-image data at the
native resolution, copied to the host).

Every timing comes before any profile: a torch.profiler session on CUDA can leave its tracing
attached and slow every later kernel launch (CUPTI is not torn down by default).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labor_cli.compile_policy import compile_break_even
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.extraction.scores import extract_image, network_outputs
from labor_cli.models import build_networks, fold_frozen_batchnorm
from labor_cli.options import BenchOptions, ExtractOptions, TrainConfig, resolve_workers
from labor_cli.runtime import CompileFallback, autocast, configure_backends, resolve_compile, resolve_device
from labor_cli.training.steps import StepSettings, TrainingBatch, build_optimizers, training_step

# (source (H, W), target (H, W), extraction native (H, W), extraction input (H, W), batch)
SHAPES = {
    "paper": ((720, 1280), (512, 1024), (1024, 2048), (512, 1024), 2),
    "small": ((144, 256), (128, 256), (256, 512), (128, 256), 2),
}
WORKLOADS = ("adapt", "warmup", "extract")


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
    first_call_s: float = 0.0  # the first call alone: cuDNN's autotuning, and compiling when compiled
    compile_s: float | None = None  # compiled: its first call's time beyond an ordinary call's
    break_even_iterations: float | None = None  # compiled: calls after which compiling has paid (None: never)
    gpu_busy_ms: float | None = None  # with a profile: kernel time per call (ms well above it: the host is the limit)

    @property
    def label(self) -> str:
        return self.path + (" + compile" if self.compiled else "")


@dataclass
class BenchPath:
    """How one path runs: precision, memory format, and FrozenBN folded for extraction (as
    `labor extract` does)."""

    name: str
    precision: str
    memory_format: torch.memory_format
    fold_for_extraction: bool


@dataclass(frozen=True)
class BenchPlan:
    """What every path of one bench run shares: the device, the arch and its shapes, the workloads."""

    device: torch.device
    arch: str
    selector_backbone: str
    shapes: tuple  # as in SHAPES
    workloads: tuple[str, ...]
    paths: tuple[BenchPath, ...]
    compiled: tuple[str, ...]  # the workloads compiled beside the default path's eager rows

    def compiled_on(self, path: BenchPath) -> tuple[str, ...]:
        return self.compiled if path.name == "default" else ()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_call(fn, device: torch.device) -> float:
    """Seconds of one call, the first: where compiling and cuDNN's autotuning happen."""
    _synchronize(device)
    started = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - started


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


def _plan(arch: str | None, device: str, compile: str, selector_backbone: str, workloads: tuple[str, ...]) -> BenchPlan:
    """The paper's shapes and DeepLab-v2 ResNet-101 on CUDA, the small ones on a CPU (unless --arch)."""
    torch_device = resolve_device(device)
    on_gpu = torch_device.type == "cuda"
    arch = arch or ("deeplabv2-r101" if on_gpu else "small")
    paths = (
        BenchPath("reference", "fp32", torch.contiguous_format, False),
        BenchPath(
            "default", "bf16" if on_gpu else "fp32", torch.channels_last if on_gpu else torch.contiguous_format, True
        ),
    )
    compiled = tuple(w for w in workloads if resolve_compile(compile, torch_device, training=w != "extract"))
    shapes = SHAPES["paper" if arch != "small" else "small"]
    return BenchPlan(torch_device, arch, selector_backbone, shapes, tuple(workloads), paths, compiled)


def time_workloads(
    arch: str | None = None,
    device: str = "auto",
    repeats: int = 5,
    warmup: int = 2,
    compile: str = "auto",
    selector_backbone: str = "separate",
    workloads: tuple[str, ...] = WORKLOADS,
) -> list[Measurement]:
    """The reference path, the default path eager, and the default path compiled for the
    workloads ``compile`` compiles (as the stages' --compile: auto compiles warmup and adapt on
    CUDA, as a long run does; on, all; off, none). Both paths get cuDNN autotuning, which the
    published codes switch on too."""
    plan = _plan(arch, device, compile, selector_backbone, workloads)
    configure_backends(plan.device)
    results: list[Measurement] = []
    for path in plan.paths:
        results += _measure_path(path, plan, repeats, warmup)
        if plan.device.type == "cuda":
            torch.cuda.empty_cache()  # the path's networks are gone: the next path's peak is its own
    return results


def profile_bench(
    results: list[Measurement],
    profile_dir: Path,
    arch: str | None = None,
    device: str = "auto",
    compile: str = "auto",
    selector_backbone: str = "separate",
    workloads: tuple[str, ...] = WORKLOADS,
) -> None:
    """Each row of ``run_bench`` (same arguments) again, under torch.profiler: where its time
    goes, in DIR/PATH[-compiled]-WORKLOAD.txt, and its GPU busy time per call, set in the row.
    Call it after every timing (see the module docstring)."""
    plan = _plan(arch, device, compile, selector_backbone, workloads)
    configure_backends(plan.device)
    for path in plan.paths:
        _profile_path(path, plan, results, Path(profile_dir))


def _prepare(
    path: BenchPath, plan: BenchPlan
) -> dict[str, Callable[[], tuple[Callable[[], None], list[torch.nn.Module]]]]:
    """Freshly built networks (seed 0) and random data of the shapes; per workload, a function
    that gives one call of it and the modules its stage compiles."""
    source_hw, target_hw, native_hw, input_hw, batch = plan.shapes
    fmt, torch_device = path.memory_format, plan.device
    torch.manual_seed(0)
    networks = build_networks(plan.arch, 19, selector_backbone=plan.selector_backbone)
    networks = networks.to(torch_device, memory_format=fmt).train()
    config = TrainConfig(lr=1e-5)
    optimizers = build_optimizers(networks, config)
    generator = torch.Generator(device="cpu").manual_seed(0)
    source = {
        "image": torch.randn(batch, 3, *source_hw, generator=generator).to(torch_device).contiguous(memory_format=fmt),
        "label": torch.randint(0, 19, (batch, *source_hw), generator=generator).to(torch_device),
    }
    target = {
        "image": torch.randn(batch, 3, *target_hw, generator=generator).to(torch_device).contiguous(memory_format=fmt)
    }
    points = [
        {
            "yx": torch.stack([torch.randint(0, target_hw[0], (40,)), torch.randint(0, target_hw[1], (40,))], 1).to(
                torch_device
            ),
            "label": torch.randint(0, 19, (40,)).to(torch_device),
            "size": target_hw,
        }
        for _ in range(batch)
    ]
    extraction_images = (
        torch.randn(batch, 3, *input_hw, generator=generator).to(torch_device).contiguous(memory_format=fmt)
    )
    inference = networks

    def adapt_step():
        inputs, settings = TrainingBatch(source, target, points), StepSettings(path.precision, adapt=True)
        training_step(networks, optimizers, config, batch=inputs, settings=settings)

    def warmup_step():
        inputs, settings = TrainingBatch(source, target, []), StepSettings(path.precision, adapt=False)
        training_step(networks, optimizers, config, batch=inputs, settings=settings)

    @torch.no_grad()
    def extract_step():
        with autocast(torch_device, path.precision):
            logits, heads = network_outputs(inference, extraction_images)
        for j in range(batch):
            extract_image(logits[j], heads[0][j], heads[1][j], native_hw, None, 256, 4096)

    def extraction():
        nonlocal inference
        # A folded copy, made now: the training rows' peak memory is their own.
        if path.fold_for_extraction and inference is networks:
            inference = copy.deepcopy(networks)
            fold_frozen_batchnorm(inference)
        return extract_step, inference.called_modules()

    return {
        "adapt": lambda: (adapt_step, networks.called_modules()),
        "warmup": lambda: (warmup_step, networks.called_modules()),
        "extract": extraction,
    }


def _measure_path(path: BenchPath, plan: BenchPlan, repeats: int, warmup: int) -> list[Measurement]:
    """One path's workloads on freshly built networks (freed when this returns): eager, then
    compiled for the workloads the plan compiles on this path."""
    from labor_cli.console import stderr

    torch_device, batch = plan.device, plan.shapes[4]
    prepared = _prepare(path, plan)
    results = []
    for workload in plan.workloads:
        step, modules = prepared[workload]()
        images = 2 * batch if workload != "extract" else batch
        for compile_it in (False, True) if workload in plan.compiled_on(path) else (False,):
            guard = CompileFallback(modules, compile_it)

            def fn(step=step, guard=guard):
                return guard(step)

            first = _first_call(fn, torch_device)
            ms, peak = _time(fn, torch_device, repeats, warmup)
            eager = next((r for r in results if r.workload == workload and not r.compiled), None)
            flops = _flops(fn) if not guard.active else eager.tflops * eager.ms / 1000 * 1e12
            syncs = _count_host_syncs(fn) if torch_device.type == "cuda" else None
            row = Measurement(
                workload,
                path.name,
                ms,
                images * 1000 / ms,
                peak,
                flops / (ms / 1000) / 1e12,
                guard.active,
                syncs,
                first,
            )
            # What compiling adds: its first call beyond an ordinary compiled call (autotuning was done eagerly).
            if guard.active:
                row.compile_s = max(0.0, first - ms / 1000)
                calls = compile_break_even(row.compile_s, eager.ms, ms)
                row.break_even_iterations = None if math.isinf(calls) else calls
            guard.undo()  # each workload compiles (or not) as its stage does
            results.append(row)
            stderr.print(f"bench: {workload} {row.label}: {ms:.1f} ms, first call {first:.1f} s", soft_wrap=True)
    return results


def _profile_path(path: BenchPath, plan: BenchPlan, results: list[Measurement], profile_dir: Path) -> None:
    """Each of the path's rows again, under torch.profiler: DIR/PATH[-compiled]-WORKLOAD.txt,
    and the row's GPU busy time per call."""
    prepared = _prepare(path, plan)
    for workload in plan.workloads:
        step, modules = prepared[workload]()
        for compile_it in (False, True) if workload in plan.compiled_on(path) else (False,):
            guard = CompileFallback(modules, compile_it)

            def fn(step=step, guard=guard):
                return guard(step)

            fn()  # compiled again if need be, outside the profile
            name = f"{path.name}{'-compiled' if compile_it else ''}-{workload}.txt"
            busy_ms = _profile(fn, plan.device, profile_dir / name)
            for row in results:
                if (row.workload, row.path, row.compiled) == (workload, path.name, compile_it):
                    row.gpu_busy_ms = busy_ms
            guard.undo()


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


PROFILED_CALLS = 2


def _profile(fn, device: torch.device, path: Path) -> float | None:
    """torch.profiler's table of PROFILED_CALLS calls of ``fn``, the operators that took most
    time first; returns the GPU's busy time per call in ms (CUDA only)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(PROFILED_CALLS):
            fn()
        _synchronize(device)
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    averages = profiler.key_averages()
    path.write_text(averages.table(sort_by=sort_by, row_limit=30, max_name_column_width=70) + "\n")
    if device.type != "cuda":
        return None
    from torch.autograd import DeviceType

    kernels = [
        event for event in averages if event.device_type != DeviceType.CPU
    ]  # as the table's "Self CUDA time total"
    return sum(event.self_device_time_total for event in kernels) / 1000 / PROFILED_CALLS


def speedups(results: list[Measurement]) -> dict[str, float]:
    """Reference time over each other row's, by workload (``WORKLOAD + compile`` for compiled rows)."""
    reference = {r.workload: r.ms for r in results if r.path == "reference"}
    return {
        r.workload + (" + compile" if r.compiled else ""): reference[r.workload] / r.ms
        for r in results
        if r.path != "reference"
    }


@dataclass
class BenchReport:
    """What one `labor bench` measured: the networks' rows (and extract end to end), or --pipeline's."""

    device: str  # the device's name (an NVIDIA H100 ..., cpu)
    results: list[Measurement]
    end_to_end: dict | None = None  # --e2e-images
    pipeline: Any = None  # --pipeline's report (labor_cli.pipeline_bench), instead of the rows


def run_bench(options: BenchOptions) -> BenchReport:
    """`labor bench`: every timing first, then the profiles (a profiler session on CUDA can slow
    what runs after it); --pipeline times the loader and the writer alone."""
    if options.pipeline:
        report = bench_pipeline(options.pipeline_images, options.pipeline_size, options.batch_size, options.device)
        return BenchReport(report.device, [], pipeline=report)
    profile = Path(options.profile) if options.profile else None
    if profile and profile.exists() and not profile.is_dir():  # before any timing
        raise LaborError(f"{profile}: is a file, expected a folder to write into")
    arch, device, compile, backbone = options.arch, options.device, options.compile, options.selector_backbone
    results = time_workloads(arch, device, options.repeats, options.warmup, compile, backbone)
    end_to_end = None
    if options.e2e_images:
        workers = resolve_workers(options.workers)
        end_to_end = bench_extract_end_to_end(
            arch,
            device,
            options.e2e_images,
            workers,
            options.batch_size,
            backbone,
            compile=compile,
            profile_dir=profile,
        )
    if profile:
        profile_bench(results, profile, arch, device, compile, backbone)
    return BenchReport(device_name(device), results, end_to_end)


def device_name(device: str) -> str:
    """The name a report gives the device: the GPU's model on CUDA."""
    resolved = resolve_device(device)
    return torch.cuda.get_device_name(resolved) if str(resolved).startswith("cuda") else str(resolved)


def print_bench_report(report: BenchReport, as_json_too: bool) -> None:
    """The table (and the end-to-end line), or JSON for scripts (``as_json_too``)."""
    if report.pipeline is not None:
        print_pipeline(report.pipeline, as_json_too)
        return
    if as_json_too:
        figures = {"device": report.device, "results": as_json(report.results), "speedup": speedups(report.results)}
        print(json.dumps({**figures, "extract_end_to_end": report.end_to_end}, indent=2))
        return
    print_bench(report.results, report.device)
    e2e = report.end_to_end
    if e2e:
        print(
            f"labor extract end to end: {e2e['images']} PNGs of {e2e['native_size'][1]}x"
            f"{e2e['native_size'][0]}: {e2e['images_per_s']:.1f} images/s "
            f"({e2e['steady_images_per_s'] or 0:.1f} steady, start-up {e2e['startup_s'] or 0:.1f} s), "
            f"{e2e['bytes_per_image'] / 1024:.0f} KiB per image in the artifact"
        )


def print_bench(results: list[Measurement], device: str) -> None:
    from rich.table import Table

    from labor_cli.console import stdout

    table = Table(
        "workload",
        "path",
        "ms",
        "images/s",
        "peak GiB",
        "TFLOP/s",
        "host syncs",
        "GPU busy ms",
        "1st call s",
        "compile s",
        "pays after",
        "speed-up",
        title=f"labor bench on {device}",
    )
    ups = speedups(results)

    def optional(value, fmt="{:.1f}"):
        return "-" if value is None else fmt.format(value)

    for r in results:
        key = r.workload + (" + compile" if r.compiled else "")
        table.add_row(
            r.workload,
            r.label,
            f"{r.ms:.1f}",
            f"{r.images_per_s:.1f}",
            optional(r.peak_memory_gib, "{:.2f}"),
            f"{r.tflops:.2f}",
            optional(r.host_syncs, "{}"),
            optional(r.gpu_busy_ms),
            f"{r.first_call_s:.1f}",
            optional(r.compile_s),
            optional(r.break_even_iterations, "{:.0f} its") if r.compiled else "",
            f"{ups[key]:.2f}x" if key in ups else "",
        )
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
            image[top : top + rng.integers(32, height // 2), left : left + rng.integers(32, width // 4)] = rng.integers(
                0, 255, 3
            )
        image += rng.normal(0, 4, image.shape)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(
            folder / f"benchcity_{i:06d}_000019_leftImg8bit.png", compress_level=1
        )

    with ThreadPoolExecutor() as pool:
        list(pool.map(draw, range(images)))


def bench_extract_end_to_end(
    arch: str | None = None,
    device: str = "auto",
    images: int = 200,
    workers: int = 8,
    batch_size: int = 4,
    selector_backbone: str = "separate",
    compile: str = "auto",
    profile_dir: Path | None = None,
) -> dict:
    """`labor extract` on real PNG files: decoding, the networks, the masks data and the artifact
    written. Timed on all ``images`` and on the first two batches' worth, so that the fixed costs
    (reading the checkpoint, starting the loader's workers, cuDNN's autotuning) and the rate of a
    long run come apart: ``images_per_s`` is the whole run's, ``steady_images_per_s`` the rate
    beyond the short run, ``startup_s`` the rest. ``profile_dir``: then one more run of at most
    64 images under torch.profiler and a sampler of every thread's Python stack, written to
    DIR/e2e-ops.txt, DIR/e2e-stacks.txt and the timeline DIR/e2e-trace.json.gz (extract's precision)."""
    import dataclasses
    import tempfile

    from labor_cli.stages.extract import run_extract

    torch_device = resolve_device(device)
    arch = arch or ("deeplabv2-r101" if torch_device.type == "cuda" else "small")
    native = SHAPES["paper" if arch != "small" else "small"][2]
    short = min(images - 1, 2 * batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = _bench_checkpoint(Path(tmp), arch, selector_backbone)
        folders = _e2e_datasets(Path(tmp), sorted({images, short, min(images, 64)}), native)
        options = ExtractOptions(
            model=checkpoint,
            target="",
            output=Path(tmp),
            device=device,
            workers=workers,
            batch_size=batch_size,
            quiet=True,
            compile=compile,
        )

        def extract(count: int):
            started = time.perf_counter()
            output = Path(tmp) / f"masks-{count}-{time.perf_counter_ns()}.h5"
            result = run_extract(dataclasses.replace(options, target=f"cityscapes:{folders[count]}", output=output))
            return result, time.perf_counter() - started

        result, seconds = extract(images)
        _, short_seconds = extract(short) if short > 0 else (None, 0.0)
        if profile_dir is not None:
            with _e2e_profile(torch_device, Path(profile_dir)):
                extract(min(images, 64))
    steady = (images - short) / (seconds - short_seconds) if seconds > short_seconds else float("nan")
    startup = seconds - images / steady if math.isfinite(steady) else float("nan")
    return {
        "arch": arch,
        "images": images,
        "native_size": list(native),
        "workers": workers,
        "batch_size": batch_size,
        "selector_backbone": selector_backbone,
        "compile": compile,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "short_run_images": short,
        "short_run_seconds": short_seconds,
        "steady_images_per_s": steady if math.isfinite(steady) else None,
        "startup_s": startup if math.isfinite(startup) else None,
        "mask_percent": result.mask_share,
        "bytes_per_image": result.bytes_per_image,
    }


def _bench_checkpoint(folder: Path, arch: str, selector_backbone: str) -> Path:
    """A checkpoint of freshly built networks (seed 0), for `labor extract` to read."""
    from labor_cli import artifacts
    from labor_cli.artifacts import TrainingState
    from labor_cli.data.labels import class_names

    torch.manual_seed(0)
    networks = build_networks(arch, 19, selector_backbone=selector_backbone)
    checkpoint = folder / "model.h5"
    with artifacts.create_artifact(checkpoint, "checkpoint", {"bench": True}) as f:
        artifacts.write_checkpoint(
            f, networks, "cityscapes19", list(class_names("cityscapes19")), TrainingState("warmup", 0, 1, {}, {})
        )
    return checkpoint


def _e2e_datasets(folder: Path, counts: list[int], native: tuple[int, int]) -> dict[int, Path]:
    """Synthetic Cityscapes datasets of each count of images, the smaller ones hard links into the largest."""
    folders = {count: folder / f"cityscapes{count}" for count in counts}
    write_synthetic_cityscapes(folders[counts[-1]], counts[-1], native)
    for count, dataset in folders.items():
        _link_first(folders[counts[-1]], dataset, count, native)
    return folders


def _link_first(source: Path, folder: Path, count: int, native: tuple[int, int]) -> None:
    """``folder``: a dataset of ``source``'s first ``count`` images (hard links), training size half the native."""
    import os

    pngs = sorted((source / "leftImg8bit" / "train" / "benchcity").glob("*.png"))[:count]
    images = folder / "leftImg8bit" / "train" / "benchcity"
    images.mkdir(parents=True, exist_ok=True)
    for png in pngs:
        if not (images / png.name).exists():
            os.link(png, images / png.name)
    (folder / "labor-dataset.json").write_text(json.dumps({"train_size": [native[1] // 2, native[0] // 2]}))


@contextlib.contextmanager
def _e2e_profile(device: torch.device, profile_dir: Path):
    """torch.profiler (operators, and kernels on CUDA) and a StackSampler over a block; their
    tables and the profiler's timeline go to ``profile_dir``."""
    import gzip
    import shutil

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    profile_dir.mkdir(parents=True, exist_ok=True)
    with StackSampler() as sampler, profile(activities=activities) as profiler:
        yield
    averages = profiler.key_averages()
    tables = [averages.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=70)]
    if device.type == "cuda":
        tables.append(averages.table(sort_by="self_device_time_total", row_limit=20, max_name_column_width=70))
    (profile_dir / "e2e-ops.txt").write_text("\n\n".join(tables) + "\n")
    (profile_dir / "e2e-stacks.txt").write_text(sampler.report())
    trace = profile_dir / "e2e-trace.json"
    profiler.export_chrome_trace(str(trace))
    with open(trace, "rb") as raw, gzip.open(f"{trace}.gz", "wb") as packed:
        shutil.copyfileobj(raw, packed)
    trace.unlink()


class StackSampler:
    """Every ``interval`` seconds, where each thread of this process is: its innermost Python
    frame, and the innermost one in labor's own code. What py-spy shows, without installing it:
    a thread waiting in C (for the GPU, a lock, a queue, zlib) shows the Python line that called it."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.samples: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            names = {thread.ident: thread.name for thread in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != self._thread.ident:
                    self.samples[(names.get(ident, str(ident)), _where(frame))] += 1

    def report(self, top: int = 12) -> str:
        """Per thread (most sampled first): its share of samples at each place."""
        by_thread: dict[str, Counter] = {}
        for (thread, where), count in self.samples.items():
            by_thread.setdefault(thread, Counter())[where] += count
        lines = [f"every {self.interval * 1000:.0f} ms, where each thread was (share of its samples)"]
        for thread, places in sorted(by_thread.items(), key=lambda item: -sum(item[1].values())):
            total = sum(places.values())
            lines.append(f"\n{thread}: {total} samples")
            lines += [f"  {100 * count / total:5.1f}%  {where}" for where, count in places.most_common(top)]
        return "\n".join(lines) + "\n"


def _where(frame) -> str:
    """'function (file:line)' of a frame, and of the innermost frame in labor_cli below it."""

    def place(f) -> str:
        return f"{f.f_code.co_name} ({Path(f.f_code.co_filename).name}:{f.f_lineno})"

    leaf, ours = place(frame), None
    while frame is not None and ours is None:
        if "labor_cli" in frame.f_code.co_filename:
            ours = place(frame)
        frame = frame.f_back
    return leaf if ours in (None, leaf) else f"{leaf} <- {ours}"


def bench_pipeline(images: int = 16, size: tuple[int, int] | None = None, batch_size: int = 4, device: str = "auto"):
    """`labor bench --pipeline`: extract's loader (ExtractionView in a one-worker loader), its
    main loop (write_masks) and the masks writer, timed per image on ``images`` synthetic PNGs
    of ``size`` (W, H; default 2048x1024), the networks left out (labor_cli/pipeline_bench.py)."""
    import tempfile

    from labor_cli import artifacts
    from labor_cli import pipeline_bench as pb
    from labor_cli.data.datasets import open_dataset
    from labor_cli.data.views import ExtractionView, ShardBatches, extraction_loader

    size = size or pb.DEFAULT_SIZE
    if min(size) < pb.MIN_SIDE:
        raise LaborUsageError(f"--pipeline-size {size[0]}x{size[1]}: at least {pb.MIN_SIDE} pixels each way")
    torch_device = resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        maps = pb.write_scenes(Path(tmp) / "cityscapes", images, size)
        dataset = open_dataset(
            f"cityscapes:{Path(tmp) / 'cityscapes'}", "train", require_labels=False, reads=("images",)
        )
        view = ExtractionView(dataset, dataset.train_size)
        steps = pb.time_worker_steps(view, images)
        loader = extraction_loader(pb.TimedItems(view), ShardBatches(images, batch_size), 1, torch_device)
        loader.collate_fn = pb.TimedCollate(loader.collate_fn)
        # by then the worker has the next batch ready (it decodes each file three times: twice bare)
        wait_s = 4 * batch_size * steps["item"] / 1000 + 0.05
        hand_off = pb.time_hand_off(loader, wait_s, torch_device)
        rows = [pb.made_up_rows(maps[k], maps[(k + 1) % len(maps)], seed=k) for k in range(len(maps))]
        masks = Path(tmp) / "masks.h5"
        post = pb.time_consumer(_masks_consumer(dataset, masks), rows, images, batch_size)
        kib = masks.stat().st_size / 1024 / images

        writing = pb.time_writer(Path(tmp) / "writer.h5", dataset.image_ids, rows, images)
        setting = {
            "images": images,
            "native_size": size,
            "input_size": dataset.train_size,
            "batch_size": batch_size,
            "png_mb": sum(dataset.image_path(i).stat().st_size for i in range(images)) / images / 1e6,
            "device": str(torch_device),
            "compression_threads": artifacts.compression_threads(),
            "artifact_kib_per_image": kib,
        }
        return pb.build_report(pb.Measured(steps, hand_off, post, writing), setting)


def print_pipeline(report, as_json: bool) -> None:
    """`labor bench --pipeline`'s table and verdicts, or its JSON."""
    from labor_cli import pipeline_bench

    if as_json:
        print(json.dumps({"device": report.device, "pipeline": report.as_json()}, indent=2))
    else:
        pipeline_bench.print_report(report)


def _masks_consumer(dataset, output: Path):
    """extract's main loop (write_masks) over batches of (index, rows), writing ``output``."""
    from labor_cli import artifacts
    from labor_cli.data.labels import class_names
    from labor_cli.extraction.writer import ExtractionInputs, write_masks

    names = list(class_names("cityscapes19"))
    checkpoint = artifacts.Checkpoint(None, "cityscapes19", names, None, None, {})  # what write_masks reads of it
    sizes = np.array([dataset.image_size(i)[::-1] for i in range(len(dataset))], dtype=np.int64)
    inputs = ExtractionInputs(checkpoint, dataset, sizes, {}, [], mask_share=0.0)
    options = ExtractOptions(model=Path("none"), target=dataset.spec, output=output, quiet=True, force=True)
    resume_path = output.with_name(output.name + ".resume")

    def consume(batches) -> None:
        write_masks(batches, options, inputs, {"bench": "pipeline"}, None, resume_path, stop_on_signal=False)

    return consume
