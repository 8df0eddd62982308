"""labor label: the simulated annotator, who answers a selection from the target's ground truth.

A pixel whose ground truth is ignored stays ignored (255); ``--merge`` accumulates rounds (the
earlier answer wins). The answer statistics and the merge are labor_cli/pixel_sets.py's, shared
with ``labor import`` and ``labor annotate``, whose labels artifacts have the same form.

Coordinates are always in the target image's own pixel grid; ``x`` is the column, ``y`` the row.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from labor_cli import artifacts
from labor_cli.agreement import Agreement, agreement
from labor_cli.artifacts import PixelSet
from labor_cli.artifacts.provenance import check_known_class_set
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset, skipped_files
from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.errors import LaborError
from labor_cli.option_machinery import stored_config
from labor_cli.options import LabelOptions
from labor_cli.pixel_sets import (
    answered_selection,
    dataset_indices,
    error_rate,
    merge_pixel_sets,
    per_class_counts,
    read_checked_pixel_set,
    read_earlier_labels,
    without_images,
)
from labor_cli.regions import Grouping, RegionCounts, count_regions, unit_of_mode
from labor_cli.report import percent, print_class_table
from labor_cli.selection import excluded_linear, linear_index
from labor_cli.selection_report import SelectionReport, wrong_and_known


@dataclass
class Questions:
    """What a person answers for a selection in `labor annotate`: its points, or an SPL selection's
    regions (annotate's default grouping, and the faithful SPL's, --min-region 1)."""

    unit: str  # "point" or "region"
    images: int
    pixels: int
    regions: RegionCounts | None = None
    faithful: RegionCounts | None = None

    @property
    def per_image(self) -> float:
        asked = self.regions.regions if self.regions is not None else self.pixels
        return asked / self.images if self.images else 0.0

    def keypresses_per_image(self) -> dict[str, float]:
        """One key per question: this selection's, and point by point (random, entropy, PPL) at its budget."""
        points = self.pixels / self.images if self.images else 0.0
        return {"selection": round(self.per_image, 3), "points_same_budget": round(points, 3)}

    def summary(self) -> dict:
        return {
            "unit": self.unit,
            "per_image": round(self.per_image, 3),
            "regions": None if self.regions is None else self.regions.summary(),
            "faithful_regions": None if self.faithful is None else self.faithful.summary(),
        }


def selection_questions(selection: Path, chosen: PixelSet, truth: np.ndarray | None) -> Questions:
    """The questions of a selection (``truth``: the ground truth at its pixels, for the mixing figures)."""
    with artifacts.open_artifact(selection, "selection") as artifact:
        unit = unit_of_mode(artifact.config.get("mode"))
    questions = Questions(unit, len(chosen.image_ids), len(chosen.y))
    if unit == "region":
        questions.regions = count_regions(chosen, Grouping(), truth)
        questions.faithful = count_regions(chosen, Grouping(min_region=1), truth)
    return questions


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
    error_selected: float | None  # percent: A wrong on the selected non-ignored pixels
    error_all: float | None  # percent: A wrong on all non-ignored pixels of the selection's images (needs masks)
    errors_covered: float | None = None  # percent of those wrong pixels that were selected (needs masks)
    report: SelectionReport | None = None  # next to random and entropy at the same budget (needs masks)
    class_names: tuple[str, ...] = ()
    round_labels: np.ndarray | None = None  # this round's answers (for the class coverage)
    merged_from: Path | None = None
    seconds: float = 0.0
    agreement: Agreement | None = None  # --merge: the earlier labels against this round's on shared pixels
    questions: Questions | None = None  # what a person would answer for the selection

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
            "agreement_with_merged": None if self.agreement is None else self.agreement.summary(),
            "questions": None if self.questions is None else self.questions.summary(),
            **(self.comparison() if self.report is not None else {}),
        }

    def comparison(self) -> dict:
        """--masks: A's error rate on the selection and the share of A's wrong pixels it holds, next
        to random's (expected) and entropy's at the same per-image budget; and the class coverage."""
        figures = self.report.figures()

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        compared = {}
        for name, values in figures.items():
            compared[f"{name}_error_percent"] = rounded(values["error_rate"])
            compared[f"{name}_errors_covered_percent"] = rounded(values["errors_covered"])
        coverage = self.report.class_coverage(self.round_labels, list(self.class_names))
        if self.questions is not None:
            compared["keypresses_per_image"] = self.questions.keypresses_per_image()
        return {
            "compared": compared,
            "class_coverage": {name: {k: round(v, 4) for k, v in row.items()} for name, row in coverage.items()},
        }


@dataclass
class GroundTruthAnswers:
    """The ground truth at the selected pixels, and A's error over all pixels (with --masks)."""

    label: np.ndarray  # (P,) uint8, 255 where the ground truth is ignored
    predicted: np.ndarray | None  # (P,) A's class at each pixel, if the selection or the masks know it
    wrong_all: int = 0  # pixels of the images where A is wrong (--masks)
    known_all: int = 0  # pixels of the images with a known ground truth and prediction (--masks)
    report: SelectionReport | None = None  # --masks: the selection next to random and entropy


def run_label(options: LabelOptions) -> LabelResult:
    """The simulated annotator: each selected pixel gets its ground-truth class.

    ``skip_bad``: images whose ground-truth file is unreadable are left out of the labels."""
    started = time.perf_counter()
    selection, output = Path(options.selection), Path(options.output)
    artifacts.check_output_path(output, options.force, inputs=(selection, options.masks, options.merge))
    chosen = read_checked_pixel_set(selection, "selection")
    earlier = read_earlier_labels(Path(options.merge), chosen, selection) if options.merge is not None else None
    check_known_class_set(selection, chosen.class_set)
    dataset = open_dataset(
        options.target, options.split, class_set=chosen.class_set, skip_bad=options.skip_bad, reads=("labels",)
    )
    dataset.check_classes(chosen.class_set, "target")
    if dataset.unreadable_ids:
        chosen = without_images(chosen, set(dataset.unreadable_ids))
    indices = dataset_indices(chosen.image_ids, chosen.sizes, selection, dataset)
    if earlier is not None:
        dataset_indices(earlier.image_ids, earlier.sizes, options.merge, dataset)

    answers = answer_from_ground_truth(chosen, indices, dataset, options)
    fresh = answered_selection(chosen, answers.label, answers.predicted)
    merged, already = merge_pixel_sets(earlier, fresh, dataset.index_of) if earlier is not None else (fresh, 0)
    result = label_result(options, fresh, merged, already, answers)
    result.questions = selection_questions(selection, chosen, answers.label)
    result.agreement = agreement(earlier, fresh) if earlier is not None else None
    facts = {"skipped_unreadable": skipped_files(target=dataset)} if options.skip_bad else {}
    config = stored_config(options, annotator="ground truth", **facts)
    parents = [chosen.parent] + ([earlier.parent] if earlier is not None else [])
    with artifacts.create_artifact(output, "labels", config, parents, options.force) as f:
        artifacts.write_pixel_set(f, merged)
        f.attrs["summary"] = json.dumps(result.summary())
    result.seconds = time.perf_counter() - started
    return result


def answer_from_ground_truth(
    chosen: PixelSet, indices: list[int], dataset, options: LabelOptions
) -> GroundTruthAnswers:
    """Each selected pixel's ground truth; with --masks, A's class there (if the selection lacks
    it) and A's error over every pixel of the images."""
    with contextlib.ExitStack() as stack:
        masks, mask_rows = None, []
        if options.masks is not None:
            masks = stack.enter_context(artifacts.Masks(Path(options.masks)))
            mask_rows = _match_masks(masks, Path(options.masks), chosen, Path(options.selection))
        predicted = None
        if chosen.predicted is not None:
            predicted = np.asarray(chosen.predicted, dtype=np.uint8)
        elif masks is not None:
            predicted = np.full(len(chosen.y), IGNORE_INDEX, dtype=np.uint8)
        answers = GroundTruthAnswers(np.full(len(chosen.y), IGNORE_INDEX, dtype=np.uint8), predicted)
        if masks is not None:
            answers.report = SelectionReport(len(chosen.class_names))
        with progress_bar(disable=options.quiet) as bar:
            task = bar.add_task("label", total=len(indices), status="")
            for i, index in enumerate(indices):
                rows = chosen.pixels_of(i)
                truth = _read_truth(dataset, index, chosen.sizes[i])
                y, x = chosen.y[rows], chosen.x[rows]
                answers.label[rows] = truth[y, x]
                if masks is not None:
                    prediction = masks.prediction(mask_rows[i])
                    if chosen.predicted is None:
                        answers.predicted[rows] = prediction[y, x]
                    wrong, known = wrong_and_known(prediction, truth)
                    answers.wrong_all += wrong
                    answers.known_all += known
                    uncertain_y, uncertain_x, available = _uncertain_not_excluded(masks, mask_rows[i], truth.shape)
                    answers.report.add(prediction, truth, y, x, uncertain_y, uncertain_x, available)
                bar.update(task, advance=1, status=f"{rows.stop} px")
    return answers


def _uncertain_not_excluded(masks: artifacts.Masks, row: int, shape: tuple[int, int]):
    """A's stored most uncertain pixels of an image (most uncertain first) less the pixels labeled
    in earlier rounds, as `labor select --mode entropy` would see them; and how many pixels could
    be chosen at all."""
    uncertain, excluded = masks.rows("uncertain", row), excluded_linear(masks, row, shape)
    keep = ~np.isin(linear_index(uncertain["y"], uncertain["x"], shape), excluded)
    return uncertain["y"][keep], uncertain["x"][keep], shape[0] * shape[1] - len(excluded)


def _read_truth(dataset, index: int, size: np.ndarray) -> np.ndarray:
    truth = dataset.read_label(index)
    if truth.shape != tuple(int(v) for v in size):
        raise LaborError(
            f"{dataset.label_path(index)}: label is {truth.shape[1]}x{truth.shape[0]}, "
            f"its image {int(size[1])}x{int(size[0])}"
        )
    return truth


def label_result(
    options: LabelOptions, fresh: PixelSet, merged: PixelSet, already: int, answers: GroundTruthAnswers
) -> LabelResult:
    names = list(fresh.class_names)
    with_masks = options.masks is not None
    wrong_selected = wrong_and_known(fresh.predicted, fresh.label)[0] if fresh.predicted is not None else 0
    return LabelResult(
        output=Path(options.output),
        images=len(merged.image_ids),
        selected=len(fresh.y),
        labeled_round=len(fresh.y) - already,
        already_labeled=already,
        labeled_total=len(merged.y),
        share=merged.labeled_share(),
        ignored=int((fresh.label == IGNORE_INDEX).sum()),
        ignored_total=int((merged.label == IGNORE_INDEX).sum()),
        per_class=per_class_counts(merged.label, names),
        per_class_round=per_class_counts(fresh.label, names),
        error_selected=error_rate(fresh.predicted, fresh.label),
        error_all=100.0 * answers.wrong_all / answers.known_all if with_masks and answers.known_all else None,
        errors_covered=100.0 * wrong_selected / answers.wrong_all if with_masks and answers.wrong_all else None,
        report=answers.report,
        class_names=tuple(names),
        round_labels=fresh.label,
        merged_from=None if options.merge is None else Path(options.merge),
    )


def _match_masks(opened: artifacts.Masks, path: Path, chosen: PixelSet, selection: Path) -> list[int]:
    """Row of each selection image in the masks artifact (matched by image id, sizes checked)."""
    if opened.class_set != chosen.class_set:
        raise LaborError(
            f"{path}: masks use class set {opened.class_set}, but the selection {selection} uses {chosen.class_set}"
        )
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


def print_label(result: LabelResult) -> None:
    merged = f", {result.already_labeled} of them already labeled" if result.merged_from is not None else ""
    stdout.print(
        f"labels: {result.images} images; {result.labeled_round} pixels labeled this round "
        f"({result.selected} selected{merged}), {result.labeled_total} in total = "
        f"{result.share:.3f}% of all pixels ({result.seconds:.1f} s) -> {result.output}"
    )
    if result.ignored:
        stdout.print(
            f"  ground truth ignored at {result.ignored} selected pixel(s): stored as 255, not used in training"
        )
    if result.error_selected is not None and result.error_all is not None:
        stdout.print(
            f"  A is wrong on {percent(result.error_selected)} of the selected pixels vs "
            f"{percent(result.error_all)} of all pixels; the selection holds "
            f"{percent(result.errors_covered)} of A's wrong pixels"
        )
    elif result.error_selected is not None:
        stdout.print(
            f"  A is wrong on {percent(result.error_selected)} of the selected pixels "
            "(pass --masks for its error rate over all pixels)"
        )
    if result.agreement is not None:
        merged = f"the merged labels ({result.merged_from})"
        stdout.print(f"  {result.agreement.describe(merged, 'the ground truth')}", soft_wrap=True)
    if result.questions is not None and result.questions.regions is not None:
        print_questions(result.questions)
    if result.report is not None:
        print_comparison(result)
    print_class_table(result.per_class_round, result.per_class if result.merged_from is not None else None)


def print_questions(questions: Questions) -> None:
    """An SPL selection as a person answers it in labor annotate, grouped and faithful."""
    stdout.print(f"  a person answers it in labor annotate: {questions.regions.describe()}", soft_wrap=True)
    faithful = questions.faithful
    mixed = "" if faithful.mixed is None else f", {faithful.mixed} spanning more than one true class"
    stdout.print(
        f"  the faithful SPL (labor annotate --min-region 1): {faithful.regions} regions "
        f"({faithful.regions_per_image:.1f} per image, {faithful.single_pixel} of one pixel{mixed})",
        soft_wrap=True,
    )


def print_comparison(result: LabelResult) -> None:
    """The selection next to random and entropy at the same budget, and its class coverage."""
    summary = result.comparison()
    compared, coverage = summary["compared"], summary["class_coverage"]
    keys = compared.get("keypresses_per_image", {})
    table = Table(
        "same budget per image",
        "A wrong on the pixels",
        "share of A's wrong pixels held",
        "keypresses / image",
        title="what this selection does (labor label --masks)",
        caption="keypresses: one per question in labor annotate; random, entropy and PPL ask point by point",
    )
    for name, title, cost in (
        ("selection", "this selection", keys.get("selection")),
        ("random", "random (expected)", keys.get("points_same_budget")),
        ("entropy", "entropy (A's most uncertain)", keys.get("points_same_budget")),
    ):
        table.add_row(
            title,
            percent(compared[f"{name}_error_percent"]),
            percent(compared[f"{name}_errors_covered_percent"]),
            "-" if cost is None else f"{cost:.1f}",
        )
    stdout.print(table)
    classes = Table("class", "share of the labels", "share of A's predicted area", title="class coverage")
    for name, row in coverage.items():
        if row["labels_percent"] or row["predicted_area_percent"]:
            classes.add_row(name, percent(row["labels_percent"]), percent(row["predicted_area_percent"]))
    stdout.print(classes)
