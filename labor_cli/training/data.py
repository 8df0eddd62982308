"""What a training iteration reads: source and target batches, and adapt's annotated pixels.

The batches come in an order that is a function of (seed, stream, iteration) alone, on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from labor_cli.data.transforms import ImageNormalizer
from labor_cli.distributed import Rank
from labor_cli.options import TrainConfig
from labor_cli.runtime import seed_worker


class StreamSampler(torch.utils.data.Sampler):
    """Batches of an endless shuffled stream; batch b depends only on (seed, stream, b).

    With several processes, global batch b is ``world_size * batch_size`` consecutive items of
    the stream and process ``rank`` takes its ``rank``-th slice of ``batch_size``: the processes
    together see what one process with the global batch would (and rank/world_size 0/1 is the
    single-process stream).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        stream: int,
        start_batch: int,
        stop_batch: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.size, self.batch_size = size, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.stream = seed, stream
        self.start_batch, self.stop_batch = start_batch, stop_batch
        self._epoch, self._permutation = -1, None

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stream * 7_919 + epoch)
            self._epoch, self._permutation = epoch, torch.randperm(self.size, generator=generator).tolist()
        return self._permutation[offset]

    def __iter__(self):
        for batch in range(self.start_batch, self.stop_batch):
            first = (batch * self.world_size + self.rank) * self.batch_size
            yield [self._index(first + j) for j in range(self.batch_size)]

    def __len__(self) -> int:
        return self.stop_batch - self.start_batch


def make_loader(
    view, batch_size: int, seed: int, stream: int, batches: range, workers: int, device, rank: Rank = Rank()
) -> torch.utils.data.DataLoader:
    """A loader of StreamSampler's batches ``batches`` (consecutive: the range's step is not used)."""
    generator = torch.Generator().manual_seed(seed * 31 + stream)
    sampler = StreamSampler(
        len(view), batch_size, seed, stream, batches.start, batches.stop, rank.rank, rank.world_size
    )
    return torch.utils.data.DataLoader(
        view,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


@dataclass
class TargetPoints:
    """Annotated target pixels per dataset index, in each image's native grid (255s dropped)."""

    by_index: dict[int, dict] = field(default_factory=dict)

    def batch(self, indices: list[int], device: torch.device) -> list[dict]:
        empty = {"yx": torch.zeros(0, 2, dtype=torch.long), "label": torch.zeros(0, dtype=torch.long), "size": (1, 1)}
        # To CUDA through pinned memory: a copy from pageable memory waits for the GPU to finish
        # everything queued before it, which would stall every iteration.
        staged = (lambda tensor: tensor.pin_memory()) if device.type == "cuda" else (lambda tensor: tensor)
        out = []
        for i in indices:
            points = self.by_index.get(i, empty)
            out.append(
                {
                    "yx": staged(points["yx"]).to(device, non_blocking=True),
                    "label": staged(points["label"]).to(device, non_blocking=True),
                    "size": points["size"],
                }
            )
        return out


def flip_source(
    source: dict[str, torch.Tensor], seed: int, iteration: int, rank: Rank = Rank()
) -> dict[str, torch.Tensor]:
    """Flip a random half of a source batch left-right, images and labels alike; which ones
    depends only on (seed, iteration), so a resumed run flips the same images. Target images
    are never flipped: their annotated pixels are positions in the unflipped image. With several
    processes each takes its slice of the global batch's draw."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + iteration + 1)
    batch = source["image"].shape[0]
    draw = torch.rand(batch * rank.world_size, generator=generator)[rank.rank * batch : (rank.rank + 1) * batch]
    flips = (draw < 0.5).tolist()  # decided on the host: nothing is copied to the device for it

    def flipped(tensors: torch.Tensor) -> torch.Tensor:
        return torch.stack([tensor.flip(-1) if flip else tensor for tensor, flip in zip(tensors, flips)])

    return {**source, "image": flipped(source["image"]), "label": flipped(source["label"])}


def device_batch(
    source: dict,
    target: dict,
    device: torch.device,
    normalize: ImageNormalizer,
    config: TrainConfig,
    iteration: int,
    rank: Rank,
) -> tuple[dict, dict, list[int]]:
    """The loaders' batches on the device (uint8 images and labels widened there), the source
    flipped as --hflip asks; and the target images' dataset indices."""
    source = {
        "image": normalize(source["image"].to(device, non_blocking=True)),
        "label": source["label"].to(device, non_blocking=True).long(),
    }
    if config.hflip:
        source = flip_source(source, config.seed, iteration, rank)
        source["image"] = source["image"].contiguous(memory_format=normalize.memory_format)  # torch.stack drops it
    indices = target["index"].tolist()
    target = {"image": normalize(target["image"].to(device, non_blocking=True))}
    return source, target, indices
