"""Evaluation protocols: how each published code turns an image into a class map, as data.

With them `labor evaluate` and `labor predict` can score a converted checkpoint the
way its authors did (docs/method.md, "Evaluation protocols", has the table and the files read).

A protocol fixes what happens around the network:

- the input: every image resized to one size with one Pillow filter (the scripts resize a
  2048x1024 Cityscapes image to 1024x512 or 1280x640 with ``Image.BICUBIC``), or labor's own
  view (the dataset's training size, Pillow bilinear);
- the logits: upsampled bilinearly to the label's size (the image's own size), with
  ``align_corners`` False (labor) or True (the three published codes);
- flip averaging: RIPU's test.py also runs the mirrored image in the same batch and averages
  the softmax of both (the mirror's flipped back) before the argmax;
- the precision ``--precision auto`` means: labor's (bf16 on CUDA), or fp32, as the scripts run.

Which output is scored needs no setting here: AdaptSegNet's and ADVENT's scripts score the
multi-level model's main classifier (``layer6``, on layer4) alone, which is what `labor convert`
keeps; RIPU's model has one classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from labor_cli.data.transforms import image_as_tensor
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.runtime import autocast

LABOR = "labor"
RESIZE_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (see the module docstring)."""

    name: str
    input_size: tuple[int, int] | None  # (W, H) every image is resized to; None: the dataset's training size
    resize: str  # the Pillow filter of that resize, a key of RESIZE_FILTERS
    align_corners: bool  # of the bilinear upsampling of the logits to the label's size
    flip: bool  # average the softmax of the image and of its mirror image
    precision: str | None  # what --precision auto means: None, labor's own (bf16 on CUDA); or "fp32"
    outputs: str  # which output of the network is scored
    read_in: str  # the files it was read from, as "repository: path, path"

    def resolve_precision(self, requested: str) -> str:
        """--precision as given, except auto under a protocol that fixes it."""
        return self.precision if requested == "auto" and self.precision else requested

    def settings(self) -> dict:
        """What an artifact records of it (JSON values)."""
        return {
            "input_size": list(self.input_size) if self.input_size else None,
            "resize": self.resize,
            "align_corners": self.align_corners,
            "flip": self.flip,
            "precision": self.precision or "auto",
        }


PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol(
            LABOR,
            input_size=None,
            resize="bilinear",
            align_corners=False,
            flip=False,
            precision=None,
            outputs="A's classifier",
            read_in="labor: labor_cli/stages/evaluate.py, labor_cli/stages/predict.py",
        ),
        Protocol(
            "adaptsegnet",
            input_size=(1024, 512),
            resize="bicubic",
            align_corners=True,
            flip=False,
            precision="fp32",
            outputs="layer6 (output2 of DeeplabMulti); layer5 unused",
            read_in="wasidennis/AdaptSegNet: evaluate_cityscapes.py, dataset/cityscapes_dataset.py, "
            "model/deeplab_multi.py",
        ),
        Protocol(
            "advent",
            input_size=(1024, 512),
            resize="bicubic",
            align_corners=True,
            flip=False,
            precision="fp32",
            outputs="layer6 (pred_main, the model's second output); layer5 unused",
            read_in="valeoai/ADVENT: advent/domain_adaptation/eval_UDA.py, advent/scripts/test.py, "
            "advent/domain_adaptation/config.py, advent/dataset/base_dataset.py",
        ),
        Protocol(
            "ripu",
            input_size=(1280, 640),
            resize="bicubic",
            align_corners=True,
            flip=True,
            precision="fp32",
            outputs="the classifier",
            read_in="BIT-DA/RIPU: test.py, core/datasets/build.py, core/datasets/transform.py, "
            "core/configs/defaults.py, configs/gtav/deeplabv2_r101_RA.yaml",
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise LaborUsageError(f"--protocol {name!r}: expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def describe_recorded(config: dict) -> str:
    """One line for people (`labor inspect`) of the protocol an evaluation's config records, with
    the input size and precision it ran at; a config without one was made with labor's."""
    name = config.get("protocol", LABOR)
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}")
    settings = config.get("protocol_settings") or PROTOCOLS[name].settings()
    if not isinstance(settings, dict):
        raise ValueError("protocol_settings is not a JSON object")
    size = config.get("input_size")
    size = "x".join(map(str, size)) if isinstance(size, list) else "native"
    flip = ", flip-averaged softmax" if settings.get("flip") else ""
    return (
        f"{name}: input {size} ({settings.get('resize')}), logits upsampled bilinearly to the label's size "
        f"(align_corners={settings.get('align_corners')}){flip}, precision {config.get('precision')}"
    )


def resize_as(image: np.ndarray, size: tuple[int, int], filter_name: str) -> np.ndarray:
    """An HxWx3 uint8 image resized to ``size`` = (W, H) with a Pillow filter, in uint8 (as the
    scripts resize the Pillow image before turning it into floats)."""
    size = (int(size[0]), int(size[1]))
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, RESIZE_FILTERS[filter_name]))


class ProtocolView(torch.utils.data.Dataset):
    """A dataset as a protocol's script feeds it: each image resized to ``size`` with the
    protocol's filter, its native (H, W), and (``labels``) its label at full resolution."""

    def __init__(self, dataset, protocol: Protocol, size: tuple[int, int], labels: bool):
        self.dataset, self.protocol, self.size, self.labels = dataset, protocol, size, labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image = self.dataset.read_image(i)
        item = {"native_size": torch.tensor(image.shape[:2]), "index": i}
        if self.labels:
            label = self.dataset.read_label(i)
            if label.shape != image.shape[:2]:  # scored at the label's size, it would score a stretched prediction
                raise LaborError(
                    f"{self.dataset.label_path(i)}: label is {label.shape[1]}x{label.shape[0]}, "
                    f"its image {image.shape[1]}x{image.shape[0]}"
                )
            item["label"] = torch.from_numpy(label)
        item["image"] = image_as_tensor(resize_as(image, self.size, self.protocol.resize))  # uint8
        return item


def _upsampled(logits: torch.Tensor, size: tuple[int, int], protocol: Protocol) -> torch.Tensor:
    """One image's C x h x w logits, bilinearly upsampled to ``size`` = (H, W), in fp32."""
    return F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=protocol.align_corners)[0]


def load_ensemble(model: Path, ensemble: Path | None) -> list:
    """The checkpoints whose class scores are averaged: ``model``, and ``ensemble`` if given (ADVENT's
    test.py averages two models' upsampled logits, half each, for AdvEnt + MinEnt); the second must
    score the same classes."""
    from labor_cli import artifacts

    checkpoints = [artifacts.load_checkpoint(path) for path in (model, ensemble) if path is not None]
    for other in checkpoints[1:]:
        if (other.class_set, other.class_names) != (checkpoints[0].class_set, checkpoints[0].class_names):
            raise LaborError(
                f"{ensemble}: scores the classes of {other.class_set}, {model} those of {checkpoints[0].class_set}"
            )
    return checkpoints


def _upsampled(logits: torch.Tensor, size: tuple[int, int], protocol: Protocol) -> torch.Tensor:
    """One image's C x h x w logits, bilinearly upsampled to ``size`` = (H, W), in fp32."""
    return F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=protocol.align_corners)[0]


def _class_scores(logits: torch.Tensor, i: int, count: int, size, protocol: Protocol) -> torch.Tensor:
    """Image i's C x H x W scores: its upsampled logits; with flip averaging, the mean of its softmax
    and of its mirror image's (row ``count + i`` of ``logits``), flipped back."""
    scores = _upsampled(logits[i], size, protocol)
    if protocol.flip:
        mirrored = _upsampled(logits[count + i], size, protocol)
        scores = (scores.softmax(0) + mirrored.softmax(0).flip(-1)) / 2
    return scores


@torch.no_grad()
def predict_classes(
    models: list, images: torch.Tensor, sizes: list[tuple[int, int]], protocol: Protocol, precision: str
) -> list[torch.Tensor]:
    """Per image of the normalised batch ``images``, its class map at its own (H, W) in ``sizes``:
    the argmax of its class scores as ``protocol`` computes them (with flip averaging the image and
    its mirror run in one batch), averaged over ``models`` with equal weights as ADVENT's
    eval_single sums them (weight times scores, model after model)."""
    count = len(images)
    inputs = torch.cat([images, images.flip(-1)]) if protocol.flip else images
    with autocast(images.device, precision):
        outputs = [model(inputs) for model in models]
    weight = 1.0 / len(models)
    classes = []
    for i, size in enumerate(sizes):
        scores = _class_scores(outputs[0], i, count, size, protocol)
        if len(models) > 1:
            scores = weight * scores
            for logits in outputs[1:]:
                scores += weight * _class_scores(logits, i, count, size, protocol)
        classes.append(scores.argmax(0))
    return classes
