"""Writing the toy pair to disk: the file plan in the GTA5 (or SYNTHIA) and Cityscapes layouts,
the drawing (in this process or a small process pool), the atomic move into place and the summary."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from labor_cli.console import stdout
from labor_cli.data.labels import CITYSCAPES_LABELS, SYNTHIA16_IDS, SYNTHIA_OTHER_IDS, cityscapes_id_table
from labor_cli.data.toy.render import DOMAINS, SHIFTS, render
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import TOY_SOURCE_LAYOUTS as SOURCE_LAYOUTS
from labor_cli.options import ToyOptions

GENERATOR = "labor data toy"

# Image counts per split and native (width, height) per domain; the source's "synthia_size" is
# its size in the SYNTHIA layout. "full" draws the real datasets' sizes (GTA5 1914x1052, SYNTHIA
# RAND-CITYSCAPES 1280x760, Cityscapes 2048x1024) and leaves the training sizes to the protocol's
# defaults (no train_size in labor-dataset.json), as on real data.
PRESETS: dict[str, dict[str, dict]] = {
    "default": {
        "source": {"size": (256, 144), "synthia_size": (256, 152), "train": 300, "val": 60},
        "target": {"size": (256, 128), "train": 150, "val": 60},
    },
    "tiny": {
        "source": {"size": (128, 72), "synthia_size": (128, 76), "train": 4, "val": 3},
        "target": {"size": (128, 64), "train": 4, "val": 3},
    },
    "full": {
        "source": {"size": (1914, 1052), "synthia_size": (1280, 760), "train": 4, "val": 2},
        "target": {"size": (2048, 1024), "train": 4, "val": 2},
        "protocol_train_sizes": True,
    },
}

# Toy cities (Cityscapes keeps its train and val cities apart).
TARGET_CITIES = {"train": ("toyburg", "pixelheim"), "val": ("voxelstadt",)}
TARGET_FRAME = 19  # Cityscapes annotates the 20th frame of each snippet

SPLITS = ("train", "val")
LABEL_IDS_SUFFIX, INSTANCE_IDS_SUFFIX = "_gtFine_labelIds.png", "_gtFine_instanceIds.png"

_PNG = {"format": "PNG", "compress_level": 1, "optimize": False}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, **_PNG)
    return buffer.getvalue()


def _png16_rgb(channels: np.ndarray) -> bytes:
    """HxWx3 uint16 -> a 16-bit colour PNG (Pillow cannot write one), every row Sub-filtered
    as libpng often does for such images."""
    height, width, _ = channels.shape
    rows = channels.astype(">u2").view(np.uint8).reshape(height, width * 6)
    filtered = rows.copy()
    filtered[:, 6:] -= rows[:, :-6]  # Sub: each byte minus the same byte of the pixel before, mod 256
    raw = np.hstack([np.ones((height, 1), np.uint8), filtered]).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def _synthia_of_label_id() -> np.ndarray:
    """256-entry table: Cityscapes label id -> SYNTHIA id (0, void, for the classes it lacks)."""
    synthia_id = {name: raw for raw, name in SYNTHIA16_IDS + SYNTHIA_OTHER_IDS}
    table = np.zeros(256, np.uint16)
    for lab in CITYSCAPES_LABELS:
        table[lab.label_id] = synthia_id[lab.name]
    return table


def synthia_label(label_ids: np.ndarray) -> np.ndarray:
    """A drawn Cityscapes label-id map as SYNTHIA writes its labels: HxWx3 uint16, the class id in
    the first channel, an instance-like value in the second (1000 + the Cityscapes id, so a reader
    that takes the wrong channel, or only the high bytes, cannot pass), 0 in the third."""
    ids = _synthia_of_label_id()[label_ids]
    return np.dstack([ids, 1000 + label_ids.astype(np.uint16), np.zeros_like(ids)])


def _label_pngs(label: np.ndarray, label_format: str) -> tuple[bytes, ...]:
    """The label files of one image: GTA5's label ids; SYNTHIA's 16-bit colour label; or
    Cityscapes' label ids and instance ids. The toy draws no instances, so its instance ids are
    the label ids (16-bit), what Cityscapes stores for pixels outside any instance; with them the
    official evaluator runs as on Cityscapes (its instance scores are then undefined)."""
    if label_format == "synthia":
        return (_png16_rgb(synthia_label(label)),)
    if label_format == "cityscapes":
        return _png(label), _png(label.astype(np.uint16))
    return (_png(label),)


def _draw_job(job: tuple[tuple[int, str, int, int, int, str], str]) -> tuple[bytes, tuple[bytes, ...], np.ndarray]:
    """Render one image and encode it: (image PNG, its label PNGs, label-id histogram)."""
    render_args, label_format = job
    rgb, label = render(*render_args)
    return _png(rgb), _label_pngs(label, label_format), np.bincount(label.ravel(), minlength=256)


def _domain_files(domain: str, spec: dict, split: str, source_layout: str) -> list[tuple[str, str]]:
    """(image path, label path) of each image of one split of a domain, relative to the domain."""
    if domain == "target":
        return [
            (f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", f"gtFine/{split}/{city}/{stem}{LABEL_IDS_SUFFIX}")
            for city, stem in _target_paths(split, spec[split])
        ]
    names = _source_names(spec["train"], spec["val"], digits=7 if source_layout == "synthia" else 5)[split]
    if source_layout == "synthia":
        return [(f"RGB/{n}", f"GT/LABELS/{n}") for n in names]
    return [(f"images/{n}", f"labels/{n}") for n in names]


def domain_size(preset: dict, domain: str, source_layout: str) -> tuple[int, int]:
    """(width, height) of a domain's images in a preset."""
    spec = preset[domain]
    return spec["synthia_size"] if domain == "source" and source_layout == "synthia" else spec["size"]


def _plan(preset: dict, seed: int, shift: str, source_layout: str) -> list[tuple[tuple, str, str, str]]:
    """Every image to draw, in order: (draw job, image path, label path, split), paths relative."""
    plan = []
    for domain in DOMAINS:
        width, height = domain_size(preset, domain, source_layout)
        label_format = source_layout if domain == "source" else "cityscapes"  # see _label_pngs
        index = 0
        for split in SPLITS:
            for image_path, label_path in _domain_files(domain, preset[domain], split, source_layout):
                job = ((seed, domain, index, width, height, shift), label_format)
                plan.append((job, f"{domain}/{image_path}", f"{domain}/{label_path}", split))
                index += 1
    return plan


def _source_names(n_train: int, n_val: int, digits: int) -> dict[str, list[str]]:
    return {
        "train": [f"{i:0{digits}d}.png" for i in range(n_train)],
        "val": [f"{i:0{digits}d}.png" for i in range(n_train, n_train + n_val)],
    }


def _target_paths(split: str, n: int) -> list[tuple[str, str]]:
    """(city, stem) per image, the images dealt to the split's cities in turn."""
    cities = TARGET_CITIES[split]
    per_city = [0] * len(cities)
    out = []
    for i in range(n):
        k = i % len(cities)
        out.append((cities[k], f"{cities[k]}_{per_city[k]:06d}_{TARGET_FRAME:06d}"))
        per_city[k] += 1
    return out


def _dataset_json(name: str, size: tuple[int, int] | None, seed: int, shift: str | None = None) -> str:
    """A labor-dataset.json; ``shift`` is recorded for a target other than the photo one (no key
    means "photo", so the photo pair's file, and its bytes, name no shift). ``size`` None:
    no train_size, so the stages train at the dataset kind's protocol size."""
    settings: dict = {"name": name}
    if size is not None:
        settings["train_size"] = list(size)
    settings.update(seed=seed, generator=GENERATOR)
    if shift is not None:
        settings["shift"] = shift
    return json.dumps(settings, indent=2) + "\n"


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.name in ("", ".."):  # '.', '/', '..': the pair is drawn beside its name and renamed into place
        raise LaborError(f"{out_dir}: expected a folder name to write into (e.g. {out_dir / 'toy'})")
    if out_dir.exists() and not out_dir.is_dir():
        raise LaborError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise LaborError(f"{out_dir}: already exists and is not empty (use --force to replace it)")


def default_workers(plan) -> int:
    """Processes to draw ``plan`` in: a pool (up to 8, one per CPU) where there is much to draw
    (many images, or a few full-size ones: a 2048x1024 image takes seconds), else this process
    (a pool's processes take a second or two to start)."""
    pixels = sum(job[0][3] * job[0][4] for job, *_ in plan)  # the render arguments' width x height
    if len(plan) >= 100 or pixels >= 10_000_000:
        return min(8, os.cpu_count() or 1)
    return 1


def _drawn(plan, workers: int):
    """Yield ``_draw_job`` results in plan order, from this process or a small process pool."""
    jobs = [job for job, *_ in plan]
    if workers <= 1:
        for job in jobs:
            yield _draw_job(job)
        return
    # spawn, not fork: the caller may hold threads (torch, BLAS) that a fork would copy half-locked
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(_draw_job, jobs, chunksize=4)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def make_toy_pair(
    options: ToyOptions, progress: Callable[[int, int], None] | None = None, workers: int | None = None
) -> dict:
    """Draw the toy source/target pair into ``options.directory`` (atomically) and return a summary.

    ``options.shift``: the kind of domain shift, that is which target: ``photo`` (a daytime camera
    that repaints some classes) or ``night`` (a night-time camera); the source is the same for both.
    ``options.source_layout``: the source as GTA5 (``images/``, ``labels/`` in Cityscapes label ids)
    or as SYNTHIA RAND-CITYSCAPES (``RGB/``, ``GT/LABELS/`` 16-bit, at the preset's SYNTHIA size).
    ``workers``: processes that draw (default: :func:`default_workers`);
    the files do not depend on it.
    """
    out_dir, seed, size, force = Path(options.directory), options.seed, options.size, options.force
    shift, source_layout = options.shift, options.source_layout
    if size not in PRESETS:
        raise LaborUsageError(f"unknown toy size {size!r}; known: {', '.join(PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):  # ToyOptions checked its range
        raise LaborUsageError(f"toy seed must be a non-negative integer, got {seed!r}")
    if shift not in SHIFTS:
        raise LaborUsageError(f"unknown toy shift {shift!r}; known: {', '.join(SHIFTS)}")
    if source_layout not in SOURCE_LAYOUTS:
        raise LaborUsageError(f"unknown toy source layout {source_layout!r}; known: {', '.join(SOURCE_LAYOUTS)}")
    _check_out_dir(out_dir, force)
    preset = PRESETS[size]
    plan = _plan(preset, int(seed), shift, source_layout)
    if workers is None:
        workers = default_workers(plan)
    start = time.perf_counter()
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as exc:
        raise LaborError(f"{out_dir}: cannot create it ({exc.strerror or exc})") from exc

    drawn = _drawn(plan, workers)
    try:
        counts = _write_images(tmp, plan, drawn, progress)
        _write_lists_and_settings(tmp, plan, preset, int(seed), shift, source_layout)
        _move_into_place(tmp, out_dir, parent)
    except OSError as exc:  # a full disk, a folder that vanished: nothing half-drawn is left
        drawn.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise LaborError(f"{out_dir}: cannot write ({exc.strerror or exc}); nothing was written") from exc
    except BaseException:
        drawn.close()  # stops the pool, if any, before the half-drawn folder goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = {"out_dir": str(out_dir), "seed": int(seed), "size": size, "shift": shift}
    summary["source_layout"] = source_layout
    summary["counts"] = {f"{d} {split}": preset[d][split] for d in DOMAINS for split in SPLITS}
    summary["domains"] = _describe_domains(out_dir, preset, counts, shift, source_layout)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary


def _write_images(tmp: Path, plan, drawn, progress) -> dict[str, np.ndarray]:
    """Write every drawn image and label under ``tmp``; the label-id histogram of each domain."""
    counts = {d: np.zeros(256, np.int64) for d in DOMAINS}
    for done, ((job, image_path, label_path, _split), (image_png, label_pngs, hist)) in enumerate(zip(plan, drawn), 1):
        label_paths = (label_path, label_path.replace(LABEL_IDS_SUFFIX, INSTANCE_IDS_SUFFIX))
        for rel, data in ((image_path, image_png), *zip(label_paths, label_pngs)):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        counts[job[0][1]] += hist  # the render arguments' domain
        if progress:
            progress(done, len(plan))
    return counts


def _write_lists_and_settings(tmp: Path, plan, preset: dict, seed: int, shift: str, source_layout: str) -> None:
    """The source's split lists, and each domain's labor-dataset.json."""
    for split in SPLITS:
        names = [Path(image_path).name for job, image_path, _, sp in plan if job[0][1] == "source" and sp == split]
        (tmp / "source" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    for domain in DOMAINS:
        recorded_shift = shift if domain == "target" and shift != "photo" else None
        size = None if preset.get("protocol_train_sizes") else domain_size(preset, domain, source_layout)
        settings = _dataset_json(f"toy {domain}", size, seed, recorded_shift)
        (tmp / domain / "labor-dataset.json").write_text(settings)


def _move_into_place(tmp: Path, out_dir: Path, parent: Path) -> None:
    """Rename the finished folder to ``out_dir``; an old output (with force) goes only now."""
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
            os.replace(out_dir, old / "old")
        else:
            out_dir.rmdir()
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _describe_domains(
    out_dir: Path, preset: dict, counts: dict[str, np.ndarray], shift: str, source_layout: str
) -> dict:
    """Per domain: where it is, its layout, sizes, image counts and the share of each class."""
    train_ids = cityscapes_id_table()
    domains = {}
    for domain in DOMAINS:
        spec, hist = preset[domain], counts[domain]
        all_px = max(int(hist.sum()), 1)
        domains[domain] = {
            "path": str(out_dir / domain),
            "layout": source_layout if domain == "source" else "cityscapes",
            "image_size": list(domain_size(preset, domain, source_layout)),
            "images": {split: spec[split] for split in SPLITS},
            "class_share": {lab.name: float(hist[lab.label_id] / all_px) for lab in CITYSCAPES_LABELS},
            "void_share": float(hist[train_ids == 255].sum() / all_px),
        }
    domains["target"]["shift"] = shift
    return domains


def print_toy_summary(directory: Path, summary: dict) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in summary.get("counts", {}).items())
    stdout.print(f"toy domain pair in {directory}: {counts} ({summary.get('seconds', 0):.1f} s)")
    layout = summary.get("source_layout", "gta5")
    stdout.print(f"  source: {layout}:{Path(directory) / 'source'}    target: cityscapes:{Path(directory) / 'target'}")
