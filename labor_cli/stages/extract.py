"""labor extract: A and B over the target images, kept as one masks artifact for selection.

The maths is labor_cli/extraction/scores.py, the artifact labor_cli/extraction/writer.py. After
this, `labor select` needs neither a model nor a GPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labor_cli import artifacts
from labor_cli.artifacts import resume_path_for
from labor_cli.console import stdout
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.views import ExtractionView, ShardBatches, extraction_loader
from labor_cli.distributed import Rank, results_in_order
from labor_cli.errors import LaborError
from labor_cli.extraction import scores, writer
from labor_cli.extraction.writer import ExtractionInputs
from labor_cli.inference import inference_networks
from labor_cli.option_machinery import stored_config, stored_defaults
from labor_cli.options import ExtractOptions, TrainConfig, resolve_workers
from labor_cli.resume import check_same_run, continue_saved_run
from labor_cli.runtime import (
    CompileFallback,
    configure_backends,
    resolve_compile,
    resolve_device,
    resolve_precision,
)

# What may differ between a stopped extraction and its --resume: where and how fast it runs.
RESUME_MAY_DIFFER = ("device", "compile")


@dataclass
class ExtractResult:
    output: Path
    images: int
    mask_share: float  # percent of all pixels
    differ_share: float  # percent of all pixels where B's heads differ (before the budget)
    mask_budget: float  # percent of each image's pixels the mask may keep (0: no budget)
    class_share: dict[str, float]  # percent of the mask pixels, by A's class
    bytes_per_image: float
    seconds: float


def excluded_pixels(labels_path: Path, dataset) -> tuple[dict[str, np.ndarray], artifacts.PixelSet]:
    """Per image id, the flat (y, x) of pixels labeled before (never asked for again)."""
    labels = artifacts.read_pixel_set(labels_path, "labels")
    out = {}
    for i, image_id in enumerate(labels.image_ids):
        if image_id in dataset.unreadable_ids:  # left out by --skip-bad
            continue
        try:
            dataset.index_of(image_id)
        except LaborError:
            raise LaborError(
                f"{labels_path}: image {image_id!r} is not in {dataset.spec} split {dataset.split}"
            ) from None
        rows = labels.pixels_of(i)
        out[image_id] = np.stack([labels.y[rows], labels.x[rows]], 1)
    return out, labels


def run_extract(options: ExtractOptions, rank: Rank = Rank()) -> ExtractResult | None:
    """Under torchrun (``rank``) each process extracts its share of the images and rank 0 writes
    them all, in order, to the one artifact (the others return None).

    Every ``save_every`` images, and when SIGINT/SIGTERM (one process) stop it after the current
    batch, the images done so far are saved to OUTPUT's resume file (``runs/masks.resume.h5``);
    ``resume`` continues from it, and the artifact equals an uninterrupted run's."""
    output = Path(options.output)
    artifacts.check_output_path(output, options.force, inputs=(options.model, options.exclude))
    inputs = open_inputs(options)
    device = resolve_device(options.device, rank)
    precision = resolve_precision(options.precision, device)
    configure_backends(device)
    networks = inference_networks(inputs.checkpoint, device)
    compiled = CompileFallback(networks.called_modules(), resolve_compile(options.compile, device, training=False))
    size = options.input_size or inputs.dataset.train_size
    facts = {"skipped_unreadable": skipped_files(target=inputs.dataset)} if options.skip_bad else {}
    config = stored_config(
        options,
        input_size=size,
        mask_share=inputs.mask_share,
        device=str(device),
        precision=precision,
        compile=compiled.active,
        **facts,
    )
    resume_path = resume_path_for(output)
    resuming = continue_saved_run(resume_path, options.resume, "images", say=rank.is_main)
    saved = saved_extraction(resume_path, config, inputs.dataset.image_ids) if resuming else None

    started = time.perf_counter()
    budgets = scores.Budgets(options.candidates_per_class, options.uncertain_per_image, inputs.mask_share)
    compute = scores.batch_extractor(
        networks, inputs.excluded_by_id, inputs.dataset.image_ids, budgets, device, precision
    )
    loader, rounds = target_batches(inputs.dataset, size, saved["written"] if saved else 0, options, device, rank)
    results = results_in_order(loader, rounds, lambda batch: compiled(compute, batch), rank)
    if not rank.is_main:
        for _ in results:
            pass
        return None
    summary = writer.write_masks(
        results, options, inputs, config, saved, resume_path, stop_on_signal=not rank.distributed
    )
    resume_path.unlink(missing_ok=True)
    images = len(inputs.dataset)
    return ExtractResult(
        output,
        images,
        summary["mask_share_percent"],
        summary["differ_share_percent"],
        summary["mask_budget_percent"],
        summary["mask_class_share_percent"],
        output.stat().st_size / max(1, images),
        time.perf_counter() - started,
    )


def open_inputs(options: ExtractOptions) -> ExtractionInputs:
    checkpoint = artifacts.load_checkpoint(options.model)
    dataset = open_dataset(
        options.target,
        options.split,
        class_set=checkpoint.class_set,
        require_labels=False,
        skip_bad=options.skip_bad,
        reads=("images",),
    )
    parents = [checkpoint.artifact]
    excluded_by_id = {}
    if options.exclude is not None:
        excluded_by_id, earlier = excluded_pixels(options.exclude, dataset)
        if earlier.class_set != checkpoint.class_set:
            raise LaborError(
                f"{options.exclude}: labels use class set {earlier.class_set}, the model {checkpoint.class_set}"
            )
        parents.append(earlier.parent)
    sizes = np.array([dataset.image_size(i)[::-1] for i in range(len(dataset))], dtype=np.int64)  # (H, W)
    mask_share = options.mask_share
    if mask_share is None:  # the budget the checkpoint's training steered its mask to
        mask_share = checkpoint.config.get("train", {}).get("mask_share", TrainConfig().mask_share)
    return ExtractionInputs(checkpoint, dataset, sizes, excluded_by_id, parents, float(mask_share))


def saved_extraction(path: Path, config: dict, image_ids: list[str]) -> dict:
    """The state of a stopped extraction in its resume file, checked to be this same run."""
    with artifacts.open_artifact(path, "masks") as saved:
        if "resume_state" not in saved.file.attrs:
            raise LaborError(f"{path}: not a stopped extraction (no resume state); remove it to start afresh")
        state = json.loads(saved.file.attrs["resume_state"])
        ids = artifacts.read_image_ids(saved)
        if "runner_up" not in saved.file:
            raise LaborError(f"{path}: was saved by an older labor (no runner-up map); remove it to start afresh")
    check_same_run(
        path, state["config"], config, may_differ=RESUME_MAY_DIFFER, defaults=stored_defaults(ExtractOptions)
    )
    if ids != list(image_ids):
        raise LaborError(f"{path}: was saved for other images than the dataset's now; remove it to start afresh")
    return state


def target_batches(
    dataset, size, start: int, options: ExtractOptions, device: torch.device, rank: Rank
) -> tuple[torch.utils.data.DataLoader, int]:
    """This process's batches of the images from ``start`` on, and the number of rounds."""
    shard = ShardBatches(len(dataset) - start, options.batch_size, rank)
    # The items keep their own index.
    view = torch.utils.data.Subset(ExtractionView(dataset, size), range(start, len(dataset)))
    return extraction_loader(view, shard, resolve_workers(options.workers), device), shard.rounds()


def print_extract(result) -> None:
    top = sorted(result.class_share.items(), key=lambda item: -item[1])[:5]
    classes = ", ".join(f"{name} {share:.0f}%" for name, share in top if share > 0)
    budget = f", within --mask-share {result.mask_budget:.2f}%" if result.mask_budget > 0 else ""
    stdout.print(
        f"{result.images} images, mask {result.mask_share:.2f}% of pixels{budget} (B's heads differ on "
        f"{result.differ_share:.2f}%; by A's class: {classes}); "
        f"{result.bytes_per_image / 1024:.1f} KiB per image, {result.seconds:.1f} s -> {result.output}"
    )
