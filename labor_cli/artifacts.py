"""The HDF5 artifacts: common provenance, atomic writes, checked reads, weights without pickle.

Every stage writes exactly one artifact through :func:`create_artifact` and reads its inputs
through :func:`open_artifact`. The layout of each kind is documented in docs/artifacts.md;
the kinds and their schema versions are listed once, here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shlex
import shutil
import sys
import uuid as _uuid
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import h5py
import numpy as np
import torch

from labor_cli import __version__
from labor_cli.errors import LaborError

# kind -> schema version this package writes and the newest it reads.
SCHEMA_VERSIONS: dict[str, int] = {
    "checkpoint": 1,
    "masks": 1,
    "selection": 1,
    "labels": 1,
    "evaluation": 1,
}


def command_line() -> str:
    return shlex.join([Path(sys.argv[0]).name] + sys.argv[1:])


def check_output_path(path: Path, force: bool) -> None:
    """Refuse before any work is done: an existing output without --force, or an unwritable folder."""
    path = Path(path)
    if path.exists() and not force:
        raise LaborError(f"{path}: already exists; pass --force to replace it")
    if path.is_dir():
        raise LaborError(f"{path}: is a folder, expected a file name for the output artifact")
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise LaborError(f"{path}: cannot write in {existing} (permission denied)")


@dataclass
class Parent:
    """An input artifact, recorded in the output's lineage."""

    kind: str
    uuid: str
    path: str


class KeepPartial(KeyboardInterrupt):
    """Raised inside :func:`create_artifact`'s block: stop, keeping what is written as ``keep_as``."""


@contextlib.contextmanager
def create_artifact(
    path: Path,
    kind: str,
    config: dict[str, Any],
    parents: list[Parent] = (),
    force: bool = False,
    keep_as: Optional[Path] = None,
    start_from: Optional[Path] = None,
) -> Iterator[h5py.File]:
    """Write an artifact to a temporary name beside ``path`` and rename it when complete.

    A crash, a Ctrl-C or a full disk inside the ``with`` block leaves nothing under ``path``
    (and an existing file there untouched). A :class:`KeepPartial` raised in the block renames
    the unfinished file to ``keep_as`` instead (a resume file); ``start_from`` starts from a
    copy of such a file rather than from an empty one.
    """
    path = Path(path)
    check_output_path(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    artifact_uuid = str(_uuid.uuid4())
    temporary = path.with_name(f".{path.name}.{artifact_uuid[:8]}.partial")
    try:
        if start_from is not None:
            shutil.copyfile(start_from, temporary)
        with h5py.File(temporary, "a" if start_from is not None else "w") as f:
            f.attrs["labor_kind"] = kind
            f.attrs["labor_schema"] = SCHEMA_VERSIONS[kind]
            f.attrs["labor_version"] = __version__
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["command"] = command_line()
            f.attrs["config"] = json.dumps(config, sort_keys=True, default=str)
            f.attrs["uuid"] = artifact_uuid
            f.attrs["lineage"] = json.dumps([vars(p) for p in parents])
            yield f
        os.replace(temporary, path)
    except KeepPartial:
        if keep_as is not None and temporary.exists():
            os.replace(temporary, keep_as)
        temporary.unlink(missing_ok=True)
        raise
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise LaborError(f"{path}: disk full while writing; nothing was written") from exc
        raise LaborError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class Artifact:
    """An artifact opened for reading, with its provenance checked."""

    def __init__(self, path: Path, kind: str):
        self.path = Path(path)
        if not self.path.exists():
            raise LaborError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise LaborError(f"{self.path}: is a folder, expected a labor {kind} artifact (.h5)")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise LaborError(f"{self.path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
        try:
            found = self.file.attrs.get("labor_kind")
            if found is None:
                raise LaborError(f"{self.path}: not a labor artifact (no labor_kind attribute)")
            found = str(found)
            if found != kind:
                raise LaborError(f"{self.path}: is a {found} artifact, expected a {kind} artifact")
            schema = int(self.file.attrs["labor_schema"])
            if schema > SCHEMA_VERSIONS[kind]:
                raise LaborError(
                    f"{self.path}: {kind} schema version {schema} is newer than this labor "
                    f"({__version__}) reads (<= {SCHEMA_VERSIONS[kind]}); upgrade labor"
                )
        except BaseException:
            self.file.close()
            raise
        self.kind = kind
        self.uuid = str(self.file.attrs["uuid"])
        self.config = json.loads(self.file.attrs["config"])

    def parent(self) -> Parent:
        return Parent(self.kind, self.uuid, str(self.path))

    def read(self, name: str) -> np.ndarray:
        """A whole dataset; a missing one means a damaged file, said in one line."""
        try:
            return self.file[name][()]
        except (KeyError, OSError) as exc:
            raise LaborError(f"{self.path}: damaged {self.kind} artifact: cannot read {name!r} ({exc})") from exc

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "Artifact":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_artifact(path: Path, kind: str) -> Artifact:
    return Artifact(Path(path), kind)


def read_any(path: Path) -> h5py.File:
    """Open any labor artifact (for inspect); the caller closes it."""
    path = Path(path)
    if path.is_dir():
        raise LaborError(f"{path}: is a folder, expected a labor artifact (.h5)")
    if not path.is_file():
        raise LaborError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LaborError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    kind = f.attrs.get("labor_kind")
    if kind is None or str(kind) not in SCHEMA_VERSIONS:
        f.close()
        raise LaborError(f"{path}: not a labor artifact (no known labor_kind attribute)")
    schema = int(f.attrs.get("labor_schema", 0))
    if schema > SCHEMA_VERSIONS[str(kind)]:
        f.close()
        raise LaborError(f"{path}: {kind} schema version {schema} is newer than this labor "
                         f"({__version__}) reads (<= {SCHEMA_VERSIONS[str(kind)]}); upgrade labor")
    return f


def write_image_ids(f: h5py.Group, image_ids: list[str]) -> None:
    """Image ids join every artifact with the dataset and with the other artifacts."""
    f.create_dataset("image_ids", data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype())


def read_image_ids(artifact: Artifact) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in artifact.read("image_ids")]


# --- Trees of tensors (weights, optimiser states, RNG states) as plain HDF5 -------------------
# A nested dict/list of tensors, arrays and JSON values becomes groups and datasets; nothing is
# pickled, so loading a stranger's file cannot run code.

_BF16_ATTR = "torch_dtype"


def write_tree(group: h5py.Group, tree: dict, compression: str | None = None) -> None:
    keys = []
    for position, (key, value) in enumerate(tree.items()):
        name = f"{position:05d}"
        keys.append([key, name])
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            dtype_name = str(tensor.dtype).removeprefix("torch.")
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            data = tensor.contiguous().numpy()
            dataset = group.create_dataset(name, data=data, compression=compression if data.size > 1024 else None)
            dataset.attrs[_BF16_ATTR] = dtype_name
        elif isinstance(value, np.ndarray):
            group.create_dataset(name, data=value)
        elif isinstance(value, dict):
            write_tree(group.create_group(name), value, compression)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (torch.Tensor, dict)) for v in value):
            sub = group.create_group(name)
            sub.attrs["sequence"] = True
            write_tree(sub, dict(enumerate(value)), compression)
        else:
            group.attrs[f"json_{name}"] = json.dumps(value)
    group.attrs["keys"] = json.dumps(keys)


def read_tree(group: h5py.Group) -> dict:
    tree = {}
    for key, name in json.loads(group.attrs["keys"]):
        if f"json_{name}" in group.attrs:
            tree[key] = json.loads(group.attrs[f"json_{name}"])
            continue
        node = group[name]
        if isinstance(node, h5py.Dataset) and node.dtype.kind not in "biuf":
            # weights and optimiser states are numbers; anything else (say, pickled bytes) is refused unread
            raise ValueError(f"{node.name} holds {node.dtype} data, not numbers")
        if isinstance(node, h5py.Group):
            value = read_tree(node)
            tree[key] = list(value.values()) if node.attrs.get("sequence", False) else value
        elif _BF16_ATTR in node.attrs:
            tensor = torch.from_numpy(np.asarray(node[()]))
            tree[key] = tensor.to(getattr(torch, str(node.attrs[_BF16_ATTR])))
        else:
            tree[key] = np.asarray(node[()])
    return tree


def write_state_dict(group: h5py.Group, state_dict: dict[str, torch.Tensor]) -> None:
    write_tree(group, dict(state_dict))


def read_state_dict(group: h5py.Group) -> dict[str, torch.Tensor]:
    return read_tree(group)


# --- checkpoint: networks A, B, D and everything needed to continue training -------------------


@dataclass
class TrainingState:
    """What continues a run bit for bit: the iteration, optimiser states and the loss history."""

    stage: str
    iteration: int
    iterations: int
    optimizers: dict[str, dict]
    history: dict[str, np.ndarray]


def write_checkpoint(f: h5py.File, networks, class_set: str, class_names: list[str], state: TrainingState) -> None:
    group = f.create_group("networks")
    group.attrs["config"] = json.dumps(networks.config())
    group.attrs["class_set"] = class_set
    group.attrs["class_names"] = json.dumps(list(class_names))
    for name in ("segmenter", "selector", "discriminator"):
        write_state_dict(group.create_group(name), getattr(networks, name).state_dict())
    training = f.create_group("training")
    training.attrs["stage"] = state.stage
    training.attrs["iteration"] = state.iteration
    training.attrs["iterations"] = state.iterations
    write_tree(training.create_group("optimizers"), state.optimizers)
    history = training.create_group("history")
    for name, values in state.history.items():
        history.create_dataset(name, data=np.asarray(values, dtype=np.float32))


@dataclass
class Checkpoint:
    networks: Any  # labor_cli.models.Networks, on the CPU, in eval mode
    class_set: str
    class_names: list[str]
    state: TrainingState
    artifact: Parent
    config: dict


def load_checkpoint(path: Path) -> Checkpoint:
    from labor_cli.models import build_networks  # models import torchvision: load them only when needed

    with open_artifact(path, "checkpoint") as artifact:
        f = artifact.file
        try:
            group = f["networks"]
            networks = build_networks(**json.loads(group.attrs["config"]))
            for name in ("segmenter", "selector", "discriminator"):
                state_dict = {k: torch.as_tensor(v) for k, v in read_state_dict(group[name]).items()}
                getattr(networks, name).load_state_dict(state_dict)
            training = f["training"]
            state = TrainingState(
                stage=str(training.attrs["stage"]),
                iteration=int(training.attrs["iteration"]),
                iterations=int(training.attrs["iterations"]),
                optimizers=read_tree(training["optimizers"]),
                history={name: np.asarray(ds[()]) for name, ds in training["history"].items()},
            )
            class_set = str(group.attrs["class_set"])
            class_names = json.loads(group.attrs["class_names"])
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise LaborError(f"{path}: damaged checkpoint: {exc}".splitlines()[0]) from exc
        networks.eval()
        return Checkpoint(networks, class_set, class_names, state, artifact.parent(), artifact.config)


# --- sparse pixel sets: selection (pixels to ask about) and labels (their answers) -------------
# Per image i, its pixels are rows offsets[i]:offsets[i+1] of the flat arrays y, x (and label),
# in the image's own pixel grid (what an annotator sees), never in a resized training grid.


@dataclass
class PixelSet:
    image_ids: list[str]
    sizes: np.ndarray  # (N, 2) int32: native (H, W) of each image
    offsets: np.ndarray  # (N + 1,) int64
    y: np.ndarray  # (P,) int32
    x: np.ndarray  # (P,) int32
    label: Optional[np.ndarray]  # (P,) uint8 class index, 255 = ignored in the ground truth; None for a selection
    class_set: str
    class_names: list[str]
    predicted: Optional[np.ndarray] = None  # (P,) uint8: A's class at each pixel when it was selected
    parent: Optional[Parent] = None

    def pixels_of(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def labeled_share(self) -> float:
        """Share of all pixels of these images that the set covers, in percent."""
        total = float(np.prod(self.sizes.astype(np.float64), axis=1).sum())
        return 100.0 * len(self.y) / total if total else 0.0


def write_pixel_set(f: h5py.File, pixels: PixelSet) -> None:
    write_image_ids(f, pixels.image_ids)
    f.create_dataset("sizes", data=np.asarray(pixels.sizes, dtype=np.int32))
    f.create_dataset("offsets", data=np.asarray(pixels.offsets, dtype=np.int64))
    for name in ("y", "x"):
        f.create_dataset(name, data=np.asarray(getattr(pixels, name), dtype=np.int32), chunks=True, compression="gzip")
    for name in ("label", "predicted"):
        if getattr(pixels, name) is not None:
            f.create_dataset(name, data=np.asarray(getattr(pixels, name), dtype=np.uint8), chunks=True, compression="gzip")
    f.attrs["class_set"] = pixels.class_set
    f.attrs["class_names"] = json.dumps(list(pixels.class_names))


def read_pixel_set(path: Path, kind: str) -> PixelSet:
    with open_artifact(path, kind) as artifact:
        pixels = PixelSet(
            image_ids=read_image_ids(artifact),
            sizes=artifact.read("sizes"),
            offsets=artifact.read("offsets"),
            y=artifact.read("y"),
            x=artifact.read("x"),
            label=artifact.read("label") if kind == "labels" else None,
            predicted=artifact.read("predicted") if "predicted" in artifact.file else None,
            class_set=str(artifact.file.attrs["class_set"]),
            class_names=json.loads(artifact.file.attrs["class_names"]),
            parent=artifact.parent(),
        )
    if len(pixels.offsets) != len(pixels.image_ids) + 1 or pixels.offsets[-1] != len(pixels.y) or len(pixels.x) != len(pixels.y):
        raise LaborError(f"{path}: damaged {kind} artifact: offsets do not match the pixel arrays")
    return pixels


# --- masks: what extraction leaves for selection (no model or GPU needed after it) -------------
# Per image, in its own pixel grid (H, W):
#   prediction  A's class per pixel (uint8), flat over all images; image i at pixel_offsets[i]
#   mask        the inconsistency mask minus excluded pixels, np.packbits of H*W bits; image i
#               at mask_offsets[i]
#   candidates/ PPL's candidates: per class, the mask pixels closest (cosine) to the class
#               prototype, most similar first: y, x, class, similarity; image i at offsets[i]
#   uncertain/  A's most uncertain pixels outside the excluded ones: y, x, entropy (descending)
#   excluded/   the already-labeled pixels kept out of everything above: y, x
MASK_GROUPS = {"candidates": ("y", "x", "class", "similarity"), "uncertain": ("y", "x", "entropy"), "excluded": ("y", "x")}
_MASK_DTYPES = {"y": np.int32, "x": np.int32, "class": np.uint8, "similarity": np.float16, "entropy": np.float16}


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
        f.create_dataset("pixel_offsets", data=np.concatenate([[0], np.cumsum(pixels)]))
        f.create_dataset("mask_offsets", data=np.concatenate([[0], np.cumsum((pixels + 7) // 8)]))
        # gzip level 1: A's piecewise-constant maps shrink well and decode 3x faster than lzf's.
        packed = (pixels + 7) // 8
        f.create_dataset("prediction", shape=(int(pixels.sum()),), dtype=np.uint8, chunks=(min(1 << 18, max(1, int(pixels.sum()))),), compression="gzip", compression_opts=1)
        f.create_dataset("mask", shape=(int(packed.sum()),), dtype=np.uint8, chunks=(min(1 << 16, max(1, int(packed.sum()))),), compression="gzip", compression_opts=1)
        for group_name, fields in MASK_GROUPS.items():
            group = f.create_group(group_name)
            group.create_dataset("offsets", data=np.zeros(len(image_ids) + 1, dtype=np.int64))
            for name in fields:
                group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_MASK_DTYPES[name], chunks=(1 << 14,), compression="lzf")
        f.attrs["class_set"] = class_set
        f.attrs["class_names"] = json.dumps(list(class_names))
        self.pixel_offsets = f["pixel_offsets"][()]
        self.mask_offsets = f["mask_offsets"][()]
        self.group_offsets = {name: np.zeros(len(image_ids) + 1, dtype=np.int64) for name in MASK_GROUPS}
        self.written = 0
        self._open_streams()

    def _open_streams(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="labor-gzip")
        self.prediction = GzipChunkStream(self.f["prediction"], int(self.pixel_offsets[self.written]), self.pool)
        self.mask = GzipChunkStream(self.f["mask"], int(self.mask_offsets[self.written]), self.pool)

    def state(self) -> dict:
        """Where the writing stands (JSON): what :meth:`reopen` continues from. Everything added
        so far is stored first, so the file can be kept as it is."""
        self.prediction.flush()
        self.mask.flush()
        return {"written": self.written, "group_offsets": {k: v.tolist() for k, v in self.group_offsets.items()}}

    @classmethod
    def reopen(cls, f: h5py.File, state: dict) -> "MasksWriter":
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

    def add(self, i: int, prediction: np.ndarray, mask: np.ndarray, groups: dict[str, dict[str, np.ndarray]]) -> None:
        """Image i, in order: prediction (H, W) uint8, mask (H, W) bool or already packed (uint8,
        as ``np.packbits`` of the flattened mask), and the rows of each group."""
        if i != self.written:
            raise ValueError(f"masks must be written in image order (got {i}, expected {self.written})")
        packed = mask if mask.dtype == np.uint8 else np.packbits(mask.reshape(-1))
        if packed.size != self.mask_offsets[i + 1] - self.mask_offsets[i]:
            raise ValueError(f"image {i}: the mask has {packed.size} packed bytes, its size needs {self.mask_offsets[i + 1] - self.mask_offsets[i]}")
        self.prediction.append(np.ascontiguousarray(prediction, dtype=np.uint8).reshape(-1))
        self.mask.append(packed)
        for group_name, fields in MASK_GROUPS.items():
            rows = groups[group_name]
            count = len(rows[fields[0]])
            start = self.group_offsets[group_name][i]
            for name in fields:
                dataset = self.f[group_name][name]
                dataset.resize((start + count,))
                dataset[start:] = np.asarray(rows[name], dtype=_MASK_DTYPES[name])
            self.group_offsets[group_name][i + 1] = start + count
        self.written += 1

    def close(self) -> None:
        self.prediction.flush()
        self.mask.flush()
        self.pool.shutdown()
        for group_name in MASK_GROUPS:
            self.f[group_name]["offsets"][...] = self.group_offsets[group_name]


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
        self.pending = bytearray(dataset[self.chunk_start:position].tobytes())
        self.in_flight: deque = deque()  # (chunk offset, future of its compressed bytes), in order

    def append(self, data: np.ndarray) -> None:
        self.pending += memoryview(np.ascontiguousarray(data, dtype=np.uint8)).cast("B")
        full = len(self.pending) // self.chunk * self.chunk
        for start in range(0, full, self.chunk):
            self._compress(bytes(self.pending[start : start + self.chunk]))
        del self.pending[:full]
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
        f = self.artifact.file
        self.image_ids = read_image_ids(self.artifact)
        self.sizes = self.artifact.read("sizes").astype(np.int64)
        self.pixel_offsets = self.artifact.read("pixel_offsets")
        self.mask_offsets = self.artifact.read("mask_offsets")
        self.class_set = str(f.attrs["class_set"])
        self.class_names = json.loads(f.attrs["class_names"])
        self.groups = {name: {field: self.artifact.read(f"{name}/{field}") for field in ("offsets",) + fields}
                       for name, fields in MASK_GROUPS.items()}
        if any(len(g["offsets"]) != len(self.image_ids) + 1 for g in self.groups.values()):
            raise LaborError(f"{path}: damaged masks artifact: offsets do not match the image count")

    def __len__(self) -> int:
        return len(self.image_ids)

    def rows(self, group: str, i: int) -> dict[str, np.ndarray]:
        """Image i's rows of a group (candidates, uncertain or excluded)."""
        data = self.groups[group]
        start, stop = data["offsets"][i], data["offsets"][i + 1]
        return {name: values[start:stop] for name, values in data.items() if name != "offsets"}

    def prediction(self, i: int) -> np.ndarray:
        height, width = self.sizes[i]
        flat = self.artifact.file["prediction"][self.pixel_offsets[i] : self.pixel_offsets[i + 1]]
        return flat.reshape(height, width)

    def mask(self, i: int) -> np.ndarray:
        height, width = self.sizes[i]
        return unpack_mask(self.artifact.file["mask"][self.mask_offsets[i] : self.mask_offsets[i + 1]], (int(height), int(width)))

    def parent(self) -> Parent:
        return self.artifact.parent()

    def close(self) -> None:
        self.artifact.close()

    def __enter__(self) -> "Masks":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
