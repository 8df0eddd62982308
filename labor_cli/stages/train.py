"""labor warmup and labor adapt: train A, B and D and write one checkpoint.

warmup starts from fresh networks (source labels, adversarial alignment on target images, B's
heads on source labels plus the discrepancy term); adapt starts from a checkpoint and adds the
annotated target pixels (loss 2) and B's pseudo labels (loss 5). Both save every
``save_every`` iterations to OUTPUT's resume file, so ``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from labor_cli import artifacts
from labor_cli.artifacts import Checkpoint, TrainingState
from labor_cli.data.datasets import default_class_set, open_dataset, parse_dataset_spec, skipped_files
from labor_cli.data.labels import class_names
from labor_cli.data.transforms import SegmentationView
from labor_cli.distributed import Rank
from labor_cli.errors import LaborError
from labor_cli.models import build_networks
from labor_cli.runtime import configure_backends, resolve_compile, resolve_device, resolve_precision, seed_everything
from labor_cli.training import TargetPoints, TrainConfig, train

# Configuration keys that may differ between a run and its resumption.
RESUME_MAY_DIFFER = ("device", "workers", "quiet", "resume", "force", "compile")


@dataclass
class StageResult:
    output: Path
    iterations: int
    seconds: float
    final_losses: dict[str, float]
    class_set: str


def resume_path_for(output: Path) -> Path:
    """runs/warmup.h5 -> runs/warmup.resume.h5: the periodic saves of a run in progress."""
    return output.with_name(output.stem + ".resume" + (output.suffix or ".h5"))


def load_target_points(labels_path: Path, target_dataset, checkpoint_class_set: str) -> tuple[TargetPoints, artifacts.Parent, int]:
    """The annotated pixels of a labels artifact, checked against the target dataset."""
    labels = artifacts.read_pixel_set(labels_path, "labels")
    if labels.class_set != checkpoint_class_set:
        raise LaborError(f"{labels_path}: labels use class set {labels.class_set}, the model {checkpoint_class_set}")
    points = TargetPoints()
    total = 0
    left_out = set(target_dataset.unreadable_ids)  # --skip-bad: their labels go unused
    for i, image_id in enumerate(labels.image_ids):
        if image_id in left_out:
            continue
        try:
            index = target_dataset.index_of(image_id)
        except LaborError:
            raise LaborError(f"{labels_path}: image {image_id!r} is not in {target_dataset.spec} split {target_dataset.split}") from None
        height, width = (int(v) for v in labels.sizes[i])
        if target_dataset.image_size(index) != (width, height):
            raise LaborError(f"{labels_path}: image {image_id!r} is {width}x{height} there but "
                             f"{target_dataset.image_size(index)[0]}x{target_dataset.image_size(index)[1]} in {target_dataset.spec}")
        rows = labels.pixels_of(i)
        keep = labels.label[rows] != 255
        yx = torch.stack([torch.from_numpy(labels.y[rows][keep].astype("int64")), torch.from_numpy(labels.x[rows][keep].astype("int64"))], 1)
        points.by_index[index] = {"yx": yx, "label": torch.from_numpy(labels.label[rows][keep].astype("int64")), "size": (height, width)}
        total += int(keep.sum())
    return points, labels.parent, total


def run_training_stage(
    stage: str,
    source: str,
    target: str,
    output: Path,
    config: TrainConfig,
    arch: str = "small",
    init: str = "none",
    selector_backbone: str = "separate",
    class_set: Optional[str] = None,
    start_from: Optional[Path] = None,
    labels: Optional[Path] = None,
    source_split: str = "train",
    target_split: str = "train",
    device: str = "auto",
    precision: str = "auto",
    workers: int = 0,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    rank: Rank = Rank(),
    skip_bad: bool = False,
    compile: str = "auto",
) -> StageResult:
    """Under torchrun (``rank``), every process runs this; --source-batch and --target-batch are
    per process (the global batch is world_size times them) and only rank 0 writes files."""
    config.check()
    output = Path(output)
    artifacts.check_output_path(output, force)
    resume_path = resume_path_for(output)

    # Inputs: the starting checkpoint (adapt), the datasets, the annotated target pixels (adapt).
    parents: list[artifacts.Parent] = []
    checkpoint: Optional[Checkpoint] = artifacts.load_checkpoint(start_from) if start_from else None
    if checkpoint is not None:
        parents.append(checkpoint.artifact)
        class_set = checkpoint.class_set
        arch = checkpoint.networks.arch
        selector_backbone = checkpoint.networks.selector_backbone
    class_set = class_set or default_class_set(parse_dataset_spec(source)[0])
    source_dataset = open_dataset(source, source_split, class_set=class_set, skip_bad=skip_bad)
    target_dataset = open_dataset(target, target_split, class_set=class_set, require_labels=False, skip_bad=skip_bad, reads=("images",))
    source_dataset.check_classes(class_set, "source")
    if target_dataset.label_path(0) is not None:
        target_dataset.check_classes(class_set, "target")
    target_points = None
    if labels is not None:
        target_points, labels_parent, labeled_pixels = load_target_points(labels, target_dataset, class_set)
        parents.append(labels_parent)

    torch_device = resolve_device(device, rank)
    precision = resolve_precision(precision, torch_device)
    compiled = resolve_compile(compile, torch_device, training=True, iterations=config.iterations)
    configure_backends(torch_device)
    run_config = {
        "stage": stage,
        "source": source,
        "source_split": source_split,
        "target": target,
        "target_split": target_split,
        "start_from": str(start_from) if start_from else None,
        "labels": str(labels) if labels else None,
        "arch": arch,
        "init": init if checkpoint is None else f"checkpoint {start_from}",
        "selector_backbone": selector_backbone,
        "class_set": class_set,
        "precision": precision,
        "device": str(torch_device),
        "compile": compiled,
        "workers": workers,
        "train": config.as_dict(),
    }
    if skip_bad:
        run_config["skipped_unreadable"] = skipped_files(source=source_dataset, target=target_dataset)
    if rank.distributed:  # the global batch is world_size x the per-process batches: part of the run
        run_config["world_size"] = rank.world_size

    # Networks: fresh (warmup), from the checkpoint (adapt), or from the resume file.
    seed_everything(config.seed)
    resume_state: Optional[TrainingState] = None
    if resume:
        if not resume_path.exists():
            raise LaborError(f"{resume_path}: no saved run to resume (it is written every --save-every iterations)")
        saved = artifacts.load_checkpoint(resume_path)
        _check_same_run(resume_path, saved.config, run_config)
        networks, resume_state = saved.networks, saved.state
    elif checkpoint is not None:
        networks = checkpoint.networks
    else:
        networks = build_networks(arch, len(class_names(class_set)), init=init, selector_backbone=selector_backbone)

    def save(state: TrainingState, path: Path, replace: bool = True) -> None:
        with artifacts.create_artifact(path, "checkpoint", run_config, parents, force=replace) as f:
            artifacts.write_checkpoint(f, networks, class_set, list(class_names(class_set)), state)
            f.attrs["summary"] = _summary_json(state)

    started = time.perf_counter()
    source_view = SegmentationView(source_dataset, config.source_size or source_dataset.train_size, with_labels=True)
    target_view = SegmentationView(target_dataset, config.target_size or target_dataset.train_size, with_labels=False)
    state = train(networks, config, stage, source_view, target_view, target_points, torch_device, precision,
                  workers, save, resume_path, resume_state, quiet, rank=rank, compile_networks=compiled)
    networks.to("cpu")
    if rank.is_main:
        save(state, output, replace=force)
        resume_path.unlink(missing_ok=True)
    final = {name: float(values[-min(len(values), 50):].mean()) for name, values in state.history.items() if len(values)}
    return StageResult(output, state.iteration, time.perf_counter() - started, final, class_set)


def _check_same_run(path: Path, saved: dict, now: dict) -> None:
    now = json.loads(json.dumps(now))  # tuples become lists, as in the saved JSON
    for key in sorted(set(saved) | set(now)):
        if key in RESUME_MAY_DIFFER:
            continue
        if saved.get(key) != now.get(key):
            raise LaborError(f"{path}: was saved by a different run ({key}: {saved.get(key)} there, {now.get(key)} now); "
                             "use the original options, or remove it to start afresh")


def _summary_json(state: TrainingState) -> str:
    last = {name: round(float(values[-min(len(values), 50):].mean()), 4) for name, values in state.history.items() if len(values)}
    return json.dumps({"iterations_done": state.iteration, "loss_last_50": last})
