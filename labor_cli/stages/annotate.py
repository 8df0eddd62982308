"""labor annotate: a person answers a selection in a browser; the answers become a labels artifact.

The command serves a page on a local web server (labor_cli/annotate/server.py). The person sees
one target image with the current point marked and a zoomed crop around it, and answers with a
class button or its key; an SPL selection is answered region by region (each connected region of
an image's selected pixels at once, or "mixed" to leave it out).

- Every answer goes to the journal ``OUTPUT-stem.annotate.jsonl`` at once (labor_cli/annotate/store.py);
  the same command again continues from it.
- The labels artifact is the kind `labor label` and `labor import` write (so `labor adapt` takes it),
  with ``annotator: person`` in its config and a ``seconds`` dataset: the person's time per pixel.
  It is written, atomically, when the person finishes or saves on the page, and on Ctrl-C or SIGTERM.
- ``--merge`` accumulates with earlier labels as in `labor label` (the earlier answer wins).

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
from labor_cli.annotate.store import (
    MIXED,
    UNANSWERED,
    UNSURE,
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
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import AnnotateOptions, stored_config
from labor_cli.stages.checks import dataset_indices, read_checked_pixel_set
from labor_cli.stages.label import error_rate, merge_pixel_sets, per_class_counts, read_earlier_labels

# Keys of the classes, in class order: 1..9, 0, then the letter row below them.
CLASS_KEYS = "1234567890qwertyuiop"


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
    seconds_answering: float  # the person's time, summed over every answer given
    error_selected: float | None  # percent: A wrong on the answered pixels (where A's class is known)
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
        return {
            "unit": self.unit,
            "images": self.images,
            "items": self.items,
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
            "labels_per_minute": None if per_minute is None else round(per_minute, 3),
            "error_rate_selected_percent": None if self.error_selected is None else round(self.error_selected, 4),
            "per_class_this_round": self.per_class,
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
        self.earlier_seconds = None if earlier is None else read_seconds(self.merge, len(earlier.y))

    @property
    def journal(self) -> Path:
        return self.store.journal.path

    def page_info(self) -> dict:
        """What the page needs once: classes (with colours and keys), images and their items."""
        colours, keys = class_colours(self.chosen.class_set).tolist(), CLASS_KEYS
        first = self.store.items.first_item
        return {
            "selection": str(self.selection),
            "output": str(self.output),
            "journal": str(self.journal),
            "unit": self.store.items.unit,
            "class_set": self.chosen.class_set,
            "items": len(self.store.items),
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

    def image_items(self, i: int) -> dict:
        """Image i's items: an anchor pixel each (the point; for a region, one of its pixels, the
        one the page sends back), a region's pixels as flat [x0, y0, x1, y1, ...], and their answers."""
        items, chosen = self.store.items, self.chosen
        first, stop = int(items.first_item[i]), int(items.first_item[i + 1])
        info = {
            "index": i,
            "image_id": chosen.image_ids[i],
            "first_item": first,
            "anchors": [],
            "answers": self.store.value_words(first, stop),
        }
        if items.unit == "region":
            info["pixels"] = []
        for k in range(first, stop):
            rows = items.rows_of(k)
            info["anchors"].append([int(chosen.x[rows[0]]), int(chosen.y[rows[0]])])
            if items.unit == "region":
                info["pixels"].append(np.stack([chosen.x[rows], chosen.y[rows]], 1).reshape(-1).tolist())
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
            result, labels, seconds = self.result(how)
            records = self.store.records
            config = stored_config(
                self.options,
                annotator="person",
                unit=self.store.items.unit,
                journal=str(self.journal),
                session=self.store.journal.header["session"],
                journal_records=records,
            )
            parents = [self.chosen.parent] + ([self.earlier.parent] if self.earlier is not None else [])
            with artifacts.create_artifact(self.output, "labels", config, parents, force=self.may_replace) as f:
                artifacts.write_pixel_set(f, labels)
                compressed = {"chunks": True, "compression": "gzip"} if len(seconds) else {}  # HDF5 cannot chunk 0 rows
                f.create_dataset("seconds", data=seconds, **compressed)
                f.attrs["summary"] = json.dumps(result.summary())
            self.may_replace, self.saved_records = True, records
        result.written = True
        return result

    def result(self, how: str) -> tuple[AnnotateResult, PixelSet, np.ndarray]:
        """The figures of the answers so far, the labels (merged with --merge) and their seconds."""
        store = self.store
        with store.lock:
            fresh, seconds = store.labels()
            values, items = store.values.copy(), store.items
            seconds_answering = float(store.seconds.sum())
        labels, already = fresh, 0
        if self.earlier is not None:
            labels, already = merge_pixel_sets(self.earlier, fresh, self.dataset.index_of)
            seconds = carried_seconds(labels, [(self.earlier, self.earlier_seconds), (fresh, seconds)])
        mixed = values == MIXED
        result = AnnotateResult(
            output=self.output,
            journal=self.journal,
            unit=items.unit,
            written=False,
            how=how,
            images=len(labels.image_ids),
            items=len(values),
            answered=int((values != UNANSWERED).sum()),
            unsure=int((values == UNSURE).sum()),
            mixed=int(mixed.sum()),
            mixed_pixels=int(np.diff(items.offsets)[mixed].sum()),
            labeled_round=len(fresh.y) - already,
            already_labeled=already,
            labeled_total=len(labels.y),
            share=labels.labeled_share(),
            per_class=per_class_counts(fresh.label, list(fresh.class_names)),
            seconds_answering=seconds_answering,
            error_selected=error_rate(fresh.predicted, fresh.label),
            merged_from=self.merge,
        )
        return result, labels, seconds


def read_seconds(path: Path, count: int) -> np.ndarray:
    """A labels artifact's per-pixel seconds (NaN where it has none, e.g. simulated labels)."""
    with artifacts.open_artifact(path, "labels") as artifact:
        if "seconds" not in artifact.file:
            return np.full(count, np.nan, np.float32)
        seconds = artifact.read("seconds").astype(np.float32)
    if len(seconds) != count:
        raise LaborError(f"{path}: damaged labels artifact: {len(seconds)} seconds for {count} pixels")
    return seconds


def carried_seconds(union: PixelSet, sources: list[tuple[PixelSet, np.ndarray]]) -> np.ndarray:
    """Each pixel of ``union`` gets its seconds from the first source that has the pixel (NaN if none)."""
    seconds = np.full(len(union.y), np.nan, np.float32)
    missing = np.ones(len(union.y), bool)
    for pixels, values in sources:
        rows = PixelFinder(pixels).rows_of(union)
        found = missing & (rows >= 0)
        seconds[found] = values[rows[found]]
        missing &= ~found
    return seconds


# --- opening a session ------------------------------------------------------------------------


def open_annotation(options: AnnotateOptions) -> Annotation:
    """Check everything up front (one-line errors, nothing written) and replay the journal, if any."""
    selection, output = Path(options.selection), Path(options.output)
    if not 0 <= options.port <= 65535:
        raise LaborUsageError(f"--port {options.port}: must be from 0 to 65535")
    chosen = read_checked_pixel_set(selection, "selection")
    if not len(chosen.y):
        raise LaborError(f"{selection}: selects no pixels: nothing to annotate")
    with artifacts.open_artifact(selection, "selection") as artifact:
        unit = "region" if artifact.config.get("mode") == "spl" else "point"
    earlier = None
    if options.merge is not None:
        earlier = read_earlier_labels(Path(options.merge), chosen, selection)
    dataset = open_dataset(
        options.target, options.split, class_set=chosen.class_set, require_labels=False, reads=("images",)
    )
    indices = dataset_indices(chosen.image_ids, chosen.sizes, selection, dataset)
    if earlier is not None:
        dataset_indices(earlier.image_ids, earlier.sizes, Path(options.merge), dataset)

    header = new_journal_header(selection, chosen.parent.uuid, unit, chosen.class_set)
    journal = Journal(journal_path_for(output), header)
    with progress_bar(disable=options.quiet or unit != "region") as bar:  # an SPL selection's regions take a while
        task = bar.add_task("regions", total=len(chosen.image_ids), status="")
        items = make_items(chosen, unit, advance=lambda: bar.advance(task))
    store = AnswerStore(chosen, items, journal)
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
    unit = f"{result.unit}s"
    where = (
        f"-> {result.output}"
        if result.written
        else f"({result.output} unchanged)"
        if result.answered
        else "(nothing written)"
    )
    stdout.print(
        f"annotate {result.how}: {result.answered} of {result.items} {unit} answered, "
        f"{result.unanswered} left; "
        f"{result.labeled_round} pixels labeled this round, {result.labeled_total} in total = "
        f"{result.share:.3f}% of all pixels {where}",
        soft_wrap=True,
    )
    if result.labels_per_minute is not None:
        stdout.print(
            f"  the person's time: {result.seconds_answering:.0f} s answering, {result.labels_per_minute:.1f} "
            f"{unit} per minute ({result.seconds_answering / max(result.answered, 1):.1f} s each)"
        )
    if result.unsure:
        stdout.print(f"  {_count(result.unsure, result.unit)} answered unsure: stored as 255, not used in training")
    if result.mixed:
        stdout.print(
            f"  {_count(result.mixed, 'region')} answered mixed ({_count(result.mixed_pixels, 'pixel')}): "
            "left out of the labels"
        )
    if result.already_labeled:
        stdout.print(
            f"  {result.already_labeled} answered pixels were already labeled in {result.merged_from}: "
            "the earlier answer is kept"
        )
    if result.error_selected is not None:
        stdout.print(f"  A is wrong on {result.error_selected:.1f}% of the answered pixels")
    if result.unanswered:
        stdout.print(
            f"  to continue, run the same command again: it resumes from the answers kept in {result.journal}",
            soft_wrap=True,
        )
    counts = {name: count for name, count in result.per_class.items() if count}
    if counts:
        stdout.print("  per class: " + ", ".join(f"{name} {count}" for name, count in counts.items()), soft_wrap=True)


def _count(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
