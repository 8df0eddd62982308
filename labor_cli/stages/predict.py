"""labor predict: model A's prediction of every image of a split, labels or not, as PNGs that the
Cityscapes evaluator and benchmark server take.

Each prediction is named as cityscapesScripts matches it (labor_cli/predictions.py), in Cityscapes
label ids, at the image's own size. Colour PNGs go to a folder of their own: beside the label-id
ones the evaluator would find two files per image.
A ``predictions.json`` beside them says how they were made.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from labor_cli import __version__, artifacts
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.labels import class_colours, index_to_label_id
from labor_cli.data.views import ExtractionView
from labor_cli.drawing import check_output_folder, output_folder
from labor_cli.errors import LaborUsageError
from labor_cli.inference import prepare_inference
from labor_cli.options import PredictOptions, resolve_workers
from labor_cli.predictions import cityscapes_prediction_name
from labor_cli.protocols import LABOR, ProtocolView, get_protocol, load_ensemble, predict_classes

RECORD_FILE = "predictions.json"


@dataclass
class PredictResult:
    output_dir: Path
    colour_dir: Path | None
    images: int
    seconds: float


def _check_folders(output_dir: Path, colour_dir: Path | None, force: bool, models: tuple = ()) -> None:
    check_output_folder(output_dir, force, inputs=models)
    if colour_dir is not None:
        inside = Path(colour_dir).resolve().is_relative_to(Path(output_dir).resolve())
        if inside:
            raise LaborUsageError(
                f"--colour {colour_dir}: must not be inside {output_dir} (the Cityscapes evaluator "
                "searches it recursively and would find two predictions per image)"
            )
        check_output_folder(colour_dir, force, inputs=models)


def run_predict(options: PredictOptions) -> PredictResult:
    output_dir, colour_dir, force = Path(options.output_dir), options.colour, options.force
    model_path, target, split, skip_bad = options.model, options.target, options.split, options.skip_bad
    _check_folders(output_dir, colour_dir, force, (model_path, options.ensemble))
    checkpoints = load_ensemble(model_path, options.ensemble)
    checkpoint = checkpoints[0]
    dataset = open_dataset(
        target, split, class_set=checkpoint.class_set, require_labels=False, skip_bad=skip_bad, reads=("images",)
    )
    protocol = get_protocol(options.protocol)
    size = options.input_size or protocol.input_size or dataset.train_size
    precision = protocol.resolve_precision(options.precision)
    inference = prepare_inference(checkpoints, options.device, precision, options.compile)
    loader = torch.utils.data.DataLoader(
        ExtractionView(dataset, size) if protocol.name == LABOR else ProtocolView(dataset, protocol, size, False),
        batch_size=options.batch_size,
        num_workers=resolve_workers(options.workers),
        pin_memory=inference.device.type == "cuda",
    )
    to_label_id = index_to_label_id(checkpoint.class_set)
    palette = class_colours(checkpoint.class_set)
    record = {
        "model": str(model_path),
        "model_uuid": checkpoint.artifact.uuid,
        "ensemble": str(options.ensemble) if options.ensemble else None,
        "ensemble_uuid": checkpoints[1].artifact.uuid if options.ensemble else None,
        "target": target,
        "split": split,
        "input_size": list(size) if size else None,
        "protocol": protocol.name,
        "protocol_settings": protocol.settings(),
        "device": str(inference.device),
        "precision": inference.precision,
        "command": artifacts.command_line(),
        "labor_version": __version__,
        "images": len(dataset),
        "format": "Cityscapes label ids, {image}_pred_labelIds.png",
    }
    if skip_bad:
        record["skipped_unreadable"] = skipped_files(target=dataset)
    started = time.perf_counter()
    colour_folder = output_folder(Path(colour_dir), force) if colour_dir else contextlib.nullcontext()
    with (
        output_folder(output_dir, force) as folder,
        colour_folder as colours,
        progress_bar(disable=options.quiet) as bar,
    ):
        task = bar.add_task("predict", total=len(dataset), status="")
        for batch in loader:
            images = inference.normalize(batch["image"].to(inference.device, non_blocking=True))
            sizes = [tuple(native) for native in batch["native_size"].tolist()]
            predictions = inference.compiled(
                predict_classes, inference.models, images, sizes, protocol, inference.precision
            )
            for index, prediction in zip(batch["index"].tolist(), predictions):
                classes = prediction.cpu().numpy().astype(np.uint8)
                image_id = dataset.image_ids[index]
                Image.fromarray(to_label_id[classes]).save(folder / cityscapes_prediction_name(image_id))
                if colours is not None:
                    Image.fromarray(palette[classes]).save(colours / cityscapes_prediction_name(image_id, colour=True))
            bar.update(task, advance=len(images))
        (folder / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    seconds = time.perf_counter() - started
    return PredictResult(output_dir, Path(colour_dir) if colour_dir else None, len(dataset), seconds)


def print_predict(result: PredictResult) -> None:
    where = f"{result.output_dir}" + (f" (colour: {result.colour_dir})" if result.colour_dir else "")
    stdout.print(f"{result.images} predictions in {where}, {result.seconds:.1f} s", soft_wrap=True)
