"""What a selection does, next to random and entropy picks of the same budget (`labor label --masks`).

Per image, with A's prediction map (masks artifact) and the ground truth:
- the selection: how often A is wrong on its pixels, and which share of all of A's wrong pixels
  it holds;
- random at the same per-image budget: the expected values of a uniform draw (exact, no draw:
  a uniform pixel is wrong with probability wrong / pixels);
- entropy at the same per-image budget: A's most uncertain pixels, as `labor select --mode
  entropy` would pick them from the same masks artifact (only where it stores enough of them);
- class coverage: each class's share of the labels against its share of A's predicted area.
A user can see where a selection falls before spending a GPU-day on adapting from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labor_cli.data.labels import IGNORE_INDEX


def wrong_and_known(predicted: np.ndarray, label: np.ndarray) -> tuple[int, int]:
    """Pixels where A is wrong, and pixels with a known ground truth and a known prediction."""
    valid = (label != IGNORE_INDEX) & (predicted != IGNORE_INDEX)
    return int(((predicted != label) & valid).sum()), int(valid.sum())


@dataclass
class SelectionReport:
    """Running totals over the images of a selection; ``add`` one image at a time."""

    num_classes: int
    wrong_selected: int = 0
    known_selected: int = 0
    wrong_all: int = 0
    known_all: int = 0
    random_wrong: float = 0.0  # expected wrong pixels of a uniform draw of the same budget
    random_known: float = 0.0
    entropy_wrong: int = 0
    entropy_known: int = 0
    entropy_short_images: int = 0  # images whose stored uncertain pixels are fewer than the budget
    predicted_area: np.ndarray = field(default=None)  # pixels per class of A's prediction

    def __post_init__(self) -> None:
        if self.predicted_area is None:
            self.predicted_area = np.zeros(self.num_classes, dtype=np.int64)

    def add(
        self,
        prediction: np.ndarray,
        truth: np.ndarray,
        y: np.ndarray,
        x: np.ndarray,
        uncertain_y: np.ndarray,
        uncertain_x: np.ndarray,
        available: int,
    ) -> None:
        """One image: A's prediction map and the ground truth (H, W), the chosen pixels, A's stored
        most uncertain pixels (highest entropy first, excluded pixels already left out) and the
        number of pixels that could have been chosen (the image's pixels less the excluded ones)."""
        budget = len(y)
        wrong, known = wrong_and_known(prediction[y, x], truth[y, x])
        self.wrong_selected += wrong
        self.known_selected += known
        wrong_image, known_image = wrong_and_known(prediction, truth)
        self.wrong_all += wrong_image
        self.known_all += known_image
        pixels = prediction.size
        self.random_wrong += budget * wrong_image / pixels
        self.random_known += budget * known_image / pixels
        if len(uncertain_y) < budget and len(uncertain_y) < available:
            self.entropy_short_images += 1
        top_y, top_x = uncertain_y[:budget], uncertain_x[:budget]
        wrong, known = wrong_and_known(prediction[top_y, top_x], truth[top_y, top_x])
        self.entropy_wrong += wrong
        self.entropy_known += known
        self.predicted_area += np.bincount(prediction.reshape(-1), minlength=self.num_classes)[: self.num_classes]

    def figures(self) -> dict[str, dict[str, float | None]]:
        """For the selection, random and entropy: A's error rate on the picked pixels and the share
        of all of A's wrong pixels they hold, in percent (None where undefined or not stored)."""

        def percent(part: float, whole: float) -> float | None:
            return 100.0 * part / whole if whole else None

        entropy_known = self.entropy_short_images == 0
        return {
            "selection": {
                "error_rate": percent(self.wrong_selected, self.known_selected),
                "errors_covered": percent(self.wrong_selected, self.wrong_all),
            },
            "random": {
                "error_rate": percent(self.random_wrong, self.random_known),
                "errors_covered": percent(self.random_wrong, self.wrong_all),
            },
            "entropy": {
                "error_rate": percent(self.entropy_wrong, self.entropy_known) if entropy_known else None,
                "errors_covered": percent(self.entropy_wrong, self.wrong_all) if entropy_known else None,
            },
        }

    def class_coverage(self, labels: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
        """Per class: its share of the known labels, and its share of A's predicted area (percent)."""
        labels = np.asarray(labels)
        counts = np.bincount(labels[labels != IGNORE_INDEX].astype(np.int64), minlength=len(names))[: len(names)]
        area = self.predicted_area[: len(names)]
        return {
            name: {
                "labels_percent": 100.0 * float(counts[k]) / max(1, int(counts.sum())),
                "predicted_area_percent": 100.0 * float(area[k]) / max(1, int(area.sum())),
            }
            for k, name in enumerate(names)
        }
