"""Pixel selector B: a backbone and two ASPPv2 classifier heads C1, C2 on it.

Whether B's backbone is A's own or a second copy is not known from the paper (docs/method.md, "The
networks"). Both are supported:

- separate (default): B owns a backbone (``self.backbone``), and ``forward(x)`` runs it;
- shared: ``self.backbone`` is None (no backbone parameters in B, none duplicated in a
  checkpoint); the caller runs A's backbone once and passes its output as ``features=``.
  Whether B's losses reach A's backbone through those features is the caller's choice
  (pass ``features.detach()`` to stop them).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from labor_cli.models.deeplab import (
    ASPPv2,
    _trainable,
    backbone_channels,
    build_backbone,
    check_arch,
    check_num_classes,
    default_dilations,
)


class PixelSelector(nn.Module):
    """Model B. ``forward(x)`` or ``forward(features=...)`` -> (logits1, logits2), each
    N x C x ceil(H/s) x ceil(W/s) at the arch's output stride s."""

    def __init__(
        self,
        arch: str,
        num_classes: int,
        init: str = "none",
        *,
        shared: bool = False,
        backbone: nn.Module | None = None,
        dilations=None,
    ):
        super().__init__()
        check_arch(arch)
        check_num_classes(num_classes)
        self.arch = arch
        self.num_classes = int(num_classes)
        self.shared = bool(shared)
        if self.shared:
            if backbone is not None:
                raise ValueError("a shared PixelSelector has no backbone of its own")
            self.backbone = None
            in_channels = backbone_channels(arch)
        else:
            self.backbone = backbone if backbone is not None else build_backbone(arch, init)
            in_channels = self.backbone.out_channels
        dilations = dilations if dilations is not None else default_dilations(arch)
        # Two heads built one after the other draw different random weights: they differ at
        # init, so the inconsistency mask is not empty from the start.
        self.head1 = ASPPv2(in_channels, self.num_classes, dilations)
        self.head2 = ASPPv2(in_channels, self.num_classes, dilations)

    def features(self, x: Tensor) -> Tensor:
        if self.backbone is None:
            raise ValueError("this PixelSelector shares A's backbone: pass A's features instead")
        return self.backbone(x)

    def forward(self, x: Tensor | None = None, features: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if (x is None) == (features is None):
            raise ValueError("PixelSelector.forward takes exactly one of x and features")
        if features is None:
            features = self.features(x)
        return self.head1(features), self.head2(features)

    def heads_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters of C1 and C2 (the discrepancy step updates only these)."""
        return _trainable(self.head1) + _trainable(self.head2)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Backbone at lr (separate mode only), heads at 10 x lr."""
        groups = []
        if self.backbone is not None:
            groups.append({"params": _trainable(self.backbone), "lr": lr})
        groups.append({"params": self.heads_parameters(), "lr": 10 * lr})
        return groups
