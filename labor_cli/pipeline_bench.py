"""`labor bench --pipeline`: what `labor extract` spends per image outside the networks.

On synthetic Cityscapes-like PNGs (street scenes of the toy renderer, at full size, written to a
temporary folder), with the networks left out so that it runs on a CPU:

  loader worker  decode, resize and the item's tensor (ExtractionView's steps), and the batch
                 collated into shared memory (the worker's side of the hand-off)
  main process   the hand-off (a ready batch taken from the worker's queue; pinned on CUDA),
                 post-processing (write_masks' own work per image: the tally, the rows handed to
                 the writer thread, the progress), writing (the masks writer's thread) and
                 compression (its gzip pool, in parallel)

Times are CPU time of the thread doing the step (``time.thread_time``), so that the waits a busy
machine adds are left out. The worker's steps are timed one after the other on one thread, as in
a loader worker, image by image; the worker's total is timed inside a real loader worker, next to
bare decodes of the same file, so that their ratio holds under load. The rows the writer gets are
made up from the rendered scenes' label maps (what extract_image would hand it), since the
networks are not run. The stage driver (labor_cli/stages/bench.py) builds extract's own view,
loader and main loop and hands them to the timers here.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DEFAULT_SIZE = (2048, 1024)  # (W, H): Cityscapes
MIN_SIDE = 16  # pixels, each way: the renderer's smallest scenes
DISTINCT_SCENES = 2  # rendered scenes (about 5 s each at full size); the other files link to them
RATES = (60, 100)  # images per second a GPU run is sized for
WORKER_TARGET = 1.25  # a worker's time per image over a bare decode of the same file, at most
MAIN_TARGET_MS = 10.0  # the main process's serial work per image, at most (100 images/s)


@dataclass
class Step:
    name: str
    process: str  # "worker" or "main"
    ms: float  # per image (median)
    what: str


@dataclass
class PipelineReport:
    """Everything `labor bench --pipeline` measured (times in ms per image)."""

    images: int
    native_size: tuple[int, int]  # (W, H)
    input_size: tuple[int, int]
    batch_size: int
    png_mb: float  # mean file size
    device: str
    steps: list[Step]
    bare_decode_ms: dict[str, float]  # decoder -> ms
    worker_ms: float  # one worker's time per image, timed inside a loader worker
    main_ms: float  # the main process's serial work: hand-off, post-processing, writing
    compression_ms: float  # CPU time of the gzip pool, in parallel with the above
    compression_threads: int
    artifact_kib_per_image: float
    workers_needed: dict[int, int] = field(default_factory=dict)  # images/s -> loader workers

    @property
    def bare_decoder(self) -> str:
        return min(self.bare_decode_ms, key=self.bare_decode_ms.get)

    @property
    def worker_ratio(self) -> float:
        return self.worker_ms / self.bare_decode_ms[self.bare_decoder]

    def as_json(self) -> dict:
        from dataclasses import asdict

        return {
            **asdict(self),
            "bare_decoder": self.bare_decoder,
            "worker_over_bare_decode": self.worker_ratio,
            "worker_target": WORKER_TARGET,
            "worker_target_met": self.worker_ratio <= WORKER_TARGET,
            "main_target_ms": MAIN_TARGET_MS,
            "main_target_met": self.main_ms <= MAIN_TARGET_MS,
        }


def workers_needed(rate: float, worker_ms: float) -> int:
    """Loader workers that deliver ``rate`` images per second at ``worker_ms`` each."""
    return max(1, math.ceil(rate * worker_ms / 1000 - 1e-9))


# --- the synthetic images and what the networks would have made of them ----------------------


def write_scenes(root: Path, images: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """A Cityscapes-layout folder of ``images`` street-scene PNGs of ``size`` (W, H), training size
    half of it (labor-dataset.json); DISTINCT_SCENES are rendered, the other files are hard links
    to them. Returns each rendered scene's train-id map (255 in ignored areas)."""
    import json
    import os

    from PIL import Image

    from labor_cli.data.labels import cityscapes_id_table
    from labor_cli.data.toy.render import render

    width, height = size
    folder = Path(root) / "leftImg8bit" / "train" / "benchcity"
    folder.mkdir(parents=True, exist_ok=True)
    maps = []
    for i in range(images):
        path = folder / f"benchcity_{i:06d}_000019_leftImg8bit.png"
        if i < DISTINCT_SCENES:
            rgb, label_ids = render(seed, "target", i, width, height)
            Image.fromarray(rgb).save(path)  # Pillow's default compression, as most tools write
            maps.append(cityscapes_id_table()[label_ids])
        else:
            os.link(folder / f"benchcity_{i % DISTINCT_SCENES:06d}_000019_leftImg8bit.png", path)
    (Path(root) / "labor-dataset.json").write_text(json.dumps({"train_size": [width // 2, height // 2]}))
    return maps


def made_up_rows(prediction: np.ndarray, other: np.ndarray, seed: int = 0, per_class=256, uncertain=4096) -> dict:
    """What extract_image hands the writer for one image (same keys, dtypes and sizes), made up
    from two train-id maps: A's prediction, a runner-up that is never the prediction and changes
    class wherever either map does, the mask along the prediction's class borders (a band of 5
    pixels, as the heads disagree there), PPL's candidates and the uncertain pixels drawn from it."""
    classes = 19
    prediction = np.where(prediction < classes, prediction, 0).astype(np.uint8)
    runner_up = ((prediction + 1 + np.where(other < classes, other, 0) % (classes - 1)) % classes).astype(np.uint8)
    border = np.zeros(prediction.shape, dtype=bool)
    border[:, 1:] |= prediction[:, 1:] != prediction[:, :-1]
    border[1:] |= prediction[1:] != prediction[:-1]
    mask = border.copy()
    for shift in (1, 2):
        mask[shift:] |= border[:-shift]
        mask[:-shift] |= border[shift:]
        mask[:, shift:] |= border[:, :-shift]
        mask[:, :-shift] |= border[:, shift:]
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(mask)
    order = rng.permutation(len(ys))
    ys, xs = ys[order], xs[order]
    labels = prediction[ys, xs].astype(np.int64)
    keep = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(classes)]).astype(np.int64)
    pick = rng.choice(prediction.size, size=min(uncertain, prediction.size), replace=False)
    return {
        "candidates": {
            "y": ys[keep].astype(np.int64),
            "x": xs[keep].astype(np.int64),
            "class": labels[keep],
            "similarity": np.sort(rng.random(len(keep), dtype=np.float32))[::-1].copy(),
        },
        "uncertain": {
            "y": (pick // prediction.shape[1]).astype(np.int64),
            "x": (pick % prediction.shape[1]).astype(np.int64),
            "entropy": np.sort(rng.random(len(pick), dtype=np.float32))[::-1].copy(),
        },
        "excluded": {"y": np.zeros(0, dtype=np.float32), "x": np.zeros(0, dtype=np.float32)},
        "prediction": prediction,
        "runner_up": runner_up,
        "mask_packed": np.packbits(mask.reshape(-1)),
        "mask_by_class": np.bincount(prediction[mask], minlength=classes).astype(np.int64),
        "differ_pixels": int(mask.sum()),
    }


# --- timing ----------------------------------------------------------------------------------


def _timed(fn: Callable, *args) -> tuple[float, object]:
    """(milliseconds, result) of one call, in CPU time of this thread: what the step costs, without
    the waits for a core that a busy machine adds to its wall time."""
    started = time.thread_time()
    result = fn(*args)
    return (time.thread_time() - started) * 1000, result


def _pillow(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # into Pillow's own buffer, no conversion


def _libpng(path: Path) -> None:
    from torchcodec.decoders import decode_png

    decode_png(path.read_bytes(), mode="UNCHANGED")


# The plain decoders a worker is held against: each reads the file and decodes it, nothing more.
BARE_DECODERS = {"Pillow": _pillow, "libpng (TorchCodec)": _libpng}


def time_worker_steps(view, images: int) -> dict[str, float]:
    """Median ms per image of the view's steps (decode, resize, and the whole item), on one
    thread as in a loader worker, each image through every step in turn (interleaved: the
    machine's load falls on all of them alike)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    samples: dict[str, list[float]] = {"decode": [], "resize": [], "item": []}
    try:
        view[0]  # untimed: first imports and allocations
        for i in range(images):
            ms, image = _timed(view.decode, i)
            samples["decode"].append(ms)
            samples["resize"].append(_timed(view.resize, image)[0])
            samples["item"].append(_timed(view.__getitem__, i)[0])
    finally:
        torch.set_num_threads(threads)
    return {step: statistics.median(times) for step, times in samples.items()}


class TimedItems(torch.utils.data.Dataset):
    """A view's items, each with the ms the worker took to make it (``item_ms``) and, just
    before, to decode its file with each bare decoder (``bare_ms``): paired in time, so that
    their ratio holds on a busy machine."""

    def __init__(self, view):
        self.view = view

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, i: int) -> dict:
        path = self.view.dataset.image_path(i)
        bare = {name: _timed(decode, path)[0] for name, decode in BARE_DECODERS.items()}
        ms, item = _timed(self.view.__getitem__, i)
        return {**item, "item_ms": ms, "bare_ms": bare}


class TimedCollate:
    """A collate function that also hands on, as plain numbers (a tensor would cost the hand-off
    a file descriptor more), TimedItems' figures and the ms it took itself, in the worker."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items: list[dict]) -> dict:
        timings = [(item.pop("item_ms"), item.pop("bare_ms")) for item in items]
        ms, batch = _timed(self.collate, items)
        return {**batch, "timings": timings, "collate_ms": ms}


@dataclass
class HandOff:
    item_ms: float  # in the worker, per image
    collate_ms: float  # in the worker, per image
    bare_ms: dict[str, float]  # in the worker, per image, by decoder
    receive_ms: float  # in the main process: a ready batch from the worker's queue, per image
    pin_ms: float | None  # in the main process, CUDA only


def time_hand_off(loader, wait_s: float, device: torch.device) -> HandOff:
    """One pass of a one-worker loader (TimedItems, TimedCollate): before taking each batch the
    main process waits ``wait_s`` (the first batch, while the worker starts, 1 s more), so that the
    batch is ready and taking it times the hand-off alone."""
    items, collates, receives, pins = [], [], [], []
    bare: dict[str, list[float]] = {name: [] for name in BARE_DECODERS}
    batches = iter(loader)
    time.sleep(1.0)
    while True:
        time.sleep(wait_s)
        ms, batch = _timed(next, batches, None)
        if batch is None:
            break
        count = len(batch["index"])
        receives.append(ms / count)
        if device.type == "cuda":
            pins.append(_timed(batch["image"].pin_memory)[0] / count)
        for item_ms, bare_ms in batch["timings"]:
            items.append(item_ms)
            for name, decode_ms in bare_ms.items():
                bare[name].append(decode_ms)
        collates.append(batch["collate_ms"] / count)
    median = statistics.median
    return HandOff(
        median(items),
        median(collates),
        {name: median(times) for name, times in bare.items()},
        median(receives),
        median(pins) if pins else None,
    )


@dataclass
class MainThreadTimes:
    per_image_ms: float  # the consumer's own CPU per image, in the thread that feeds it
    elsewhere_ms: float  # CPU of the process's other threads per image meanwhile


def time_consumer(consume: Callable[[Iterator], None], rows: list[dict], images: int, batch_size: int):
    """CPU time per image of ``consume`` (the main process's loop over the batches of (index,
    rows) that extract's networks would yield) between its first and its last batch: its set-up
    and its closing are left out."""
    marks: list[tuple[float, float]] = []

    def batches():
        for start in range(0, images, batch_size):
            marks.append((time.thread_time(), time.process_time()))
            yield [(i, _fresh(rows[i % len(rows)])) for i in range(start, min(start + batch_size, images))]
        marks.append((time.thread_time(), time.process_time()))

    consume(batches())
    counted = images - min(batch_size, images)  # the images of every batch but the last
    (thread0, process0), (thread1, process1) = marks[1], marks[-1]
    own = (thread1 - thread0) * 1000 / max(1, counted)
    return MainThreadTimes(own, ((process1 - process0) * 1000 / max(1, counted)) - own)


def _fresh(rows: dict) -> dict:
    """A shallow copy (the consumer pops keys), the arrays shared."""
    return {key: dict(value) if isinstance(value, dict) else value for key, value in rows.items()}


def time_writer(path: Path, image_ids: list[str], rows: list[dict], images: int) -> MainThreadTimes:
    """The masks writer alone, in this thread, writing ``path``, then flushed: its own CPU per
    image and its gzip pool's."""
    import h5py

    from labor_cli import artifacts
    from labor_cli.data.labels import class_names

    sizes = np.array([rows[i % len(rows)]["prediction"].shape for i in range(images)], dtype=np.int64)
    with h5py.File(path, "w") as f:
        writer = artifacts.MasksWriter(f, image_ids[:images], sizes, "cityscapes19", list(class_names("cityscapes19")))
        started_thread, started_process = time.thread_time(), time.process_time()
        for i in range(images):
            row = _fresh(rows[i % len(rows)])
            writer.add(i, row.pop("prediction"), row.pop("runner_up"), row.pop("mask_packed"), row)
        writer.flush()
        own = (time.thread_time() - started_thread) * 1000 / images
        total = (time.process_time() - started_process) * 1000 / images
        writer.close()
    return MainThreadTimes(own, total - own)


# --- the report --------------------------------------------------------------------------------


@dataclass
class Measured:
    """The timings the stage driver gathered, before they are put together."""

    steps: dict[str, float]  # time_worker_steps: decode, resize, item
    hand_off: HandOff
    post: MainThreadTimes
    writer: MainThreadTimes


def build_report(measured: Measured, setting: dict) -> PipelineReport:
    """The per-step rows, the totals and the workers each rate needs. ``setting``: images,
    native_size, input_size, batch_size, png_mb, device, compression_threads, artifact_kib_per_image."""
    m = measured
    steps = [
        Step("decode", "worker", m.steps["decode"], "the PNG read into an HxWx3 uint8 array"),
        Step("resize", "worker", m.steps["resize"], "bilinear, to the network's input size"),
        Step(
            "item",
            "worker",
            max(0.0, m.steps["item"] - m.steps["decode"] - m.steps["resize"]),
            "the rest of an item: a 3xHxW uint8 tensor",
        ),
        Step(
            "collate",
            "worker",
            m.hand_off.collate_ms,
            "the batch stacked into shared memory (worker's side of the hand-off)",
        ),
        Step("hand-off", "main", m.hand_off.receive_ms, "a ready batch taken from the worker's queue"),
    ]
    if m.hand_off.pin_ms is not None:
        steps.append(Step("pin", "main", m.hand_off.pin_ms, "the batch copied to pinned memory (pin-memory thread)"))
    steps += [
        Step(
            "post-processing",
            "main",
            m.post.per_image_ms,
            "write_masks' main thread: tally, rows to the writer thread, progress",
        ),
        Step("writing", "main", m.writer.per_image_ms, "the masks writer's thread: copies, HDF5 writes, chunks stored"),
        Step(
            "compression",
            "main",
            m.writer.elsewhere_ms,
            f"gzip of the maps, CPU of {setting['compression_threads']} threads in parallel",
        ),
    ]
    worker_ms = m.hand_off.item_ms + m.hand_off.collate_ms
    main_ms = sum(s.ms for s in steps if s.process == "main" and s.name != "compression")
    return PipelineReport(
        images=setting["images"],
        native_size=tuple(setting["native_size"]),
        input_size=tuple(setting["input_size"]),
        batch_size=setting["batch_size"],
        png_mb=setting["png_mb"],
        device=setting["device"],
        steps=steps,
        bare_decode_ms=dict(m.hand_off.bare_ms),
        worker_ms=worker_ms,
        main_ms=main_ms,
        compression_ms=m.writer.elsewhere_ms,
        compression_threads=setting["compression_threads"],
        artifact_kib_per_image=setting["artifact_kib_per_image"],
        workers_needed={rate: workers_needed(rate, worker_ms) for rate in RATES},
    )


def print_report(report: PipelineReport) -> None:
    from rich.table import Table

    from labor_cli.console import stdout

    (width, height), r = report.native_size, report
    table = Table(
        "step",
        "process",
        "ms per image",
        "what",
        title=f"labor bench --pipeline on {r.device}: {r.images} PNGs of {width}x{height} ({r.png_mb:.1f} MB), "
        f"input {r.input_size[0]}x{r.input_size[1]}, batch {r.batch_size}, networks left out",
    )
    for step in r.steps:
        table.add_row(step.name, step.process, f"{step.ms:.2f}", step.what)
    stdout.print(table)
    bare = ", ".join(f"{name} {ms:.1f} ms" for name, ms in r.bare_decode_ms.items())
    verdict = {True: "met", False: "NOT met"}
    lines = [
        f"per worker: {r.worker_ms:.1f} ms per image (timed in a loader worker) = {r.worker_ratio:.2f}x a bare "
        f"decode with {r.bare_decoder} (bare decodes: {bare}); target {WORKER_TARGET}x: "
        f"{verdict[r.worker_ratio <= WORKER_TARGET]}",
        f"main process: {r.main_ms:.1f} ms per image of serial work (hand-off, post-processing, writing); "
        f"target {MAIN_TARGET_MS:.0f} ms: {verdict[r.main_ms <= MAIN_TARGET_MS]}; and {r.compression_ms:.1f} ms of "
        f"gzip CPU per image on {r.compression_threads} threads",
        "loader workers needed: "
        + ", ".join(f"{rate} images/s: {count}" for rate, count in r.workers_needed.items())
        + f" (at {r.worker_ms:.1f} ms per image each)",
        f"masks artifact: {r.artifact_kib_per_image:.0f} KiB per image",
    ]
    for line in lines:
        stdout.print(line, soft_wrap=True)
