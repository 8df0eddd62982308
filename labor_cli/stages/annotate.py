"""labor annotate: a person answers a selection in a browser; the answers become a labels artifact.

The command serves a page on a local web server (labor_cli/annotate/server.py). The person sees
one target image with the current point marked and a zoomed crop around it, A's class for it
suggested, and answers with a class button or its key (or takes the suggestion with one key); an
SPL selection is answered region by region (labor_cli/regions.py groups the mask's pixels into
regions of one predicted class; "mixed" leaves a region out, a brush splits it).

- Every answer goes to the journal ``OUTPUT-stem.annotate.jsonl`` at once (labor_cli/annotate/store.py);
  the same command again continues from it.
- The labels artifact is the kind `labor label` and `labor import` write (so `labor adapt` takes it),
  with ``annotator: person`` in its config and, per pixel, the person's time (``seconds``), whether
  the answer took A's suggestion (``accepted``) and who gave it (``annotator``). It is written,
  atomically, when the person finishes or saves on the page, and on Ctrl-C or SIGTERM.
- ``--merge`` accumulates with earlier labels as in `labor label` (the earlier answer wins), and
  says how often the two agree on the pixels both hold.

See the README (Labeling by hand) for the page and its keys, docs/annotate.md for the journal and
the API, docs/artifacts.md for the layout.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labor_cli import artifacts
from labor_cli.agreement import Agreement, agreement
from labor_cli.annotate.store import (
    MIXED,
    UNANSWERED,
    UNSURE,
    AnsweredPixels,
    AnswerFigures,
    AnswerStore,
    Journal,
    PixelFinder,
    make_items,
    new_journal_header,
)
from labor_cli.artifacts import PixelSet
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import class_colours
from labor_cli.errors import LaborError
from labor_cli.option_machinery import stored_config
from labor_cli.options import AnnotateOptions
from labor_cli.pixel_sets import (
    dataset_indices,
    error_rate,
    merge_pixel_sets,
    per_class_counts,
    read_checked_pixel_set,
    read_earlier_labels,
)
from labor_cli.regions import DEFAULT_REACH, Grouping, RegionCounts, unit_of_mode

# Keys of the classes, in class order: 1..9, 0, then the letter row below them.
CLASS_KEYS = "1234567890qwertyuiop"
NO_ANNOTATOR = 255  # the artifact's `annotator` value for a pixel whose answer names nobody


def journal_path_for(output: Path) -> Path:
    """runs/labels.h5 -> runs/labels.annotate.jsonl: the answers of a session in progress."""
    return output.with_name(output.stem + ".annotate.jsonl")


@dataclass
class AnnotateResult:
    output: Path
    journal: Path
    unit: str  # "point" or "region"
    written: bool  # False: nothing new to write (or no answer yet)
    how: str  # "finished" (on the page), "saved" (on the page) or "stopped" (Ctrl-C, SIGTERM)
    images: int  # images in the output (both rounds when merged)
    selection_images: int  # images of the selection
    items: int  # points or regions of the selection
    answered: int  # of them, answered (a class, unsure or mixed)
    unsure: int
    mixed: int  # regions answered mixed: left out
    mixed_pixels: int
    labeled_round: int  # pixels this session adds to the labels
    already_labeled: int  # answered pixels already in the earlier labels (the earlier answer is kept)
    labeled_total: int
    share: float  # labeled pixels in percent of all pixels of the output's images
    per_class: dict[str, int]  # this session's answered pixels, per class
    seconds_answering: float  # the person's time, summed over every answer given (each at most idle_cap)
    error_selected: float | None  # percent: A wrong on the answered pixels (where A's class is known)
    figures: AnswerFigures | None = None
    regions: RegionCounts | None = None  # region selections: what the grouping made of the selection
    idle_cap: float = 30.0
    agreement: Agreement | None = None  # --merge: the earlier labels against this session's answers
    merged_from: Path | None = None

    @property
    def unanswered(self) -> int:
        return self.items - self.answered

    @property
    def labels_per_minute(self) -> float | None:
        """Answers (points or regions) per minute of the person's time."""
        return 60.0 * self.answered / self.seconds_answering if self.seconds_answering > 0 else None

    def summary(self) -> dict:
        per_minute = self.labels_per_minute
        images = max(self.selection_images, 1)
        return {
            "unit": self.unit,
            "images": self.images,
            "items": self.items,
            "items_per_image": round(self.items / images, 3),
            "answered": self.answered,
            "unanswered": self.unanswered,
            "unsure": self.unsure,
            "mixed": self.mixed,
            "mixed_pixels": self.mixed_pixels,
            "labeled_this_round": self.labeled_round,
            "already_labeled": self.already_labeled,
            "labeled_total": self.labeled_total,
            "labeled_share_percent": round(self.share, 6),
            "seconds_answering": round(self.seconds_answering, 3),
            "idle_cap_seconds": self.idle_cap,
            "labels_per_minute": None if per_minute is None else round(per_minute, 3),
            **({} if self.figures is None else self.figures.summary()),
            "keypresses_per_image": None if self.figures is None else round(self.figures.keys / images, 3),
            "error_rate_selected_percent": None if self.error_selected is None else round(self.error_selected, 4),
            "per_class_this_round": self.per_class,
            "regions": None if self.regions is None else self.regions.summary(),
            "agreement_with_merged": None if self.agreement is None else self.agreement.summary(),
            "merged_from": None if self.merged_from is None else str(self.merged_from),
        }


class Annotation:
    """One labeling session: the selection, its images, the answers and where they are written.
    The server calls it from several threads; the store's lock orders answers and writes."""

    def __init__(
        self,
        options: AnnotateOptions,
        chosen: PixelSet,
        earlier: PixelSet | None,
        dataset,
        indices: list[int],
        store: AnswerStore,
        may_replace: bool,
        saved_records: int,
    ):
        self.options = options
        self.selection, self.output = Path(options.selection), Path(options.output)
        self.merge = None if options.merge is None else Path(options.merge)
        self.chosen, self.earlier, self.dataset, self.indices, self.store = chosen, earlier, dataset, indices, store
        self.may_replace = may_replace  # the output is this session's own (or --force was given)
        self.saved_records = saved_records  # journal records the output reflects (-1: none written)
        self.earlier_extras = None if earlier is None else read_extras(self.merge, len(earlier.y))

    @property
    def journal(self) -> Path:
        return self.store.journal.path

    def page_info(self) -> dict:
        """What the page needs once: classes (with colours and keys), images and their items."""
        colours, keys = class_colours(self.chosen.class_set).tolist(), CLASS_KEYS
        items = self.store.items
        first = items.first_item
        return {
            "selection": str(self.selection),
            "output": str(self.output),
            "journal": str(self.journal),
            "unit": items.unit,
            "class_set": self.chosen.class_set,
            "items": len(items),
            "suggestions": bool((items.suggested >= 0).any()),
            "idle_cap": self.store.idle_cap,
            "annotator": self.store.annotator,
            "regions": None
            if items.counts is None
            else {**items.counts.summary(), "grouping": items.grouping.describe()},
            "classes": [
                {"index": i, "name": name, "colour": colours[i], "key": keys[i] if i < len(keys) else None}
                for i, name in enumerate(self.chosen.class_names)
            ],
            "images": [
                {
                    "image_id": image_id,
                    "height": int(size[0]),
                    "width": int(size[1]),
                    "first_item": int(first[i]),
                    "items": int(first[i + 1] - first[i]),
                }
                for i, (image_id, size) in enumerate(zip(self.chosen.image_ids, self.chosen.sizes))
            ],
        }

    def page_state(self) -> dict:
        return {"answers": self.store.value_words(), "progress": self.store.progress()}

    def changed(self, item: int | None) -> dict:
        """The reply to an answer, undo or redo: the item, its answer (and split) now, the progress."""
        store = self.store
        if item is None:
            return {"item": None, "answer": None, "split": None, "progress": store.progress()}
        answer = store.value_words(item, item + 1)[0]
        return {"item": item, "answer": answer, "split": store.split_words(item), "progress": store.progress()}

    def image_items(self, i: int) -> dict:
        """Image i's items: an anchor pixel each (the point; for a region, one of its pixels, the
        one the page sends back), a region's pixels as flat [x0, y0, x1, y1, ...], A's suggested
        class (None: unknown), their answers and splits."""
        items, chosen = self.store.items, self.chosen
        first, stop = int(items.first_item[i]), int(items.first_item[i + 1])
        suggested = items.suggested[first:stop].tolist()
        info = {
            "index": i,
            "image_id": chosen.image_ids[i],
            "first_item": first,
            "anchors": [],
            "suggested": [value if value >= 0 else None for value in suggested],
            "answers": self.store.value_words(first, stop),
            "splits": [self.store.split_words(k) for k in range(first, stop)],
        }
        if items.unit == "region":
            info["pixels"] = []
            rows = chosen.pixels_of(i)
            info["left_out"] = _flat(chosen, np.arange(rows.start, rows.stop)[items.item_of_row[rows] < 0])
        for k in range(first, stop):
            rows = items.rows_of(k)
            info["anchors"].append([int(chosen.x[rows[0]]), int(chosen.y[rows[0]])])
            if items.unit == "region":
                info["pixels"].append(_flat(chosen, rows))
        return info

    def image_file(self, i: int) -> tuple[bytes, str]:
        """Image i of the selection as the browser shows it: the file's own bytes (PNG, JPEG), or a PNG."""
        index = self.indices[i]
        path = Path(self.dataset.image_path(index))
        types = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
        if path.suffix.lower() in types:
            try:
                return path.read_bytes(), types[path.suffix.lower()]
            except OSError as exc:
                raise LaborError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(self.dataset.read_image(index)).save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"

    def unsaved(self) -> bool:
        return self.store.records > 0 and self.store.records != self.saved_records

    def save(self, how: str) -> AnnotateResult:
        """Write the labels artifact from the answers so far (atomically: a temporary file renamed)."""
        with self.store.lock:
            result, answered = self.result(how)
            records = self.store.records
            items = self.store.items
            config = stored_config(
                self.options,
                annotator="person",
                unit=items.unit,
                regions=None if items.grouping is None else items.grouping.record(),
                journal=str(self.journal),
                session=self.store.journal.header["session"],
                journal_records=records,
            )
            parents = [self.chosen.parent] + ([self.earlier.parent] if self.earlier is not None else [])
            with artifacts.create_artifact(self.output, "labels", config, parents, force=self.may_replace) as f:
                artifacts.write_pixel_set(f, answered.pixels)
                write_extras(f, answered)
                f.attrs["summary"] = json.dumps(result.summary())
            self.may_replace, self.saved_records = True, records
        result.written = True
        return result

    def result(self, how: str) -> tuple[AnnotateResult, AnsweredPixels]:
        """The figures of the answers so far, and the labels (merged with --merge) with what each pixel keeps."""
        store = self.store
        with store.lock:
            fresh = store.labels()
            values, items = store.values.copy(), store.items
            seconds_answering = float(store.seconds.sum())
            figures = store.figures()
        answered, already, agreed = fresh, 0, None
        if self.earlier is not None:
            labels, already = merge_pixel_sets(self.earlier, fresh.pixels, self.dataset.index_of)
            answered = carried_extras(labels, [(self.earlier, self.earlier_extras), (fresh.pixels, fresh)])
            agreed = agreement(self.earlier, fresh.pixels)
        mixed = values == MIXED
        result = AnnotateResult(
            output=self.output,
            journal=self.journal,
            unit=items.unit,
            written=False,
            how=how,
            images=len(answered.pixels.image_ids),
            selection_images=len(self.chosen.image_ids),
            items=len(values),
            answered=int((values != UNANSWERED).sum()),
            unsure=int((values == UNSURE).sum()),
            mixed=int(mixed.sum()),
            mixed_pixels=int(items.sizes()[mixed].sum()),
            labeled_round=len(fresh.pixels.y) - already,
            already_labeled=already,
            labeled_total=len(answered.pixels.y),
            share=answered.pixels.labeled_share(),
            per_class=per_class_counts(fresh.pixels.label, list(fresh.pixels.class_names)),
            seconds_answering=seconds_answering,
            error_selected=error_rate(fresh.pixels.predicted, fresh.pixels.label),
            figures=figures,
            regions=items.counts,
            idle_cap=store.idle_cap,
            agreement=agreed,
            merged_from=self.merge,
        )
        return result, answered


def _flat(chosen: PixelSet, rows: np.ndarray) -> list[int]:
    """Selection rows as the page takes pixels: [x0, y0, x1, y1, ...]."""
    return np.stack([chosen.x[rows], chosen.y[rows]], 1).reshape(-1).tolist()


def write_extras(f, answered: AnsweredPixels) -> None:
    """What a labels artifact of labor annotate keeps beside each pixel (docs/artifacts.md)."""
    compressed = {"chunks": True, "compression": "gzip"} if len(answered.seconds) else {}  # HDF5 cannot chunk 0 rows
    f.create_dataset("seconds", data=answered.seconds, **compressed)
    f.create_dataset("accepted", data=answered.accepted, **compressed)
    f.create_dataset("annotator", data=answered.annotator, **compressed)
    f.attrs["annotators"] = json.dumps(answered.annotators)


def read_extras(path: Path, count: int) -> AnsweredPixels:
    """A labels artifact's per-pixel seconds, accepted and annotator (NaN and 255 where it has none, e.g.
    simulated labels, or an annotate artifact from before `accepted` and `annotator`); no pixel set."""
    unknown = AnsweredPixels(
        None, np.full(count, np.nan, np.float32), np.full(count, 255, np.uint8), np.full(count, NO_ANNOTATOR, np.uint8)
    )
    with artifacts.open_artifact(path, "labels") as artifact:
        found = {name: artifact.read(name) for name in ("seconds", "accepted", "annotator") if name in artifact.file}
        names = json.loads(artifact.file.attrs.get("annotators", "[]"))
    for name, values in found.items():
        if len(values) != count:
            raise LaborError(f"{path}: damaged labels artifact: {len(values)} {name} values for {count} pixels")
    return AnsweredPixels(
        None,
        found.get("seconds", unknown.seconds).astype(np.float32),
        found.get("accepted", unknown.accepted).astype(np.uint8),
        found.get("annotator", unknown.annotator).astype(np.uint8),
        list(names) if isinstance(names, list) else [],
    )


def carried_extras(union: PixelSet, sources: list[tuple[PixelSet, AnsweredPixels]]) -> AnsweredPixels:
    """Each pixel of ``union`` gets its seconds, accepted and annotator from the first source that has the
    pixel (NaN, 255 if none); annotator indices are renumbered into one list of names."""
    count = len(union.y)
    carried = AnsweredPixels(
        union, np.full(count, np.nan, np.float32), np.full(count, 255, np.uint8), np.full(count, 255, np.uint8), []
    )
    missing = np.ones(count, bool)
    for pixels, extras in sources:
        rows = PixelFinder(pixels).rows_of(union)
        found = missing & (rows >= 0)
        carried.seconds[found] = extras.seconds[rows[found]]
        carried.accepted[found] = extras.accepted[rows[found]]
        renumber = np.full(256, NO_ANNOTATOR, np.uint8)
        for k, name in enumerate(extras.annotators[:NO_ANNOTATOR]):
            if name not in carried.annotators:
                carried.annotators.append(name)
            renumber[k] = carried.annotators.index(name)
        carried.annotator[found] = renumber[extras.annotator[rows[found]]]
        missing &= ~found
    return carried


# --- opening a session ------------------------------------------------------------------------


def open_annotation(options: AnnotateOptions) -> Annotation:
    """Check everything up front (one-line errors, nothing written) and replay the journal, if any."""
    selection, output = Path(options.selection), Path(options.output)
    chosen = read_checked_pixel_set(selection, "selection")
    if not len(chosen.y):
        raise LaborError(f"{selection}: selects no pixels: nothing to annotate")
    with artifacts.open_artifact(selection, "selection") as artifact:
        unit = unit_of_mode(artifact.config.get("mode"))
    earlier = None
    if options.merge is not None:
        earlier = read_earlier_labels(Path(options.merge), chosen, selection)
    dataset = open_dataset(
        options.target, options.split, class_set=chosen.class_set, require_labels=False, reads=("images",)
    )
    indices = dataset_indices(chosen.image_ids, chosen.sizes, selection, dataset)
    if earlier is not None:
        dataset_indices(earlier.image_ids, earlier.sizes, Path(options.merge), dataset)

    wanted = Grouping(min_region=options.min_region, reach=DEFAULT_REACH)
    journal = Journal(
        journal_path_for(output), new_journal_header(selection, chosen.parent.uuid, unit, chosen.class_set, wanted)
    )
    records = journal.read()
    grouping = journal.grouping(wanted) if unit == "region" else None
    if grouping is not None and grouping != wanted:
        stdout.print(f"annotate: continuing {journal.path} with its regions: {grouping.describe()}", soft_wrap=True)
    with progress_bar(disable=options.quiet or unit != "region") as bar:  # an SPL selection's regions take a while
        task = bar.add_task("regions", total=len(chosen.image_ids), status="")
        items = make_items(chosen, unit, grouping, advance=lambda: bar.advance(task))
    store = AnswerStore(chosen, items, journal, records, idle_cap=options.idle_cap, annotator=options.annotator)
    saved_records = _own_output_records(output, journal.header["session"]) if journal.exists else None
    artifacts.check_output_path(output, options.force or saved_records is not None, inputs=(selection, options.merge))
    return Annotation(
        options,
        chosen,
        earlier,
        dataset,
        indices,
        store,
        may_replace=options.force or saved_records is not None,
        saved_records=-1 if saved_records is None else saved_records,
    )


def _own_output_records(output: Path, session: str) -> int | None:
    """The journal records an existing output reflects, if this session wrote it (else None)."""
    if not output.is_file():
        return None
    try:
        with artifacts.open_artifact(output, "labels") as artifact:
            if artifact.config.get("session") == session:
                return int(artifact.config.get("journal_records", -1))
    except LaborError:
        pass
    return None


# --- the command ------------------------------------------------------------------------------


def run_annotate(options: AnnotateOptions, ready: Callable | None = None) -> AnnotateResult:
    """Serve the page until the person finishes (or Ctrl-C / SIGTERM), then write the labels.
    ``ready(server)`` is called once the server listens (tests use it to find the port)."""
    from labor_cli.annotate.server import AnnotateServer

    annotation = open_annotation(options)
    server = AnnotateServer(annotation, options.host, options.port)
    if ready is not None:
        ready(server)
    # Printed even with --quiet (which hides progress bars only): without the URL there is nothing to open.
    progress = annotation.store.progress()
    unit = f"{annotation.store.items.unit}s"
    resumed = f", {progress['answered']} answered earlier (from {annotation.journal})" if progress["answered"] else ""
    stdout.print(f"annotate: {progress['items']} {unit} in {progress['images']} images{resumed}", soft_wrap=True)
    counts = annotation.store.items.counts
    if counts is not None:
        stdout.print("  " + counts.describe(), soft_wrap=True)
    stdout.print(
        f"open {server.url} in a browser; Finish on the page, or Ctrl-C here, saves {annotation.output}",
        soft_wrap=True,
    )
    with _sigterm_as_interrupt():  # also around the save: a SIGTERM then still leaves no half-written output
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass  # Ctrl-C or SIGTERM: stop serving, and save what was answered
        finally:
            server.server_close()
        if server.result is not None:  # finished on the page
            return server.result
        if annotation.unsaved():
            return annotation.save("stopped")
        return annotation.result("stopped")[0]


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the server like Ctrl-C does (the answers are saved on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_annotate(result: AnnotateResult) -> None:
    unit = result.unit
    where = (
        f"-> {result.output}"
        if result.written
        else f"({result.output} unchanged)"
        if result.answered
        else "(nothing written)"
    )
    stdout.print(
        f"annotate {result.how}: {result.answered} of {_count(result.items, unit)} answered, "
        f"{result.unanswered} left; "
        f"{_count(result.labeled_round, 'pixel')} labeled this round, {result.labeled_total} in total = "
        f"{result.share:.3f}% of all pixels {where}",
        soft_wrap=True,
    )
    print_cost(result)
    if result.unsure:
        stdout.print(f"  {_count(result.unsure, unit)} answered unsure: stored as 255, not used in training")
    if result.mixed:
        stdout.print(
            f"  {_count(result.mixed, 'region')} answered mixed ({_count(result.mixed_pixels, 'pixel')}): "
            "left out of the labels",
            soft_wrap=True,
        )
    if result.figures is not None and result.figures.split:
        stdout.print(
            f"  {_count(result.figures.split, 'region')} split: {_count(result.figures.split_pixels, 'pixel')} "
            "given another class than the rest of their region",
            soft_wrap=True,
        )
    if result.already_labeled:
        stdout.print(
            f"  {_count(result.already_labeled, 'answered pixel')} already labeled in {result.merged_from}: "
            "the earlier answer is kept",
            soft_wrap=True,
        )
    if result.agreement is not None and result.agreement.shared:
        stdout.print(f"  {result.agreement.describe('the earlier labels', 'this session')}", soft_wrap=True)
    if result.error_selected is not None:
        stdout.print(f"  A is wrong on {result.error_selected:.1f}% of the answered pixels")
    if result.unanswered and result.journal.exists():
        stdout.print(
            f"  to continue, run the same command again: it resumes from the answers kept in {result.journal}",
            soft_wrap=True,
        )
    counts = {name: count for name, count in result.per_class.items() if count}
    if counts:
        stdout.print("  per class: " + ", ".join(f"{name} {count}" for name, count in counts.items()), soft_wrap=True)


def print_cost(result: AnnotateResult) -> None:
    """What the answers cost: the person's time and key presses, with and without A's suggestion."""
    unit, figures = result.unit, result.figures
    images = max(result.selection_images, 1)
    if result.regions is not None:
        stdout.print("  " + result.regions.describe(), soft_wrap=True)
    asked = f"  the selection asks {result.items / images:.1f} {unit}s per image"
    if figures is not None and figures.keys:
        asked += (
            f"; {_count(figures.keys, 'keypress')} spent ({figures.keys / max(result.answered, 1):.1f} per answer, "
            f"{figures.keys / images:.1f} per image)"
        )
    stdout.print(asked, soft_wrap=True)
    if result.labels_per_minute is not None:
        idle = ""
        if figures is not None and figures.idle_seconds > 0:
            idle = f"; {figures.idle_seconds:.0f} s beyond {result.idle_cap:g} s per answer not counted (--idle-cap)"
        stdout.print(
            f"  the person's time: {result.seconds_answering:.0f} s answering, {result.labels_per_minute:.1f} "
            f"{unit}s per minute ({_seconds(result.seconds_answering / max(result.answered, 1))} each){idle}",
            soft_wrap=True,
        )
    if figures is not None and figures.suggested:
        each = figures.summary()
        stdout.print(
            f"  A's suggestion taken (key a) for {figures.accepted} of {figures.suggested} answers "
            f"({100 * figures.accepted / figures.suggested:.0f}%): "
            f"{_seconds(each['seconds_per_answer_accepted'])} each, against "
            f"{_seconds(each['seconds_per_answer_own'])} for the person's own class",
            soft_wrap=True,
        )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value >= 1 else f"{value:.2f} s"


def _count(count: int, word: str) -> str:
    many = word + ("es" if word.endswith("s") else "s")
    return f"{count} {word if count == 1 else many}"
