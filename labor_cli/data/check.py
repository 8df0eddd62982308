"""labor data check: is a dataset on disk what the stages will read?

``labor data check KIND:PATH``. For every split (Cityscapes: each folder under leftImg8bit/ and gtFine/; the flat kinds: "all",
and each ``<split>.txt`` list in the root): image and label counts, images without a label and
labels without an image, image sizes (from the PNG header, nothing decoded), labels whose size
differs from their image, and label ids that the dataset's id table does not know. Labels are
decoded with the dataset's own decoder (datasets.py), in worker processes.

Errors (exit code 1): a split the stages cannot open, an unreadable image or label, label ids
outside the table (a damaged or foreign label file), a Cityscapes image without its label in a
split that has labels (the stages refuse such a copy). Warnings (exit code 0): images without a
label in the flat kinds (the stages leave them out), labels without an image, label and image
sizes that differ (the stages resize such labels by nearest neighbour).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from labor_cli.data.datasets import (
    ALL_SPLITS,
    CityscapesDataset,
    SegmentationDataset,
    default_class_set,
    open_dataset,
    parse_dataset_spec,
    png_header,
)
from labor_cli.errors import LaborError
from labor_cli.options import DataCheckOptions

# The raw ids a label file may hold (ids the stages map to a class or deliberately ignore):
# Cityscapes label ids 0-33 (cityscapesScripts' helpers/labels.py; GTA5 uses the same), SYNTHIA
# RAND-CITYSCAPES class ids 0-22 (its README). A folder's: its classes.txt indices, and 255.
KNOWN_IDS = {"cityscapes": set(range(34)), "gta5": set(range(34)), "synthia": set(range(23))}
EXAMPLES = 3  # file names kept per kind of problem


@dataclass
class SplitReport:
    split: str
    images: int = 0
    labeled: int = 0
    unlabeled: list[str] = field(default_factory=list)  # images without a label
    orphan_labels: list[str] = field(default_factory=list)  # label files without an image
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> images
    size_mismatches: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    ids_seen: list[int] = field(default_factory=list)
    unknown_ids: dict[int, int] = field(default_factory=dict)  # id -> label files holding it
    unknown_examples: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class DataCheck:
    spec: str
    kind: str
    splits: list[SplitReport]
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [f"{s.split}: {e}" for s in self.splits for e in s.errors]

    @property
    def warnings(self) -> list[str]:
        return [f"{s.split}: {w}" for s in self.splits for w in s.warnings]

    @property
    def images(self) -> int:
        return sum(s.images for s in self.splits)

    def as_dict(self) -> dict:
        return {
            "dataset": self.spec,
            "kind": self.kind,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images / self.seconds, 1) if self.seconds else None,
            "errors": self.errors,
            "warnings": self.warnings,
            "splits": [asdict(s) for s in self.splits],
        }


# --------------------------------------------------------------------------------------------
# Per file, in worker processes


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file header: 29 bytes of a PNG, PIL's lazy open for anything else."""
    header = png_header(path)
    if header is not None:
        return header[0], header[1]
    with Image.open(path) as im:
        return im.size


_DATASET: SegmentationDataset | None = None


def _init_worker(dataset: SegmentationDataset) -> None:
    global _DATASET  # one dataset per worker process, sent once
    _DATASET = dataset


def check_pair(image: Path, label: Path | None, dataset: SegmentationDataset | None = None) -> dict:
    """One image and its label: sizes, the raw label ids present, or what made them unreadable."""
    dataset = dataset or _DATASET
    out: dict = {"image": str(image)}
    try:
        out["size"] = image_size(image)
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported, not raised
        out["unreadable"] = f"{image}: {_one_line(exc)}"
        return out
    if label is None:
        return out
    try:
        ids = dataset._decode_label(label)  # the raw ids, by the stages' own decoder (read_label maps them)
        if ids.ndim != 2:
            raise ValueError(f"expected a single-channel label, got shape {ids.shape}")
        out["label_size"] = (int(ids.shape[1]), int(ids.shape[0]))
        counts = np.bincount(ids.reshape(-1).astype(np.int64, copy=False))
        out["ids"] = np.flatnonzero(counts).tolist()
    except Exception as exc:  # noqa: BLE001
        out["unreadable"] = f"{label}: {_one_line(exc)}"
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Splits


def dataset_splits(kind: str, root: Path) -> list[str]:
    """Cityscapes: the folders under leftImg8bit/ and gtFine/; other kinds: all, and each split list."""
    if kind == "cityscapes":
        found = set()
        for top in ("leftImg8bit", "gtFine"):
            if (root / top).is_dir():
                found |= {p.name for p in (root / top).iterdir() if p.is_dir()}
        return sorted(found)
    lists = sorted(p.stem for p in root.glob("*.txt") if p.name != "classes.txt" and p.stem != "all")
    return ["all"] + lists


def orphan_labels(dataset: SegmentationDataset) -> list[str]:
    """Label files of the split that no image of it claims (the dataset API scans from images)."""
    claimed = {str(dataset.label_path(i)) for i in range(len(dataset)) if dataset.label_path(i) is not None}
    if isinstance(dataset, CityscapesDataset):
        candidates = (dataset.root / "gtFine" / dataset.split).glob(f"*/*{dataset.LABEL_SUFFIX}")
    elif (
        dataset.split in ALL_SPLITS
        and not (dataset.root / f"{dataset.split}.txt").is_file()  # 'train' covers every image only unlisted
        and (dataset.root / dataset.label_dir).is_dir()
    ):
        candidates = (dataset.root / dataset.label_dir).glob("*.png")
    else:
        return []  # a listed split: the labels of other splits are not orphans
    return sorted(str(p) for p in candidates if str(p) not in claimed)


def known_ids(dataset: SegmentationDataset) -> set[int]:
    if dataset.kind == "folder":
        return set(range(len(dataset.native_class_names()))) | {255}
    return KNOWN_IDS[dataset.kind]


def check_split(spec: str, kind: str, root: Path, split: str, workers: int) -> SplitReport:
    report = SplitReport(split)
    if kind == "cityscapes" and not (root / "leftImg8bit" / split).is_dir():
        labels = sorted((root / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
        report.orphan_labels = [str(p) for p in labels]
        report.errors.append(f"no leftImg8bit/{split} folder for its {len(labels)} label(s)")
        return report
    try:
        dataset = open_dataset(spec, split, class_set=default_class_set(kind), require_labels=False)
    except LaborError as exc:
        report.errors.append(str(exc))
        return report
    images = [dataset.image_path(i) for i in range(len(dataset))]
    labels = [dataset.label_path(i) for i in range(len(dataset))]
    if workers > 1 and len(images) > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(dataset,)) as pool:
            chunk = max(1, min(64, len(images) // (4 * workers)))
            results = list(pool.map(check_pair, images, labels, chunksize=chunk))
    else:
        results = [check_pair(image, label, dataset) for image, label in zip(images, labels)]
    _summarise(report, dataset, results)
    report.orphan_labels = orphan_labels(dataset)
    _judge(report, dataset)
    return report


def _summarise(report: SplitReport, dataset: SegmentationDataset, results: list[dict]) -> None:
    allowed = known_ids(dataset)
    sizes, seen, unknown = Counter(), set(), Counter()
    report.images = len(results)
    for i, result in enumerate(results):
        if "unreadable" in result:
            report.unreadable.append(result["unreadable"])
        if "size" in result:
            sizes[f"{result['size'][0]}x{result['size'][1]}"] += 1
        if dataset.label_path(i) is None:
            report.unlabeled.append(dataset.image_ids[i])
            continue
        if "ids" not in result:
            continue
        report.labeled += 1
        if result["label_size"] != result["size"]:
            label_size, size = result["label_size"], result["size"]
            report.size_mismatches.append(
                f"{dataset.label_path(i)}: {label_size[0]}x{label_size[1]} for a {size[0]}x{size[1]} image"
            )
        seen.update(result["ids"])
        for raw in set(result["ids"]) - allowed:
            unknown[raw] += 1
            report.unknown_examples.setdefault(raw, str(dataset.label_path(i)))
    report.sizes = dict(sizes.most_common())
    report.ids_seen = sorted(seen)
    report.unknown_ids = dict(sorted(unknown.items()))


def _judge(report: SplitReport, dataset: SegmentationDataset) -> None:
    """Which findings stop the stages (errors) and which they work around (warnings)."""

    def some(items: list[str]) -> str:
        return ", ".join(items[:EXAMPLES]) + (f" (+{len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else "")

    if report.unreadable:
        report.errors.append(f"{len(report.unreadable)} unreadable file(s): {some(report.unreadable)}")
    if report.unknown_ids:
        ids = ", ".join(
            f"{raw} in {count} file(s), e.g. {report.unknown_examples[raw]}"
            for raw, count in report.unknown_ids.items()
        )
        report.errors.append(f"label ids outside the {dataset.kind} id table: {ids}")
    if report.unlabeled and report.labeled:
        message = f"{len(report.unlabeled)} image(s) without a label: {some(report.unlabeled)}"
        if isinstance(dataset, CityscapesDataset):
            report.errors.append(message + " (the stages refuse a Cityscapes split with missing labels)")
        else:
            report.warnings.append(message + " (the stages leave them out)")
    if report.orphan_labels:
        report.warnings.append(f"{len(report.orphan_labels)} label(s) without an image: {some(report.orphan_labels)}")
    if report.size_mismatches:
        report.warnings.append(
            f"{len(report.size_mismatches)} label(s) of another size than their image (resized by "
            f"nearest neighbour when training): {some(report.size_mismatches)}"
        )


def run_data_check(options: DataCheckOptions) -> DataCheck:
    """Check every split of ``KIND:PATH``; ``workers`` processes decode the labels (default: one per CPU)."""
    spec, workers = options.dataset, options.workers
    kind, root = parse_dataset_spec(spec)
    if not root.is_dir():
        raise LaborError(f"{spec}: no such folder {root}")
    splits = dataset_splits(kind, root)
    if not splits:
        raise LaborError(f"{spec}: no split folders under {root / 'leftImg8bit'} or {root / 'gtFine'}")
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    started = time.perf_counter()
    reports = [check_split(spec, kind, root, split, workers) for split in splits]
    return DataCheck(f"{kind}:{root}", kind, reports, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# Output


def print_data_check(check: DataCheck) -> None:
    from rich.table import Table

    from labor_cli.console import stdout

    table = Table(
        "split",
        "images",
        "labeled",
        "no label",
        "label, no image",
        "sizes (W x H: images)",
        "label ids",
        title=f"{check.spec}: {check.images} images in {check.seconds:.1f} s",
    )
    for s in check.splits:
        sizes = ", ".join(f"{size}: {count}" for size, count in list(s.sizes.items())[:3])
        sizes += f" (+{len(s.sizes) - 3} sizes)" if len(s.sizes) > 3 else ""
        ids = _id_ranges(s.ids_seen)
        if s.unknown_ids:
            ids += f" [red](unknown: {', '.join(map(str, s.unknown_ids))})[/red]"
        table.add_row(
            s.split,
            str(s.images),
            str(s.labeled),
            str(len(s.unlabeled)),
            str(len(s.orphan_labels)),
            sizes or "-",
            ids or "-",
        )
    stdout.print(table)
    for line in check.errors:
        stdout.print(f"[red]error[/red] {line}", soft_wrap=True, highlight=False)
    for line in check.warnings:
        stdout.print(f"[yellow]warning[/yellow] {line}", soft_wrap=True, highlight=False)
    verdict = f"{len(check.errors)} error(s), {len(check.warnings)} warning(s)"
    stdout.print(verdict if check.errors or check.warnings else "no problems found")


def _id_ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    parts, start = [], None
    for i, value in enumerate(ids):
        if start is None:
            start = value
        if i + 1 == len(ids) or ids[i + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}-{value}")
            start = None
    return ", ".join(parts)


def exit_code(check: DataCheck) -> int:
    """1 when the stages would fail on the dataset, else 0 (warnings included)."""
    return 1 if check.errors else 0
