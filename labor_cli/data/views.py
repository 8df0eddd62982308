"""Datasets as the stages' loaders read them, and extraction's sampler, collation and loader.

The views are torch Datasets of uint8 tensors; the device normalises them
(``transforms.ImageNormalizer``).

- ``SegmentationView``: training's images and labels at the training size (warmup, adapt).
- ``ExtractionView``: images at the network's input size with their native size (extract,
  predict); ``FullLabelView``: the same with labels at their full resolution (evaluate).
- ``ShardBatches``, ``collate_extraction``, ``extraction_loader``: extract's batches, one share
  per process (``labor bench --pipeline`` times them).
"""

from __future__ import annotations

import numpy as np
import torch

from labor_cli.data.transforms import image_as_tensor, resize_image, resize_label
from labor_cli.distributed import Rank
from labor_cli.errors import LaborError


class SegmentationView(torch.utils.data.Dataset):
    """A dataset as tensors: ``{"image": 3xHxW uint8, "label": HxW uint8, "index": i}`` (the
    device normalises images with ``ImageNormalizer`` and widens labels).

    With ``size`` = (W, H) images are resized bilinearly and labels by nearest neighbour; with
    ``size=None`` both keep the image's native size (a label whose size differs from its image,
    as happens in some GTA5 copies, is resized to the image by nearest neighbour).
    """

    def __init__(self, dataset, size: tuple[int, int] | None, with_labels: bool = True) -> None:
        self.dataset = dataset
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.with_labels = with_labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image = self.dataset.read_image(i)
        target_size = self.size or (image.shape[1], image.shape[0])
        item = {"image": image_as_tensor(resize_image(image, target_size)), "index": i}
        if self.with_labels:
            item["label"] = torch.from_numpy(
                np.ascontiguousarray(resize_label(self.dataset.read_label(i), target_size), dtype=np.uint8)
            )
        return item


class ExtractionView(torch.utils.data.Dataset):
    """Target images resized to the network's input size (``size`` = (W, H), None: as they are),
    with their native (H, W): items ``{"image": 3xHxW uint8, "native_size", "index"}``, the image
    normalised on the device. ``labor bench --pipeline`` times its steps (decode, resize)."""

    def __init__(self, dataset, size: tuple[int, int] | None):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image = self.decode(i)
        native = torch.tensor(image.shape[:2])
        return {"image": image_as_tensor(self.resize(image)), "native_size": native, "index": i}

    def decode(self, i: int) -> np.ndarray:
        """Image i as read from its file: HxWx3 uint8."""
        return self.dataset.read_image(i)

    def resize(self, image: np.ndarray) -> np.ndarray:
        return image if self.size is None else resize_image(image, self.size)


class FullLabelView(torch.utils.data.Dataset):
    """Images resized to the network's input size, labels at their full resolution."""

    def __init__(self, dataset, size: tuple[int, int] | None):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image = self.dataset.read_image(i)
        label = self.dataset.read_label(i)
        if label.shape != image.shape[:2]:  # scored at the label's size, it would score a stretched prediction
            raise LaborError(
                f"{self.dataset.label_path(i)}: label is {label.shape[1]}x{label.shape[0]}, "
                f"its image {image.shape[1]}x{image.shape[0]}"
            )
        if self.size is not None:
            image = resize_image(image, self.size)
        # uint8, widened on the device
        return {"image": image_as_tensor(image), "label": torch.from_numpy(label), "index": i}


class ShardBatches(torch.utils.data.Sampler):
    """One process's batches: round k covers images [k*W*B, (k+1)*W*B) (W processes, batch B)
    and process r takes the r-th block of B of it; with one process, the images in order."""

    def __init__(self, size: int, batch_size: int, rank: Rank = Rank()):
        self.size, self.batch_size, self.rank = size, batch_size, rank

    def rounds(self) -> int:
        step = self.batch_size * self.rank.world_size
        return (self.size + step - 1) // step

    def __iter__(self):
        step = self.batch_size * self.rank.world_size
        for start in range(self.rank.rank * self.batch_size, self.size, step):
            yield list(range(start, min(start + self.batch_size, self.size)))

    def __len__(self) -> int:
        return len(range(self.rank.rank * self.batch_size, self.size, self.batch_size * self.rank.world_size))


def extraction_loader(view, batches, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """Extraction's loader (``labor bench --pipeline`` times it): ``workers`` processes, batches
    collated in shared memory, pinned by a thread of this process on CUDA."""
    return torch.utils.data.DataLoader(
        view,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_extraction,
        pin_memory=device.type == "cuda",
    )


def collate_extraction(items: list[dict]) -> dict:
    """ExtractionView's items as a batch: the images stacked into one tensor (in shared memory,
    in a loader worker), the native sizes (N, 2) and indices (N,) as numpy arrays. These travel
    inside the pickled batch, where each tensor would cost the main process a file descriptor
    fetched from the worker, a round trip that waits for the worker to be scheduled."""
    return {
        "image": torch.utils.data.default_collate([item["image"] for item in items]),
        "native_size": np.stack([np.asarray(item["native_size"]) for item in items]),
        "index": np.array([item["index"] for item in items], dtype=np.int64),
    }
