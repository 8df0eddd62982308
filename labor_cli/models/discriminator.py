"""Discriminator D: AdaptSegNet's FCDiscriminator, on a C-channel softmax map.

Five 4x4 stride-2 padding-1 convolutions, 64-128-256-512-1 channels, LeakyReLU(0.2) between
them (not after the last). Each conv maps a side of s pixels to floor(s/2), so the input needs
at least 32 pixels per side (AdaptSegNet feeds it the softmax upsampled to the input size).
"""

from __future__ import annotations

from torch import Tensor, nn

from labor_cli.models.deeplab import check_num_classes


class Discriminator(nn.Module):
    """N x C x H x W probabilities -> N x 1 x floor(H/32) x floor(W/32) logits."""

    def __init__(self, num_classes: int, ndf: int = 64):
        super().__init__()
        check_num_classes(num_classes)
        self.num_classes = int(num_classes)
        self.conv1 = nn.Conv2d(num_classes, ndf, 4, 2, 1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, 2, 1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1)
        self.classifier = nn.Conv2d(ndf * 8, 1, 4, 2, 1)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.leaky_relu(self.conv1(x))
        x = self.leaky_relu(self.conv2(x))
        x = self.leaky_relu(self.conv3(x))
        x = self.leaky_relu(self.conv4(x))
        return self.classifier(x)
