"""Segmentation datasets on disk, named ``KIND:PATH`` (docs/method.md and docs/design.md, "Data").

Every dataset is a thin subclass of :class:`SegmentationDataset` that names its folders and
its id table (from :mod:`labor_cli.data.labels`, the only place for class tables):

- ``cityscapes``: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/*_gtFine_labelIds.png`` (Cityscapes label ids).
- ``gta5``: ``images/NNNNN.png`` and ``labels/NNNNN.png`` (Cityscapes label ids).
- ``synthia`` (RAND-CITYSCAPES): ``RGB/*.png`` and ``GT/LABELS/*.png``, 16-bit PNGs with the
  class id in the first channel.
- ``folder``: ``images/*.png|*.jpg``, ``labels/<stem>.png`` in the folder's own train ids and
  ``classes.txt``, the folder's class names in index order.

Labels are returned as class indices of the chosen class set (255 = ignore).

Pillow reads 16-bit greyscale PNGs exactly (mode ``I;16``) but turns 16-bit colour PNGs
(48/64-bit) into 8-bit RGB by keeping only the high byte of each sample, which would turn
every SYNTHIA id below 256 into 0. Those files are decoded by :func:`decode_png`, TorchCodec's
libpng decoder, which keeps every bit.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from labor_cli.data.labels import (
    CITYSCAPES_LABELS,
    IGNORE_INDEX,
    cityscapes_id_table,
    class_names,
    synthia_id_table,
    train_id_table,
)
from labor_cli.errors import LaborError, LaborUsageError

DATASET_KINDS = ("cityscapes", "gta5", "synthia", "folder")
SETTINGS_FILE = "labor-dataset.json"
# Splits that mean "every image" for the kinds without official split lists.
ALL_SPLITS = ("train", "all")

# What Pillow (or the 16-bit decoder) may raise on a damaged file.
_READ_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    Image.DecompressionBombError,
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Specs


def parse_dataset_spec(text: str) -> tuple[str, Path]:
    """``"KIND:PATH"`` -> (kind, path); LaborUsageError for a bad form or an unknown kind."""
    kind, sep, path = str(text).partition(":")
    kind = kind.strip().lower()
    if not sep or not kind or not path.strip():
        raise LaborUsageError(
            f"bad dataset {text!r}: expected KIND:PATH with KIND one of "
            f"{', '.join(DATASET_KINDS)} (e.g. gta5:/data/GTA5)"
        )
    if kind not in DATASET_KINDS:
        raise LaborUsageError(f"unknown dataset kind {kind!r} in {text!r}: expected one of {', '.join(DATASET_KINDS)}")
    return kind, Path(path).expanduser()


def default_class_set(kind: str) -> str:
    """The class set a model trained on this kind of dataset predicts by default."""
    if kind not in DATASET_KINDS:
        raise LaborUsageError(f"unknown dataset kind {kind!r}: expected one of {', '.join(DATASET_KINDS)}")
    return "synthia16" if kind == "synthia" else "cityscapes19"


def _layout_guess(root: Path) -> str | None:
    """Which known layout a folder looks like (for error messages)."""
    try:
        if (root / "leftImg8bit").is_dir():
            return "cityscapes"
        if (root / "RGB").is_dir() and (root / "GT").is_dir():
            return "synthia"
        if (root / "images").is_dir() and (root / "classes.txt").is_file():
            return "folder"
        if (root / "images").is_dir() and (root / "labels").is_dir():
            return "gta5"
    except OSError:
        return None
    return None


def _read_list_file(path: Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines of a text file, with their line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LaborError(f"{path}: cannot read list file ({_one_line(exc)})") from exc
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


# --------------------------------------------------------------------------------------------
# Datasets


class _Entry(NamedTuple):
    image_id: str
    image: Path
    label: Path  # where the label is (or would be)
    has_label: bool


class SegmentationDataset:
    """Images of one split of a dataset, with their labels as class indices of ``class_set``."""

    kind: str = ""
    layout: str = ""  # the expected layout, for error messages
    default_train_size: tuple[int, int] | None = None  # (W, H), the protocol in docs/method.md
    skip_unlabeled = True  # drop images without a label (else: an error) when labels are required
    native_class_set = "cityscapes19"  # the classes this dataset's labels can express

    def native_class_names(self) -> tuple[str, ...]:
        return class_names(self.native_class_set)

    def check_classes(self, class_set: str, role: str) -> None:
        """Refuse a dataset that cannot label every class of the model's class set."""
        missing = [name for name in class_names(class_set) if name not in self.native_class_names()]
        if missing:
            raise LaborError(
                f"{self.spec}: the {role}'s labels have no {', '.join(missing)}, but the class set "
                f"{class_set} does (use --classes with a class set both datasets label)"
            )

    def __init__(
        self,
        root: Path | str,
        split: str,
        class_set: str = "cityscapes19",
        split_file: Path | str | None = None,
        require_labels: bool = True,
        spec: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.class_set = class_set
        self.spec = spec or f"{self.kind}:{self.root}"
        self.require_labels = require_labels
        self.split_file = Path(split_file) if split_file is not None else None
        class_names(class_set)  # validates the class set
        if not split or any(c in split for c in "/\\") or split in (".", ".."):
            raise LaborUsageError(f"{self.spec}: bad split name {split!r}")
        if not self.root.exists():
            raise LaborError(f"{self.spec}: no such folder {self.root}")
        if not self.root.is_dir():
            raise LaborError(f"{self.spec}: {self.root} is not a folder (expected {self.layout})")
        self.train_size = self._read_train_size()

        entries = self._scan()
        if self.split_file is not None:
            entries = self._restrict(entries, self.split_file)
        self.skipped_ids: list[str] = []  # images left out for lack of a label
        if require_labels:
            missing = [e for e in entries if not e.has_label]
            if missing and (self.split_file is not None or not self.skip_unlabeled):
                where = f"{self.split_file}: " if self.split_file is not None else f"{self.spec}: "
                raise LaborError(
                    f"{where}{len(missing)} image(s) of split {split!r} have no label, e.g. "
                    f"{missing[0].image_id}: no {missing[0].label}"
                )
            if missing:
                self.skipped_ids = [e.image_id for e in missing]
                entries = [e for e in entries if e.has_label]
                if not entries:
                    raise LaborError(
                        f"{self.spec}: no image of split {split!r} has a label "
                        f"(expected e.g. {missing[0].label} for {missing[0].image}; {self.layout})"
                    )
        if not entries:
            raise LaborError(f"{self.spec}: split {split!r} has no images (expected {self.layout})")
        entries.sort(key=lambda e: e.image_id)
        self.unreadable: list[str] = []  # "PATH: problem" of the images left out by drop_unreadable
        self.unreadable_ids: list[str] = []
        self._entries = entries
        self.image_ids = [e.image_id for e in entries]
        self._index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self._table = self._id_table()

    # -- what subclasses name ----------------------------------------------------------------

    def _scan(self) -> list[_Entry]:
        raise NotImplementedError

    def _id_table(self) -> np.ndarray:
        raise NotImplementedError

    def _normalise_id(self, text: str) -> str:
        """An image id from a line of a split file (an id, or a file name)."""
        return text

    def _decode_label(self, path: Path) -> np.ndarray:
        """Raw ids of a label file (HxW integers); single-channel 8/16-bit PNG by default."""
        with Image.open(path) as im:
            if im.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                return np.array(im)
            raise LaborError(f"{path}: expected a single-channel image of label ids, got a {im.mode} image")

    # -- shared machinery --------------------------------------------------------------------

    def _error(self, message: str) -> LaborError:
        hint = ""
        guess = _layout_guess(self.root)
        if guess is not None and guess != self.kind:
            hint = f"; it looks like a {guess} dataset: try {guess}:{self.root}"
        return LaborError(f"{self.spec}: {message}{hint}")

    def _read_train_size(self) -> tuple[int, int] | None:
        path = self.root / SETTINGS_FILE
        if not path.is_file():
            return self.default_train_size
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise LaborError(f"{path}: cannot read dataset settings ({_one_line(exc)})") from exc
        if not isinstance(settings, dict):
            raise LaborError(f'{path}: expected a JSON object like {{"train_size": [W, H]}}')
        if "train_size" not in settings:
            return self.default_train_size
        size = settings["train_size"]
        if size is None:
            return None
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise LaborError(f"{path}: train_size must be [W, H], two positive integers, not {size!r}")
        return (size[0], size[1])

    def _restrict(self, entries: list[_Entry], split_file: Path) -> list[_Entry]:
        if not split_file.is_file():
            raise LaborError(f"{split_file}: no such split file")
        by_id = {e.image_id: e for e in entries}
        kept: dict[str, _Entry] = {}
        for number, line in _read_list_file(split_file):
            image_id = self._normalise_id(line)
            if image_id not in by_id:
                raise LaborError(
                    f"{split_file}: line {number}: image id {image_id!r} is not in split {self.split!r} of {self.spec}"
                )
            kept[image_id] = by_id[image_id]
        if not kept:
            raise LaborError(f"{split_file}: lists no image ids")
        return list(kept.values())

    # -- the API -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, split={self.split!r}, {len(self)} images)"

    def index_of(self, image_id: str) -> int:
        try:
            return self._index[image_id]
        except KeyError:
            raise LaborError(f"{self.spec}: image id {image_id!r} is not in split {self.split!r}") from None

    def image_path(self, i: int) -> Path:
        return self._entries[i].image

    def label_path(self, i: int) -> Path | None:
        entry = self._entries[i]
        return entry.label if entry.has_label else None

    def drop_unreadable(self, images: bool = True, labels: bool = True) -> list[str]:
        """``--skip-bad``: check every file of the split up front and leave out the images whose
        image (or label, with ``labels``) file is unreadable; returns "PATH: problem" per image left out.

        The check reads each whole file and verifies its structure and checksums (PNG chunks and
        CRCs) without decoding the pixels, so it costs about one read of the split; a file that
        passes it and still fails to decode later stops the stage with a one-line error naming it.
        """
        kept, bad = [], []
        for entry in self._entries:
            problem = None
            if images:
                problem = _unreadable(entry.image)
            if problem is None and labels and entry.has_label:
                problem = _unreadable(entry.label)
            if problem is None:
                kept.append(entry)
            else:
                bad.append(problem)
                self.unreadable_ids.append(entry.image_id)
        if not kept:
            raise LaborError(
                f"{self.spec}: no readable image in split {self.split!r} ({len(bad)} unreadable, e.g. {bad[0]})"
            )
        self.unreadable.extend(bad)
        self._entries = kept
        self.image_ids = [e.image_id for e in kept]
        self._index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        return bad

    def read_image(self, i: int) -> np.ndarray:
        """HxWx3 uint8 RGB."""
        path = self.image_path(i)
        try:
            return read_rgb(path)
        except _READ_ERRORS as exc:
            raise LaborError(f"{path}: cannot read image ({_one_line(exc)})") from exc

    def image_size(self, i: int) -> tuple[int, int]:
        """(W, H) from the file header, without decoding the pixels."""
        path = self.image_path(i)
        try:
            with Image.open(path) as im:
                return im.size
        except _READ_ERRORS as exc:
            raise LaborError(f"{path}: cannot read image ({_one_line(exc)})") from exc

    def read_label(self, i: int) -> np.ndarray:
        """HxW uint8 class indices of ``self.class_set``, 255 = ignore."""
        entry = self._entries[i]
        if not entry.has_label:
            raise LaborError(f"{entry.label}: no label for image {entry.image_id} of {self.spec}")
        try:
            raw = self._decode_label(entry.label)
        except LaborError:
            raise
        except _READ_ERRORS as exc:
            raise LaborError(f"{entry.label}: cannot read label ({_one_line(exc)})") from exc
        if raw.ndim != 2:
            raise LaborError(f"{entry.label}: expected a single-channel label image, got shape {raw.shape}")
        return _apply_table(self._table, raw)


def _unreadable(path: Path) -> str | None:
    """None for a file that opens and verifies as an image, else "PATH: problem"."""
    try:
        with Image.open(path) as im:
            im.verify()
    except _READ_ERRORS as exc:
        return f"{path}: {_one_line(exc)}"
    return None


def _apply_table(table: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Map raw ids through a lookup table; ids outside the table are ignored."""
    if raw.dtype == np.uint8 and len(table) >= 256:
        return table[raw]
    raw = raw.astype(np.int64, copy=False)
    inside = (raw >= 0) & (raw < len(table))
    return np.where(inside, table[np.clip(raw, 0, len(table) - 1)], IGNORE_INDEX).astype(np.uint8)


class CityscapesDataset(SegmentationDataset):
    kind = "cityscapes"
    layout = (
        "the Cityscapes layout leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
        "gtFine/<split>/<city>/*_gtFine_labelIds.png"
    )
    default_train_size = (1024, 512)
    skip_unlabeled = False  # a Cityscapes copy with a missing label is broken: say so
    IMAGE_SUFFIX = "_leftImg8bit.png"
    LABEL_SUFFIX = "_gtFine_labelIds.png"

    def _scan(self) -> list[_Entry]:
        image_dir = self.root / "leftImg8bit" / self.split
        if not image_dir.is_dir():
            raise self._error(f"no leftImg8bit/{self.split} folder under {self.root} (expected {self.layout})")
        label_dir = self.root / "gtFine" / self.split
        entries = []
        for city in sorted(p for p in image_dir.iterdir() if p.is_dir()):
            for path in sorted(city.glob("*" + self.IMAGE_SUFFIX)):
                base = path.name[: -len(self.IMAGE_SUFFIX)]
                label = label_dir / city.name / (base + self.LABEL_SUFFIX)
                entries.append(_Entry(f"{city.name}/{base}", path, label, label.is_file()))
        if not entries:
            raise LaborError(
                f"{self.spec}: no <city>/*{self.IMAGE_SUFFIX} images under {image_dir} (expected {self.layout})"
            )
        if self.require_labels and not label_dir.is_dir():
            raise LaborError(
                f"{self.spec}: no gtFine/{self.split} folder under {self.root} for the labels "
                f"(expected gtFine/{self.split}/<city>/*{self.LABEL_SUFFIX})"
            )
        return entries

    def _normalise_id(self, text: str) -> str:
        # Accept "city/city_x_y", or a file name as the usual list files write it.
        text = text.replace("\\", "/")
        for suffix in (self.IMAGE_SUFFIX, self.LABEL_SUFFIX):
            if text.endswith(suffix):
                text = text[: -len(suffix)]
        parts = text.split("/")
        if len(parts) > 2:
            text = "/".join(parts[-2:])
        elif len(parts) == 1 and "_" in text:
            text = f"{text.split('_')[0]}/{text}"
        return text

    def _id_table(self) -> np.ndarray:
        return cityscapes_id_table(self.class_set)


class _FlatDataset(SegmentationDataset):
    """Images in one folder, labels named <stem>.png in another; optional ROOT/<split>.txt lists."""

    image_dir = "images"
    label_dir = "labels"
    image_extensions: tuple[str, ...] = (".png",)

    def _scan(self) -> list[_Entry]:
        image_dir = self.root / self.image_dir
        if not image_dir.is_dir():
            raise self._error(f"no {self.image_dir} folder under {self.root} (expected {self.layout})")
        images: dict[str, Path] = {}
        with os.scandir(image_dir) as it:
            names = sorted(e.name for e in it if e.is_file())
        for name in names:
            path = image_dir / name
            if path.suffix.lower() not in self.image_extensions:
                continue
            if path.stem in images:
                raise LaborError(f"{path}: two images named {path.stem!r} in {image_dir}")
            images[path.stem] = path
        if not images:
            raise self._error(
                f"no {'/'.join('*' + e for e in self.image_extensions)} images in {image_dir} (expected {self.layout})"
            )
        label_dir = self.root / self.label_dir
        if label_dir.is_dir():
            with os.scandir(label_dir) as it:
                label_names = {e.name for e in it}
        else:
            if self.require_labels:
                raise self._error(
                    f"no {self.label_dir} folder under {self.root} for the labels (expected {self.layout})"
                )
            label_names = set()
        self._check_labels_ready(bool(label_names))

        stems = self._split_stems(images)
        entries = []
        for stem in stems:
            name = stem + ".png"
            entries.append(_Entry(stem, images[stem], label_dir / name, name in label_names))
        return entries

    def _check_labels_ready(self, have_labels: bool) -> None:
        """Hook: anything else the labels need (the folder kind's classes.txt)."""

    def _split_stems(self, images: dict[str, Path]) -> list[str]:
        list_file = self.root / f"{self.split}.txt"
        if list_file.is_file():
            stems = []
            seen = set()
            for number, line in _read_list_file(list_file):
                stem = self._normalise_id(line)
                if stem not in images:
                    raise LaborError(
                        f"{list_file}: line {number}: {line!r}: no such image in {self.root / self.image_dir}"
                    )
                if stem not in seen:
                    seen.add(stem)
                    stems.append(stem)
            if not stems:
                raise LaborError(f"{list_file}: lists no images for split {self.split!r}")
            return stems
        if self.split in ALL_SPLITS:
            return list(images)
        raise LaborError(
            f"{self.spec}: no split list {list_file} for split {self.split!r} (a {self.kind} dataset has "
            f"no official {self.split!r} split: list its file names there, one per line, "
            f"or use split {' or '.join(repr(s) for s in ALL_SPLITS)} for every image)"
        )

    def _normalise_id(self, text: str) -> str:
        name = text.replace("\\", "/").rsplit("/", 1)[-1]
        stem, dot, ext = name.rpartition(".")
        if dot and "." + ext.lower() in self.image_extensions + (".png",):
            return stem
        return name


class GTA5Dataset(_FlatDataset):
    kind = "gta5"
    layout = "the GTA5 layout images/NNNNN.png and labels/NNNNN.png in Cityscapes label ids"
    default_train_size = (1280, 720)

    def _id_table(self) -> np.ndarray:
        return cityscapes_id_table(self.class_set)


class SynthiaDataset(_FlatDataset):
    kind = "synthia"
    native_class_set = "synthia16"
    layout = "the SYNTHIA RAND-CITYSCAPES layout RGB/*.png and GT/LABELS/*.png (16-bit ids in the first channel)"
    default_train_size = (1280, 760)
    image_dir = "RGB"
    label_dir = "GT/LABELS"

    def _id_table(self) -> np.ndarray:
        return synthia_id_table(self.class_set)

    def _decode_label(self, path: Path) -> np.ndarray:
        return read_synthia_ids(path)


class FolderDataset(_FlatDataset):
    kind = "folder"
    layout = "images/*.png|*.jpg, labels/<stem>.png in the folder's own train ids, and classes.txt"
    default_train_size = None  # native size
    image_extensions = (".png", ".jpg", ".jpeg")
    CLASSES_FILE = "classes.txt"

    _names: tuple[str, ...] | None = None

    def native_class_names(self) -> tuple[str, ...]:
        return self._names or ()

    def _check_labels_ready(self, have_labels: bool) -> None:
        path = self.root / self.CLASSES_FILE
        if path.is_file():
            self._names = read_class_names(path)
        elif have_labels or self.require_labels:
            raise self._error(
                f"no {self.CLASSES_FILE} under {self.root} (expected the names of the label "
                f"values 0, 1, 2, ... one per line, e.g. road)"
            )

    def _id_table(self) -> np.ndarray:
        if self._names is None:  # no labels at all: every read_label fails before the table
            return np.full(256, IGNORE_INDEX, dtype=np.uint8)
        return train_id_table(self._names, self.class_set)


def _normalise_name(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def read_class_names(path: Path) -> tuple[str, ...]:
    """A folder's classes.txt: one Cityscapes class name per line, in index order."""
    known = {label.name: label.name for label in CITYSCAPES_LABELS}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LaborError(f"{path}: cannot read class names ({_one_line(exc)})") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    names: list[str] = []
    for number, line in enumerate(lines, start=1):
        name = _normalise_name(line)
        if not name:
            raise LaborError(f"{path}: line {number}: empty class name (one name per label value)")
        if name not in known:
            raise LaborError(f"{path}: line {number}: unknown class name {line.strip()!r} (known: {', '.join(known)})")
        if name in names:
            raise LaborError(f"{path}: line {number}: class {name!r} listed twice")
        names.append(known[name])
    if not names:
        raise LaborError(f"{path}: lists no class names")
    return tuple(names)


_DATASET_CLASSES: dict[str, type[SegmentationDataset]] = {
    "cityscapes": CityscapesDataset,
    "gta5": GTA5Dataset,
    "synthia": SynthiaDataset,
    "folder": FolderDataset,
}


def open_dataset(
    spec: str,
    split: str,
    class_set: str = "cityscapes19",
    split_file: Path | None = None,
    require_labels: bool = True,
    skip_bad: bool = False,
    reads: tuple[str, ...] = ("images", "labels"),
) -> SegmentationDataset:
    """Open split ``split`` of the dataset ``KIND:PATH``.

    ``skip_bad`` (the stages' ``--skip-bad``): leave out the images whose files in ``reads``
    (images, labels) are unreadable, say so in one line on stderr, and list them in
    ``dataset.unreadable``. Without it an unreadable file stops the stage when it is read, with
    a one-line error naming it.
    """
    kind, root = parse_dataset_spec(spec)
    dataset = _DATASET_CLASSES[kind](
        root,
        split,
        class_set=class_set,
        split_file=split_file,
        require_labels=require_labels,
        spec=f"{kind}:{root}",
    )
    if skip_bad:
        bad = dataset.drop_unreadable(images="images" in reads, labels="labels" in reads and require_labels)
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            print(
                f"labor: warning: {dataset.spec} split {split!r}: skipped {len(bad)} unreadable "
                f"image(s) (--skip-bad): {bad[0]}{more}",
                file=sys.stderr,
            )
    return dataset


def skipped_files(**datasets) -> dict[str, list[str]]:
    """For an artifact's config: per role (source, target), the files --skip-bad left out."""
    return {role: list(dataset.unreadable) for role, dataset in datasets.items() if dataset is not None}


# --------------------------------------------------------------------------------------------
# SYNTHIA's 16-bit labels


class PNGError(ValueError):
    """A PNG file that cannot be decoded (damaged or unsupported)."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) of a PNG file; None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return width, height, depth, colour, interlace


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, as Pillow's ``convert("RGB")`` gives it.

    8-bit RGB PNGs without interlacing (Cityscapes', GTA5's and SYNTHIA's images) are decoded by
    TorchCodec's libpng straight into the array: their samples are the pixels, so there is no
    conversion to differ on, and Pillow's copies of the image (its own buffer, then the array)
    are skipped (``labor bench --pipeline`` times both). Other files, one larger than Pillow's
    decompression-bomb limit, and one that libpng refuses are read by Pillow."""
    data = path.read_bytes()
    if _plain_rgb_png(data):
        from torchcodec.decoders import decode_png as torchcodec_decode_png

        try:
            return torchcodec_decode_png(data, mode="UNCHANGED").permute(1, 2, 0).numpy()
        except RuntimeError:
            pass  # Pillow reads it, or says what is wrong with it in its own words
    with Image.open(path) as im:
        return np.array(im if im.mode == "RGB" else im.convert("RGB"))


def _plain_rgb_png(data: bytes) -> bool:
    """An 8-bit RGB PNG without interlacing (colour type 2, bit depth 8, interlace 0), within
    Pillow's decompression-bomb limit."""
    if len(data) < 29 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    small_enough = Image.MAX_IMAGE_PIXELS is None or width * height <= Image.MAX_IMAGE_PIXELS
    return depth == 8 and colour == 2 and interlace == 0 and small_enough


def read_synthia_ids(path: Path) -> np.ndarray:
    """HxW ids from the first channel of a SYNTHIA label PNG, exact for 16-bit files."""
    header = png_header(path)
    if header is not None and header[2] == 16 and header[3] in (2, 4, 6):
        # 16-bit colour: Pillow would keep only the high byte of each sample.
        try:
            return decode_png(path.read_bytes())[:, :, 0]
        except PNGError as exc:
            raise LaborError(f"{path}: cannot read label ({_one_line(exc)})") from exc
    with Image.open(path) as im:
        if im.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            return np.array(im)
        if im.mode in ("RGB", "RGBA", "LA"):
            return np.array(im)[:, :, 0]
        raise LaborError(f"{path}: expected a label image with the ids in its first channel, got a {im.mode} image")


def decode_png(data: bytes) -> np.ndarray:
    """Every sample of a PNG, exactly: (H, W, C) uint8, or uint16 for 16-bit files (colour too).

    TorchCodec's libpng decoder does the work: torchvision.io.decode_png (deprecated since
    torchvision 0.29) crashes the process on a damaged file, and pypng is 20-40x slower
    (docs/measurements.md). A damaged file raises :class:`PNGError` with libpng's reason.
    """
    from torchcodec.decoders import decode_png as torchcodec_decode_png  # loaded for 16-bit colour labels only

    try:
        image = torchcodec_decode_png(data, mode="UNCHANGED", output_dtype="auto")
    except RuntimeError as exc:
        reason = str(exc).rsplit("decode_png failed:", 1)[-1]  # drop the C++ source location
        raise PNGError(_one_line(reason)) from exc
    return image.permute(1, 2, 0).numpy()
