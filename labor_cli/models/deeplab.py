"""Segmentation model A: DeepLab-v2 (dilated ResNet backbone, output stride 8, summed ASPP head).

Backbones (``ARCHS``):

- ``deeplabv2-r101`` / ``deeplabv2-r50``: torchvision ResNets with
  ``replace_stride_with_dilation=[False, True, True]`` (layer3 dilation 2, layer4 dilation 4,
  output stride 8), avgpool and fc removed, 2048 output channels, every batch norm frozen
  (``torchvision.ops.FrozenBatchNorm2d``: statistics and affine fixed, as in the DeepLab-v2
  UDA codes). Note: like torchvision's own segmentation models, the first block of each
  dilated stage keeps the previous stage's dilation in its 3x3 conv.
- ``small``: a CPU-sized backbone of the same deep shape (stem + four residual stages, stride
  8, dilations 2 and 4 in the last two stages) plus a light decoder to output stride 2, about
  0.76 M parameters, trained from scratch, for tests and the toy demo.

Backbone initialisation (``init``): ``"none"`` (random, from the caller's torch seed),
``"imagenet"`` (torchvision's weights API; the only place a download may happen, and only when
the user asks for it), or a path to a local torchvision ResNet state dict (loaded with
``weights_only=True``: nothing is unpickled beyond tensors; ``fc.*`` keys are ignored).

Note on ``init="none"`` for the ResNets: frozen batch norms of a fresh model are identities, so
a random ResNet's activations grow with depth. That is fine for tests and smoke runs; real
training starts from ``imagenet`` or a local state dict.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops import FrozenBatchNorm2d

from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import ARCHS

# Per-arch defaults, in one table: backbone output channels and the ASPP dilations.
# ResNets: DeepLab-v2's (6, 12, 18, 24). "small": two branches on its stride-2 decoder output
# (the deep path already has a wide receptive field; measured on the toy pair, (1, 3) beat a
# single branch by 3 mIoU and a 1x1 classifier by 30). discriminator_width: D's first layer
# (AdaptSegNet's 64); "small" takes 16, since at 64 D alone would cost ten times its
# segmentation network on a CPU. output_stride: DeepLab-v2's 8 for the ResNets, 2 for "small"
# (see SmallBackbone).
ARCH_TABLE: dict[str, dict[str, Any]] = {
    "deeplabv2-r101": {"channels": 2048, "dilations": (6, 12, 18, 24), "discriminator_width": 64, "output_stride": 8},
    "deeplabv2-r50": {"channels": 2048, "dilations": (6, 12, 18, 24), "discriminator_width": 64, "output_stride": 8},
    "small": {"channels": 32, "dilations": (1, 3), "discriminator_width": 16, "output_stride": 2},
}


def check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise LaborUsageError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    return arch


def backbone_channels(arch: str) -> int:
    return ARCH_TABLE[check_arch(arch)]["channels"]


def output_stride(arch: str) -> int:
    return ARCH_TABLE[check_arch(arch)]["output_stride"]


def default_dilations(arch: str) -> tuple[int, ...]:
    return tuple(ARCH_TABLE[check_arch(arch)]["dilations"])


# --------------------------------------------------------------------------------------------
# Frozen batch norm
# --------------------------------------------------------------------------------------------


class FrozenBN(FrozenBatchNorm2d):
    """torchvision's FrozenBatchNorm2d, computed in the input's dtype.

    The parent multiplies a bf16 activation by an fp32 scale under autocast, which promotes the
    whole activation to fp32 (twice the memory traffic, and every following op in fp32 until
    the next conv). Casting the two per-channel vectors to the input's dtype keeps bf16 bf16; in
    fp32 the result is bit-identical to the parent's. The ResNets do not call it: ``conv_bn``
    folds it into the convolution before it.
    """

    _folding: Any = None  # (the four buffers, their versions, scale (C, 1, 1, 1), shift): see folding()

    def scale_and_shift(self) -> tuple[Tensor, Tensor]:
        """The per-channel (scale, shift) of ``x * scale + shift``, in fp32."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def folding(self) -> tuple[Tensor, Tensor]:
        """(scale as (C, 1, 1, 1), shift) for ``conv_bn``, computed again only when a buffer
        was replaced (``.to()``, ``load_state_dict`` of a new tensor) or changed in place (its
        version). The buffers are frozen, so recomputing them at every call would only add
        five small operations per convolution to the host's work (about 500 per ResNet-101
        forward). Computed afresh where a cache would be wrong or useless: while torch.compile
        traces (the graph computes them, fused) and in inference mode (its tensors cannot be
        saved for a later backward)."""
        if torch.compiler.is_compiling() or torch.is_inference_mode_enabled():
            scale, shift = self.scale_and_shift()
            return scale.reshape(-1, 1, 1, 1), shift
        buffers = (self.weight, self.bias, self.running_mean, self.running_var)
        versions = tuple(b._version for b in buffers)
        cached = self._folding
        if cached is None or cached[1] != versions or any(a is not b for a, b in zip(cached[0], buffers)):
            with torch.no_grad():  # no graph: the buffers take no gradient
                scale, shift = self.scale_and_shift()
            # Holding the buffers keeps their identity unique: a freed tensor's id could be reused.
            cached = self._folding = (buffers, versions, scale.reshape(-1, 1, 1, 1), shift)
        return cached[2], cached[3]

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = self.scale_and_shift()
        return x * scale.to(x.dtype).reshape(1, -1, 1, 1) + shift.to(x.dtype).reshape(1, -1, 1, 1)


def conv_bn(conv: nn.Conv2d, norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(conv(x))``, with a FrozenBN folded into the convolution for this call: its scale
    multiplies the weights and its shift is the convolution's bias. The same function, and the
    gradients reach the same parameter (``conv.weight``: ``d/dw conv(x, w * s) = s * d/dw'``);
    but the work per call is weight-sized (``w * s``), where applying the FrozenBN costs a
    multiply and an add over the whole activation, and the multiply once more backward. Anything
    else (an ``nn.Identity`` left by ``fold_frozen_batchnorm``, a GroupNorm) runs after ``conv``."""
    if not isinstance(norm, FrozenBN):
        return norm(conv(x))
    scale, shift = norm.folding()
    if conv.bias is not None:
        shift = shift + conv.bias * scale.flatten()
    return F.conv2d(x, conv.weight * scale, shift, conv.stride, conv.padding, conv.dilation, conv.groups)


# --------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------


def fold_frozen_batchnorm(module: nn.Module) -> int:
    """For inference only: each convolution followed by a FrozenBN becomes one convolution with
    the BN's scale in its weights and its shift as bias, and the FrozenBN an identity: what
    ``conv_bn`` computes at every call, done once (the same numbers, without the per-call
    folding's small operations, which cost the host more than the GPU). Not for training: SGD
    on the folded weights would not be SGD on the original ones. Returns how many were folded
    (0 for the small arch's GroupNorm)."""
    folded = 0
    for parent in list(module.modules()):
        children = dict(parent.named_children())
        for name, child in children.items():
            if not isinstance(child, FrozenBN):
                continue
            # torchvision's names: convK then bnK (the stem, every block), or 0 then 1 (a downsample branch)
            conv_name = f"conv{name[2:]}" if name.startswith("bn") else str(int(name) - 1) if name.isdigit() else None
            conv = children.get(conv_name)
            if not isinstance(conv, nn.Conv2d):
                continue
            with torch.no_grad():
                scale, shift = child.scale_and_shift()
                if conv.bias is not None:
                    shift = shift + conv.bias * scale
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                conv.bias = nn.Parameter(shift, requires_grad=False)
            setattr(parent, name, nn.Identity())
            folded += 1
    return folded


class FoldedBottleneck(Bottleneck):
    """torchvision's Bottleneck (same submodules, same state-dict keys) whose forward folds each
    FrozenBN into the convolution before it (``conv_bn``)."""

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        out += x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        return self.relu(out)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without avgpool and fc; submodule names (and so state-dict keys)
    are torchvision's, so its state dicts load directly. Every FrozenBN is folded into the
    convolution before it at each call (``conv_bn``)."""

    def __init__(self, depth: int):
        super().__init__()
        from torchvision.models.resnet import ResNet

        # What torchvision's resnet50/resnet101 build (the same random draws), with FoldedBottleneck.
        blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        net = ResNet(FoldedBottleneck, blocks, replace_stride_with_dilation=[False, True, True], norm_layer=FrozenBN)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = 2048
        self.depth = depth

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.bn1, x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _gn(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: independent of the batch size (batches of 1+1 are common in
    # this field) and identical in train and eval mode, so results are deterministic and do
    # not depend on how images are batched.
    return nn.GroupNorm(8, channels)


class SmallBlock(nn.Module):
    """A ResNet basic block (two 3x3 convs) with GroupNorm, optional stride and dilation."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = _gn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _gn(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _gn(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SmallBackbone(nn.Module):
    """CPU-sized backbone for tests and the toy pair, with a light decoder: output stride 2.

    Deep path as in the dilated ResNets (stem to stride 4, four residual stages, stride 8 from
    stage 2, dilations 2 and 4 in stages 3 and 4), then two fusions back up: with stage 1's
    features at stride 4, then with the stem's first layer at stride 2. Trained from scratch
    on 256x144 images, a stride-8 output cannot resolve poles, lights and riders a few pixels
    wide (below 10 IoU on the toy source); the decoder costs about as much as the deep path and
    lifts source-val mIoU from 59 to 70+ at equal time (measured on the toy pair, 2 CPU cores).
    About 0.76 M parameters; ``out_channels`` = 32.
    """

    widths = (32, 64, 96, 160)
    skip_channels, fused_channels, out_channels = 32, 64, 32

    def __init__(self):
        super().__init__()
        w1, w2, w3, w4 = self.widths
        self.stem1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), _gn(16), nn.ReLU(inplace=True))
        self.stem2 = nn.Sequential(
            nn.Conv2d(16, w1, 3, 1, 1, bias=False),
            _gn(w1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        self.layer1 = SmallBlock(w1, w1)
        self.layer2 = SmallBlock(w1, w2, stride=2)
        self.layer3 = SmallBlock(w2, w3, dilation=2)
        self.layer4 = SmallBlock(w3, w4, dilation=4)
        self.skip4 = nn.Sequential(
            nn.Conv2d(w1, self.skip_channels, 1, bias=False), _gn(self.skip_channels), nn.ReLU(inplace=True)
        )
        self.fuse4 = nn.Sequential(
            nn.Conv2d(w4 + self.skip_channels, self.fused_channels, 3, 1, 1, bias=False),
            _gn(self.fused_channels),
            nn.ReLU(inplace=True),
        )
        self.fuse2 = nn.Sequential(
            nn.Conv2d(self.fused_channels + 16, self.out_channels, 3, 1, 1, bias=False),
            _gn(self.out_channels),
            nn.ReLU(inplace=True),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        stride2 = self.stem1(x)
        stride4 = self.layer1(self.stem2(stride2))
        deep = self.layer4(self.layer3(self.layer2(stride4)))
        fused = self.fuse4(torch.cat([_resize(deep, stride4), self.skip4(stride4)], 1))
        return self.fuse2(torch.cat([_resize(fused, stride2), stride2], 1))


def _resize(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# Initialisation: "none", "imagenet", or a local state dict
# --------------------------------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _imagenet_weights(arch: str):
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    return {"deeplabv2-r101": ResNet101_Weights.IMAGENET1K_V1, "deeplabv2-r50": ResNet50_Weights.IMAGENET1K_V1}[arch]


def _fetch_imagenet(weights) -> Mapping[str, Tensor]:
    """The one place a download can happen (torchvision caches it under TORCH_HOME)."""
    return weights.get_state_dict(progress=True)


def _imagenet_state_dict(arch: str) -> Mapping[str, Tensor]:
    if arch == "small":
        raise LaborUsageError("no ImageNet weights for arch small (use --init none or a local state dict)")
    weights = _imagenet_weights(arch)
    try:
        return _fetch_imagenet(weights)
    except Exception as e:  # network down, proxy, disk full, corrupt cache...
        raise LaborError(
            f"{weights.url}: could not get the ImageNet weights ({_one_line(e)}); "
            f"pass --init PATH with a local torchvision ResNet state dict instead"
        ) from e


def _file_state_dict(path: str) -> Mapping[str, Tensor]:
    if not os.path.isfile(path):
        raise LaborError(f"{path}: no such file (--init takes none, imagenet, or the path of a local state dict)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LaborError(f"{path}: not a readable state dict ({_one_line(e)})") from e
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())
    ):
        raise LaborError(f"{path}: not a state dict (expected a mapping of names to tensors)")
    return state


def resolve_init(arch: str, init: str) -> tuple[Mapping[str, Tensor] | None, str]:
    """Turn an ``init`` option into (state dict or None, where it came from). Loads or downloads
    at most once, so that several backbones can share one resolution."""
    check_arch(arch)
    if not isinstance(init, str) or not init:
        raise LaborUsageError(f"bad --init {init!r}: give none, imagenet, or a path")
    if init == "none":
        return None, "none"
    if init == "imagenet":
        return _imagenet_state_dict(arch), _imagenet_weights(arch).url
    return _file_state_dict(init), init


def load_backbone_state(backbone: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load a torchvision-style state dict into a backbone, checking keys and shapes first so
    that every mismatch becomes a one-line LaborError naming ``source``."""
    given = {k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [k for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {what}: {', '.join(keys[:3])}{more}")
        raise LaborError(f"{source}: state dict does not fit the backbone ({'; '.join(parts)})")
    backbone.load_state_dict(given, strict=True)


def _new_backbone(arch: str) -> nn.Module:
    check_arch(arch)
    if arch == "small":
        return SmallBackbone()
    return ResNetBackbone(101 if arch == "deeplabv2-r101" else 50)


def build_backbone(
    arch: str, init: str = "none", *, _resolved: tuple[Mapping[str, Tensor] | None, str] | None = None
) -> nn.Module:
    """Build the backbone of ``arch``, initialised from ``init`` (see the module docstring).
    The result has an ``out_channels`` attribute and maps N x 3 x H x W to
    N x out_channels x ceil(H/s) x ceil(W/s), s = ``output_stride(arch)``."""
    state, source = _resolved if _resolved is not None else resolve_init(arch, init)
    backbone = _new_backbone(arch)
    if state is not None:
        load_backbone_state(backbone, state, source)
    return backbone


# --------------------------------------------------------------------------------------------
# Classifier and model A
# --------------------------------------------------------------------------------------------


class ASPPv2(nn.Module):
    """DeepLab-v2's classifier: parallel 3x3 convs (in_channels -> num_classes) at several
    dilations, with bias, weights ~ N(0, 0.01), and their outputs SUMMED over all branches.
    (AdaptSegNet's Classifier_Module returns after the second branch: a known bug, not copied.)
    ``conv2d_list`` is named as in DeepLab-v2 / AdaptSegNet."""

    def __init__(self, in_channels: int, num_classes: int, dilations=(6, 12, 18, 24)):
        super().__init__()
        self.dilations = tuple(int(d) for d in dilations)
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, 1, padding=d, dilation=d, bias=True) for d in self.dilations
        )
        for conv in self.conv2d_list:
            conv.weight.data.normal_(0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class SegmentationModel(nn.Module):
    """Model A: backbone + ASPPv2 classifier; logits at the arch's output stride."""

    def __init__(
        self, arch: str, num_classes: int, init: str = "none", *, backbone: nn.Module | None = None, dilations=None
    ):
        super().__init__()
        check_arch(arch)
        check_num_classes(num_classes)
        self.arch = arch
        self.num_classes = int(num_classes)
        self.backbone = backbone if backbone is not None else build_backbone(arch, init)
        self.classifier = ASPPv2(
            self.backbone.out_channels,
            self.num_classes,
            dilations if dilations is not None else default_dilations(arch),
        )

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def classify(self, features: Tensor) -> Tensor:
        return self.classifier(features)

    def called_modules(self) -> list[nn.Module]:
        """What features(), classify() and forward() run: the modules to compile."""
        return [self.backbone, self.classifier]

    def forward(self, x: Tensor) -> Tensor:
        """N x 3 x H x W -> logits N x C x ceil(H/s) x ceil(W/s), s = ``output_stride(arch)``."""
        return self.classifier(self.backbone(x))

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Backbone at lr, classifier at 10 x lr (DeepLab-v2 / AdaptSegNet protocol)."""
        return [{"params": _trainable(self.backbone), "lr": lr}, {"params": _trainable(self.classifier), "lr": 10 * lr}]


def check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise LaborUsageError(f"bad number of classes {num_classes!r}: need an integer >= 2")
    return num_classes


def output_size(size: int, arch: str = "deeplabv2-r101") -> int:
    """Logit size along one axis for an input of ``size`` pixels."""
    return math.ceil(size / output_stride(arch))
