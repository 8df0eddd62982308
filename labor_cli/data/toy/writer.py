"""Writing the toy pair to disk: the file plan in the GTA5 and Cityscapes layouts, the drawing
(in this process or a small process pool), the atomic move into place and the summary."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from labor_cli.data.labels import CITYSCAPES_LABELS, cityscapes_id_table
from labor_cli.data.toy.render import DOMAINS, SHIFTS, render
from labor_cli.errors import LaborError, LaborUsageError

GENERATOR = "labor data toy"

# Image counts per split and native (width, height) per domain.
PRESETS: dict[str, dict[str, dict]] = {
    "default": {
        "source": {"size": (256, 144), "train": 300, "val": 60},
        "target": {"size": (256, 128), "train": 150, "val": 60},
    },
    "tiny": {
        "source": {"size": (128, 72), "train": 4, "val": 3},
        "target": {"size": (128, 64), "train": 4, "val": 3},
    },
}

# Toy cities (Cityscapes keeps its train and val cities apart).
TARGET_CITIES = {"train": ("toyburg", "pixelheim"), "val": ("voxelstadt",)}
TARGET_FRAME = 19  # Cityscapes annotates the 20th frame of each snippet

SPLITS = ("train", "val")

_PNG = {"format": "PNG", "compress_level": 1, "optimize": False}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, **_PNG)
    return buffer.getvalue()


def _draw_job(job: tuple[int, str, int, int, int, str]) -> tuple[bytes, bytes, np.ndarray]:
    """Render one image and encode it: (image PNG, label PNG, label-id histogram)."""
    rgb, label = render(*job)
    return _png(rgb), _png(label), np.bincount(label.ravel(), minlength=256)


def _plan(preset: dict, seed: int, shift: str) -> list[tuple[tuple[int, str, int, int, int, str], str, str, str]]:
    """Every image to draw, in order: (render job, image path, label path, split), paths relative."""
    plan = []
    for domain in DOMAINS:
        spec = preset[domain]
        width, height = spec["size"]
        index = 0
        for split in SPLITS:
            if domain == "source":
                files = [(f"images/{n}", f"labels/{n}") for n in _source_names(spec["train"], spec["val"])[split]]
            else:
                files = [
                    (
                        f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png",
                        f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png",
                    )
                    for city, stem in _target_paths(split, spec[split])
                ]
            for image_path, label_path in files:
                plan.append(
                    (
                        (seed, domain, index, width, height, shift),
                        f"{domain}/{image_path}",
                        f"{domain}/{label_path}",
                        split,
                    )
                )
                index += 1
    return plan


def _source_names(n_train: int, n_val: int) -> dict[str, list[str]]:
    return {
        "train": [f"{i:05d}.png" for i in range(n_train)],
        "val": [f"{i:05d}.png" for i in range(n_train, n_train + n_val)],
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


def _dataset_json(name: str, size: tuple[int, int], seed: int, shift: str | None = None) -> str:
    """A labor-dataset.json; ``shift`` is recorded for a target other than the photo one (whose
    file stays as it was before there were other targets: no key means "photo")."""
    settings = {"name": name, "train_size": list(size), "seed": seed, "generator": GENERATOR}
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
    out_dir: Path,
    seed: int = 0,
    size: str = "default",
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    shift: str = "photo",
) -> dict:
    """Draw the toy source/target pair into ``out_dir`` (atomically) and return a summary.

    ``shift``: the kind of domain shift, that is which target: ``photo`` (a daytime camera that
    repaints some classes) or ``night`` (a night-time camera); the source is the same for both.
    ``workers``: processes that draw (default: 2 where there are 2 CPUs and many images, else 1);
    the files do not depend on it.
    """
    if size not in PRESETS:
        raise LaborUsageError(f"unknown toy size {size!r}; known: {', '.join(PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise LaborUsageError(f"toy seed must be a non-negative integer, got {seed!r}")
    if shift not in SHIFTS:
        raise LaborUsageError(f"unknown toy shift {shift!r}; known: {', '.join(SHIFTS)}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, force)
    preset = PRESETS[size]
    plan = _plan(preset, int(seed), shift)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(plan) >= 100 else 1
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
        _write_lists_and_settings(tmp, plan, preset, int(seed), shift)
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
    summary["counts"] = {f"{d} {split}": preset[d][split] for d in DOMAINS for split in SPLITS}
    summary["domains"] = _describe_domains(out_dir, preset, counts, shift)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary


def _write_images(tmp: Path, plan, drawn, progress) -> dict[str, np.ndarray]:
    """Write every drawn image and label under ``tmp``; the label-id histogram of each domain."""
    counts = {d: np.zeros(256, np.int64) for d in DOMAINS}
    for done, ((job, image_path, label_path, _split), (image_png, label_png, hist)) in enumerate(zip(plan, drawn), 1):
        for rel, data in ((image_path, image_png), (label_path, label_png)):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        counts[job[1]] += hist
        if progress:
            progress(done, len(plan))
    return counts


def _write_lists_and_settings(tmp: Path, plan, preset: dict, seed: int, shift: str) -> None:
    """The source's split lists, and each domain's labor-dataset.json."""
    for split in SPLITS:
        names = [Path(image_path).name for job, image_path, _, sp in plan if job[1] == "source" and sp == split]
        (tmp / "source" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    for domain in DOMAINS:
        recorded_shift = shift if domain == "target" and shift != "photo" else None
        settings = _dataset_json(f"toy {domain}", preset[domain]["size"], seed, recorded_shift)
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


def _describe_domains(out_dir: Path, preset: dict, counts: dict[str, np.ndarray], shift: str) -> dict:
    """Per domain: where it is, its layout, sizes, image counts and the share of each class."""
    train_ids = cityscapes_id_table()
    domains = {}
    for domain in DOMAINS:
        spec, hist = preset[domain], counts[domain]
        all_px = max(int(hist.sum()), 1)
        domains[domain] = {
            "path": str(out_dir / domain),
            "layout": "gta5" if domain == "source" else "cityscapes",
            "image_size": list(spec["size"]),
            "images": {split: spec[split] for split in SPLITS},
            "class_share": {lab.name: float(hist[lab.label_id] / all_px) for lab in CITYSCAPES_LABELS},
            "void_share": float(hist[train_ids == 255].sum() / all_px),
        }
    domains["target"]["shift"] = shift
    return domains
