"""The answers a person gives, kept so that nothing is lost.

An *item* is what the person answers in one go: one selected pixel (a point), or, for an SPL
selection, one connected region of an image's selected pixels. Items are numbered image by
image in the selection's order.

Every answer is appended to a journal beside the output (``runs/labels.h5`` ->
``runs/labels.annotate.jsonl``), flushed and fsynced before the page hears back, so a closed tab,
a Ctrl-C or a crashed server loses at most the answer being typed. The journal is JSON lines:

    {"labor_annotate": 1, "session": UUID, "selection": PATH, "selection_uuid": UUID, "unit": "point",
     "class_set": "cityscapes19", "created": ISO-TIME}                      the header, first line
    {"image_id": ID, "x": X, "y": Y, "class": "car", "seconds": 2.4, "time": ISO-TIME}    an answer
    {"undo": true, "time": ISO-TIME}                             takes back the last answer given

``class`` is a class name, ``unsure`` (the person cannot tell: stored as 255, like an ignored
ground truth) or ``mixed`` (a region of several classes: left out of the labels); (x, y) is the
point, or any pixel of the region. The last answer to an item wins; replaying the journal
rebuilds the answers, which is how a second run of the same command continues.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labor_cli.annotate.regions import connected_regions
from labor_cli.artifacts import PixelSet
from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.errors import LaborError

JOURNAL_VERSION = 1
UNANSWERED = -1
MIXED = -2
UNSURE = IGNORE_INDEX  # "I cannot tell": stored as 255, never trained on
UNSURE_WORDS = ("unsure", "ignore", "skip")
MIXED_WORD = "mixed"
MAX_SECONDS = 24 * 3600.0  # a longer "time taken" is a broken client clock, not a person


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --- items ------------------------------------------------------------------------------------


@dataclass
class Items:
    """The items of a selection: item k owns the selection rows ``rows[offsets[k]:offsets[k+1]]``."""

    unit: str  # "point" or "region"
    image: np.ndarray  # (K,) image index of each item
    offsets: np.ndarray  # (K + 1,)
    rows: np.ndarray  # (P,) selection rows, grouped by item
    item_of_row: np.ndarray  # (P,)
    first_item: np.ndarray  # (N + 1,) image i owns items first_item[i]:first_item[i+1]

    def __len__(self) -> int:
        return len(self.image)

    def rows_of(self, k: int) -> np.ndarray:
        return self.rows[self.offsets[k] : self.offsets[k + 1]]


def make_items(chosen: PixelSet, unit: str, advance: Callable[[], None] | None = None) -> Items:
    """One item per selected pixel (``point``) or per 8-connected region of each image (``region``;
    ``advance()`` is called after each image)."""
    item_of_row = np.arange(len(chosen.y), dtype=np.int64)
    if unit == "region":
        first = 0
        for i in range(len(chosen.image_ids)):
            rows = chosen.pixels_of(i)
            region = connected_regions(chosen.y[rows], chosen.x[rows], int(chosen.sizes[i][1]))
            item_of_row[rows] = first + region
            first += int(region.max()) + 1 if len(region) else 0
            if advance is not None:
                advance()
    rows = np.argsort(item_of_row, kind="stable")
    count = int(item_of_row.max()) + 1 if len(item_of_row) else 0
    sizes = np.bincount(item_of_row, minlength=count)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    image_of_row = np.repeat(np.arange(len(chosen.image_ids)), chosen.counts())
    image = image_of_row[rows[offsets[:-1]]] if count else np.zeros(0, np.int64)
    first_item = np.searchsorted(image, np.arange(len(chosen.image_ids) + 1))
    return Items(unit, image, offsets, rows, item_of_row, first_item.astype(np.int64))


class PixelFinder:
    """(image id, x, y) -> selection row, or None for a pixel that is not selected."""

    def __init__(self, chosen: PixelSet):
        self.position = {image_id: i for i, image_id in enumerate(chosen.image_ids)}
        areas = chosen.sizes[:, 0].astype(np.int64) * chosen.sizes[:, 1].astype(np.int64)
        self.base = np.concatenate([[0], np.cumsum(areas)[:-1]]).astype(np.int64)
        self.sizes = chosen.sizes.astype(np.int64)
        image = np.repeat(np.arange(len(chosen.image_ids)), chosen.counts())
        keys = self.base[image] + chosen.y.astype(np.int64) * self.sizes[image, 1] + chosen.x.astype(np.int64)
        self.order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[self.order]

    def rows_of(self, pixels: PixelSet) -> np.ndarray:
        """(P,) the row in this set of every pixel of ``pixels`` (another set of the same images), -1 if absent."""
        if not len(self.sorted_keys):
            return np.full(len(pixels.y), -1, np.int64)
        image = np.repeat(np.arange(len(pixels.image_ids)), pixels.counts())
        mine = np.array([self.position.get(image_id, -1) for image_id in pixels.image_ids] + [-1], np.int64)[image]
        known = mine >= 0
        mine = np.where(known, mine, 0)
        keys = self.base[mine] + pixels.y.astype(np.int64) * self.sizes[mine, 1] + pixels.x.astype(np.int64)
        where = np.clip(np.searchsorted(self.sorted_keys, keys), 0, len(self.sorted_keys) - 1)
        return np.where(known & (self.sorted_keys[where] == keys), self.order[where], -1).astype(np.int64)

    def row(self, image_id: str, x: int, y: int) -> int | None:
        i = self.position.get(image_id)
        if i is None:
            return None
        height, width = self.sizes[i]
        if not (0 <= y < height and 0 <= x < width) or not len(self.sorted_keys):
            return None
        key = self.base[i] + y * width + x
        where = int(np.searchsorted(self.sorted_keys, key))
        if where < len(self.sorted_keys) and self.sorted_keys[where] == key:
            return int(self.order[where])
        return None


def segment_sums(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per segment offsets[i]:offsets[i+1], how many flags are set (empty segments included)."""
    running = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return running[offsets[1:]] - running[offsets[:-1]]


# --- the journal ------------------------------------------------------------------------------


class Journal:
    """The append-only answer log (module docstring); the header is written with the first answer."""

    def __init__(self, path: Path, header: dict):
        self.path = Path(path)
        self.header = dict(header)
        self.exists = self.path.exists()

    def read(self) -> list[tuple[int, dict]]:
        """The (line number, record) of every answer or undo; checks the header; cuts off an unfinished
        last line (the answer being written when the process died)."""
        if not self.exists:
            return []
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise LaborError(f"{self.path}: cannot read ({exc.strerror or exc})") from exc
        lines = data.split(b"\n")
        complete = len(data) if data.endswith(b"\n") else len(data) - len(lines[-1])
        if complete < len(data):
            with open(self.path, "r+b") as f:  # so that the next answer starts on a line of its own
                f.truncate(complete)
        records = []
        for number, line in enumerate(data[:complete].split(b"\n")[:-1], start=1):
            try:
                record = json.loads(line)
            except ValueError:
                raise LaborError(f"{self.path}: line {number}: not a JSON record (damaged journal)") from None
            if not isinstance(record, dict):
                raise LaborError(f"{self.path}: line {number}: not a JSON object (damaged journal)")
            if number == 1:
                self._check_header(record)
            else:
                records.append((number, record))
        if not records and complete == 0:
            self.exists = False  # nothing but an unfinished header: start afresh
        return records

    def _check_header(self, found: dict) -> None:
        if found.get("labor_annotate") != JOURNAL_VERSION:
            raise LaborError(f"{self.path}: not a labor annotate journal (version {found.get('labor_annotate')!r})")
        if found.get("selection_uuid") != self.header["selection_uuid"]:
            raise LaborError(
                f"{self.path}: holds answers to another selection ({found.get('selection')}, uuid "
                f"{found.get('selection_uuid')}), not to {self.header['selection']}; move it away to start afresh"
            )
        self.header["session"] = found.get("session")

    def append(self, record: dict) -> None:
        """Write one record and make it durable (flush + fsync) before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [] if self.exists else [self.header]
        lines.append(record)
        text = "".join(json.dumps(item, sort_keys=False) + "\n" for item in lines)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.exists = True


def new_journal_header(selection: Path, selection_uuid: str, unit: str, class_set: str) -> dict:
    return {
        "labor_annotate": JOURNAL_VERSION,
        "session": str(_uuid.uuid4()),
        "selection": str(selection),
        "selection_uuid": selection_uuid,
        "unit": unit,
        "class_set": class_set,
        "created": now(),
    }


# --- the answers ------------------------------------------------------------------------------


class BadAnswer(ValueError):
    """A request the store refuses (the server answers 400 with this message)."""


class AnswerStore:
    """The current answer of every item, changed only through the journal. Thread-safe."""

    def __init__(self, chosen: PixelSet, items: Items, journal: Journal):
        self.chosen, self.items, self.journal = chosen, items, journal
        self.names = list(chosen.class_names)
        self.by_name = {name.lower(): i for i, name in enumerate(self.names)}
        self.finder = PixelFinder(chosen)
        self.values = np.full(len(items), UNANSWERED, dtype=np.int16)
        self.seconds = np.zeros(len(items), dtype=np.float64)  # every answer's seconds, summed per item
        self.timed = np.zeros(len(items), dtype=bool)
        self.history: list[tuple[int, int]] = []  # (item, its previous value) per answer, for undo
        self.records = 0  # journal records applied (answers and undos)
        self.lock = threading.RLock()
        for number, record in journal.read():
            try:
                self._apply(record)
            except BadAnswer as exc:
                raise LaborError(f"{journal.path}: line {number}: {exc} (damaged journal?)") from None

    # -- changing answers (each one journaled first) --

    def answer(self, request: dict) -> int:
        """Record an answer ({image_id, x, y, class, seconds}); returns its item."""
        record = self._answer_record(request)
        with self.lock:
            self.journal.append(record)
            return self._apply(record)

    def undo(self) -> int | None:
        """Take back the last answer; returns its item (None when there is nothing to undo)."""
        with self.lock:
            if not self.history:
                return None
            record = {"undo": True, "time": now()}
            self.journal.append(record)
            return self._apply(record)

    def _answer_record(self, request: dict) -> dict:
        if not isinstance(request, dict):
            raise BadAnswer("expected a JSON object {image_id, x, y, class, seconds}")
        missing = [key for key in ("image_id", "x", "y", "class") if key not in request]
        if missing:
            raise BadAnswer(f"missing {', '.join(missing)} (expected {{image_id, x, y, class, seconds}})")
        seconds = request.get("seconds")
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or not 0 <= seconds <= MAX_SECONDS
        ):
            raise BadAnswer(f"seconds {seconds!r}: expected a number from 0 to {MAX_SECONDS:.0f}")
        record = {
            "image_id": request["image_id"],
            "x": request["x"],
            "y": request["y"],
            "class": self._class_word(request["class"]),
            "seconds": seconds,
            "time": now(),
        }
        self._item_of(record)  # refuse a pixel that is not selected before anything is written
        return record

    def _class_word(self, value) -> str:
        """A class name (any case) or index, 'unsure' or 'mixed' -> the word the journal keeps."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.names):
            return self.names[value]
        if isinstance(value, str):
            word = value.strip().lower()
            if word in self.by_name:
                return self.names[self.by_name[word]]
            if word in UNSURE_WORDS:
                return "unsure"
            if word == MIXED_WORD:
                if self.items.unit != "region":
                    raise BadAnswer("class 'mixed' is for regions (SPL selections); this selection asks about points")
                return MIXED_WORD
        raise BadAnswer(
            f"unknown class {value!r} (class set {self.chosen.class_set}: {', '.join(self.names)}; "
            f"or unsure{', mixed' if self.items.unit == 'region' else ''})"
        )

    def _item_of(self, record: dict) -> int:
        image_id, x, y = record.get("image_id"), record.get("x"), record.get("y")
        if not isinstance(image_id, str) or not all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y)):
            raise BadAnswer("image_id must be a string, x and y integers")
        row = self.finder.row(image_id, x, y)
        if row is None:
            raise BadAnswer(f"pixel (x={x}, y={y}) of image {image_id!r} is not in the selection")
        return int(self.items.item_of_row[row])

    def _apply(self, record: dict) -> int:
        """Apply one journal record to the answers; returns the item it changed."""
        if record.get("undo"):
            if not self.history:
                raise BadAnswer("an undo with no answer before it")
            item, previous = self.history.pop()
            self.values[item] = previous
        else:
            item = self._item_of(record)
            word = self._class_word(record.get("class"))
            value = UNSURE if word == "unsure" else MIXED if word == MIXED_WORD else self.by_name[word.lower()]
            self.history.append((item, int(self.values[item])))
            self.values[item] = value
            if record.get("seconds") is not None:
                self.seconds[item] += float(record["seconds"])
                self.timed[item] = True
        self.records += 1
        return item

    # -- reading --

    def progress(self) -> dict:
        with self.lock:
            answered = self.values != UNANSWERED
            per_image = segment_sums(answered, self.items.first_item)
            counts = np.diff(self.items.first_item)
            done = int((per_image == counts).sum())  # an image without items counts as done
            return {
                "items": len(self.values),
                "answered": int(answered.sum()),
                "left": int((~answered).sum()),
                "images": len(counts),
                "images_done": done,
                "records": self.records,
                "can_undo": bool(self.history),
            }

    def value_words(self, first: int = 0, stop: int | None = None) -> list:
        """The answers of items first:stop for the page: class index, 'unsure', 'mixed' or None."""
        with self.lock:
            values = self.values[first:stop].tolist()
        words = {UNANSWERED: None, UNSURE: "unsure", MIXED: MIXED_WORD}
        return [words.get(v, v) for v in values]

    def labels(self) -> tuple[PixelSet, np.ndarray]:
        """The answered pixels (class or unsure = 255; mixed and unanswered left out), in selection
        order, every selection image kept; and each pixel's share of its answers' seconds (NaN: untimed)."""
        with self.lock:
            values, seconds, timed = self.values.copy(), self.seconds.copy(), self.timed.copy()
        item = self.items.item_of_row
        keep = values[item] >= 0  # a class, or UNSURE (255)
        sizes = np.diff(self.items.offsets)
        per_pixel = np.where(timed, seconds / np.maximum(sizes, 1), np.nan)[item][keep].astype(np.float32)
        counts = segment_sums(keep, self.chosen.offsets)
        pixels = PixelSet(
            image_ids=list(self.chosen.image_ids),
            sizes=self.chosen.sizes,
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            y=self.chosen.y[keep],
            x=self.chosen.x[keep],
            label=values[item][keep].astype(np.uint8),
            class_set=self.chosen.class_set,
            class_names=list(self.chosen.class_names),
            predicted=None if self.chosen.predicted is None else self.chosen.predicted[keep],
        )
        return pixels, per_pixel
