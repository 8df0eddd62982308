"""The answers a person gives, kept so that nothing is lost.

An *item* is what the person answers in one go: one selected pixel (a point), or, for an SPL
selection, one region of an image's selected pixels (grouped as labor_cli/regions.py says). Items
are numbered image by image in the selection's order.

Every answer is appended to a journal beside the output (``runs/labels.h5`` ->
``runs/labels.annotate.jsonl``), flushed and fsynced before the page hears back, so a closed tab,
a Ctrl-C or a crashed server loses at most the answer being typed. The journal is JSON lines:

    {"labor_annotate": 2, "session": UUID, "selection": PATH, "selection_uuid": UUID, "unit": "region",
     "class_set": "cityscapes19", "created": ISO-TIME,
     "regions": {"split_by_class": true, "min_region": 8, "reach": 3}}     the header, first line
    {"image_id": ID, "x": X, "y": Y, "class": "car", "seconds": 2.4, "time": ISO-TIME,
     "suggested": "car", "accepted": true, "keys": 1, "annotator": "ann",
     "split": {"road": [X0, Y0, X1, Y1, ...]}}                                      an answer
    {"undo": true, "time": ISO-TIME}                             takes back the last answer given
    {"redo": true, "time": ISO-TIME}                    gives back the last answer taken back

``class`` is a class name, ``unsure`` (the person cannot tell: stored as 255, like an ignored
ground truth) or ``mixed`` (a region of several classes: left out of the labels); (x, y) is the
point, or any pixel of the region. ``suggested`` is A's class for the item (null: unknown) and
``accepted`` says whether the person took it with the accept key; ``keys`` counts the key presses
and clicks the page saw for the item; ``annotator`` is ``--annotator``'s name (absent without
it); ``split`` (regions only) gives some of the region's pixels another class than ``class``.
``seconds`` is the time the item was on screen, as the page measured it; the store counts at most
``idle_cap`` seconds of it. The last answer to an item wins; replaying the journal rebuilds the
answers, which is how a second run of the same command continues.

Version 1 journals (no ``regions``: the regions were the mask's plain connected regions, and no
``redo``, ``suggested``, ``accepted``, ``keys``, ``annotator`` or ``split``) are read and continued
with those regions.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labor_cli.artifacts import PixelSet
from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.errors import LaborError
from labor_cli.options import DEFAULT_IDLE_CAP, MAX_SECONDS
from labor_cli.regions import CONNECTED, Grouping, RegionCounts, group_regions

JOURNAL_VERSION = 2
READABLE_JOURNALS = (1, 2)
UNANSWERED = -1
MIXED = -2
UNSURE = IGNORE_INDEX  # "I cannot tell": stored as 255, never trained on
UNSURE_WORDS = ("unsure", "ignore", "skip")
MIXED_WORD = "mixed"
MAX_KEYS = 100_000  # key presses for one item beyond this are a broken client


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --- items ------------------------------------------------------------------------------------


@dataclass
class Items:
    """The items of a selection: item k owns the selection rows ``rows[offsets[k]:offsets[k+1]]``.
    A pixel of an SPL selection that grouping dropped belongs to no item (``item_of_row`` -1)."""

    unit: str  # "point" or "region"
    image: np.ndarray  # (K,) image index of each item
    offsets: np.ndarray  # (K + 1,)
    rows: np.ndarray  # (P',) selection rows of the asked pixels, grouped by item
    item_of_row: np.ndarray  # (P,) -1 for a pixel that is not asked
    first_item: np.ndarray  # (N + 1,) image i owns items first_item[i]:first_item[i+1]
    suggested: np.ndarray  # (K,) A's class for the item (a region: its pixels' commonest), -1 unknown
    grouping: Grouping | None = None  # regions only
    counts: RegionCounts | None = None  # regions only: what the grouping made of the selection

    def __len__(self) -> int:
        return len(self.image)

    def rows_of(self, k: int) -> np.ndarray:
        return self.rows[self.offsets[k] : self.offsets[k + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def make_items(
    chosen: PixelSet, unit: str, grouping: Grouping | None = None, advance: Callable[[], None] | None = None
) -> Items:
    """One item per selected pixel (``point``), or per region of each image (``region``, grouped as
    ``grouping`` says: labor_cli/regions.py; ``advance()`` is called after each image)."""
    item_of_row = np.arange(len(chosen.y), dtype=np.int64)
    counts = None
    if unit == "region":
        grouping = grouping or Grouping()
        counts = RegionCounts(grouping)
        item_of_row[:] = -1
        first = 0
        for i in range(len(chosen.image_ids)):
            rows = chosen.pixels_of(i)
            classes = None if chosen.predicted is None else chosen.predicted[rows]
            found = group_regions(chosen.y[rows], chosen.x[rows], classes, int(chosen.sizes[i][1]), grouping)
            counts.add(found)
            item_of_row[rows] = np.where(found.region >= 0, first + found.region, -1)
            first += found.count
            if advance is not None:
                advance()
    asked = np.flatnonzero(item_of_row >= 0)
    rows = asked[np.argsort(item_of_row[asked], kind="stable")]
    count = int(item_of_row.max()) + 1 if len(asked) else 0
    offsets = np.concatenate([[0], np.cumsum(np.bincount(item_of_row[asked], minlength=count))]).astype(np.int64)
    image_of_row = np.repeat(np.arange(len(chosen.image_ids)), chosen.counts())
    image = image_of_row[rows[offsets[:-1]]] if count else np.zeros(0, np.int64)
    first_item = np.searchsorted(image, np.arange(len(chosen.image_ids) + 1)).astype(np.int64)
    suggested = _commonest(chosen.predicted, rows, offsets, len(chosen.class_names))
    return Items(unit, image, offsets, rows, item_of_row, first_item, suggested, grouping if counts else None, counts)


def _commonest(predicted: np.ndarray | None, rows: np.ndarray, offsets: np.ndarray, classes: int) -> np.ndarray:
    """(K,) each item's commonest predicted class (ties: the lower class), -1 where A's class is unknown."""
    count = len(offsets) - 1
    if predicted is None or not count:
        return np.full(count, -1, np.int16)
    value = np.asarray(predicted, np.int64)[rows]
    value = np.where(value < classes, value, classes)  # 255 (unknown) counts as one more "class"
    item = np.repeat(np.arange(count), np.diff(offsets))
    votes = np.bincount(item * (classes + 1) + value, minlength=count * (classes + 1)).reshape(count, classes + 1)
    best = votes.argmax(1)
    return np.where(best < classes, best, -1).astype(np.int16)


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
        self.found: dict | None = None  # the header of the journal on disk, once read

    def read(self) -> list[tuple[int, dict]]:
        """The (line number, record) of every answer, undo and redo; checks the header; cuts off an
        unfinished last line (the answer being written when the process died)."""
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
            except (ValueError, RecursionError):
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
        version = found.get("labor_annotate")
        if version not in READABLE_JOURNALS:
            if isinstance(version, int) and not isinstance(version, bool) and version > JOURNAL_VERSION:
                raise LaborError(
                    f"{self.path}: journal version {version}, newer than this labor reads ({JOURNAL_VERSION}); "
                    "update labor to continue it"
                )
            raise LaborError(f"{self.path}: not a labor annotate journal (version {version!r})")
        if found.get("selection_uuid") != self.header["selection_uuid"]:
            raise LaborError(
                f"{self.path}: holds answers to another selection ({found.get('selection')}, uuid "
                f"{found.get('selection_uuid')}), not to {self.header['selection']}; move it away to start afresh"
            )
        self.header["session"] = found.get("session")
        self.found = found

    def grouping(self, wanted: Grouping) -> Grouping:
        """The regions of this journal's answers: its header's (version 1: the plain connected regions),
        or ``wanted`` for a new journal."""
        if self.found is None:
            return wanted
        if self.found.get("labor_annotate") == 1:
            return CONNECTED
        try:
            return Grouping.from_record(self.found["regions"])
        except (KeyError, TypeError, ValueError):
            raise LaborError(f"{self.path}: line 1: no valid 'regions' in the header (damaged journal)") from None

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


def new_journal_header(
    selection: Path, selection_uuid: str, unit: str, class_set: str, grouping: Grouping | None = None
) -> dict:
    header = {
        "labor_annotate": JOURNAL_VERSION,
        "session": str(_uuid.uuid4()),
        "selection": str(selection),
        "selection_uuid": selection_uuid,
        "unit": unit,
        "class_set": class_set,
        "created": now(),
    }
    if unit == "region":
        header["regions"] = (grouping or Grouping()).record()
    return header


# --- the answers ------------------------------------------------------------------------------


class BadAnswer(ValueError):
    """A request the store refuses (the server answers 400 with this message)."""


@dataclass(frozen=True)
class ItemAnswer:
    """An item's answer as undo and redo restore it."""

    value: int = UNANSWERED  # class index, UNSURE, MIXED or UNANSWERED
    accepted: bool = False  # given with the accept key (A's suggestion taken)
    annotator: int = -1  # index in AnswerStore.annotators
    split: tuple[np.ndarray, np.ndarray] | None = None  # (selection rows, their values) answered otherwise


@dataclass
class AnswerFigures:
    """What the answers so far cost, and how often A's suggestion was taken."""

    answered: int
    suggested: int  # answered items for which A's class is known
    accepted: int  # of them, answered with the accept key
    seconds_accepted: float  # the person's time on the accepted items
    seconds_own: float  # the person's time on the other answered items
    keys: int  # key presses and clicks the page counted
    idle_seconds: float  # time beyond the idle cap, not counted
    split: int  # regions answered with some pixels of another class
    split_pixels: int

    @property
    def own(self) -> int:
        return self.answered - self.accepted

    def summary(self) -> dict:
        def each(seconds: float, count: int) -> float | None:
            return round(seconds / count, 3) if count else None

        return {
            "suggested": self.suggested,
            "accepted": self.accepted,
            "acceptance_rate": round(self.accepted / self.suggested, 4) if self.suggested else None,
            "seconds_per_answer_accepted": each(self.seconds_accepted, self.accepted),
            "seconds_per_answer_own": each(self.seconds_own, self.own),
            "keypresses": self.keys,
            "idle_seconds_left_out": round(self.idle_seconds, 3),
            "split_regions": self.split,
            "split_pixels": self.split_pixels,
        }


@dataclass
class AnsweredPixels:
    """The answered pixels as a labels set, and what the artifact keeps beside each of them."""

    pixels: PixelSet
    seconds: np.ndarray  # float32: the person's time, shared over the item's pixels; NaN untimed
    accepted: np.ndarray  # uint8: 1 A's suggestion taken with the accept key, 0 the person's own class
    annotator: np.ndarray  # uint8: index in ``annotators``; 255 none given
    annotators: list[str] = field(default_factory=list)


class AnswerStore:
    """The current answer of every item, changed only through the journal. Thread-safe."""

    def __init__(
        self,
        chosen: PixelSet,
        items: Items,
        journal: Journal,
        records: list[tuple[int, dict]] = (),
        idle_cap: float = DEFAULT_IDLE_CAP,
        annotator: str | None = None,
    ):
        self.chosen, self.items, self.journal, self.idle_cap = chosen, items, journal, idle_cap
        self.annotator = annotator
        self.names = list(chosen.class_names)
        self.by_name = {name.lower(): i for i, name in enumerate(self.names)}
        self.finder = PixelFinder(chosen)
        self.values = np.full(len(items), UNANSWERED, dtype=np.int16)
        self.accepted = np.zeros(len(items), dtype=bool)
        self.annotator_of = np.full(len(items), -1, dtype=np.int16)
        self.splits: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.annotators: list[str] = []
        self.seconds = np.zeros(len(items), dtype=np.float64)  # every answer's seconds (capped), summed per item
        self.idle = np.zeros(len(items), dtype=np.float64)  # seconds beyond the cap, per item
        self.timed = np.zeros(len(items), dtype=bool)
        self.keys = np.zeros(len(items), dtype=np.int64)
        self.history: list[tuple[int, ItemAnswer, ItemAnswer]] = []  # (item, before, after) per answer
        self.undone: list[tuple[int, ItemAnswer, ItemAnswer]] = []  # what redo gives back, last first
        self.records = 0  # journal records applied (answers, undos and redos)
        self.lock = threading.RLock()
        for number, record in records:
            try:
                self._apply(record)
            except BadAnswer as exc:
                raise LaborError(f"{journal.path}: line {number}: {exc} (damaged journal?)") from None

    # -- changing answers (each one journaled first) --

    def answer(self, request) -> int:
        """Record an answer ({image_id, x, y, class, seconds, accepted, keys, split}); returns its item."""
        record = self._answer_record(request)
        with self.lock:
            self.journal.append(record)
            return self._apply(record)

    def undo(self) -> int | None:
        """Take back the last answer; returns its item (None when there is nothing to undo)."""
        return self._step("undo", self.history)

    def redo(self) -> int | None:
        """Give back the last answer taken back; returns its item (None when there is nothing to redo)."""
        return self._step("redo", self.undone)

    def _step(self, word: str, stack: list) -> int | None:
        with self.lock:
            if not stack:
                return None
            record = {word: True, "time": now()}
            self.journal.append(record)
            return self._apply(record)

    def _answer_record(self, request) -> dict:
        if not isinstance(request, dict):
            raise BadAnswer("expected a JSON object {image_id, x, y, class, seconds}")
        missing = [key for key in ("image_id", "x", "y", "class") if key not in request]
        if missing:
            raise BadAnswer(f"missing {', '.join(missing)} (expected {{image_id, x, y, class, seconds}})")
        record = {
            "image_id": request["image_id"],
            "x": request["x"],
            "y": request["y"],
            "class": self._class_word(request["class"]),
            "seconds": _number(request.get("seconds"), "seconds", MAX_SECONDS),
            "time": now(),
        }
        item = self._item_of(record)  # refuse a pixel that is not asked before anything is written
        suggested = int(self.items.suggested[item])
        record["suggested"] = self.names[suggested] if suggested >= 0 else None
        record["accepted"] = _flag(request.get("accepted", False), "accepted")
        if record["accepted"] and record["class"] != record["suggested"]:
            raise BadAnswer(f"accepted: true, but {record['class']!r} is not A's suggestion ({record['suggested']})")
        keys = _number(request.get("keys"), "keys", MAX_KEYS)
        record["keys"] = None if keys is None else int(keys)
        if keys is not None and keys != int(keys):
            raise BadAnswer(f"keys {keys!r}: expected a whole number")
        if self.annotator is not None:
            record["annotator"] = self.annotator
        if request.get("split"):
            if record["accepted"] or record["class"] == MIXED_WORD:
                raise BadAnswer("split: a region answered 'mixed' or accepted as suggested cannot be split")
            record["split"] = request["split"]
            self._split_rows(record, item)  # checked now; applied with the record
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
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise BadAnswer(
            f"unknown class {shown!r} (class set {self.chosen.class_set}: {', '.join(self.names)}; "
            f"or unsure{', mixed' if self.items.unit == 'region' else ''})"
        )

    def _value_of(self, word: str) -> int:
        return UNSURE if word == "unsure" else MIXED if word == MIXED_WORD else self.by_name[word.lower()]

    def _item_of(self, record: dict) -> int:
        image_id, x, y = record.get("image_id"), record.get("x"), record.get("y")
        if not isinstance(image_id, str) or not all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y)):
            raise BadAnswer("image_id must be a string, x and y integers")
        row = self.finder.row(image_id, x, y)
        shown = image_id if len(image_id) <= 80 else image_id[:80] + "..."
        if row is None:
            raise BadAnswer(f"pixel (x={x}, y={y}) of image {shown!r} is not in the selection")
        item = int(self.items.item_of_row[row])
        if item < 0:
            raise BadAnswer(f"pixel (x={x}, y={y}) of image {shown!r} is in no region (a fragment left out)")
        return item

    def _split_rows(self, record: dict, item: int) -> tuple[np.ndarray, np.ndarray]:
        """A record's ``split`` {class word: [x0, y0, x1, y1, ...]} as (selection rows, values), checked:
        every pixel in the answered region."""
        split = record["split"]
        if not isinstance(split, dict) or self.items.unit != "region":
            raise BadAnswer("split: expected {class: [x0, y0, x1, y1, ...]}, for a region")
        rows, values = [], []
        for word, flat in split.items():
            value = self._value_of(self._class_word(word))
            if value == MIXED or not isinstance(flat, list) or len(flat) % 2:
                raise BadAnswer(f"split: {word!r}: expected a class and a flat list [x0, y0, x1, y1, ...]")
            for x, y in zip(flat[0::2], flat[1::2]):
                found = self._item_of({"image_id": record["image_id"], "x": x, "y": y})
                if found != item:
                    raise BadAnswer(f"split: pixel (x={x}, y={y}) is not in the answered region")
                rows.append(self.finder.row(record["image_id"], x, y))
                values.append(value)
        return np.asarray(rows, np.int64), np.asarray(values, np.int16)

    def _apply(self, record: dict) -> int:
        """Apply one journal record to the answers; returns the item it changed."""
        if record.get("undo") or record.get("redo"):
            word = "undo" if record.get("undo") else "redo"
            source, target = (self.history, self.undone) if word == "undo" else (self.undone, self.history)
            if not source:
                raise BadAnswer(f"a {word} with nothing to {word}")
            item, before, after = source.pop()
            self._set(item, before if word == "undo" else after)
            target.append((item, before, after))
        else:
            item = self._item_of(record)
            after = ItemAnswer(
                value=self._value_of(self._class_word(record.get("class"))),
                accepted=bool(record.get("accepted", False)),
                annotator=self._annotator_index(record.get("annotator")),
                split=self._split_rows(record, item) if record.get("split") else None,
            )
            self.history.append((item, self._get(item), after))
            self.undone.clear()
            self._set(item, after)
            self._count_time(item, record)
        self.records += 1
        return item

    def _count_time(self, item: int, record: dict) -> None:
        seconds = record.get("seconds")
        if seconds is not None:
            self.seconds[item] += min(float(seconds), self.idle_cap)
            self.idle[item] += max(0.0, float(seconds) - self.idle_cap)
            self.timed[item] = True
        if record.get("keys") is not None:
            self.keys[item] += int(record["keys"])

    def _annotator_index(self, name) -> int:
        if not isinstance(name, str):
            return -1
        if name not in self.annotators:
            self.annotators.append(name)
        return self.annotators.index(name)

    def _get(self, item: int) -> ItemAnswer:
        return ItemAnswer(
            int(self.values[item]), bool(self.accepted[item]), int(self.annotator_of[item]), self.splits.get(item)
        )

    def _set(self, item: int, answer: ItemAnswer) -> None:
        self.values[item] = answer.value
        self.accepted[item] = answer.accepted
        self.annotator_of[item] = answer.annotator
        if answer.split is None:
            self.splits.pop(item, None)
        else:
            self.splits[item] = answer.split

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
                "can_redo": bool(self.undone),
            }

    def value_words(self, first: int = 0, stop: int | None = None) -> list:
        """The answers of items first:stop for the page: class index, 'unsure', 'mixed' or None."""
        with self.lock:
            values = self.values[first:stop].tolist()
        words = {UNANSWERED: None, UNSURE: "unsure", MIXED: MIXED_WORD}
        return [words.get(v, v) for v in values]

    def split_words(self, item: int) -> dict | None:
        """An item's split for the page: {class index or 'unsure': [x0, y0, ...]}, or None."""
        with self.lock:
            split = self.splits.get(item)
        if split is None:
            return None
        rows, values = split
        words: dict = {}
        for row, value in zip(rows.tolist(), values.tolist()):
            key = "unsure" if value == UNSURE else str(value)
            words.setdefault(key, []).extend([int(self.chosen.x[row]), int(self.chosen.y[row])])
        return words

    def figures(self) -> AnswerFigures:
        with self.lock:
            answered = self.values != UNANSWERED
            accepted = answered & self.accepted
            split_pixels = sum(len(rows) for rows, _ in self.splits.values())
            return AnswerFigures(
                answered=int(answered.sum()),
                suggested=int((answered & (self.items.suggested >= 0)).sum()),
                accepted=int(accepted.sum()),
                seconds_accepted=float(self.seconds[accepted].sum()),
                seconds_own=float(self.seconds[answered & ~accepted].sum()),
                keys=int(self.keys.sum()),
                idle_seconds=float(self.idle.sum()),
                split=len(self.splits),
                split_pixels=split_pixels,
            )

    def labels(self) -> AnsweredPixels:
        """The answered pixels (class or unsure = 255; mixed, unanswered and unasked left out), in
        selection order, every selection image kept; and what the artifact keeps beside each pixel."""
        with self.lock:
            values, seconds, timed = self.values.copy(), self.seconds.copy(), self.timed.copy()
            accepted, annotator = self.accepted.copy(), self.annotator_of.copy()
            splits = list(self.splits.values())
            annotators = list(self.annotators)
        item = self.items.item_of_row
        asked = item >= 0
        item = np.where(asked, item, 0)
        pixel_value = np.where(asked, values[item] if len(values) else UNANSWERED, UNANSWERED)
        for rows, split_values in splits:
            pixel_value[rows] = split_values
        keep = pixel_value >= 0  # a class, or UNSURE (255)
        per_item = np.where(timed, seconds / np.maximum(self.items.sizes(), 1), np.nan)
        counts = segment_sums(keep, self.chosen.offsets)
        pixels = PixelSet(
            image_ids=list(self.chosen.image_ids),
            sizes=self.chosen.sizes,
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            y=self.chosen.y[keep],
            x=self.chosen.x[keep],
            label=pixel_value[keep].astype(np.uint8),
            class_set=self.chosen.class_set,
            class_names=list(self.chosen.class_names),
            predicted=None if self.chosen.predicted is None else self.chosen.predicted[keep],
        )
        return AnsweredPixels(
            pixels=pixels,
            seconds=per_item[item][keep].astype(np.float32) if len(values) else np.zeros(0, np.float32),
            accepted=accepted[item][keep].astype(np.uint8) if len(values) else np.zeros(0, np.uint8),
            annotator=np.where(annotator < 0, 255, annotator)[item][keep].astype(np.uint8)
            if len(values)
            else np.zeros(0, np.uint8),
            annotators=annotators,
        )


def _number(value, name: str, largest: float) -> float | None:
    """An optional number from 0 to ``largest`` in a request (None when absent)."""
    if value is None:
        return None
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= float(value) <= largest
    except OverflowError:
        ok = False
    if not ok or not math.isfinite(float(value)):
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise BadAnswer(f"{name} {shown!r}: expected a number from 0 to {largest:.0f}")
    return value


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadAnswer(f"{name} {value!r}: expected true or false")
    return value
