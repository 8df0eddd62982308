"""Images and labels to tensors: ImageNet normalisation and resizing (the views that use them:
labor_cli/data/views.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)


def image_as_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW uint8, a view of the same memory (channels-last strides): the
    loader's collation copies it into the batch, a copy made once. Data loaders hand out uint8
    and the device normalises (``ImageNormalizer``): a quarter of float32's bytes through worker
    queues, pinning and the copy to the GPU."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    return torch.from_numpy(image).permute(2, 0, 1)


class ImageNormalizer:
    """uint8 images (N x 3 x H x W, on any device) -> float32 scaled to [0, 1] and normalised
    with ImageNet's mean and std, in ``memory_format``. Made once per run: the constants are
    copied to the device once, not once per batch (a copy that would wait for the GPU)."""

    def __init__(
        self, device: torch.device | str = "cpu", memory_format: torch.memory_format = torch.contiguous_format
    ):
        self.mean, self.std = _MEAN.to(device), _STD.to(device)
        self.memory_format = memory_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images, got {images.dtype}")
        # The layout is changed on the uint8 tensor (4x fewer bytes); the in-place steps keep it.
        return images.contiguous(memory_format=self.memory_format).float().div_(255.0).sub_(self.mean).div_(self.std)


def _size_of(array: np.ndarray) -> tuple[int, int]:
    return array.shape[1], array.shape[0]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` = (W, H), bilinear: Pillow's pixels.

    Halving both sides (Cityscapes' 2048x1024 to the 1024x512 input) is done by torch's
    antialiased uint8 kernel, which gives exactly Pillow's pixels there, in a fifth of the time:
    both compute in integers a filter whose inner weights (1, 3, 3, 1) / 8 are exact and whose
    border weights (3, 3, 1) / 7 leave no ties to round apart, and both round halves up
    (tests/test_pipeline.py holds them equal on noise). At other scales their fixed-point weights
    differ and about 0.1-4% of the pixels come out one level apart, so Pillow resizes those."""
    size = (int(size[0]), int(size[1]))
    width, height = _size_of(image)
    if (width, height) == size:
        return image
    if (width, height) == (2 * size[0], 2 * size[1]) and image.ndim == 3 and image.dtype == np.uint8:
        channels_last = torch.from_numpy(image).permute(2, 0, 1)[None]
        halved = F.interpolate(channels_last, size=size[::-1], mode="bilinear", antialias=True, align_corners=False)
        return halved[0].permute(1, 2, 0).numpy()
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxW uint8 label to ``size`` = (W, H), nearest (no new values appear)."""
    size = (int(size[0]), int(size[1]))
    if _size_of(label) == size:
        return label
    return np.array(Image.fromarray(label).resize(size, Image.Resampling.NEAREST))
