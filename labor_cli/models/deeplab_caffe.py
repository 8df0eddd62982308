"""DeepLab-v2's own ResNet ("caffe" layout), as AdaptSegNet, ADVENT and the codes built on them define it.

The published DeepLab-v2 UDA models (AdaptSegNet's ``Res_Deeplab`` / ``DeeplabMulti``, ADVENT's
``get_deeplab_v2``) keep the ResNet of the original Caffe DeepLab-v2, which computes another
function than torchvision's dilated ResNet with the same state-dict keys:

- the stride-2 convolution of layer2's first block is its 1x1 ``conv1``, not the 3x3 ``conv2``
  (ResNet "v1" against torchvision's "v1.5");
- every block of layer3 has dilation 2 and every block of layer4 dilation 4 (torchvision keeps
  the previous stage's dilation, 1 and 2, in the first block of each);
- the max-pool rounds up (``ceil_mode=True``): a 512x1024 input gives 65x129 logits, not 64x128;
- its weights expect Caffe's input: BGR, 0..255, minus a per-channel mean, where labor's
  networks get RGB scaled to 0..1 and normalised with ImageNet's mean and std.

:class:`CaffeResNetBackbone` is torchvision's ResNet with those four changes (the input is
converted by a fixed per-channel affine map in front of conv1), so the field's weights load
under their own names and give the outputs of the network they were trained in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from labor_cli.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from labor_cli.models.deeplab import FrozenBN

# The BGR mean DeepLab-v2's Caffe models subtract (AdaptSegNet's and ADVENT's IMG_MEAN).
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
BLOCKS = {"deeplabv2-r101": (3, 4, 23, 3), "deeplabv2-r50": (3, 4, 6, 3)}


class CaffeResNetBackbone(nn.Module):
    """The DeepLab-v2 ResNet of the Caffe model and its PyTorch ports; state-dict keys are
    torchvision's (conv1, bn1, layer1..4 with convK/bnK/downsample), every batch norm frozen.

    ``blocks``: bottlenecks per stage ((3, 4, 23, 3) for ResNet-101). Maps labor-normalised
    N x 3 x H x W images to N x 2048 x h x w at about 1/8 of the input (65 x 129 for 512 x 1024).
    """

    def __init__(self, blocks: tuple[int, int, int, int] = BLOCKS["deeplabv2-r101"]):
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        net = ResNet(Bottleneck, list(blocks), replace_stride_with_dilation=[False, True, True], norm_layer=FrozenBN)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.maxpool.ceil_mode = True
        first = self.layer2[0]
        first.conv1.stride, first.conv2.stride = (2, 2), (1, 1)
        for layer, dilation in ((self.layer3, 2), (self.layer4, 4)):
            layer[0].conv2.dilation = layer[0].conv2.padding = (dilation, dilation)
        # labor's input x = (rgb / 255 - mean) / std  ->  Caffe's bgr - caffe_mean, channel by channel.
        rgb_scale = torch.tensor(IMAGENET_STD) * 255.0
        rgb_shift = torch.tensor(IMAGENET_MEAN) * 255.0
        self.register_buffer("input_scale", rgb_scale.flip(0).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            "input_shift", (rgb_shift.flip(0) - torch.tensor(CAFFE_BGR_MEAN)).view(1, 3, 1, 1), persistent=False
        )
        self.out_channels = 2048
        self.blocks = tuple(blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flip(1) * self.input_scale.to(x.dtype) + self.input_shift.to(x.dtype)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
