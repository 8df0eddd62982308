"""The networks of LabOR: segmentation model A, pixel selector B and discriminator D.

``build_networks`` makes all three from a small JSON-able config (docs/method.md, "The networks");
``convert`` reads the published codes' checkpoints."""

from __future__ import annotations

from typing import Any

from torch import nn

from labor_cli.errors import LaborUsageError
from labor_cli.models.deeplab import (
    ARCH_TABLE,
    ARCHS,
    ASPPv2,
    FrozenBN,
    ResNetBackbone,
    SegmentationModel,
    SmallBackbone,
    backbone_channels,
    build_backbone,
    check_arch,
    check_num_classes,
    default_dilations,
    fold_frozen_batchnorm,
    output_size,
    output_stride,
    resolve_init,
)
from labor_cli.models.discriminator import Discriminator
from labor_cli.models.selector import PixelSelector
from labor_cli.options import SELECTOR_BACKBONES

__all__ = [
    "ARCHS",
    "ARCH_TABLE",
    "SELECTOR_BACKBONES",
    "ASPPv2",
    "Discriminator",
    "FrozenBN",
    "Networks",
    "PixelSelector",
    "ResNetBackbone",
    "SegmentationModel",
    "SmallBackbone",
    "backbone_channels",
    "build_backbone",
    "build_networks",
    "default_dilations",
    "fold_frozen_batchnorm",
    "output_size",
    "output_stride",
]


class Networks(nn.Module):
    """A (``segmenter``), B (``selector``) and D (``discriminator``) in one module, so one
    state dict holds them all (in shared mode B has no backbone, nothing is stored twice)."""

    def __init__(
        self,
        segmenter: SegmentationModel,
        selector: PixelSelector,
        discriminator: Discriminator,
        *,
        arch: str,
        num_classes: int,
        selector_backbone: str,
        backbone_layout: str = "torchvision",
        classifier_dilations: tuple[int, ...] | None = None,
    ):
        super().__init__()
        self.segmenter = segmenter
        self.selector = selector
        self.discriminator = discriminator
        self.arch = arch
        self.num_classes = num_classes
        self.selector_backbone = selector_backbone
        self.backbone_layout = backbone_layout
        self.classifier_dilations = tuple(classifier_dilations or default_dilations(arch))

    def called_modules(self) -> list[nn.Module]:
        """The modules the stages call themselves, the ones to compile: A's backbone and
        classifier (through features() and classify()), B's backbone (separate mode) and two
        heads, and D."""
        parts = self.segmenter.called_modules() + [
            self.selector.backbone,
            self.selector.head1,
            self.selector.head2,
            self.discriminator,
        ]
        return [module for module in parts if module is not None]

    def config(self) -> dict[str, Any]:
        """JSON-able; ``build_networks(**config)`` rebuilds the same architecture (init "none":
        the weights come from a checkpoint)."""
        config = {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "init": "none",
            "selector_backbone": self.selector_backbone,
        }
        if self.backbone_layout != "torchvision":  # converted DeepLab-v2 models (labor_cli.models.convert)
            config["backbone_layout"] = self.backbone_layout
        if self.classifier_dilations != default_dilations(self.arch):  # a converted AdaptSegNet classifier: two
            config["classifier_dilations"] = list(self.classifier_dilations)
        return config


def build_networks(
    arch: str,
    num_classes: int,
    init: str = "none",
    selector_backbone: str = "separate",
    backbone_layout: str = "torchvision",
    classifier_dilations: tuple[int, ...] | None = None,
) -> Networks:
    """Build A, B and D. ``init`` initialises A's backbone and, in "separate" mode, B's backbone
    the same way (a downloaded or local state dict is read once and loaded into both; with
    "none" each backbone gets its own random draw). Deterministic given torch.manual_seed.
    ``backbone_layout`` "caffe": DeepLab-v2's own ResNet (labor_cli.models.deeplab_caffe), for
    the field's converted weights; it takes no ``init`` (the weights come from the converter).
    ``classifier_dilations``: the branches of A's classifier and B's heads (default: the arch's;
    a converted AdaptSegNet model has two)."""
    check_arch(arch)
    check_num_classes(num_classes)
    if selector_backbone not in SELECTOR_BACKBONES:
        raise LaborUsageError(f"bad selector backbone {selector_backbone!r}: choose separate or shared")
    if backbone_layout == "caffe":
        from labor_cli.models.deeplab_caffe import BLOCKS, CaffeResNetBackbone

        if arch not in BLOCKS or init != "none":
            raise LaborUsageError(f"backbone layout caffe: needs a ResNet arch ({', '.join(BLOCKS)}) and init none")

        def new_backbone():
            return CaffeResNetBackbone(BLOCKS[arch])
    elif backbone_layout == "torchvision":
        resolved = resolve_init(arch, init)

        def new_backbone():
            return build_backbone(arch, _resolved=resolved)
    else:
        raise LaborUsageError(f"bad backbone layout {backbone_layout!r}: choose torchvision or caffe")
    dilations = tuple(classifier_dilations or default_dilations(arch))
    segmenter = SegmentationModel(arch, num_classes, backbone=new_backbone(), dilations=dilations)
    if selector_backbone == "shared":
        selector = PixelSelector(arch, num_classes, shared=True, dilations=dilations)
    else:
        selector = PixelSelector(arch, num_classes, backbone=new_backbone(), dilations=dilations)
    discriminator = Discriminator(num_classes, ndf=ARCH_TABLE[arch]["discriminator_width"])
    return Networks(
        segmenter,
        selector,
        discriminator,
        arch=arch,
        num_classes=int(num_classes),
        selector_backbone=selector_backbone,
        backbone_layout=backbone_layout,
        classifier_dilations=dilations,
    )
