"""Rank 0's side of `labor extract`: every image's data, in image order, into the masks
artifact, written on a background thread while the next batch runs on the device; the images
done so far saved for --resume every --save-every images and when SIGINT/SIGTERM stop it."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labor_cli import artifacts
from labor_cli.console import progress_bar
from labor_cli.options import ExtractOptions
from labor_cli.resume import ResumableRun


@dataclass
class ExtractionInputs:
    """What extract reads: the checkpoint, the target images, and the pixels labeled before."""

    checkpoint: artifacts.Checkpoint
    dataset: Any  # labor_cli.data.datasets.SegmentationDataset
    sizes: np.ndarray  # (N, 2) native (H, W) of every image
    excluded_by_id: dict[str, np.ndarray]  # image id -> (P, 2) (y, x) labeled before
    parents: list[artifacts.Parent]
    mask_share: float  # SPL's budget per image (labor_cli.inconsistency); 0: none


@dataclass
class MaskTally:
    """The mask's pixels so far, in all and by A's class (carried over a resumed extraction)."""

    pixels: int
    by_class: np.ndarray
    differ_pixels: int  # where B's heads differ, before the budget

    @classmethod
    def start(cls, saved: dict | None, num_classes: int) -> MaskTally:
        if saved:
            by_class = np.asarray(saved["mask_by_class"], dtype=np.int64)
            return cls(saved["mask_pixels"], by_class, saved.get("differ_pixels", saved["mask_pixels"]))
        return cls(0, np.zeros(num_classes, dtype=np.int64), 0)

    def add(self, counts: np.ndarray, differ_pixels: int) -> None:
        self.pixels += int(counts.sum())
        self.by_class += counts
        self.differ_pixels += differ_pixels


class InOrderThread:
    """Calls run one at a time, in the order given, on one background thread; at most ``limit``
    wait (they hold an image's maps each). ``wait()`` returns when all are done and raises the
    first call's error; leaving the ``with`` block waits too, so nothing writes to a closed file."""

    def __init__(self, limit: int = 8):
        self.limit = limit
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labor-writer")
        self.pending: deque = deque()

    def submit(self, fn, *args) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        while self.pending and (len(self.pending) > self.limit or self.pending[0].done()):
            self.pending.popleft().result()

    def wait(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def __enter__(self) -> InOrderThread:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                self.wait()
            else:  # already failing: let the calls finish, keep the first error
                wait_all(self.pending)
        finally:
            self.pool.shutdown()


def write_masks(
    results,
    options: ExtractOptions,
    inputs: ExtractionInputs,
    config: dict,
    saved: dict | None,
    resume_path: Path,
    stop_on_signal: bool,
) -> dict:
    """Rank 0: every image's data (``results``: per round, its (index, ImageMasks) in order) into
    the masks artifact, written on a background thread while the next batch runs; SIGINT/SIGTERM
    keep the images done so far in the resume file. Returns the artifact's summary."""
    dataset, checkpoint, sizes = inputs.dataset, inputs.checkpoint, inputs.sizes
    tally = MaskTally.start(saved, len(checkpoint.class_names))
    done = saved["written"] if saved else 0
    run = ResumableRun(resume_path, options.save_every, len(dataset), listen=stop_on_signal)
    with (
        run,
        artifacts.create_artifact(
            options.output,
            "masks",
            config,
            inputs.parents,
            options.force,
            keep_as=resume_path,
            start_from=resume_path if saved else None,
        ) as f,
        progress_bar(disable=options.quiet) as bar,
        InOrderThread() as background,
    ):
        if saved:
            writer = artifacts.MasksWriter.reopen(f, saved)
        else:
            writer = artifacts.MasksWriter(f, dataset.image_ids, sizes, checkpoint.class_set, checkpoint.class_names)
        task = bar.add_task("extract", total=len(dataset), completed=done, status="")
        for batch_results in results:
            before = done
            for index, masks in batch_results:
                tally.add(masks.mask_by_class, masks.differ_pixels)
                # Written on a background thread, while this one starts the next batch on the device.
                background.submit(writer.add, index, masks.prediction, masks.runner_up, masks.mask_packed, masks.groups)
                done += 1
            share = 100 * tally.pixels / max(1, sizes[:done].prod(1).sum())
            bar.update(task, advance=len(batch_results), status=f"mask {share:.2f}%")
            if run.signal_name is not None and done < len(dataset):
                keep_for_resume(f, writer, background, tally, config, bar, run, f"{done} of {len(dataset)} images")
            if run.save_due(before, done):
                save_for_resume(f, writer, background, tally, config, resume_path)
        background.wait()
        if "resume_state" in f.attrs:
            del f.attrs["resume_state"]
        writer.close()
        summary = masks_summary(tally, sizes, checkpoint.class_names, inputs.mask_share)
        f.attrs["summary"] = json.dumps(summary)
    return summary


def masks_summary(tally: MaskTally, sizes: np.ndarray, class_names: list[str], mask_share: float) -> dict:
    """The masks artifact's summary: the mask's share of all pixels, in all and by A's class."""
    class_share = {name: 100 * float(count) / max(1, tally.pixels) for name, count in zip(class_names, tally.by_class)}
    return {
        "images": len(sizes),
        "mask_share_percent": 100 * tally.pixels / float(sizes.prod(1).sum()),
        "differ_share_percent": 100 * tally.differ_pixels / float(sizes.prod(1).sum()),
        "mask_budget_percent": 100 * mask_share,
        "mask_class_share_percent": class_share,
    }


def mark_resume_state(f, writer, background: InOrderThread, tally: MaskTally, config: dict) -> None:
    """Store every image added so far, and the state --resume continues from."""
    background.wait()
    f.attrs["resume_state"] = json.dumps(
        {
            **writer.state(),
            "mask_pixels": tally.pixels,
            "mask_by_class": tally.by_class.tolist(),
            "differ_pixels": tally.differ_pixels,
            "config": config,
        }
    )


def save_for_resume(f, writer, background: InOrderThread, tally: MaskTally, config: dict, resume_path: Path) -> None:
    """The periodic save (what a kill -9 leaves): a copy of the unfinished file, flushed first so
    that the copy is a whole HDF5 file, renamed over the resume file only once it is complete."""
    mark_resume_state(f, writer, background, tally, config)
    f.flush()
    temporary = resume_path.with_name(f".{resume_path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        shutil.copyfile(f.filename, temporary)
        os.replace(temporary, resume_path)
    finally:
        temporary.unlink(missing_ok=True)


def keep_for_resume(
    f, writer, background: InOrderThread, tally: MaskTally, config: dict, bar, run: ResumableRun, after: str
) -> None:
    """Stop: what is written stays, with the state --resume continues from (KeepPartial)."""
    mark_resume_state(f, writer, background, tally, config)
    bar.stop()
    run.stopped(after, error=artifacts.KeepPartial)
