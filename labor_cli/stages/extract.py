"""labor extract: run A and B over the target images and keep what selection needs.

Per image, at its own resolution (logits upsampled bilinearly, docs/method.md):
  the inconsistency mask M = argmax C1 != argmax C2, minus the pixels already labeled;
  A's prediction and its runner-up (the second most probable class);
  PPL's candidates: for each class k, the mask pixels A predicts as k (D(k)), ranked by the
  cosine similarity of their probability vectors to the prototype mu(k) = mean over D(k);
  A's most uncertain pixels (entropy), for the entropy baseline.
After this, `labor select` needs neither a model nor a GPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labor_cli import artifacts, distributed, inconsistency
from labor_cli.artifacts import resume_path_for
from labor_cli.console import progress_bar, stderr
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.transforms import ImageNormalizer, image_as_tensor, resize_image
from labor_cli.distributed import Rank
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.models import fold_frozen_batchnorm
from labor_cli.options import (
    ExtractOptions,
    TrainConfig,
    check_same_run,
    resolve_workers,
    stored_config,
    stored_defaults,
)
from labor_cli.resume import continue_saved_run
from labor_cli.runtime import (
    CompileFallback,
    autocast,
    configure_backends,
    memory_format,
    resolve_compile,
    resolve_device,
    resolve_precision,
)
from labor_cli.training import StopRequest

# What may differ between a stopped extraction and its --resume: where and how fast it runs.
RESUME_MAY_DIFFER = ("device", "compile")


class ExtractionView(torch.utils.data.Dataset):
    """Target images resized to the network's input size (``size`` = (W, H), None: as they are),
    with their native (H, W): items ``{"image": 3xHxW uint8, "native_size", "index"}``, the image
    normalised on the device. ``labor bench --pipeline`` times its steps (decode, resize)."""

    def __init__(self, dataset, size: tuple[int, int] | None):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image = self.decode(i)
        native = torch.tensor(image.shape[:2])
        return {"image": image_as_tensor(self.resize(image)), "native_size": native, "index": i}

    def decode(self, i: int) -> np.ndarray:
        """Image i as read from its file: HxWx3 uint8."""
        return self.dataset.read_image(i)

    def resize(self, image: np.ndarray) -> np.ndarray:
        return image if self.size is None else resize_image(image, self.size)


class ShardBatches(torch.utils.data.Sampler):
    """One process's batches: round k covers images [k*W*B, (k+1)*W*B) (W processes, batch B)
    and process r takes the r-th block of B of it; with one process, the images in order."""

    def __init__(self, size: int, batch_size: int, rank: Rank = Rank()):
        self.size, self.batch_size, self.rank = size, batch_size, rank

    def rounds(self) -> int:
        step = self.batch_size * self.rank.world_size
        return (self.size + step - 1) // step

    def __iter__(self):
        step = self.batch_size * self.rank.world_size
        for start in range(self.rank.rank * self.batch_size, self.size, step):
            yield list(range(start, min(start + self.batch_size, self.size)))

    def __len__(self) -> int:
        return len(range(self.rank.rank * self.batch_size, self.size, self.batch_size * self.rank.world_size))


def results_in_order(loader, rounds: int, compute, rank: Rank):
    """Per round, the (index, rows) of every image of the round in image order: on rank 0
    gathered from all processes, on the others (after sending theirs) an empty list."""
    batches = iter(loader)
    for _ in range(rounds):
        batch = next(batches, None)  # a process's blocks run out before the others' do, never after
        local = compute(batch) if batch is not None else []
        if rank.distributed:
            gathered = distributed.gather_to_main(local, rank)
            local = [item for part in gathered for item in part] if rank.is_main else []
        yield local


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


def ranks_within_groups(group: torch.Tensor, score: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Order of the items by (group, score descending) and each item's rank inside its group."""
    by_score = torch.argsort(score, descending=True, stable=True)
    order = by_score[torch.argsort(group[by_score], stable=True)]
    counts = torch.bincount(group, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    ranks = torch.arange(order.numel(), device=order.device) - starts[group[order]]
    return order, ranks


def prototype_candidates(
    probabilities: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor, per_class: int
) -> dict:
    """PPL candidates of one image: per class, the mask pixels closest (cosine) to the class prototype.

    probabilities (C, H, W), prediction (H, W), mask (H, W) bool -> rows y, x, class, similarity,
    grouped by class, most similar first, at most ``per_class`` per class.
    """
    num_classes, _, width = probabilities.shape
    flat = mask.flatten().nonzero().squeeze(1)
    vectors = probabilities.flatten(1)[:, flat].t()  # (M, C)
    classes = prediction.flatten()[flat].long()
    sums = torch.zeros(num_classes, num_classes, device=vectors.device).index_add_(0, classes, vectors)
    prototypes = sums / torch.bincount(classes, minlength=num_classes).clamp(min=1).unsqueeze(1)
    similarity = F.cosine_similarity(vectors, prototypes[classes], dim=1)
    order, ranks = ranks_within_groups(classes, similarity, num_classes)
    keep = order[ranks < per_class]
    pixels = flat[keep]
    return {"y": pixels // width, "x": pixels % width, "class": classes[keep], "similarity": similarity[keep]}


def most_uncertain(probabilities: torch.Tensor, excluded: torch.Tensor, count: int) -> dict:
    """A's ``count`` highest-entropy pixels of one image, excluded pixels left out."""
    _, height, width = probabilities.shape
    entropy = -(probabilities * probabilities.clamp(min=1e-12).log()).sum(0)
    entropy = entropy.masked_fill(excluded, float("-inf")).flatten()
    # Excluded pixels sort last; any that reach the top ``count`` are dropped afterwards, which
    # spares a host synchronisation to count the pixels that are left.
    values, pixels = torch.topk(entropy, min(count, height * width))
    kept = values > float("-inf")
    values, pixels = values[kept], pixels[kept]
    return {"y": pixels // width, "x": pixels % width, "entropy": values}


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """``np.packbits`` of the flattened bool ``mask``, on its device: 8 pixels per byte, the first
    in the high bit, zeros after the last pixel (the masks artifact's layout, read back by
    ``artifacts.unpack_mask``; an eighth of the bytes to copy to the host)."""
    flat = mask.flatten().to(torch.uint8)
    padding = (-flat.numel()) % 8
    if padding:
        flat = torch.cat([flat, flat.new_zeros(padding)])
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=mask.device)
    return (flat.view(-1, 8) << shifts).sum(1).to(torch.uint8)


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


def run_extract(options: ExtractOptions, rank: Rank = Rank()) -> ExtractResult | None:
    """Under torchrun (``rank``) each process extracts its share of the images and rank 0 writes
    them all, in order, to the one artifact (the others return None).

    Every ``save_every`` images, and when SIGINT/SIGTERM (one process) stop it after the current
    batch, the images done so far are saved to OUTPUT's resume file (``runs/masks.resume.h5``);
    ``resume`` continues from it, and the artifact equals an uninterrupted run's."""
    if options.candidates_per_class <= 0 or options.uncertain_per_image <= 0:
        raise LaborUsageError("--candidates-per-class and --uncertain-per-image must be positive")
    if options.mask_share is not None and not 0 <= options.mask_share < 1:
        raise LaborUsageError(f"--mask-share {options.mask_share}: must be in [0, 1) (0: no budget)")
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
    compute = batch_extractor(networks, inputs, options, device, precision)
    loader, rounds = target_batches(inputs.dataset, size, saved["written"] if saved else 0, options, device, rank)
    results = results_in_order(loader, rounds, lambda batch: compiled(compute, batch), rank)
    if not rank.is_main:
        for _ in results:
            pass
        return None
    summary = write_masks(results, options, inputs, config, saved, resume_path, stop_on_signal=not rank.distributed)
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


def inference_networks(checkpoint: artifacts.Checkpoint, device: torch.device):
    """A and B on the device, in eval mode, their FrozenBNs folded into the convolutions."""
    networks = checkpoint.networks
    fold_frozen_batchnorm(networks)  # inference only, and these weights are never saved
    return networks.to(device, memory_format=memory_format(device)).eval()


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


def extraction_loader(view, batches, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """Extraction's loader (``labor bench --pipeline`` times it): ``workers`` processes, batches
    collated in shared memory, pinned by a thread of this process on CUDA."""
    return torch.utils.data.DataLoader(
        view,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_extraction,
        pin_memory=device.type == "cuda",
    )


def collate_extraction(items: list[dict]) -> dict:
    """ExtractionView's items as a batch: the images stacked into one tensor (in shared memory,
    in a loader worker), the native sizes (N, 2) and indices (N,) as numpy arrays. These travel
    inside the pickled batch, where each tensor would cost the main process a file descriptor
    fetched from the worker, a round trip that waits for the worker to be scheduled."""
    return {
        "image": torch.utils.data.default_collate([item["image"] for item in items]),
        "native_size": np.stack([np.asarray(item["native_size"]) for item in items]),
        "index": np.array([item["index"] for item in items], dtype=np.int64),
    }


def batch_extractor(networks, inputs: ExtractionInputs, options: ExtractOptions, device: torch.device, precision: str):
    """compute(batch) -> [(index, rows)]: A and B on a batch, then each image's masks data."""
    segmenter, selector = networks.segmenter, networks.selector
    normalize = ImageNormalizer(device, memory_format(device))
    image_ids = inputs.dataset.image_ids

    def compute(batch) -> list[tuple[int, dict]]:
        images = normalize(batch["image"].to(device, non_blocking=True))
        with torch.no_grad(), autocast(device, precision):
            features = segmenter.features(images)
            logits = segmenter.classify(features)
            heads = selector(features=features) if selector.shared else selector(images)
        out = []
        for j, index in enumerate(batch["index"].tolist()):
            native = tuple(batch["native_size"][j].tolist())
            with torch.no_grad():
                excluded = inputs.excluded_by_id.get(image_ids[index])
                out.append(
                    (
                        index,
                        extract_image(
                            logits[j],
                            heads[0][j],
                            heads[1][j],
                            native,
                            excluded,
                            options.candidates_per_class,
                            options.uncertain_per_image,
                            inputs.mask_share,
                        ),
                    )
                )
        return out

    return compute


def write_masks(
    results,
    options: ExtractOptions,
    inputs: ExtractionInputs,
    config: dict,
    saved: dict | None,
    resume_path: Path,
    stop_on_signal: bool,
) -> dict:
    """Rank 0: every image's rows, in order, into the masks artifact (written on a background
    thread while the next batch runs); SIGINT/SIGTERM keep the images done so far in the resume
    file. Returns the artifact's summary."""
    dataset, checkpoint, sizes = inputs.dataset, inputs.checkpoint, inputs.sizes
    tally = MaskTally.start(saved, len(checkpoint.class_names))
    stop = StopRequest() if stop_on_signal else contextlib.nullcontext()
    done = saved["written"] if saved else 0
    next_save = done + options.save_every
    with (
        stop,
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
            for index, rows in batch_results:
                tally.add(rows.pop("mask_by_class"), rows.pop("differ_pixels"))
                # Written on a background thread, while this one starts the next batch on the device.
                background.submit(
                    writer.add, index, rows.pop("prediction"), rows.pop("runner_up"), rows.pop("mask_packed"), rows
                )
                done += 1
            share = 100 * tally.pixels / max(1, sizes[:done].prod(1).sum())
            bar.update(task, advance=len(batch_results), status=f"mask {share:.2f}%")
            if getattr(stop, "signal_name", None) is not None and done < len(dataset):
                keep_for_resume(
                    f, writer, background, tally, config, bar, stop.signal_name, done, len(dataset), resume_path
                )
            if done >= next_save and done < len(dataset):
                save_for_resume(f, writer, background, tally, config, resume_path)
                next_save = done + options.save_every
        background.wait()
        if "resume_state" in f.attrs:
            del f.attrs["resume_state"]
        writer.close()
        class_share = {
            name: 100 * float(count) / max(1, tally.pixels)
            for name, count in zip(checkpoint.class_names, tally.by_class)
        }
        summary = {
            "images": len(dataset),
            "mask_share_percent": 100 * tally.pixels / float(sizes.prod(1).sum()),
            "differ_share_percent": 100 * tally.differ_pixels / float(sizes.prod(1).sum()),
            "mask_budget_percent": 100 * inputs.mask_share,
            "mask_class_share_percent": class_share,
        }
        f.attrs["summary"] = json.dumps(summary)
    return summary


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
    f,
    writer,
    background: InOrderThread,
    tally: MaskTally,
    config: dict,
    bar,
    signal_name: str,
    done: int,
    total: int,
    resume_path: Path,
) -> None:
    """Stop: what is written stays, with the state --resume continues from (KeepPartial)."""
    mark_resume_state(f, writer, background, tally, config)
    bar.stop()
    stderr.print(
        f"{signal_name}: stopped after {done} of {total} images; saved {resume_path}. "
        "Run the same command with --resume to continue.",
        soft_wrap=True,
    )
    raise artifacts.KeepPartial


def extract_image(
    logits, head1, head2, native_size, excluded_yx, per_class: int, uncertain: int, mask_share: float = 0.0
) -> dict:
    """Everything the masks artifact keeps of one image, as numpy arrays on the host:
    ``prediction`` and ``runner_up`` (H, W) uint8 (A's first and second class),
    ``mask_packed`` (the mask within its budget ``mask_share``, labor_cli.inconsistency;
    ``pack_bits``), ``mask_by_class`` (the mask's pixels counted by A's class), ``differ_pixels``
    (where the heads differ, outside the excluded pixels, before the budget) and the rows of each
    group. The per-pixel work stays on the device; only these cross to the host."""
    height, width = native_size
    # One upsampling of A's and both heads' logits, in fp32 and the plain (C, H, W) layout: a
    # channels_last network hands out channels-last logits, and every per-pixel step below
    # (softmax and argmax over classes, gathers of probability vectors) was slower on them.
    stacked = torch.cat([logits, head1, head2]).float().contiguous()
    upsampled = F.interpolate(stacked[None], size=native_size, mode="bilinear", align_corners=False)[0]
    num_classes = logits.shape[0]
    probabilities = upsampled[:num_classes].softmax(0)
    prediction = probabilities.argmax(0)
    # The runner-up: the logits' argmax with A's class masked out (softmax keeps their order).
    runner_up = upsampled[:num_classes].scatter(0, prediction[None], float("-inf")).argmax(0)
    disagree = upsampled[num_classes : 2 * num_classes].argmax(0) != upsampled[2 * num_classes :].argmax(0)
    excluded = torch.zeros(height, width, dtype=torch.bool, device=logits.device)
    if excluded_yx is not None and len(excluded_yx):
        yx = torch.as_tensor(excluded_yx, device=logits.device).long()
        excluded[yx[:, 0], yx[:, 1]] = True
    differ = disagree & ~excluded
    budget = inconsistency.budget_pixels(mask_share, height, width)
    differ_pixels = int(differ.sum())
    mask = differ
    if budget is not None and differ_pixels > budget:
        discrepancy = inconsistency.head_discrepancy(
            upsampled[num_classes : 2 * num_classes], upsampled[2 * num_classes :]
        )
        mask = inconsistency.within_budget(differ, discrepancy, budget)
    rows = {
        "candidates": prototype_candidates(probabilities, prediction, mask, per_class),
        "uncertain": most_uncertain(probabilities, excluded, uncertain),
        "excluded": {
            "y": torch.as_tensor(excluded_yx[:, 0]) if excluded_yx is not None else torch.zeros(0),
            "x": torch.as_tensor(excluded_yx[:, 1]) if excluded_yx is not None else torch.zeros(0),
        },
    }
    out = {group: {name: value.cpu().numpy() for name, value in fields.items()} for group, fields in rows.items()}
    out["prediction"] = prediction.to(torch.uint8).cpu().numpy()
    out["runner_up"] = runner_up.to(torch.uint8).cpu().numpy()
    out["mask_packed"] = pack_bits(mask).cpu().numpy()
    out["mask_by_class"] = torch.bincount(prediction[mask], minlength=num_classes).cpu().numpy()
    out["differ_pixels"] = differ_pixels
    return out
