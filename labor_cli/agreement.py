"""How well two label sets agree on the pixels both hold: two annotators, or an annotator and the ground truth.

`labor label --merge` and `labor annotate --merge` report it: with the ground truth (`labor label`)
it is the earlier annotator's accuracy; with a second person (`labor annotate --annotator`) it is
the agreement between annotators. Pixels where either set says 255 (unsure, or an ignored ground
truth) are counted apart, not compared. Cohen's kappa corrects the agreement for chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labor_cli.annotate.store import PixelFinder
from labor_cli.artifacts import PixelSet
from labor_cli.data.labels import IGNORE_INDEX


@dataclass
class Agreement:
    shared: int  # pixels both sets label
    compared: int  # of them, with a class in both (neither says 255)
    agreed: int  # of those, the same class in both
    kappa: float | None  # Cohen's kappa over the compared pixels (None: undefined)

    @property
    def percent(self) -> float | None:
        return 100.0 * self.agreed / self.compared if self.compared else None

    def summary(self) -> dict:
        return {
            "shared_pixels": self.shared,
            "compared_pixels": self.compared,
            "agreed_pixels": self.agreed,
            "agreement_percent": None if self.percent is None else round(self.percent, 4),
            "cohen_kappa": None if self.kappa is None else round(self.kappa, 4),
        }

    def describe(self, first: str, second: str) -> str:
        if not self.compared:
            return f"{first} and {second} share {self.shared} pixels, none with a class in both"
        unsure = self.shared - self.compared
        kappa = "" if self.kappa is None else f", Cohen's kappa {self.kappa:.2f}"
        return (
            f"{first} and {second} agree on {self.agreed} of the {self.compared} pixels both give a class "
            f"({self.percent:.1f}%{kappa})" + (f"; {unsure} more where one says 255 (unsure)" if unsure else "")
        )


def agreement(first: PixelSet, second: PixelSet) -> Agreement:
    """The agreement of two label sets (of the same images' grids) on the pixels both hold."""
    rows = PixelFinder(first).rows_of(second)
    shared = rows >= 0
    a = np.asarray(first.label, np.int64)[rows[shared]]
    b = np.asarray(second.label, np.int64)[shared]
    known = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    a, b = a[known], b[known]
    agreed = int((a == b).sum())
    kappa = None
    if len(a):
        classes = int(max(a.max(), b.max())) + 1
        chance = float((np.bincount(a, minlength=classes) * np.bincount(b, minlength=classes)).sum()) / len(a) ** 2
        observed = agreed / len(a)
        kappa = (observed - chance) / (1.0 - chance) if chance < 1.0 else None
    return Agreement(int(shared.sum()), int(known.sum()), agreed, kappa)
