"""labor label, labor export, labor import: the annotator, simulated or a person.

- ``label`` answers a selection from the target's ground truth (255 stays 255: a pixel whose
  ground truth is ignored stays ignored) and, with ``--merge``, accumulates rounds;
- ``export`` writes a selection's pixels for annotators (``points.csv`` or ``points.json``,
  optionally PNG overlays that mark each pixel);
- ``import`` reads the annotators' answers back into a labels artifact of the same form as a
  simulated one: exporting a selection, answering it with the ground truth and importing the
  answers gives exactly what ``label`` makes from the same selection.

Coordinates are always in the target image's own pixel grid; ``x`` is the column, ``y`` the row.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from rich.table import Table

from labor_cli import artifacts
from labor_cli.artifacts import PixelSet
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.labels import IGNORE_INDEX, class_names as known_class_names
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.stages.show import artifact_kind, check_output_folder, dataset_indices, mark_points, output_folder, png_name, save_png

EXPORT_FORMATS = ("csv", "json")
# What an answer may say instead of a class: "I cannot tell" (stored as 255, like an ignored ground truth).
IGNORE_WORDS = ("ignore", "255")


# --- checks shared by the three stages --------------------------------------------------------


def answered_selection(chosen: PixelSet, label: np.ndarray, predicted: Optional[np.ndarray]) -> PixelSet:
    """A selection's pixels with their answers: the pixel set a labels artifact stores."""
    return dataclasses.replace(chosen, label=label, predicted=predicted, parent=None)


def check_class_names(pixels: PixelSet, path: Path) -> None:
    """The artifact's class names must be those of its class set (a known one)."""
    try:
        expected = list(known_class_names(pixels.class_set))
    except LaborUsageError:
        raise LaborError(f"{path}: unknown class set {pixels.class_set!r}") from None
    if list(pixels.class_names) != expected:
        raise LaborError(f"{path}: its class names do not match the class set {pixels.class_set}")


def image_of_rows(pixels: PixelSet) -> np.ndarray:
    """(P,) index of the image each pixel row belongs to."""
    return np.repeat(np.arange(len(pixels.image_ids)), pixels.counts())


def check_pixels(pixels: PixelSet, path: Path, kind: str) -> None:
    """Every pixel inside its image, none listed twice in the same image."""
    counts = pixels.counts()
    if (counts < 0).any():
        raise LaborError(f"{path}: damaged {kind} artifact: offsets are not increasing")
    image = image_of_rows(pixels)
    heights = pixels.sizes[image, 0].astype(np.int64)
    widths = pixels.sizes[image, 1].astype(np.int64)
    y, x = pixels.y.astype(np.int64), pixels.x.astype(np.int64)
    outside = (y < 0) | (y >= heights) | (x < 0) | (x >= widths)
    if outside.any():
        r = int(np.argmax(outside))
        raise LaborError(
            f"{path}: damaged {kind} artifact: pixel (x={x[r]}, y={y[r]}) is outside image "
            f"{pixels.image_ids[image[r]]!r} ({widths[r]}x{heights[r]})"
        )
    keys = _global_keys(pixels.sizes, image, y, x)
    order = np.argsort(keys, kind="stable")
    repeated = keys[order][1:] == keys[order][:-1]
    if repeated.any():
        r = int(order[1:][np.argmax(repeated)])
        raise LaborError(
            f"{path}: damaged {kind} artifact: pixel (x={x[r]}, y={y[r]}) of image "
            f"{pixels.image_ids[image[r]]!r} is listed twice"
        )


def _global_keys(sizes: np.ndarray, image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One int64 per pixel, unique over all pixels of all images."""
    areas = sizes[:, 0].astype(np.int64) * sizes[:, 1].astype(np.int64)
    base = np.concatenate([[0], np.cumsum(areas)[:-1]]).astype(np.int64)
    return base[image] + np.asarray(y, np.int64) * sizes[image, 1].astype(np.int64) + np.asarray(x, np.int64)


def _local_keys(y: np.ndarray, x: np.ndarray, width: int) -> np.ndarray:
    return np.asarray(y, np.int64) * int(width) + np.asarray(x, np.int64)


def per_class_counts(label: np.ndarray, names: list[str]) -> dict[str, int]:
    label = np.asarray(label)
    counts = np.bincount(label[label != IGNORE_INDEX].astype(np.int64), minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts[: len(names)])}


def wrong_and_known(predicted: np.ndarray, label: np.ndarray) -> tuple[int, int]:
    """Pixels where A is wrong, and pixels with a known ground truth and a known prediction."""
    valid = (label != IGNORE_INDEX) & (predicted != IGNORE_INDEX)
    return int(((predicted != label) & valid).sum()), int(valid.sum())


def error_rate(predicted: Optional[np.ndarray], label: np.ndarray) -> Optional[float]:
    """Percent of pixels with a known ground truth and a known prediction where A is wrong."""
    if predicted is None:
        return None
    wrong, known = wrong_and_known(predicted, label)
    return 100.0 * wrong / known if known else None


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}%"


# --- labor label ------------------------------------------------------------------------------


def without_images(pixels: PixelSet, image_ids: set[str]) -> PixelSet:
    """The pixel set less the given images (--skip-bad left them out of the dataset)."""
    keep = [i for i, image_id in enumerate(pixels.image_ids) if image_id not in image_ids]
    rows = np.concatenate([np.arange(pixels.offsets[i], pixels.offsets[i + 1]) for i in keep] + [np.zeros(0, np.int64)])
    counts = np.diff(pixels.offsets)[keep]

    def pick(values):
        return None if values is None else values[rows]

    return dataclasses.replace(pixels, image_ids=[pixels.image_ids[i] for i in keep], sizes=pixels.sizes[keep],
                               offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), y=pick(pixels.y),
                               x=pick(pixels.x), label=pick(pixels.label), predicted=pick(pixels.predicted))


@dataclass
class LabelResult:
    output: Path
    images: int  # images in the output (both rounds when merged)
    selected: int  # pixels selected this round
    labeled_round: int  # of them, new pixels (not already in the earlier labels)
    already_labeled: int  # selected pixels already labeled earlier (the earlier answer is kept)
    labeled_total: int  # pixels in the output
    share: float  # labeled pixels in percent of all pixels of the output's images
    ignored: int  # selected pixels whose ground truth is ignored (label 255)
    ignored_total: int
    per_class: dict[str, int]  # all labels of the output, per class
    per_class_round: dict[str, int]  # this round's selected pixels, per class
    error_selected: Optional[float]  # percent: A wrong on the selected non-ignored pixels
    error_all: Optional[float]  # percent: A wrong on all non-ignored pixels of the selection's images (needs masks)
    errors_covered: Optional[float] = None  # percent of those wrong pixels that were selected (needs masks)
    merged_from: Optional[Path] = None
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "images": self.images,
            "selected_pixels": self.selected,
            "labeled_this_round": self.labeled_round,
            "already_labeled": self.already_labeled,
            "labeled_total": self.labeled_total,
            "labeled_share_percent": round(self.share, 6),
            "ignored_this_round": self.ignored,
            "ignored_total": self.ignored_total,
            "error_rate_selected_percent": None if self.error_selected is None else round(self.error_selected, 4),
            "error_rate_all_percent": None if self.error_all is None else round(self.error_all, 4),
            "errors_covered_percent": None if self.errors_covered is None else round(self.errors_covered, 4),
            "per_class_this_round": self.per_class_round,
            "per_class": self.per_class,
            "merged_from": None if self.merged_from is None else str(self.merged_from),
        }


def run_label(
    selection: Path,
    target: str,
    output: Path,
    split: str = "train",
    merge: Optional[Path] = None,
    masks: Optional[Path] = None,
    force: bool = False,
    quiet: bool = False,
    skip_bad: bool = False,
) -> LabelResult:
    """The simulated annotator: each selected pixel gets its ground-truth class.

    ``skip_bad``: images whose ground-truth file is unreadable are left out of the labels."""
    started = time.perf_counter()
    selection, output = Path(selection), Path(output)
    artifacts.check_output_path(output, force)
    chosen = artifacts.read_pixel_set(selection, "selection")
    check_class_names(chosen, selection)
    check_pixels(chosen, selection, "selection")
    earlier = None
    if merge is not None:
        merge = Path(merge)
        earlier = artifacts.read_pixel_set(merge, "labels")
        if earlier.class_set != chosen.class_set:
            raise LaborError(
                f"{merge}: labels use class set {earlier.class_set}, but the selection {selection} uses {chosen.class_set}"
            )
        check_class_names(earlier, merge)
        check_pixels(earlier, merge, "labels")

    dataset = open_dataset(target, split, class_set=chosen.class_set, skip_bad=skip_bad, reads=("labels",))
    dataset.check_classes(chosen.class_set, "target")
    if dataset.unreadable_ids:
        chosen = without_images(chosen, set(dataset.unreadable_ids))
    indices = dataset_indices(chosen.image_ids, chosen.sizes, selection, dataset)
    if earlier is not None:
        dataset_indices(earlier.image_ids, earlier.sizes, merge, dataset)

    with contextlib.ExitStack() as stack:
        opened = None
        mask_rows: list[int] = []
        if masks is not None:
            masks = Path(masks)
            opened = stack.enter_context(artifacts.Masks(masks))
            mask_rows = _match_masks(opened, masks, chosen, selection)

        label = np.full(len(chosen.y), IGNORE_INDEX, dtype=np.uint8)
        predicted = None
        if chosen.predicted is not None:
            predicted = np.asarray(chosen.predicted, dtype=np.uint8)
        elif opened is not None:
            predicted = np.full(len(chosen.y), IGNORE_INDEX, dtype=np.uint8)
        wrong_all = valid_all = 0
        with progress_bar(disable=quiet) as bar:
            task = bar.add_task("label", total=len(indices), status="")
            for i, index in enumerate(indices):
                rows = chosen.pixels_of(i)
                truth = dataset.read_label(index)
                if truth.shape != tuple(int(v) for v in chosen.sizes[i]):
                    raise LaborError(
                        f"{dataset.label_path(index)}: label is {truth.shape[1]}x{truth.shape[0]}, "
                        f"its image {int(chosen.sizes[i][1])}x{int(chosen.sizes[i][0])}"
                    )
                y, x = chosen.y[rows], chosen.x[rows]
                label[rows] = truth[y, x]
                if opened is not None:
                    prediction = opened.prediction(mask_rows[i])
                    if chosen.predicted is None:
                        predicted[rows] = prediction[y, x]
                    wrong, known = wrong_and_known(prediction, truth)
                    wrong_all += wrong
                    valid_all += known
                bar.update(task, advance=1, status=f"{rows.stop} px")

    fresh = answered_selection(chosen, label, predicted)
    already = 0
    result_set = fresh
    if earlier is not None:
        result_set, already = merge_pixel_sets(earlier, fresh, dataset.index_of)

    names = list(chosen.class_names)
    result = LabelResult(
        output=output,
        images=len(result_set.image_ids),
        selected=len(fresh.y),
        labeled_round=len(fresh.y) - already,
        already_labeled=already,
        labeled_total=len(result_set.y),
        share=result_set.labeled_share(),
        ignored=int((fresh.label == IGNORE_INDEX).sum()),
        ignored_total=int((result_set.label == IGNORE_INDEX).sum()),
        per_class=per_class_counts(result_set.label, names),
        per_class_round=per_class_counts(fresh.label, names),
        error_selected=error_rate(fresh.predicted, fresh.label),
        error_all=(100.0 * wrong_all / valid_all if valid_all else None) if masks is not None else None,
        errors_covered=(100.0 * wrong_and_known(fresh.predicted, fresh.label)[0] / wrong_all if wrong_all else None)
        if masks is not None else None,
        merged_from=merge,
    )
    config = {
        "selection": str(selection),
        "target": target,
        "split": split,
        "merge": None if merge is None else str(merge),
        "masks": None if masks is None else str(masks),
        "annotator": "ground truth",
    }
    if skip_bad:
        config["skipped_unreadable"] = skipped_files(target=dataset)
    parents = [chosen.parent] + ([earlier.parent] if earlier is not None else [])
    with artifacts.create_artifact(output, "labels", config, parents, force) as f:
        artifacts.write_pixel_set(f, result_set)
        f.attrs["summary"] = json.dumps(result.summary())
    result.seconds = time.perf_counter() - started
    return result


def _match_masks(opened: artifacts.Masks, path: Path, chosen: PixelSet, selection: Path) -> list[int]:
    """Row of each selection image in the masks artifact (matched by image id, sizes checked)."""
    if opened.class_set != chosen.class_set:
        raise LaborError(f"{path}: masks use class set {opened.class_set}, but the selection {selection} uses {chosen.class_set}")
    position = {image_id: i for i, image_id in enumerate(opened.image_ids)}
    rows = []
    for i, image_id in enumerate(chosen.image_ids):
        if image_id not in position:
            raise LaborError(f"{path}: has no image {image_id!r} (an image of the selection {selection})")
        row = position[image_id]
        if tuple(int(v) for v in opened.sizes[row]) != tuple(int(v) for v in chosen.sizes[i]):
            height, width = (int(v) for v in opened.sizes[row])
            raise LaborError(
                f"{path}: image {image_id!r} is {width}x{height} there but "
                f"{int(chosen.sizes[i][1])}x{int(chosen.sizes[i][0])} in the selection {selection}"
            )
        rows.append(row)
    return rows


def merge_pixel_sets(earlier: PixelSet, fresh: PixelSet, index_of) -> tuple[PixelSet, int]:
    """The union of two labels sets: images of both in the dataset's order (``index_of``); per
    image the earlier pixels first, then the new ones not already there (the earlier answer wins).
    Returns the union and how many new pixels were already labeled."""
    earlier_at = {image_id: i for i, image_id in enumerate(earlier.image_ids)}
    fresh_at = {image_id: i for i, image_id in enumerate(fresh.image_ids)}
    order = sorted(set(earlier_at) | set(fresh_at), key=index_of)
    keep_predicted = earlier.predicted is not None or fresh.predicted is not None

    def predicted_of(pixels: PixelSet, rows: slice) -> np.ndarray:
        if pixels.predicted is None:
            return np.full(rows.stop - rows.start, IGNORE_INDEX, dtype=np.uint8)
        return np.asarray(pixels.predicted[rows], dtype=np.uint8)

    sizes, counts, ys, xs, labels, predicted = [], [], [], [], [], []
    already = 0
    for image_id in order:
        parts = 0
        if image_id in earlier_at:
            i = earlier_at[image_id]
            rows = earlier.pixels_of(i)
            size = earlier.sizes[i]
            ys.append(earlier.y[rows]), xs.append(earlier.x[rows]), labels.append(earlier.label[rows])
            predicted.append(predicted_of(earlier, rows))
            parts += rows.stop - rows.start
        if image_id in fresh_at:
            j = fresh_at[image_id]
            rows = fresh.pixels_of(j)
            size = fresh.sizes[j]
            new = np.ones(rows.stop - rows.start, dtype=bool)
            if image_id in earlier_at:
                width = int(size[1])
                old_rows = earlier.pixels_of(earlier_at[image_id])
                new = ~np.isin(_local_keys(fresh.y[rows], fresh.x[rows], width),
                               _local_keys(earlier.y[old_rows], earlier.x[old_rows], width))
                already += int((~new).sum())
            ys.append(fresh.y[rows][new]), xs.append(fresh.x[rows][new]), labels.append(fresh.label[rows][new])
            predicted.append(predicted_of(fresh, rows)[new])
            parts += int(new.sum())
        sizes.append(size)
        counts.append(parts)

    def joined(parts: list, dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    union = PixelSet(
        image_ids=order,
        sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=joined(ys, np.int32),
        x=joined(xs, np.int32),
        label=joined(labels, np.uint8),
        class_set=fresh.class_set,
        class_names=list(fresh.class_names),
        predicted=joined(predicted, np.uint8) if keep_predicted else None,
    )
    return union, already


def print_label(result: LabelResult) -> None:
    merged = f", {result.already_labeled} of them already labeled" if result.merged_from is not None else ""
    stdout.print(
        f"labels: {result.images} images; {result.labeled_round} pixels labeled this round "
        f"({result.selected} selected{merged}), {result.labeled_total} in total = "
        f"{result.share:.3f}% of all pixels ({result.seconds:.1f} s) -> {result.output}"
    )
    if result.ignored:
        stdout.print(f"  ground truth ignored at {result.ignored} selected pixel(s): stored as 255, not used in training")
    if result.error_selected is not None and result.error_all is not None:
        stdout.print(f"  A is wrong on {_percent(result.error_selected)} of the selected pixels vs "
                     f"{_percent(result.error_all)} of all pixels; the selection holds "
                     f"{_percent(result.errors_covered)} of A's wrong pixels")
    elif result.error_selected is not None:
        stdout.print(f"  A is wrong on {_percent(result.error_selected)} of the selected pixels "
                     "(pass --masks for its error rate over all pixels)")
    _print_class_table(result.per_class_round, result.per_class if result.merged_from is not None else None)


def _print_class_table(round_counts: dict[str, int], total_counts: Optional[dict[str, int]]) -> None:
    columns = ["class", "this round"] + (["total"] if total_counts is not None else [])
    table = Table(*columns)
    for name, count in round_counts.items():
        total = total_counts[name] if total_counts is not None else 0
        if count or total:
            table.add_row(name, str(count), *([str(total)] if total_counts is not None else []))
    if table.row_count:
        stdout.print(table)


# --- labor export -----------------------------------------------------------------------------


@dataclass
class ExportResult:
    output_dir: Path
    points_file: Path
    kind: str
    images: int
    pixels: int
    overlays: int = 0
    seconds: float = 0.0


def run_export(
    selection_or_labels: Path,
    output_dir: Path,
    target: Optional[str] = None,
    fmt: str = "csv",
    overlays: bool = False,
    force: bool = False,
    split: str = "train",
    quiet: bool = False,
) -> ExportResult:
    """points.csv (image_id,x,y[,predicted_class][,class]) or points.json for annotators, optionally PNG overlays."""
    started = time.perf_counter()
    path, output_dir = Path(selection_or_labels), Path(output_dir)
    fmt = str(fmt).lower()
    if fmt not in EXPORT_FORMATS:
        raise LaborUsageError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if overlays and not target:
        raise LaborUsageError("--overlays needs the target images: pass --target KIND:PATH")
    kind = artifact_kind(path)
    if kind not in ("selection", "labels"):
        raise LaborError(f"{path}: is a {kind} artifact; export writes the pixels of a selection or labels artifact")
    check_output_folder(output_dir, force)
    pixels = artifacts.read_pixel_set(path, kind)
    check_class_names(pixels, path)
    check_pixels(pixels, path, kind)
    indices = []
    if overlays:
        dataset = open_dataset(target, split, class_set=pixels.class_set, require_labels=False)
        indices = dataset_indices(pixels.image_ids, pixels.sizes, path, dataset)

    columns = _export_columns(pixels)
    points_name = f"points.{fmt}"
    with output_folder(output_dir, force) as folder:
        if fmt == "csv":
            with open(folder / points_name, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(list(columns))
                writer.writerows(zip(*columns.values()))
        else:
            names = list(columns)
            with open(folder / points_name, "w", encoding="utf-8") as handle:
                handle.write("[\n")
                rows = (json.dumps(dict(zip(names, values))) for values in zip(*columns.values()))
                handle.write(",\n".join(rows))
                handle.write("\n]\n")
        if overlays:
            with progress_bar(disable=quiet) as bar:
                task = bar.add_task("overlays", total=len(indices), status="")
                for i, index in enumerate(indices):
                    rows = pixels.pixels_of(i)
                    image = dataset.read_image(index)
                    save_png(mark_points(image, pixels.y[rows], pixels.x[rows]), folder / png_name(pixels.image_ids[i]))
                    bar.update(task, advance=1)
    return ExportResult(output_dir, output_dir / points_name, kind, len(pixels.image_ids), len(pixels.y),
                        len(indices), time.perf_counter() - started)


def _export_columns(pixels: PixelSet) -> dict[str, list]:
    """The columns of points.csv / the keys of points.json, as plain Python values."""
    names = np.array(list(pixels.class_names) + [""] * (256 - len(pixels.class_names)), dtype=object)
    image_ids = np.array(pixels.image_ids, dtype=object)[image_of_rows(pixels)] if len(pixels.image_ids) else np.zeros(0, object)
    columns = {
        "image_id": image_ids.tolist(),
        "x": pixels.x.astype(np.int64).tolist(),
        "y": pixels.y.astype(np.int64).tolist(),
    }
    if pixels.predicted is not None:
        columns["predicted_class"] = names[np.asarray(pixels.predicted, np.uint8)].tolist()
    if pixels.label is not None:
        columns["class"] = names[np.asarray(pixels.label, np.uint8)].tolist()  # "" where ignored
    return columns


def print_export(result: ExportResult) -> None:
    overlays = f" and {result.overlays} PNG overlays" if result.overlays else ""
    stdout.print(f"export: {result.pixels} pixels of {result.images} images ({result.kind}) to "
                 f"{result.points_file}{overlays} ({result.seconds:.1f} s)")


# --- labor import -----------------------------------------------------------------------------


@dataclass
class ImportResult:
    output: Path
    images: int
    selected: int  # pixels of the selection
    answers: int  # answer records read (blank classes included)
    answered: int  # selected pixels with an answer
    unanswered: int  # selected pixels with no answer (stored as 255, ignored)
    ignored: int  # answers that say "ignore" (stored as 255)
    share: float
    per_class: dict[str, int]
    error_selected: Optional[float]
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "images": self.images,
            "selected_pixels": self.selected,
            "answers": self.answers,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "ignored_answers": self.ignored,
            "labeled_total": self.selected,
            "labeled_share_percent": round(self.share, 6),
            "error_rate_selected_percent": None if self.error_selected is None else round(self.error_selected, 4),
            "per_class": self.per_class,
        }


@dataclass
class _Answers:
    format: str
    lines: list[int] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    x: list[int] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    label: list[int] = field(default_factory=list)  # class index, 255 = "ignore", -1 = blank (no answer)


def run_import(answers: Path, selection: Path, output: Path, force: bool = False) -> ImportResult:
    """The annotators' answers (CSV image_id,x,y,class or a JSON list) as a labels artifact."""
    started = time.perf_counter()
    answers, selection, output = Path(answers), Path(selection), Path(output)
    artifacts.check_output_path(output, force)
    chosen = artifacts.read_pixel_set(selection, "selection")
    check_class_names(chosen, selection)
    check_pixels(chosen, selection, "selection")
    parsed = read_answers(answers, list(chosen.class_names), chosen.class_set)

    label = np.full(len(chosen.y), IGNORE_INDEX, dtype=np.uint8)
    rows = _selection_rows(parsed, chosen, answers, selection)
    given = np.asarray(parsed.label, dtype=np.int64)
    answered_mask = given >= 0
    rows, given, lines = rows[answered_mask], given[answered_mask], np.asarray(parsed.lines, np.int64)[answered_mask]
    order = np.argsort(rows, kind="stable")
    same = rows[order][1:] == rows[order][:-1]
    conflict = same & (given[order][1:] != given[order][:-1])
    if conflict.any():
        k = int(np.argmax(conflict))
        first, second, row = int(lines[order][k]), int(lines[order][k + 1]), int(rows[order][k])
        image = int(np.searchsorted(chosen.offsets, row, side="right") - 1)
        raise LaborError(
            f"{answers}: lines {first} and {second} give pixel (x={int(chosen.x[row])}, y={int(chosen.y[row])}) "
            f"of image {chosen.image_ids[image]!r} two different classes"
        )
    label[rows] = given.astype(np.uint8)
    answered = len(np.unique(rows))

    imported = answered_selection(chosen, label, chosen.predicted)
    result = ImportResult(
        output=output,
        images=len(imported.image_ids),
        selected=len(imported.y),
        answers=len(parsed.lines),
        answered=answered,
        unanswered=len(imported.y) - answered,
        ignored=int((label == IGNORE_INDEX).sum()) - (len(imported.y) - answered),
        share=imported.labeled_share(),
        per_class=per_class_counts(label, list(chosen.class_names)),
        error_selected=error_rate(imported.predicted, label),
    )
    config = {"answers": str(answers), "selection": str(selection), "format": parsed.format, "annotator": "import"}
    with artifacts.create_artifact(output, "labels", config, [chosen.parent], force) as f:
        artifacts.write_pixel_set(f, imported)
        f.attrs["summary"] = json.dumps(result.summary())
    result.seconds = time.perf_counter() - started
    return result


def _selection_rows(parsed: _Answers, chosen: PixelSet, answers: Path, selection: Path) -> np.ndarray:
    """The selection row of every answer; an answer that is not a selected pixel is an error."""
    position = {image_id: i for i, image_id in enumerate(chosen.image_ids)}
    image = np.empty(len(parsed.lines), dtype=np.int64)
    for k, image_id in enumerate(parsed.image_ids):
        i = position.get(image_id)
        if i is None:
            raise LaborError(f"{answers}: line {parsed.lines[k]}: image {image_id!r} is not in the selection {selection}")
        image[k] = i
    y, x = np.asarray(parsed.y, np.int64), np.asarray(parsed.x, np.int64)
    heights = chosen.sizes[image, 0].astype(np.int64) if len(image) else np.zeros(0, np.int64)
    widths = chosen.sizes[image, 1].astype(np.int64) if len(image) else np.zeros(0, np.int64)
    inside = (y >= 0) & (y < heights) & (x >= 0) & (x < widths)
    selected_keys = _global_keys(chosen.sizes, image_of_rows(chosen), chosen.y, chosen.x)
    order = np.argsort(selected_keys)
    sorted_keys = selected_keys[order]
    keys = _global_keys(chosen.sizes, image, np.where(inside, y, 0), np.where(inside, x, 0))
    where = np.clip(np.searchsorted(sorted_keys, keys), 0, max(len(sorted_keys) - 1, 0))
    found = inside & (sorted_keys[where] == keys) if len(sorted_keys) else np.zeros(len(keys), bool)
    if not found.all():
        k = int(np.argmax(~found))
        raise LaborError(
            f"{answers}: line {parsed.lines[k]}: pixel (x={x[k]}, y={y[k]}) of image "
            f"{parsed.image_ids[k]!r} is not a pixel of the selection {selection}"
        )
    return order[where].astype(np.int64)


def read_answers(path: Path, names: list[str], class_set: str) -> _Answers:
    """Parse a CSV (header image_id,x,y,class, any order, more columns allowed) or a JSON list."""
    path = Path(path)
    if not path.exists():
        raise LaborError(f"{path}: no such file")
    if path.is_dir():
        raise LaborError(f"{path}: is a folder, expected an answers file (.csv or .json)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LaborError(f"{path}: malformed answers file: not UTF-8 text") from None
    except OSError as exc:
        raise LaborError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    suffix = path.suffix.lower()
    is_json = suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith("["))
    reader = _ClassReader(path, names, class_set)
    return _parse_json(path, text, reader) if is_json else _parse_csv(path, text, reader)


class _ClassReader:
    """A class name (case-insensitive) or index -> class index; 'ignore' -> 255; blank -> -1."""

    def __init__(self, path: Path, names: list[str], class_set: str):
        self.path, self.names, self.class_set = path, names, class_set
        self.by_name = {name.lower(): i for i, name in enumerate(names)}

    def __call__(self, value, line: int) -> int:
        if isinstance(value, bool):
            raise self._unknown(value, line)
        if value is None:
            return -1
        if isinstance(value, int):
            return self._index(value, value, line)
        if isinstance(value, float) and value.is_integer():
            return self._index(int(value), value, line)
        if not isinstance(value, str):
            raise self._unknown(value, line)
        text = value.strip()
        if not text:
            return -1
        if text.lower() in IGNORE_WORDS:
            return IGNORE_INDEX
        if text.lower() in self.by_name:
            return self.by_name[text.lower()]
        if re.fullmatch(r"[+-]?\d+", text):
            return self._index(int(text), value, line)
        raise self._unknown(value, line)

    def _index(self, index: int, value, line: int) -> int:
        if 0 <= index < len(self.names) or index == IGNORE_INDEX:
            return index
        raise LaborError(
            f"{self.path}: line {line}: class index {value!r} is not in the class set {self.class_set} "
            f"(0..{len(self.names) - 1}, or 255 for ignore)"
        )

    def _unknown(self, value, line: int) -> LaborError:
        return LaborError(
            f"{self.path}: line {line}: unknown class {value!r} (class set {self.class_set}: "
            f"{', '.join(self.names)}; or ignore)"
        )


def _integer(value, path: Path, line: int, name: str) -> int:
    if isinstance(value, bool):
        raise LaborError(f"{path}: line {line}: {name} {value!r} is not an integer pixel coordinate")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise LaborError(f"{path}: line {line}: {name} {value!r} is not an integer pixel coordinate")


def _add(parsed: _Answers, path: Path, line: int, image_id, x, y, value, classes: _ClassReader) -> None:
    if not isinstance(image_id, str) or not image_id.strip():
        raise LaborError(f"{path}: line {line}: missing image_id")
    parsed.lines.append(line)
    parsed.image_ids.append(image_id.strip())
    parsed.x.append(_integer(x, path, line, "x"))
    parsed.y.append(_integer(y, path, line, "y"))
    parsed.label.append(classes(value, line))


REQUIRED_FIELDS = ("image_id", "x", "y", "class")


def _parse_csv(path: Path, text: str, classes: _ClassReader) -> _Answers:
    parsed = _Answers("csv")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise LaborError(f"{path}: malformed CSV: empty file (expected a header image_id,x,y,class)")
        fields = [name.strip().lower() for name in header]
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise LaborError(
                f"{path}: malformed CSV: the header has no {', '.join(missing)} column "
                f"(expected image_id,x,y,class; found {','.join(header)})"
            )
        column = {name: fields.index(name) for name in REQUIRED_FIELDS}
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(fields):
                raise LaborError(f"{path}: malformed CSV: line {line} has {len(row)} fields, the header {len(fields)}")
            _add(parsed, path, line, row[column["image_id"]], row[column["x"]], row[column["y"]],
                 row[column["class"]], classes)
    except csv.Error as exc:
        raise LaborError(f"{path}: malformed CSV: line {reader.line_num}: {exc}") from None
    return parsed


_SPACE = re.compile(r"\s*")


def _parse_json(path: Path, text: str, classes: _ClassReader) -> _Answers:
    """A JSON list of {image_id, x, y, class} objects, read item by item to know each one's line."""
    parsed = _Answers("json")
    decoder = json.JSONDecoder()
    expected = "expected a JSON list of {image_id, x, y, class} objects"
    try:
        pos = _SPACE.match(text, 0).end()
        if not text.startswith("[", pos):
            raise LaborError(f"{path}: malformed JSON: {expected}")
        pos = _SPACE.match(text, pos + 1).end()
        line, counted = 1, 0
        if text.startswith("]", pos):
            pos += 1
        else:
            while True:
                line += text.count("\n", counted, pos)
                counted = pos
                item, pos = decoder.raw_decode(text, pos)
                if not isinstance(item, dict) or any(name not in item for name in REQUIRED_FIELDS):
                    raise LaborError(f"{path}: line {line}: {expected}, found {json.dumps(item)[:80]}")
                _add(parsed, path, line, item["image_id"], item["x"], item["y"], item["class"], classes)
                pos = _SPACE.match(text, pos).end()
                if text.startswith(",", pos):
                    pos = _SPACE.match(text, pos + 1).end()
                elif text.startswith("]", pos):
                    pos += 1
                    break
                else:
                    line += text.count("\n", counted, pos)
                    counted = pos
                    raise LaborError(f"{path}: malformed JSON: line {line}: expected ',' or ']'")
        if _SPACE.match(text, pos).end() != len(text):
            raise LaborError(f"{path}: malformed JSON: text after the closing ']'")
    except json.JSONDecodeError as exc:
        raise LaborError(f"{path}: malformed JSON: line {exc.lineno}: {exc.msg}") from None
    return parsed


def print_import(result: ImportResult) -> None:
    stdout.print(
        f"import: {result.answered} of {result.selected} selected pixels answered in {result.images} images "
        f"({result.answers} answers read; {result.share:.3f}% of all pixels) ({result.seconds:.1f} s) -> {result.output}"
    )
    if result.unanswered:
        stdout.print(f"  {result.unanswered} selected pixel(s) have no answer: stored as ignored (255)")
    if result.ignored:
        stdout.print(f"  {result.ignored} answer(s) say ignore (255)")
    if result.error_selected is not None:
        stdout.print(f"  A is wrong on {_percent(result.error_selected)} of the answered pixels")
    _print_class_table(result.per_class, None)
