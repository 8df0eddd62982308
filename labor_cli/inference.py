"""A checkpoint's networks made ready to infer (extract, evaluate, predict).

FrozenBN is folded into the convolutions (inference only, and these weights are never saved);
the networks go to the device in its memory format, in eval mode, cuDNN autotuned and compiled
if asked."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labor_cli import artifacts
from labor_cli.data.transforms import ImageNormalizer
from labor_cli.models import fold_frozen_batchnorm
from labor_cli.runtime import (
    CompileFallback,
    configure_backends,
    memory_format,
    resolve_compile,
    resolve_device,
    resolve_precision,
)


def inference_networks(checkpoint: artifacts.Checkpoint, device: torch.device):
    """A and B on the device, in eval mode, their FrozenBNs folded into the convolutions."""
    networks = checkpoint.networks
    fold_frozen_batchnorm(networks)  # inference only, and these weights are never saved
    return networks.to(device, memory_format=memory_format(device)).eval()


@dataclass
class Inference:
    """Model A of each checkpoint (--model, and --ensemble's) ready to predict: BN folded, on the
    device, in its memory format; and their input normaliser."""

    models: list[torch.nn.Module]
    device: torch.device
    precision: str
    normalize: ImageNormalizer
    compiled: CompileFallback


def prepare_inference(checkpoints: list, device: str, precision: str, compile: str, rank=None) -> Inference:
    """What predict and evaluate do before their loops: fold FrozenBN (inference only, never saved),
    move each A to the device in its memory format, cuDNN autotuning, torch.compile if asked."""
    torch_device = resolve_device(device, rank)
    fmt = memory_format(torch_device)
    models = []
    for checkpoint in checkpoints:
        model = checkpoint.networks.segmenter
        fold_frozen_batchnorm(model)
        models.append(model.to(torch_device, memory_format=fmt).eval())
    configure_backends(torch_device)
    called = [module for model in models for module in model.called_modules()]
    compiled = CompileFallback(called, resolve_compile(compile, torch_device, training=False))
    precision = resolve_precision(precision, torch_device)
    return Inference(models, torch_device, precision, ImageNormalizer(torch_device, fmt), compiled)
