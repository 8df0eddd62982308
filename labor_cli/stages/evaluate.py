"""labor evaluate: mIoU of model A on a labeled target split, logits upsampled to the full label."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from labor_cli import artifacts, distributed
from labor_cli.console import progress_bar
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.labels import class_colours, evaluation_subsets, index_to_label_id
from labor_cli.data.transforms import ImageNormalizer, image_as_tensor, resize_image
from labor_cli.distributed import Rank
from labor_cli.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from labor_cli.models import fold_frozen_batchnorm
from labor_cli.runtime import CompileFallback, autocast, configure_backends, memory_format, resolve_compile, resolve_device, resolve_precision


class FullLabelView(torch.utils.data.Dataset):
    """Images resized to the network's input size, labels at their full resolution."""

    def __init__(self, dataset, size: tuple[int, int] | None):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image = self.dataset.read_image(i)
        if self.size is not None:
            image = resize_image(image, self.size)
        label = self.dataset.read_label(i)
        return {"image": image_as_tensor(image), "label": torch.from_numpy(label), "index": i}  # uint8, widened on the device


@dataclass
class EvaluationResult:
    class_names: list[str]
    confusion: np.ndarray
    iou: np.ndarray
    scores: dict[str, float]
    images: int
    seconds: float


@torch.no_grad()
def predict_full_resolution(model, images: torch.Tensor, label_size: tuple[int, int], precision: str) -> torch.Tensor:
    """Argmax of A's logits bilinearly upsampled to the label's (H, W)."""
    with autocast(images.device, precision):
        logits = model(images)
    logits = F.interpolate(logits.float(), size=label_size, mode="bilinear", align_corners=False)
    return logits.argmax(1)


def run_evaluate(
    model_path: Path,
    target: str,
    split: str,
    output: Path,
    force: bool = False,
    device: str = "auto",
    precision: str = "auto",
    input_size: tuple[int, int] | None = None,
    batch_size: int = 1,
    workers: int = 0,
    predictions_dir: Path | None = None,
    colour_dir: Path | None = None,
    quiet: bool = False,
    rank: Rank = Rank(),
    skip_bad: bool = False,
    compile: str = "auto",
) -> EvaluationResult | None:
    """Under torchrun (``rank``) process r evaluates images r, r + W, ...; the confusion matrices
    are summed over the processes and rank 0 writes the artifact (the others return None)."""
    artifacts.check_output_path(output, force)
    checkpoint = artifacts.load_checkpoint(model_path)
    dataset = open_dataset(target, split, class_set=checkpoint.class_set, skip_bad=skip_bad)
    dataset.check_classes(checkpoint.class_set, "evaluation target")
    torch_device = resolve_device(device, rank)
    precision = resolve_precision(precision, torch_device)
    size = input_size or dataset.train_size
    model = checkpoint.networks.segmenter
    fold_frozen_batchnorm(model)  # inference only, and these weights are never saved
    fmt = memory_format(torch_device)
    model = model.to(torch_device, memory_format=fmt).eval()
    normalize = ImageNormalizer(torch_device, fmt)
    configure_backends(torch_device)
    compiled = CompileFallback(model.called_modules(), resolve_compile(compile, torch_device, training=False))
    num_classes = len(checkpoint.class_names)
    view = FullLabelView(dataset, size)
    if rank.distributed:
        view = torch.utils.data.Subset(view, range(rank.rank, len(dataset), rank.world_size))
    loader = torch.utils.data.DataLoader(
        view,
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=torch_device.type == "cuda",
    )
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=torch_device)
    started = time.perf_counter()
    with progress_bar(disable=quiet or not rank.is_main) as bar:
        task = bar.add_task("evaluate", total=len(view), status="")
        for batch in loader:
            images = normalize(batch["image"].to(torch_device, non_blocking=True))
            labels = batch["label"].to(torch_device, non_blocking=True)
            predictions = compiled(predict_full_resolution, model, images, tuple(labels.shape[-2:]), precision)
            confusion += confusion_matrix(predictions, labels, num_classes)
            if predictions_dir or colour_dir:
                write_prediction_pngs(dataset, batch["index"].tolist(), predictions.cpu().numpy(), checkpoint.class_set, predictions_dir, colour_dir)
            bar.update(task, advance=len(images))
    distributed.all_reduce_sum(confusion, rank)
    if not rank.is_main:
        return None
    seconds = time.perf_counter() - started
    confusion = confusion.cpu().numpy()
    iou = iou_per_class(confusion)
    scores = {name: mean_iou(iou, classes) for name, classes in evaluation_subsets(checkpoint.class_set).items()}
    scores["pixel_accuracy"] = pixel_accuracy(confusion)
    config = {
        "model": str(model_path),
        "target": target,
        "split": split,
        "input_size": list(size) if size else None,
        "device": str(torch_device),
        "precision": precision,
        "compile": compiled.active,
        "batch_size": batch_size,
    }
    if skip_bad:
        config["skipped_unreadable"] = skipped_files(target=dataset)
    with artifacts.create_artifact(output, "evaluation", config, [checkpoint.artifact], force) as f:
        f.create_dataset("confusion", data=confusion)
        f.create_dataset("iou", data=iou)
        artifacts.write_image_ids(f, dataset.image_ids)
        f.attrs["class_names"] = json.dumps(checkpoint.class_names)
        f.attrs["scores"] = json.dumps(scores)
    return EvaluationResult(list(checkpoint.class_names), confusion, iou, scores, len(dataset), seconds)


def write_prediction_pngs(dataset, indices, predictions, class_set, predictions_dir, colour_dir) -> None:
    """Prediction PNGs in Cityscapes label ids (what cityscapesScripts reads) and colourised ones."""
    to_label_id = index_to_label_id(class_set)
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(class_colours(class_set))] = class_colours(class_set)
    for index, prediction in zip(indices, predictions.astype(np.uint8)):
        name = dataset.image_ids[index].replace("/", "__")
        if predictions_dir:
            Path(predictions_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(to_label_id[prediction]).save(Path(predictions_dir) / f"{name}_pred_labelIds.png")
        if colour_dir:
            Path(colour_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(palette[prediction]).save(Path(colour_dir) / f"{name}_pred_color.png")
