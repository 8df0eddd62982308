"""labor export and labor import: a selection handed to annotators, and their answers taken back.

- ``export`` writes a selection's (or labels artifact's) pixels for annotators: ``points.csv``
  or ``points.json``, optionally a PNG per image that marks each pixel;
- ``import`` reads the answers (CSV ``image_id,x,y,class`` or a JSON list of such objects) into
  a labels artifact of the same form as ``labor label``'s: exporting a selection, answering it
  with the ground truth and importing the answers gives exactly what ``label`` makes from it.

Coordinates are always in the target image's own pixel grid; ``x`` is the column, ``y`` the row.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import json.scanner
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labor_cli import artifacts
from labor_cli.artifacts import PixelSet
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.drawing import check_output_folder, mark_points, output_folder, png_name, save_png
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.option_machinery import stored_config
from labor_cli.options import EXPORT_FORMATS, ExportOptions, ImportOptions
from labor_cli.pixel_sets import (
    answered_selection,
    artifact_kind,
    dataset_indices,
    error_rate,
    image_of_rows,
    per_class_counts,
    pixel_keys,
    read_checked_pixel_set,
)
from labor_cli.regions import Grouping, RegionCounts, count_regions, unit_of_mode
from labor_cli.report import percent, print_class_table

# What an answer may say instead of a class: "I cannot tell" (stored as 255, like an ignored ground truth).
IGNORE_WORDS = ("ignore", "255")
REQUIRED_FIELDS = ("image_id", "x", "y", "class")
JSON_EXPECTED = "expected a JSON list of {image_id, x, y, class} objects"


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
    unit: str = "point"  # what a person answers in labor annotate: points, or an SPL selection's regions
    regions: RegionCounts | None = None  # an SPL selection's regions (annotate's default grouping)
    faithful: RegionCounts | None = None  # and every mask pixel asked (--min-region 1)


def run_export(options: ExportOptions) -> ExportResult:
    """points.csv (image_id,x,y[,predicted_class][,class]) or points.json for annotators, optionally PNG overlays."""
    started = time.perf_counter()
    path, output_dir = Path(options.artifact), Path(options.output_dir)
    fmt = str(options.fmt).lower()
    if fmt not in EXPORT_FORMATS:
        raise LaborUsageError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if options.overlays and not options.target:
        raise LaborUsageError("--overlays needs the target images: pass --target KIND:PATH")
    kind = artifact_kind(path)
    if kind not in ("selection", "labels"):
        raise LaborError(
            f"{path}: is {artifacts.a_kind(kind)}; export writes the pixels of a selection or labels artifact"
        )
    check_output_folder(output_dir, options.force, inputs=(path,))
    pixels = read_checked_pixel_set(path, kind)
    dataset, indices = None, []
    if options.overlays:
        dataset = open_dataset(options.target, options.split, class_set=pixels.class_set, require_labels=False)
        indices = dataset_indices(pixels.image_ids, pixels.sizes, path, dataset)

    points_name = f"points.{fmt}"
    with output_folder(output_dir, options.force) as folder:
        write_points(folder / points_name, export_columns(pixels), fmt)
        if options.overlays:
            write_overlays(folder, pixels, dataset, indices, options.quiet)
    result = ExportResult(
        output_dir,
        output_dir / points_name,
        kind,
        len(pixels.image_ids),
        len(pixels.y),
        len(indices),
        time.perf_counter() - started,
    )
    if kind == "selection":
        with artifacts.open_artifact(path, "selection") as artifact:
            result.unit = unit_of_mode(artifact.config.get("mode"))
        if result.unit == "region":
            result.regions = count_regions(pixels, Grouping())
            result.faithful = count_regions(pixels, Grouping(min_region=1))
    result.seconds = time.perf_counter() - started
    return result


def export_columns(pixels: PixelSet) -> dict[str, list]:
    """The columns of points.csv / the keys of points.json, as plain Python values."""
    names = np.array(list(pixels.class_names) + [""] * (256 - len(pixels.class_names)), dtype=object)
    image_ids = np.array(list(pixels.image_ids) + [""], dtype=object)  # + "": an array even with no images
    image_ids = image_ids[image_of_rows(pixels)]
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


def write_points(path: Path, columns: dict[str, list], fmt: str) -> None:
    """A CSV with a header, or a JSON list with one object per line."""
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(list(columns))
            writer.writerows(zip(*columns.values()))
        return
    names = list(columns)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[\n")
        handle.write(",\n".join(json.dumps(dict(zip(names, values))) for values in zip(*columns.values())))
        handle.write("\n]\n")


def write_overlays(folder: Path, pixels: PixelSet, dataset, indices: list[int], quiet: bool) -> None:
    """One PNG per image with each of its pixels marked."""
    with progress_bar(disable=quiet) as bar:
        task = bar.add_task("overlays", total=len(indices), status="")
        for i, index in enumerate(indices):
            rows = pixels.pixels_of(i)
            image = dataset.read_image(index)
            save_png(mark_points(image, pixels.y[rows], pixels.x[rows]), folder / png_name(pixels.image_ids[i]))
            bar.update(task, advance=1)


def print_export(result: ExportResult) -> None:
    overlays = f" and {result.overlays} PNG overlays" if result.overlays else ""
    stdout.print(
        f"export: {result.pixels} pixels of {result.images} images ({result.kind}) to "
        f"{result.points_file}{overlays} ({result.seconds:.1f} s)"
    )
    if result.kind != "selection" or not result.images:
        return
    if result.regions is None:
        stdout.print(
            f"  a person answers it point by point: {result.pixels} keypresses, "
            f"{result.pixels / result.images:.1f} per image (labor annotate: one key per point)"
        )
        return
    stdout.print(f"  in labor annotate: {result.regions.describe()}", soft_wrap=True)
    stdout.print(
        f"  one key per region: {result.regions.regions_per_image:.1f} keypresses per image; the faithful SPL "
        f"(--min-region 1) {result.faithful.regions_per_image:.1f}, point by point {result.pixels / result.images:.1f}",
        soft_wrap=True,
    )


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
    error_selected: float | None
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
class Answers:
    """The answer records of a file, in file order."""

    format: str
    line_of: Callable[[int], int]  # record number -> its line in the file (for messages)
    image_ids: list[str] = field(default_factory=list)
    x: list[int] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    label: list[int] = field(default_factory=list)  # class index, 255 = "ignore", -1 = blank (no answer)

    def __len__(self) -> int:
        return len(self.label)


def run_import(options: ImportOptions) -> ImportResult:
    """The annotators' answers (CSV image_id,x,y,class or a JSON list) as a labels artifact."""
    started = time.perf_counter()
    answers_path, selection, output = Path(options.answers), Path(options.selection), Path(options.output)
    artifacts.check_output_path(output, options.force, inputs=(answers_path, selection))
    chosen = read_checked_pixel_set(selection, "selection")
    answers = read_answers(answers_path, list(chosen.class_names), chosen.class_set)
    label, answered = answered_labels(answers, chosen, answers_path, selection)

    imported = answered_selection(chosen, label, chosen.predicted)
    result = ImportResult(
        output=output,
        images=len(imported.image_ids),
        selected=len(imported.y),
        answers=len(answers),
        answered=answered,
        unanswered=len(imported.y) - answered,
        ignored=int((label == IGNORE_INDEX).sum()) - (len(imported.y) - answered),
        share=imported.labeled_share(),
        per_class=per_class_counts(label, list(chosen.class_names)),
        error_selected=error_rate(imported.predicted, label),
    )
    config = stored_config(options, format=answers.format, annotator="import")
    with artifacts.create_artifact(output, "labels", config, [chosen.parent], options.force) as f:
        artifacts.write_pixel_set(f, imported)
        f.attrs["summary"] = json.dumps(result.summary())
    result.seconds = time.perf_counter() - started
    return result


def answered_labels(answers: Answers, chosen: PixelSet, path: Path, selection: Path) -> tuple[np.ndarray, int]:
    """The class of every selected pixel (255 where unanswered or ignored), and how many pixels
    were answered; two different answers for one pixel are an error."""
    label = np.full(len(chosen.y), IGNORE_INDEX, dtype=np.uint8)
    rows = selection_rows(answers, chosen, path, selection)
    given = np.asarray(answers.label, dtype=np.int64)
    records = np.flatnonzero(given >= 0)
    rows, given = rows[records], given[records]
    order = np.argsort(rows, kind="stable")
    same = rows[order][1:] == rows[order][:-1]
    conflict = same & (given[order][1:] != given[order][:-1])
    if conflict.any():
        k = int(np.argmax(conflict))
        first, second = answers.line_of(int(records[order][k])), answers.line_of(int(records[order][k + 1]))
        row = int(rows[order][k])
        image = int(np.searchsorted(chosen.offsets, row, side="right") - 1)
        raise LaborError(
            f"{path}: lines {first} and {second} give pixel (x={int(chosen.x[row])}, y={int(chosen.y[row])}) "
            f"of image {chosen.image_ids[image]!r} two different classes"
        )
    label[rows] = given.astype(np.uint8)
    return label, len(np.unique(rows))


def selection_rows(answers: Answers, chosen: PixelSet, path: Path, selection: Path) -> np.ndarray:
    """The selection row of every answer; an answer that is not a selected pixel is an error."""
    position = {image_id: i for i, image_id in enumerate(chosen.image_ids)}
    image = np.empty(len(answers), dtype=np.int64)
    for k, image_id in enumerate(answers.image_ids):
        i = position.get(image_id)
        if i is None:
            raise LaborError(
                f"{path}: line {answers.line_of(k)}: image {image_id!r} is not in the selection {selection}"
            )
        image[k] = i
    y, x = np.asarray(answers.y, np.int64), np.asarray(answers.x, np.int64)
    heights = chosen.sizes[image, 0].astype(np.int64) if len(image) else np.zeros(0, np.int64)
    widths = chosen.sizes[image, 1].astype(np.int64) if len(image) else np.zeros(0, np.int64)
    inside = (y >= 0) & (y < heights) & (x >= 0) & (x < widths)
    selected_keys = pixel_keys(chosen.sizes, image_of_rows(chosen), chosen.y, chosen.x)
    order = np.argsort(selected_keys)
    sorted_keys = selected_keys[order]
    keys = pixel_keys(chosen.sizes, image, np.where(inside, y, 0), np.where(inside, x, 0))
    where = np.clip(np.searchsorted(sorted_keys, keys), 0, max(len(sorted_keys) - 1, 0))
    found = inside & (sorted_keys[where] == keys) if len(sorted_keys) else np.zeros(len(keys), bool)
    if not found.all():
        k = int(np.argmax(~found))
        raise LaborError(
            f"{path}: line {answers.line_of(k)}: pixel (x={x[k]}, y={y[k]}) of image "
            f"{answers.image_ids[k]!r} is not a pixel of the selection {selection}"
        )
    return order[where].astype(np.int64)


# --- reading answers files --------------------------------------------------------------------


def read_answers(path: Path, names: list[str], class_set: str) -> Answers:
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
    classes = ClassReader(names, class_set)
    return parse_json(path, text, classes) if is_json else parse_csv(path, text, classes)


class BadAnswer(ValueError):
    """An answer record that cannot be read; the parser adds the file and line."""


class ClassReader:
    """A class name (case-insensitive) or index -> class index; 'ignore' -> 255; blank -> -1."""

    def __init__(self, names: list[str], class_set: str):
        self.names, self.class_set = names, class_set
        self.by_name = {name.lower(): i for i, name in enumerate(names)}

    def __call__(self, value) -> int:
        if value is None or (isinstance(value, str) and not value.strip()):
            return -1
        if isinstance(value, str) and value.strip().lower() in IGNORE_WORDS:
            return IGNORE_INDEX
        if isinstance(value, str) and value.strip().lower() in self.by_name:
            return self.by_name[value.strip().lower()]
        index = _as_integer(value)
        if index is None:
            raise BadAnswer(f"unknown class {value!r} (class set {self.class_set}: {', '.join(self.names)}; or ignore)")
        if 0 <= index < len(self.names) or index == IGNORE_INDEX:
            return index
        raise BadAnswer(
            f"class index {value!r} is not in the class set {self.class_set} "
            f"(0..{len(self.names) - 1}, or 255 for ignore)"
        )


def _as_integer(value) -> int | None:
    """An integer from a JSON number or a CSV cell ('42', ' -3 '); None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _add(answers: Answers, image_id, x, y, value, classes: ClassReader) -> None:
    """One answer record, checked (BadAnswer)."""
    if not isinstance(image_id, str) or not image_id.strip():
        raise BadAnswer("missing image_id")
    coordinates = [_as_integer(x), _as_integer(y)]
    for name, given, read in (("x", x, coordinates[0]), ("y", y, coordinates[1])):
        if read is None:
            raise BadAnswer(f"{name} {given!r} is not an integer pixel coordinate")
        if not -(2**31) <= read < 2**31:  # no image is this large; numpy's int64 could not even hold some
            raise BadAnswer(f"{name} {given!r} is out of range for a pixel coordinate")
    label = classes(value)
    answers.image_ids.append(image_id.strip())
    answers.x.append(coordinates[0])
    answers.y.append(coordinates[1])
    answers.label.append(label)


def parse_csv(path: Path, text: str, classes: ClassReader) -> Answers:
    lines: list[int] = []
    answers = Answers("csv", lines.__getitem__)
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
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(fields):
                raise LaborError(
                    f"{path}: malformed CSV: line {reader.line_num} has {len(row)} fields, the header {len(fields)}"
                )
            try:
                _add(answers, *(row[column[name]] for name in REQUIRED_FIELDS), classes)
            except BadAnswer as exc:
                raise LaborError(f"{path}: line {reader.line_num}: {exc}") from None
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise LaborError(f"{path}: malformed CSV: line {reader.line_num}: {exc}") from None
    return answers


def parse_json(path: Path, text: str, classes: ClassReader) -> Answers:
    """A JSON list of {image_id, x, y, class} objects; messages name each object's line."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LaborError(f"{path}: malformed JSON: line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise LaborError(f"{path}: malformed JSON: nested too deeply") from None
    if not isinstance(items, list):
        raise LaborError(f"{path}: malformed JSON: {JSON_EXPECTED}")
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise LaborError(f"{path}: item {k + 1}: {JSON_EXPECTED}, found {json.dumps(item)[:80]}")
    lines = functools.cache(lambda: object_lines(text))  # counted only for a message
    answers = Answers("json", lambda k: lines()[k])
    for k, item in enumerate(items):
        try:
            if any(name not in item for name in REQUIRED_FIELDS):
                raise BadAnswer(f"{JSON_EXPECTED}, found {json.dumps(item)[:80]}")
            _add(answers, *(item[name] for name in REQUIRED_FIELDS), classes)
        except BadAnswer as exc:
            try:
                where = f"line {answers.line_of(k)}"
            except RecursionError:  # the pure-Python parser that finds the lines nests less deeply than json's
                where = f"item {k + 1}"
            raise LaborError(f"{path}: {where}: {exc}") from None
    return answers


def object_lines(text: str) -> list[int]:
    """The line on which each object of a JSON list of objects starts (by json's own parser,
    which is told to note where every object starts and ends)."""
    spans: list[tuple[int, int]] = []
    decoder = json.JSONDecoder()
    parse_object = decoder.parse_object

    def noting(string_and_start, *args):
        value, end = parse_object(string_and_start, *args)
        spans.append((string_and_start[1] - 1, end))
        return value, end

    decoder.parse_object = noting
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # the C scanner does not call parse_object
    decoder.decode(text)
    outermost, reach = [], -1
    for start, end in sorted(spans):
        if start >= reach:  # not inside an earlier object
            outermost.append(start)
            reach = end
    return [text.count("\n", 0, start) + 1 for start in outermost]


def print_import(result: ImportResult) -> None:
    stdout.print(
        f"import: {result.answered} of {result.selected} selected pixels answered in {result.images} images "
        f"({result.answers} answers read; {result.share:.3f}% of all pixels) ({result.seconds:.1f} s) "
        f"-> {result.output}"
    )
    if result.unanswered:
        stdout.print(f"  {result.unanswered} selected pixel(s) have no answer: stored as ignored (255)")
    if result.ignored:
        stdout.print(f"  {result.ignored} answer(s) say ignore (255)")
    if result.error_selected is not None:
        stdout.print(f"  A is wrong on {percent(result.error_selected)} of the answered pixels")
    print_class_table(result.per_class, None)
