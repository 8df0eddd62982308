"""The masks artifact: what extraction leaves for selection (no model or GPU needed after it).

Per image, in its own pixel grid (H, W):
  prediction  A's class per pixel (uint8), flat over all images; image i at pixel_offsets[i]
  runner_up   A's second most probable class per pixel, laid out as prediction (optional: older
              artifacts lack it; ``labor select --strata class-pair`` needs it)
  mask        the inconsistency mask minus excluded pixels, np.packbits of H*W bits; image i
              at mask_offsets[i]
  candidates/ PPL's candidates: per class, the mask pixels closest (cosine) to the class
              prototype, most similar first: y, x, class, similarity; image i at offsets[i]
  uncertain/  A's most uncertain pixels outside the excluded ones: y, x, entropy (descending)
  excluded/   the already-labeled pixels kept out of everything above: y, x
"""

from __future__ import annotations

import json
import os
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from labor_cli.artifacts.provenance import (
    Parent,
    check_offsets,
    check_pixels,
    open_artifact,
    read_class_names,
    read_class_set,
    read_image_ids,
    read_sizes,
    write_image_ids,
)

MASK_GROUPS = {
    "candidates": ("y", "x", "class", "similarity"),
    "uncertain": ("y", "x", "entropy"),
    "excluded": ("y", "x"),
}
MASK_DTYPES = {"y": np.int32, "x": np.int32, "class": np.uint8, "similarity": np.float16, "entropy": np.float16}


def compression_threads() -> int:
    """The masks writer's gzip threads."""
    return min(4, os.cpu_count() or 1)


def unpack_mask(packed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) bool mask stored as ``np.packbits`` of its flattened pixels (the first pixel in
    the high bit of the first byte)."""
    return np.unpackbits(packed, count=size[0] * size[1]).reshape(size).astype(bool)


class MasksWriter:
    """Appends one image at a time to an open masks artifact (resizable, compressed datasets)."""

    def __init__(self, f: h5py.File, image_ids: list[str], sizes: np.ndarray, class_set: str, class_names: list[str]):
        self.f = f
        write_image_ids(f, image_ids)
        sizes = np.asarray(sizes, dtype=np.int64)
        f.create_dataset("sizes", data=sizes.astype(np.int32))
        pixels = sizes[:, 0] * sizes[:, 1]
        packed = (pixels + 7) // 8
        f.create_dataset("pixel_offsets", data=np.concatenate([[0], np.cumsum(pixels)]))
        f.create_dataset("mask_offsets", data=np.concatenate([[0], np.cumsum(packed)]))
        # gzip level 1: A's piecewise-constant maps shrink well and decode 3x faster than lzf's.
        for name, length, chunk in (
            ("prediction", int(pixels.sum()), 1 << 18),
            ("runner_up", int(pixels.sum()), 1 << 18),
            ("mask", int(packed.sum()), 1 << 16),
        ):
            f.create_dataset(
                name,
                shape=(length,),
                dtype=np.uint8,
                chunks=(min(chunk, max(1, length)),),
                compression="gzip",
                compression_opts=1,
            )
        for group_name, fields in MASK_GROUPS.items():
            group = f.create_group(group_name)
            group.create_dataset("offsets", data=np.zeros(len(image_ids) + 1, dtype=np.int64))
            for name in fields:
                group.create_dataset(
                    name, shape=(0,), maxshape=(None,), dtype=MASK_DTYPES[name], chunks=(1 << 14,), compression="lzf"
                )
        f.attrs["class_set"] = class_set
        f.attrs["class_names"] = json.dumps(list(class_names))
        self.pixel_offsets = f["pixel_offsets"][()]
        self.mask_offsets = f["mask_offsets"][()]
        self.group_offsets = {name: np.zeros(len(image_ids) + 1, dtype=np.int64) for name in MASK_GROUPS}
        self.written = 0
        self._open_streams()

    def _open_streams(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=compression_threads(), thread_name_prefix="labor-gzip")
        self.prediction = GzipChunkStream(self.f["prediction"], int(self.pixel_offsets[self.written]), self.pool)
        self.runner_up = GzipChunkStream(self.f["runner_up"], int(self.pixel_offsets[self.written]), self.pool)
        self.mask = GzipChunkStream(self.f["mask"], int(self.mask_offsets[self.written]), self.pool)
        self.rows = GroupRows(
            self.f, {name: int(offsets[self.written]) for name, offsets in self.group_offsets.items()}
        )

    def state(self) -> dict:
        """Where the writing stands (JSON): what :meth:`reopen` continues from. Everything added
        so far is stored first, so the file can be kept as it is."""
        self.flush()
        return {"written": self.written, "group_offsets": {k: v.tolist() for k, v in self.group_offsets.items()}}

    @classmethod
    def reopen(cls, f: h5py.File, state: dict) -> MasksWriter:
        """Continue an unfinished masks file (a stopped extraction) after image ``state['written']``."""
        self = cls.__new__(cls)
        self.f = f
        self.pixel_offsets = f["pixel_offsets"][()]
        self.mask_offsets = f["mask_offsets"][()]
        self.group_offsets = {k: np.asarray(v, dtype=np.int64) for k, v in state["group_offsets"].items()}
        self.written = int(state["written"])
        for group_name, fields in MASK_GROUPS.items():  # drop rows of an image that was cut short
            for name in fields:
                f[group_name][name].resize((int(self.group_offsets[group_name][self.written]),))
        self._open_streams()
        return self

    def add(
        self,
        i: int,
        prediction: np.ndarray,
        runner_up: np.ndarray,
        mask: np.ndarray,
        groups: dict[str, dict[str, np.ndarray]],
    ) -> None:
        """Image i, in order: A's first and second class (H, W) uint8, the mask (H, W) bool or
        already packed (uint8, as ``np.packbits`` of the flattened mask), and the rows of each group."""
        if i != self.written:
            raise ValueError(f"masks must be written in image order (got {i}, expected {self.written})")
        packed = mask if mask.dtype == np.uint8 else np.packbits(mask.reshape(-1))
        expected = self.mask_offsets[i + 1] - self.mask_offsets[i]
        if packed.size != expected:
            raise ValueError(f"image {i}: the mask has {packed.size} packed bytes, its size needs {expected}")
        if np.shape(runner_up) != np.shape(prediction):
            raise ValueError(
                f"image {i}: runner-up map {np.shape(runner_up)} is not the prediction's {np.shape(prediction)}"
            )
        self.prediction.append(np.ascontiguousarray(prediction, dtype=np.uint8).reshape(-1))
        self.runner_up.append(np.ascontiguousarray(runner_up, dtype=np.uint8).reshape(-1))
        self.mask.append(packed)
        counts = self.rows.append(groups)
        for group_name, count in counts.items():
            self.group_offsets[group_name][i + 1] = self.group_offsets[group_name][i] + count
        self.written += 1

    def flush(self) -> None:
        for stream in (self.prediction, self.runner_up, self.mask):
            stream.flush()
        self.rows.flush()

    def close(self) -> None:
        self.flush()
        self.pool.shutdown()
        for group_name in MASK_GROUPS:
            self.f[group_name]["offsets"][...] = self.group_offsets[group_name]


ROWS_PER_BLOCK = 1 << 16  # GroupRows stores the rows of several images at once


class GroupRows:
    """Appends the groups' rows (candidates, uncertain, excluded) to their resizable datasets in
    blocks of ROWS_PER_BLOCK rows or more: one resize and one write per field and block, where
    one per field and image cost the writer's thread (which holds the GIL) about 5 ms an image."""

    def __init__(self, f: h5py.File, stored: dict[str, int]):
        self.datasets = {group: {name: f[group][name] for name in fields} for group, fields in MASK_GROUPS.items()}
        self.stored = dict(stored)  # rows in each group's datasets
        self.pending = {group: {name: [] for name in fields} for group, fields in MASK_GROUPS.items()}
        self.pending_rows = 0

    def append(self, groups: dict[str, dict[str, np.ndarray]]) -> dict[str, int]:
        """One image's rows of every group; returns their count per group."""
        counts = {}
        for group_name, fields in MASK_GROUPS.items():
            columns = {name: np.asarray(groups[group_name][name], dtype=MASK_DTYPES[name]) for name in fields}
            lengths = {len(column) for column in columns.values()}
            if len(lengths) != 1:
                raise ValueError(f"{group_name}: fields of different lengths {sorted(lengths)}")
            for name, column in columns.items():
                self.pending[group_name][name].append(column)
            counts[group_name] = lengths.pop()
            self.pending_rows += counts[group_name]
        if self.pending_rows >= ROWS_PER_BLOCK:
            self.flush()
        return counts

    def flush(self) -> None:
        """Store every row appended so far."""
        for group_name, fields in MASK_GROUPS.items():
            start = self.stored[group_name]
            for name in fields:
                block = self.pending[group_name][name]
                column = np.concatenate(block) if block else np.zeros(0, dtype=MASK_DTYPES[name])
                block.clear()
                if len(column):
                    dataset = self.datasets[group_name][name]
                    dataset.resize((start + len(column),))
                    dataset[start:] = column
            self.stored[group_name] = start + len(column)
        self.pending_rows = 0


class GzipChunkStream:
    """Appends bytes, in order, to a flat gzip-chunked uint8 dataset of fixed length.

    Whole chunks are compressed in a thread pool (zlib releases the GIL) and stored as they are
    with write_direct_chunk. h5py's own gzip runs in the calling thread and holds the GIL: at
    1024x2048 that was ~10 ms per image in extract's main loop, with the GPU waiting. The bytes
    read back are exactly those appended.
    """

    def __init__(self, dataset: h5py.Dataset, position: int, pool: ThreadPoolExecutor, max_in_flight: int = 32):
        self.dataset, self.pool, self.max_in_flight = dataset, pool, max_in_flight
        self.chunk = dataset.chunks[0]
        self.level = dataset.compression_opts
        self.chunk_start = position // self.chunk * self.chunk
        # A resumed file: the partly filled last chunk is read back and completed.
        self.pending = bytearray(dataset[self.chunk_start : position].tobytes())
        self.in_flight: deque = deque()  # (chunk offset, future of its compressed bytes), in order

    def append(self, data: np.ndarray) -> None:
        """``data``'s whole chunks are compressed from it in place (no copy): it must not change
        until it is stored (``flush``); the rest waits in ``pending``."""
        view = memoryview(np.ascontiguousarray(data, dtype=np.uint8)).cast("B")
        if self.pending:  # the partly filled chunk first
            taken = min(len(view), self.chunk - len(self.pending))
            self.pending += view[:taken]
            view = view[taken:]
            if len(self.pending) == self.chunk:
                self._compress(self.pending)  # handed over whole: a new buffer takes its place
                self.pending = bytearray()
        full = len(view) // self.chunk * self.chunk
        for start in range(0, full, self.chunk):
            self._compress(view[start : start + self.chunk])
        self.pending += view[full:]
        self._store(wait=False)

    def flush(self) -> None:
        """Store everything appended so far; a partial last chunk is stored zero-padded (HDF5 keeps
        chunks whole) and kept pending, to be stored again once more bytes complete it."""
        if self.pending:
            self._compress(bytes(self.pending) + bytes(self.chunk - len(self.pending)), advance=False)
        self._store(wait=True)

    def _compress(self, block: bytes, advance: bool = True) -> None:
        self.in_flight.append((self.chunk_start, self.pool.submit(zlib.compress, block, self.level)))
        if advance:
            self.chunk_start += self.chunk

    def _store(self, wait: bool) -> None:
        while self.in_flight and (wait or self.in_flight[0][1].done() or len(self.in_flight) > self.max_in_flight):
            offset, future = self.in_flight.popleft()
            self.dataset.id.write_direct_chunk((offset,), future.result())


class Masks:
    """A masks artifact opened for selection: small arrays in memory, per-image maps on demand."""

    def __init__(self, path: Path):
        self.artifact = open_artifact(path, "masks")
        self.path = Path(path)
        try:
            self._read()
        except BaseException:
            self.artifact.close()
            raise

    def _read(self) -> None:
        """The small arrays, checked against each other: a damaged or crafted file is refused
        here, in one line, before a stage indexes anything with them."""
        artifact = self.artifact
        f = artifact.file
        self.image_ids = read_image_ids(artifact)
        count = len(self.image_ids)
        self.sizes = read_sizes(artifact, count)
        pixels = self.sizes[:, 0] * self.sizes[:, 1]
        self.pixel_offsets = artifact.read("pixel_offsets", kinds="iu", ndim=1).astype(np.int64)
        self.mask_offsets = artifact.read("mask_offsets", kinds="iu", ndim=1).astype(np.int64)
        # Optional: artifacts written before extract stored it have no runner_up.
        self.has_runner_up = "runner_up" in f
        flat_maps = [("prediction", self.pixel_offsets), ("mask", self.mask_offsets)]
        if self.has_runner_up:
            flat_maps.append(("runner_up", self.pixel_offsets))
        for name, offsets, per_image in (
            ("pixel_offsets", self.pixel_offsets, pixels),
            ("mask_offsets", self.mask_offsets, (pixels + 7) // 8),
        ):
            if not np.array_equal(offsets, np.concatenate([[0], np.cumsum(per_image)])):
                raise artifact.damaged(f"{name} do not match the image sizes")
        for flat, offsets in flat_maps:
            dataset = f.get(flat)
            if not isinstance(dataset, h5py.Dataset) or dataset.shape != (offsets[-1],) or dataset.dtype != np.uint8:
                raise artifact.damaged(f"{flat!r} does not hold the {offsets[-1]} bytes its offsets describe")
        self.class_set = read_class_set(artifact)
        self.class_names = read_class_names(artifact)
        self.groups = {}
        for name, fields in MASK_GROUPS.items():
            offsets = artifact.read(f"{name}/offsets", kinds="iu", ndim=1).astype(np.int64)
            data = {"offsets": offsets}
            for field in fields:
                data[field] = artifact.read(
                    f"{name}/{field}", kinds="iu" if field in ("y", "x", "class") else "f", ndim=1
                )
                check_offsets(artifact, f"{name}/offsets", offsets, count, len(data[field]))
            check_pixels(artifact, name, data["y"], data["x"], offsets, self.sizes)
            classes = data.get("class", np.zeros(0, dtype=np.int64))
            if len(classes) and (classes.min() < 0 or classes.max() >= len(self.class_names)):
                raise artifact.damaged(f"{name}/class holds a class beyond the {len(self.class_names)} classes")
            for field in ("similarity", "entropy"):
                if field in data and not np.all(np.isfinite(data[field])):
                    raise artifact.damaged(f"{name}/{field} holds NaN or infinity")
            self.groups[name] = data

    def __len__(self) -> int:
        return len(self.image_ids)

    def rows(self, group: str, i: int) -> dict[str, np.ndarray]:
        """Image i's rows of a group (candidates, uncertain or excluded)."""
        data = self.groups[group]
        start, stop = data["offsets"][i], data["offsets"][i + 1]
        return {name: values[start:stop] for name, values in data.items() if name != "offsets"}

    def prediction(self, i: int) -> np.ndarray:
        return self._class_map("prediction", i)

    def runner_up(self, i: int) -> np.ndarray:
        """A's second most probable class per pixel of image i (only where ``has_runner_up``)."""
        return self._class_map("runner_up", i)

    def _class_map(self, name: str, i: int) -> np.ndarray:
        height, width = self.sizes[i]
        flat = self.artifact.file[name][self.pixel_offsets[i] : self.pixel_offsets[i + 1]]
        return flat.reshape(height, width)

    def mask(self, i: int) -> np.ndarray:
        height, width = self.sizes[i]
        packed = self.artifact.file["mask"][self.mask_offsets[i] : self.mask_offsets[i + 1]]
        return unpack_mask(packed, (int(height), int(width)))

    def parent(self) -> Parent:
        return self.artifact.parent()

    def close(self) -> None:
        self.artifact.close()

    def __enter__(self) -> Masks:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
