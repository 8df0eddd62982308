"""labor warmup and labor adapt: train A, B and D and write one checkpoint.

warmup starts from fresh networks (source labels, adversarial alignment on target images, B's
heads on source labels plus the discrepancy term); adapt starts from a checkpoint and adds the
annotated target pixels (loss 2) and B's pseudo labels (loss 5). Both save every
``save_every`` iterations to OUTPUT's resume file, so ``--resume`` continues an interrupted run,
and append their losses to OUTPUT.losses.csv as they go (labor_cli.history), to follow and plot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labor_cli import artifacts
from labor_cli.artifacts import Checkpoint, TrainingState, resume_path_for
from labor_cli.console import stdout
from labor_cli.data.datasets import default_class_set, open_dataset, parse_dataset_spec, skipped_files
from labor_cli.data.labels import class_names
from labor_cli.data.views import SegmentationView
from labor_cli.distributed import Rank
from labor_cli.errors import LaborError
from labor_cli.history import loss_history_path
from labor_cli.models.init import build_initialised_networks, default_init
from labor_cli.option_machinery import stored_config, stored_defaults
from labor_cli.options import AdaptOptions, WarmupOptions, resolve_workers
from labor_cli.resume import check_same_run, continue_saved_run
from labor_cli.runtime import configure_backends, resolve_compile, resolve_device, resolve_precision, seed_everything
from labor_cli.training.data import TargetPoints
from labor_cli.training.loop import Checkpoints, Placement, TrainingData, train
from labor_cli.training.steps import LOSS_NAMES

# Configuration keys that may differ between a run and its resumption.
RESUME_MAY_DIFFER = ("device", "workers", "quiet", "resume", "force", "compile")


@dataclass
class StageResult:
    output: Path
    iterations: int
    seconds: float
    final_losses: dict[str, float]  # and B's mask share and weight: each one's mean over the last 50 iterations
    class_set: str
    mask_budget: float  # --mask-share


@dataclass
class TrainingInputs:
    """What a training stage reads before it builds anything."""

    class_set: str
    source: Any  # the datasets (labor_cli.data.datasets.SegmentationDataset)
    target: Any
    checkpoint: Checkpoint | None = None  # adapt's starting point
    target_points: TargetPoints | None = None  # adapt's annotated target pixels
    parents: list[artifacts.Parent] = field(default_factory=list)


def run_training_stage(options: WarmupOptions | AdaptOptions, rank: Rank = Rank()) -> StageResult:
    """Under torchrun (``rank``), every process runs this; --source-batch and --target-batch are
    per process (the global batch is world_size times them) and only rank 0 writes files."""
    config = options.train
    output = Path(options.output)
    input_files = (options.model, options.labels) if isinstance(options, AdaptOptions) else ()
    artifacts.check_output_path(output, options.force, inputs=input_files)
    resume_path = resume_path_for(output)

    inputs = open_inputs(options)
    placement = resolve_placement(options, rank)
    run_config = stored_run_config(options, inputs, placement, rank)
    seed_everything(config.seed)
    networks, resume_state = starting_networks(options, inputs, run_config, resume_path, rank)
    save = checkpoint_writer(networks, inputs, run_config)

    started = time.perf_counter()
    source_view = SegmentationView(inputs.source, config.source_size or inputs.source.train_size, with_labels=True)
    target_view = SegmentationView(inputs.target, config.target_size or inputs.target.train_size, with_labels=False)
    history_csv = loss_history_path(output)
    try:
        state = train(
            networks,
            config,
            options.COMMAND,
            data=TrainingData(source_view, target_view, inputs.target_points),
            placement=placement,
            checkpoints=Checkpoints(save, resume_path, resume_state, history_csv),
            rank=rank,
            quiet=options.quiet,
        )
        networks.to("cpu")
        if rank.is_main:
            save(state, output, replace=options.force)
    except BaseException:
        # The CSV goes with the resume file it complements (--resume rewinds it); a run that
        # failed (a bad image, a full disk...) with nothing to resume leaves nothing behind.
        if rank.is_main and not resume_path.exists():
            history_csv.unlink(missing_ok=True)
        raise
    if rank.is_main:
        resume_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return StageResult(output, state.iteration, seconds, last_losses(state), inputs.class_set, config.mask_share)


def open_inputs(options: WarmupOptions | AdaptOptions) -> TrainingInputs:
    """The starting checkpoint (adapt), the two datasets, and the annotated target pixels (adapt)."""
    checkpoint = artifacts.load_checkpoint(options.model) if isinstance(options, AdaptOptions) else None
    class_set = checkpoint.class_set if checkpoint else options.classes
    class_set = class_set or default_class_set(parse_dataset_spec(options.source)[0])
    source = open_dataset(options.source, options.source_split, class_set=class_set, skip_bad=options.skip_bad)
    target = open_dataset(
        options.target,
        options.target_split,
        class_set=class_set,
        require_labels=False,
        skip_bad=options.skip_bad,
        reads=("images",),
    )
    source.check_classes(class_set, "source")
    if target.label_path(0) is not None:
        target.check_classes(class_set, "target")
    inputs = TrainingInputs(class_set, source, target, checkpoint)
    if checkpoint is not None:
        inputs.parents.append(checkpoint.artifact)
        inputs.target_points, labels_parent = load_target_points(options.labels, target, class_set)
        inputs.parents.append(labels_parent)
    return inputs


def load_target_points(
    labels_path: Path, target_dataset, checkpoint_class_set: str
) -> tuple[TargetPoints, artifacts.Parent]:
    """The annotated pixels of a labels artifact, checked against the target dataset."""
    labels = artifacts.read_pixel_set(labels_path, "labels")
    if labels.class_set != checkpoint_class_set:
        raise LaborError(f"{labels_path}: labels use class set {labels.class_set}, the model {checkpoint_class_set}")
    points = TargetPoints()
    left_out = set(target_dataset.unreadable_ids)  # --skip-bad: their labels go unused
    for i, image_id in enumerate(labels.image_ids):
        if image_id in left_out:
            continue
        try:
            index = target_dataset.index_of(image_id)
        except LaborError:
            raise LaborError(
                f"{labels_path}: image {image_id!r} is not in {target_dataset.spec} split {target_dataset.split}"
            ) from None
        height, width = (int(v) for v in labels.sizes[i])
        if target_dataset.image_size(index) != (width, height):
            raise LaborError(
                f"{labels_path}: image {image_id!r} is {width}x{height} there but "
                f"{target_dataset.image_size(index)[0]}x{target_dataset.image_size(index)[1]} in "
                f"{target_dataset.spec}"
            )
        rows = labels.pixels_of(i)
        keep = labels.label[rows] != 255
        yx = torch.stack(
            [
                torch.from_numpy(labels.y[rows][keep].astype("int64")),
                torch.from_numpy(labels.x[rows][keep].astype("int64")),
            ],
            1,
        )
        points.by_index[index] = {
            "yx": yx,
            "label": torch.from_numpy(labels.label[rows][keep].astype("int64")),
            "size": (height, width),
        }
    return points, labels.parent


def resolve_placement(options: WarmupOptions | AdaptOptions, rank: Rank) -> Placement:
    device = resolve_device(options.device, rank)
    placement = Placement(
        device,
        resolve_precision(options.precision, device),
        resolve_compile(options.compile, device, training=True, iterations=options.train.iterations),
        resolve_workers(options.workers),
    )
    configure_backends(device)
    return placement


def stored_run_config(
    options: WarmupOptions | AdaptOptions, inputs: TrainingInputs, placement: Placement, rank: Rank
) -> dict:
    """The checkpoint's config: the options as resolved, and adapt's networks as its checkpoint had them."""
    facts: dict[str, Any] = {
        "stage": options.COMMAND,
        "class_set": inputs.class_set,
        "precision": placement.precision,
        "device": str(placement.device),
        "compile": placement.compiled,
        "workers": placement.workers,
    }
    if inputs.checkpoint is not None:
        networks = inputs.checkpoint.networks
        facts.update(
            arch=networks.arch, selector_backbone=networks.selector_backbone, init=f"checkpoint {options.model}"
        )
    else:
        facts["init"] = resolved_init(options)
    if options.skip_bad:
        facts["skipped_unreadable"] = skipped_files(source=inputs.source, target=inputs.target)
    if rank.distributed:  # the global batch is world_size x the per-process batches: part of the run
        facts["world_size"] = rank.world_size
    return {"start_from": None, "labels": None, **stored_config(options, **facts)}


def starting_networks(
    options: WarmupOptions | AdaptOptions, inputs: TrainingInputs, run_config: dict, resume_path: Path, rank: Rank
) -> tuple[Any, TrainingState | None]:
    """Networks from the resume file (--resume), from the checkpoint (adapt), or fresh (warmup)."""
    if continue_saved_run(resume_path, options.resume, "iterations", say=rank.is_main):
        saved = artifacts.load_checkpoint(resume_path)
        check_same_run(
            resume_path, saved.config, run_config, may_differ=RESUME_MAY_DIFFER, defaults=stored_defaults(type(options))
        )
        return saved.networks, saved.state
    if inputs.checkpoint is not None:
        return inputs.checkpoint.networks, None
    networks, _ = build_initialised_networks(
        options.arch,
        len(class_names(inputs.class_set)),
        resolved_init(options),
        selector_backbone=options.selector_backbone,
    )
    return networks, None


def resolved_init(options: WarmupOptions) -> str:
    """--init auto as what it stands for: imagenet for the ResNet archs, none for small."""
    return default_init(options.arch) if options.init == "auto" else options.init


def checkpoint_writer(networks, inputs: TrainingInputs, run_config: dict) -> Callable[..., None]:
    """save(state, path, replace=True): the networks and ``state`` as a checkpoint artifact."""

    def save(state: TrainingState, path: Path, replace: bool = True) -> None:
        with artifacts.create_artifact(path, "checkpoint", run_config, inputs.parents, force=replace) as f:
            artifacts.write_checkpoint(f, networks, inputs.class_set, list(class_names(inputs.class_set)), state)
            f.attrs["summary"] = json.dumps(
                {
                    "iterations_done": state.iteration,
                    "loss_last_50": {k: round(v, 4) for k, v in last_losses(state).items()},
                }
            )

    return save


def last_losses(state: TrainingState) -> dict[str, float]:
    """Each loss's mean over the last 50 iterations."""
    return {
        name: float(values[-min(len(values), 50) :].mean()) for name, values in state.history.items() if len(values)
    }


def print_training(result) -> None:
    """The losses and B's mask over the last 50 iterations. The mask is measured on the feature
    grid of the training images; `labor extract` measures it again at full resolution."""
    losses = "  ".join(
        f"{name} {value:.3f}" for name, value in result.final_losses.items() if value and name in LOSS_NAMES
    )
    stdout.print(f"{result.iterations} iterations in {result.seconds:.0f} s; last losses: {losses} -> {result.output}")
    last = result.final_losses
    if "mask_kept" not in last:
        return
    budget = result.mask_budget
    line = f"  B's mask, last 50 iterations: heads differ on {100 * last['mask_share']:.2f}% of the target pixels"
    if budget > 0:
        line += f", {100 * last['mask_kept']:.2f}% kept within --mask-share {100 * budget:.2f}% of each image"
        if not 0.8 * budget <= last["mask_kept"] <= budget:
            line += " (outside 80-100% of it: a longer run, or another --lambda-dis to start from)"
    stdout.print(f"{line}; lambda_dis {last['lambda_dis']:.3g}")
