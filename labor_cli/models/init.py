"""Where a new network's weights come from: ``--init none | imagenet | [FORMAT:]PATH``.

- ``imagenet`` (the default for the ResNet archs: no one in the field trains DeepLab-v2 from
  random weights): torchvision's ImageNet ResNet, from torchvision's cache
  (``$TORCH_HOME/hub/checkpoints``) or downloaded into it. Offline and not cached, the error
  says in one line which file torchvision wanted, where it looked, and the way out.
- ``none``: random weights (the default for the small arch, which trains from scratch).
- ``PATH``: a torchvision ResNet state dict, or a DeepLab-v2 from the field that its keys
  identify (a RIPU checkpoint, a ``Scale.``-prefixed DeepLab-v2 initialisation);
  ``FORMAT:PATH`` for the others (``adaptsegnet:``, ``advent:``, see labor_cli.models.convert).
  A field model brings its backbone layout, and its classifier when it has the run's number of
  classes; B's heads and D start fresh, for warmup to train.

Nothing here downloads except :func:`imagenet_state_dict`, and only for ``imagenet``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from labor_cli.errors import LaborError, LaborUsageError

IMAGENET_ARCHS = ("deeplabv2-r101", "deeplabv2-r50")


def default_init(arch: str) -> str:
    """imagenet for the ResNet archs, none for the small one."""
    return "imagenet" if arch in IMAGENET_ARCHS else "none"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def imagenet_weights_url(arch: str) -> str:
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    if arch not in IMAGENET_ARCHS:
        raise LaborUsageError(f"no ImageNet weights for arch {arch} (use --init none, or --init PATH)")
    return {"deeplabv2-r101": ResNet101_Weights.IMAGENET1K_V1, "deeplabv2-r50": ResNet50_Weights.IMAGENET1K_V1}[
        arch
    ].url


def imagenet_cache_file(arch: str) -> Path:
    """Where torchvision keeps (and looks for) the ImageNet weights of ``arch``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_weights_url(arch))


def imagenet_state_dict(arch: str) -> Mapping[str, Tensor]:
    """torchvision's ImageNet ResNet weights for ``arch``: from its cache, else downloaded there."""
    url, cached = imagenet_weights_url(arch), imagenet_cache_file(arch)
    was_cached = cached.is_file()
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)
    except Exception as exc:  # offline, a proxy, a full disk, a damaged cached file...
        if was_cached:
            raise LaborError(
                f"{cached}: cannot read torchvision's cached ImageNet weights ({_one_line(exc)}); "
                f"delete it to download it again, or pass --init PATH"
            ) from exc
        raise LaborError(
            f"--init imagenet: torchvision wanted {cached.name} in {cached.parent} and could not download it from "
            f"{url} ({_one_line(exc)}); put that file there (TORCH_HOME moves the folder), or pass --init PATH "
            f"(a local torchvision ResNet or DeepLab-v2 state dict), or --init none for random weights"
        ) from exc


@dataclass
class Initialisation:
    """What a new network starts from: a backbone state dict in ``layout`` (None: random), and
    A's classifier when the source has one with the run's number of classes."""

    source: str  # for the artifact's config: none, the ImageNet URL, or the file
    layout: str = "torchvision"
    backbone: Mapping[str, Tensor] | None = None
    classifier: Mapping[str, Tensor] | None = None
    notes: list[str] = field(default_factory=list)


def resolve_init(arch: str, init: str, num_classes: int) -> Initialisation:
    """Turn an ``--init`` value into an :class:`Initialisation` for ``arch`` (read once, shared
    by A's and B's backbones)."""
    if not isinstance(init, str) or not init:
        raise LaborUsageError(f"bad --init {init!r}: give none, imagenet, or a path")
    if init == "none":
        return Initialisation("none")
    if init == "imagenet":
        return Initialisation(imagenet_weights_url(arch), backbone=imagenet_state_dict(arch))
    if arch not in IMAGENET_ARCHS:
        raise LaborUsageError(f"--init {init}: arch {arch} has no ResNet to load it into (use --arch deeplabv2-r101)")
    from labor_cli.models.convert import (
        detect_format,
        load_weights_file,
        parse_weights_spec,
        read_field_model,
        tensor_state_dict,
    )

    format, path = parse_weights_spec(init)
    if format is None:
        loaded = load_weights_file(path)
        found = detect_format(loaded)
        if found == "torchvision":
            return Initialisation(str(path), backbone=tensor_state_dict(loaded, path, "the file"))
        if found == "caffe":  # AdaptSegNet's or ADVENT's: the same backbone, classifiers that differ
            model = read_field_model(path, "advent", need_classifier=False)
            if model.num_classes == num_classes:
                read_field_model(path)  # raises: name the code that trained it
        else:
            model = read_field_model(path, need_classifier=False)
    else:
        model = read_field_model(path, format, need_classifier=False)
    if model.arch != arch:
        raise LaborUsageError(f"--init {init}: the file holds a {model.arch} backbone; pass --arch {model.arch}")
    notes = list(model.notes)
    classifier = model.classifier if model.num_classes == num_classes else None
    if model.classifier is not None and classifier is None:
        notes.append(f"classifier of {model.num_classes} classes left out (the run has {num_classes}): A's is fresh")
    return Initialisation(init, model.layout, model.backbone, classifier, notes)


def build_initialised_networks(arch: str, num_classes: int, init: str, selector_backbone: str = "separate"):
    """Networks for warmup: A's backbone (and B's, in separate mode) from ``init``, A's
    classifier too when the source has one of ``num_classes``; B's heads and D fresh. The
    random draws are those of ``build_networks`` (seed first), whatever ``init`` is."""
    from labor_cli.models import build_networks
    from labor_cli.models.deeplab import load_backbone_state

    start = resolve_init(arch, init, num_classes)
    networks = build_networks(arch, num_classes, selector_backbone=selector_backbone, backbone_layout=start.layout)
    if start.backbone is not None:
        load_backbone_state(networks.segmenter.backbone, start.backbone, start.source)
        if networks.selector.backbone is not None:
            load_backbone_state(networks.selector.backbone, start.backbone, start.source)
    if start.classifier is not None:
        networks.segmenter.classifier.load_state_dict(dict(start.classifier))
    return networks, start
