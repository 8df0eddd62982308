"""Label tables, as data, in one place (like cityscapesScripts' labels.py).

Every dataset maps its own ids to the *class indices of a class set*. A class set is the
list of classes a model predicts: ``cityscapes19`` (GTA5 -> Cityscapes) or ``synthia16``
(SYNTHIA -> Cityscapes). ``synthia13`` is an evaluation protocol on top of ``synthia16``:
the mean IoU over its 13 classes (the 16 without wall, fence and pole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labor_cli.errors import LaborUsageError

IGNORE_INDEX = 255


@dataclass(frozen=True)
class CityscapesLabel:
    label_id: int  # the id stored in *_gtFine_labelIds.png and in GTA5's labels
    train_id: int  # the index in the 19-class protocol
    name: str
    colour: tuple[int, int, int]


# The 19 evaluated Cityscapes classes; every other label id maps to IGNORE_INDEX.
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel(7, 0, "road", (128, 64, 128)),
    CityscapesLabel(8, 1, "sidewalk", (244, 35, 232)),
    CityscapesLabel(11, 2, "building", (70, 70, 70)),
    CityscapesLabel(12, 3, "wall", (102, 102, 156)),
    CityscapesLabel(13, 4, "fence", (190, 153, 153)),
    CityscapesLabel(17, 5, "pole", (153, 153, 153)),
    CityscapesLabel(19, 6, "traffic light", (250, 170, 30)),
    CityscapesLabel(20, 7, "traffic sign", (220, 220, 0)),
    CityscapesLabel(21, 8, "vegetation", (107, 142, 35)),
    CityscapesLabel(22, 9, "terrain", (152, 251, 152)),
    CityscapesLabel(23, 10, "sky", (70, 130, 180)),
    CityscapesLabel(24, 11, "person", (220, 20, 60)),
    CityscapesLabel(25, 12, "rider", (255, 0, 0)),
    CityscapesLabel(26, 13, "car", (0, 0, 142)),
    CityscapesLabel(27, 14, "truck", (0, 0, 70)),
    CityscapesLabel(28, 15, "bus", (0, 60, 100)),
    CityscapesLabel(31, 16, "train", (0, 80, 100)),
    CityscapesLabel(32, 17, "motorcycle", (0, 0, 230)),
    CityscapesLabel(33, 18, "bicycle", (119, 11, 32)),
)

# SYNTHIA (RAND-CITYSCAPES) ids of the 16 classes, in the order of their indices 0..15.
SYNTHIA16_IDS: tuple[tuple[int, str], ...] = (
    (3, "road"),
    (4, "sidewalk"),
    (2, "building"),
    (21, "wall"),
    (5, "fence"),
    (7, "pole"),
    (15, "traffic light"),
    (9, "traffic sign"),
    (6, "vegetation"),
    (1, "sky"),
    (10, "person"),
    (17, "rider"),
    (8, "car"),
    (19, "bus"),
    (12, "motorcycle"),
    (11, "bicycle"),
)

# SYNTHIA's ids of the three Cityscapes classes outside the 16 (not evaluated: they map to ignore).
SYNTHIA_OTHER_IDS: tuple[tuple[int, str], ...] = ((16, "terrain"), (18, "truck"), (20, "train"))

SYNTHIA13_LEFT_OUT = ("wall", "fence", "pole")

COLOUR_BY_NAME = {label.name: label.colour for label in CITYSCAPES_LABELS}
LABEL_ID_BY_NAME = {label.name: label.label_id for label in CITYSCAPES_LABELS}

CLASS_SETS: dict[str, tuple[str, ...]] = {
    "cityscapes19": tuple(label.name for label in CITYSCAPES_LABELS),
    "synthia16": tuple(name for _, name in SYNTHIA16_IDS),
}


def class_names(class_set: str) -> tuple[str, ...]:
    if class_set not in CLASS_SETS:
        raise LaborUsageError(f"unknown class set {class_set!r}; known: {', '.join(CLASS_SETS)}")
    return CLASS_SETS[class_set]


def class_colours(class_set: str) -> np.ndarray:
    """(C, 3) uint8 palette in the Cityscapes colours."""
    return np.array([COLOUR_BY_NAME[name] for name in class_names(class_set)], dtype=np.uint8)


def evaluation_subsets(class_set: str) -> dict[str, list[int]]:
    """Named protocols to report: class indices averaged by each mIoU figure."""
    names = class_names(class_set)
    subsets = {f"mIoU{len(names)}": list(range(len(names)))}
    if class_set == "synthia16":
        subsets["mIoU13"] = [i for i, n in enumerate(names) if n not in SYNTHIA13_LEFT_OUT]
    return subsets


def _lookup_table(size: int, id_to_name: dict[int, str], class_set: str) -> np.ndarray:
    index_of = {name: i for i, name in enumerate(class_names(class_set))}
    table = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    for raw_id, name in id_to_name.items():
        if name in index_of:
            table[raw_id] = index_of[name]
    return table


def cityscapes_id_table(class_set: str = "cityscapes19") -> np.ndarray:
    """256-entry table: Cityscapes/GTA5 label id -> class index (255 = ignore)."""
    return _lookup_table(256, {lab.label_id: lab.name for lab in CITYSCAPES_LABELS}, class_set)


def synthia_id_table(class_set: str = "synthia16") -> np.ndarray:
    """65536-entry table for SYNTHIA's 16-bit ids -> class index (255 = ignore)."""
    return _lookup_table(65536, dict(SYNTHIA16_IDS), class_set)


def train_id_table(source_names: tuple[str, ...], class_set: str) -> np.ndarray:
    """256-entry table from the indices of ``source_names`` (a folder's class list) to ``class_set``."""
    return _lookup_table(256, dict(enumerate(source_names)), class_set)


def index_to_label_id(class_set: str) -> np.ndarray:
    """256-entry table from class index to Cityscapes label id (what cityscapesScripts reads); 255 -> 0."""
    table = np.zeros(256, dtype=np.uint8)
    for i, name in enumerate(class_names(class_set)):
        table[i] = LABEL_ID_BY_NAME[name]
    return table
