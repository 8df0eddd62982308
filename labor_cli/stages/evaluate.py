"""labor evaluate: mIoU of model A on a labeled target split, logits upsampled to the full label."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from labor_cli import artifacts, distributed
from labor_cli import predictions as prediction_pngs
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.labels import evaluation_subsets
from labor_cli.data.views import FullLabelView
from labor_cli.distributed import Rank
from labor_cli.drawing import check_output_folder, output_folder
from labor_cli.inference import Inference, prepare_inference
from labor_cli.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from labor_cli.option_machinery import stored_config
from labor_cli.options import EvaluateOptions, resolve_workers
from labor_cli.protocols import LABOR, Protocol, ProtocolView, get_protocol, load_ensemble, predict_classes
from labor_cli.report import score


@dataclass
class EvaluationResult:
    class_names: list[str]
    confusion: np.ndarray
    iou: np.ndarray
    scores: dict[str, float]
    images: int
    seconds: float


def run_evaluate(options: EvaluateOptions, rank: Rank = Rank()) -> EvaluationResult | None:
    """Under torchrun (``rank``) process r evaluates images r, r + W, ...; the confusion matrices
    are summed over the processes and rank 0 writes the artifact (the others return None)."""
    inputs = (options.model, options.ensemble)
    artifacts.check_output_path(options.output, options.force, inputs=inputs)
    for folder in (options.predictions, options.colour) if rank.is_main else ():  # rank 0 only: others may write
        if folder is not None:
            check_output_folder(folder, options.force, inputs=inputs)
    checkpoints = load_ensemble(options.model, options.ensemble)
    checkpoint = checkpoints[0]
    dataset = open_dataset(options.target, options.split, class_set=checkpoint.class_set, skip_bad=options.skip_bad)
    dataset.check_classes(checkpoint.class_set, "evaluation target")
    protocol = get_protocol(options.protocol)
    precision = protocol.resolve_precision(options.precision)
    inference = prepare_inference(checkpoints, options.device, precision, options.compile, rank)
    size = options.input_size or protocol.input_size or dataset.train_size

    started = time.perf_counter()
    with contextlib.ExitStack() as folders:
        # One process fills temporary folders that replace --predictions/--colour once everything is
        # written (a Ctrl-C leaves nothing half-written); under torchrun every rank writes in place.
        png_dirs = [
            folders.enter_context(output_folder(Path(folder), options.force))
            if folder and not rank.distributed
            else folder
            for folder in (options.predictions, options.colour)
        ]
        confusion = confusion_over(dataset, size, protocol, inference, options, checkpoint, rank, png_dirs)
        if not rank.is_main:
            return None
        seconds = time.perf_counter() - started
        iou = iou_per_class(confusion)
        scores = {name: mean_iou(iou, classes) for name, classes in evaluation_subsets(checkpoint.class_set).items()}
        scores["pixel_accuracy"] = pixel_accuracy(confusion)
        facts = {"skipped_unreadable": skipped_files(target=dataset)} if options.skip_bad else {}
        config = stored_config(
            options,
            input_size=size,
            protocol_settings=protocol.settings(),
            device=str(inference.device),
            precision=inference.precision,
            compile=inference.compiled.active,
            **facts,
        )
        parents = [one.artifact for one in checkpoints]
        with artifacts.create_artifact(options.output, "evaluation", config, parents, options.force) as f:
            f.create_dataset("confusion", data=confusion)
            f.create_dataset("iou", data=iou)
            artifacts.write_image_ids(f, dataset.image_ids)
            f.attrs["class_names"] = json.dumps(checkpoint.class_names)
            f.attrs["scores"] = json.dumps(scores)
        return EvaluationResult(list(checkpoint.class_names), confusion, iou, scores, len(dataset), seconds)


def confusion_over(
    dataset,
    size,
    protocol: Protocol,
    inference: Inference,
    options: EvaluateOptions,
    checkpoint: artifacts.Checkpoint,
    rank: Rank,
    png_dirs: list,
) -> np.ndarray:
    """The confusion matrix of A (averaged over ``inference.models`` with --ensemble) over this
    process's share of the images, predicted as ``protocol`` says, summed over the processes (what
    rank 0 returns); prediction PNGs written on the way into ``png_dirs`` (label ids, colour; None:
    not asked for)."""
    device = inference.device
    num_classes = len(checkpoint.class_names)
    view = FullLabelView(dataset, size) if protocol.name == LABOR else ProtocolView(dataset, protocol, size, True)
    if rank.distributed:
        view = torch.utils.data.Subset(view, range(rank.rank, len(dataset), rank.world_size))
    loader = torch.utils.data.DataLoader(
        view,
        batch_size=options.batch_size,
        num_workers=resolve_workers(options.workers),
        pin_memory=device.type == "cuda",
    )
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    with progress_bar(disable=options.quiet or not rank.is_main) as bar:
        task = bar.add_task("evaluate", total=len(view), status="")
        for batch in loader:
            images = inference.normalize(batch["image"].to(device, non_blocking=True))
            labels = batch["label"].to(device, non_blocking=True)
            sizes = [tuple(labels.shape[-2:])] * len(images)
            predictions = torch.stack(
                inference.compiled(predict_classes, inference.models, images, sizes, protocol, inference.precision)
            )
            confusion += confusion_matrix(predictions, labels, num_classes)
            if any(png_dirs):
                prediction_pngs.write_prediction_pngs(
                    dataset, batch["index"].tolist(), predictions.cpu().numpy(), checkpoint.class_set, *png_dirs
                )
            bar.update(task, advance=len(images))
    distributed.all_reduce_sum(confusion, rank)
    return confusion.cpu().numpy()


def print_evaluation(result, output: Path) -> None:
    table = Table("class", "IoU", title=f"{result.images} images")
    for name, value in zip(result.class_names, result.iou):
        table.add_row(name, score(value * 100))
    stdout.print(table)
    scores = "  ".join(f"{name} {score(value)}" for name, value in result.scores.items())
    stdout.print(f"{scores}   ({result.seconds:.1f} s) -> {output}")
