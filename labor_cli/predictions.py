"""Prediction PNGs as cityscapesScripts' evaluator and the benchmark server take them (evaluate
--predictions/--colour, predict).

cityscapesScripts' evalPixelLevelSemanticLabeling.getPrediction finds the prediction of ground
truth ``{city}_{seq}_{frame}_gtFine_labelIds.png`` as the one file matching
``{city}_{seq}_{frame}*.png`` anywhere under the results folder, so each prediction is named
``{city}_{seq}_{frame}_pred_labelIds.png`` (:func:`cityscapes_prediction_name`), in Cityscapes
label ids, at the image's own size. Other dataset kinds get ``{id}_pred_labelIds.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from labor_cli.data.labels import index_to_label_id
from labor_cli.drawing import palette_256


def cityscapes_prediction_name(image_id: str, colour: bool = False) -> str:
    """'frankfurt/frankfurt_000000_000294' -> 'frankfurt_000000_000294_pred_labelIds.png' (or
    '..._pred_color.png'): the image's own base name first, as cityscapesScripts matches it."""
    base = image_id.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{base}_pred_{'color' if colour else 'labelIds'}.png"


def write_prediction_pngs(dataset, indices, predictions, class_set, predictions_dir, colour_dir) -> None:
    """Prediction PNGs in Cityscapes label ids and colourised ones, named as labor predict names
    them: {city}_{seq}_{frame}_pred_labelIds.png, the names cityscapesScripts' evaluator matches."""
    to_label_id = index_to_label_id(class_set)
    palette = palette_256(class_set)
    for index, prediction in zip(indices, predictions.astype(np.uint8)):
        image_id = dataset.image_ids[index]
        if predictions_dir:
            Path(predictions_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(to_label_id[prediction]).save(Path(predictions_dir) / cityscapes_prediction_name(image_id))
        if colour_dir:
            Path(colour_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(palette[prediction]).save(Path(colour_dir) / cityscapes_prediction_name(image_id, True))
