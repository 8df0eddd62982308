"""labor show: one PNG per image, the artifact's pixels visibly drawn: side-by-side panels scaled up, or an
overlay of the image's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

from labor_cli import artifacts
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import class_colours, class_names
from labor_cli.drawing import mark_points
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import ShowOptions
from labor_cli.stages.show import print_show, run_show

NAMES = list(class_names("cityscapes19"))


@pytest.fixture(scope="module")
def dataset(toy_target):
    return open_dataset(toy_target, "train", "cityscapes19")


def write_pixels(path, kind, image_ids, sizes, ys, xs, labels=None):
    counts = [len(y) for y in ys]
    pixels = artifacts.PixelSet(
        image_ids=list(image_ids),
        sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=np.concatenate(ys).astype(np.int32),
        x=np.concatenate(xs).astype(np.int32),
        label=None if labels is None else np.concatenate(labels).astype(np.uint8),
        class_set="cityscapes19",
        class_names=NAMES,
    )
    with artifacts.create_artifact(path, kind, {}) as f:
        artifacts.write_pixel_set(f, pixels)
    return pixels


def png_of(folder, image_id):
    return np.array(Image.open(folder / (image_id.replace("/", "__") + ".png")).convert("RGB"))


POINTS_Y = [np.array([5, 30, 60]), np.array([0, 63]), np.array([10]), np.array([20, 21])]
POINTS_X = [np.array([5, 64, 120]), np.array([0, 127]), np.array([10]), np.array([40, 40])]


def test_show_selection_marks_every_point_with_limit(tmp_path, toy_target, dataset, capsys):
    ids = dataset.image_ids
    write_pixels(tmp_path / "sel.h5", "selection", ids, [(64, 128)] * 4, POINTS_Y, POINTS_X)
    result = run_show(
        ShowOptions(
            overlay=True,
            artifact=tmp_path / "sel.h5",
            target=toy_target,
            output_dir=tmp_path / "show",
            limit=2,
            quiet=True,
        )
    )
    assert result.kind == "selection" and result.images == 2 and result.of_images == 4
    assert sorted(p.name for p in (tmp_path / "show").iterdir()) == sorted(
        i.replace("/", "__") + ".png" for i in ids[:2]
    )
    for i, image_id in enumerate(ids[:2]):
        png, plain = png_of(tmp_path / "show", image_id), dataset.read_image(i)
        assert png.shape == plain.shape == (64, 128, 3)
        assert (png[POINTS_Y[i], POINTS_X[i]] != plain[POINTS_Y[i], POINTS_X[i]]).any(axis=1).all()
        changed = (png != plain).any(axis=2)
        assert changed.sum() < 0.25 * changed.size  # rings, not a repainted image
        assert not changed[45:55, 20:40].any() if i == 0 else True  # far from every point: untouched
    print_show(result)
    assert "first 2 of 4" in capsys.readouterr().out


def test_show_labels_draws_class_colours(tmp_path, toy_target, dataset):
    ids = dataset.image_ids[:2]
    labels = [np.array([13, 0, 255]), np.array([10, 2])]
    write_pixels(tmp_path / "labels.h5", "labels", ids, [(64, 128)] * 2, POINTS_Y[:2], POINTS_X[:2], labels)
    run_show(
        ShowOptions(
            overlay=True, artifact=tmp_path / "labels.h5", target=toy_target, output_dir=tmp_path / "show", quiet=True
        )
    )
    colours = class_colours("cityscapes19")
    for i, image_id in enumerate(ids):
        png = png_of(tmp_path / "show", image_id)
        assert png.shape == (64, 128, 3)
        for y, x, value in zip(POINTS_Y[i], POINTS_X[i], labels[i]):
            expected = (255, 255, 255) if value == 255 else tuple(colours[value])
            assert tuple(png[y, x]) == expected
            # dilated: the neighbours (inside the image) have the colour too
            assert tuple(png[min(y + 1, 63), min(x + 1, 127)]) == expected


def write_masks(path, dataset):
    ids = dataset.image_ids
    with artifacts.create_artifact(path, "masks", {}) as f:
        writer = artifacts.MasksWriter(f, ids, np.array([(64, 128)] * len(ids)), "cityscapes19", NAMES)
        empty = {name: {field: [] for field in fields} for name, fields in artifacts.MASK_GROUPS.items()}
        for i in range(len(ids)):
            prediction = np.zeros((64, 128), np.uint8)
            prediction[32:] = 13  # road on top, car below
            mask = np.zeros((64, 128), bool)
            mask[10:20, 30:50] = True
            writer.add(i, prediction, np.full_like(prediction, 1), mask, empty)
        writer.close()


def test_show_masks_blends_prediction_and_outlines_the_mask(tmp_path, toy_target, dataset):
    write_masks(tmp_path / "masks.h5", dataset)
    result = run_show(
        ShowOptions(
            overlay=True,
            artifact=tmp_path / "masks.h5",
            target=toy_target,
            output_dir=tmp_path / "show",
            limit=3,
            quiet=True,
        )
    )
    assert result.images == 3
    png = png_of(tmp_path / "show", dataset.image_ids[0])
    plain = dataset.read_image(0).astype(np.float32)
    road = class_colours("cityscapes19")[0]
    assert png.shape == (64, 128, 3)
    assert tuple(png[10, 30]) == (255, 255, 255) and tuple(png[19, 49]) == (255, 255, 255)  # outline
    assert tuple(png[15, 40]) == tuple(road)  # inside the mask: the prediction at full strength
    np.testing.assert_allclose(png[40, 100], 0.5 * plain[40, 100] + 0.5 * class_colours("cityscapes19")[13], atol=1)
    # Without a target: the prediction alone.
    result = run_show(
        ShowOptions(
            overlay=True, artifact=tmp_path / "masks.h5", target=None, output_dir=tmp_path / "alone", quiet=True
        )
    )
    assert result.images == 4 and png_of(tmp_path / "alone", dataset.image_ids[3]).shape == (64, 128, 3)


def test_show_refuses_bad_inputs_and_leaves_nothing_half_written(tmp_path, toy_target, dataset):
    ids = dataset.image_ids
    write_pixels(tmp_path / "sel.h5", "selection", ids, [(64, 128)] * 4, POINTS_Y, POINTS_X)
    with pytest.raises(LaborUsageError, match=r"sel\.h5: .*needs the target"):
        run_show(ShowOptions(overlay=True, artifact=tmp_path / "sel.h5", target=None, output_dir=tmp_path / "show"))
    with pytest.raises(LaborUsageError, match="--limit"):
        run_show(
            ShowOptions(
                overlay=True, artifact=tmp_path / "sel.h5", target=toy_target, output_dir=tmp_path / "show", limit=0
            )
        )
    with artifacts.create_artifact(tmp_path / "eval.h5", "evaluation", {}) as f:
        f.create_dataset("iou", data=np.zeros(19))
    with pytest.raises(LaborError, match=r"eval\.h5: is an evaluation artifact"):
        run_show(
            ShowOptions(overlay=True, artifact=tmp_path / "eval.h5", target=toy_target, output_dir=tmp_path / "show")
        )
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(LaborError, match=r"plain\.txt: not a readable HDF5"):
        run_show(
            ShowOptions(overlay=True, artifact=tmp_path / "plain.txt", target=toy_target, output_dir=tmp_path / "show")
        )
    # An image the dataset lacks, after the first ones: refused before anything is written.
    write_pixels(
        tmp_path / "bad.h5",
        "selection",
        [ids[0], "nowhere/nowhere_000000_000019"],
        [(64, 128)] * 2,
        POINTS_Y[:2],
        POINTS_X[:2],
    )
    with pytest.raises(LaborError, match=r"bad\.h5: image 'nowhere/nowhere_000000_000019' is not in"):
        run_show(
            ShowOptions(overlay=True, artifact=tmp_path / "bad.h5", target=toy_target, output_dir=tmp_path / "show")
        )
    assert not (tmp_path / "show").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    # Existing non-empty output: refused without force, replaced with it.
    (tmp_path / "show").mkdir()
    (tmp_path / "show" / "old.png").write_bytes(b"old")
    with pytest.raises(LaborError, match=r"show: folder exists and is not empty; pass --force"):
        run_show(
            ShowOptions(overlay=True, artifact=tmp_path / "sel.h5", target=toy_target, output_dir=tmp_path / "show")
        )
    run_show(
        ShowOptions(
            overlay=True,
            artifact=tmp_path / "sel.h5",
            target=toy_target,
            output_dir=tmp_path / "show",
            force=True,
            quiet=True,
        )
    )
    assert len(list((tmp_path / "show").iterdir())) == 4 and not (tmp_path / "show" / "old.png").exists()
    # An empty existing folder is fine without force.
    (tmp_path / "empty").mkdir()
    run_show(
        ShowOptions(
            overlay=True,
            artifact=tmp_path / "sel.h5",
            target=toy_target,
            output_dir=tmp_path / "empty",
            limit=1,
            quiet=True,
        )
    )
    assert len(list((tmp_path / "empty").iterdir())) == 1


def test_an_output_folder_without_a_name_is_refused(tmp_path, toy_target, dataset, monkeypatch):
    """-o . names no folder to write beside and rename into place: one line, before any work."""
    write_pixels(tmp_path / "sel.h5", "selection", dataset.image_ids, [(64, 128)] * 4, POINTS_Y, POINTS_X)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(LaborError, match=r"^\.: expected a folder name"):
        run_show(ShowOptions(overlay=True, artifact=tmp_path / "sel.h5", target=toy_target, output_dir=Path(".")))
    assert not list((tmp_path / "here").iterdir())


def test_an_output_folder_that_holds_the_input_is_refused_even_with_force(tmp_path, toy_target, dataset):
    """--force replaces the output folder whole: never when that would delete the artifact it reads."""
    from labor_cli.options import ExportOptions
    from labor_cli.stages.exchange import run_export

    (tmp_path / "run").mkdir()
    write_pixels(tmp_path / "run" / "sel.h5", "selection", dataset.image_ids, [(64, 128)] * 4, POINTS_Y, POINTS_X)
    for options in (
        ShowOptions(artifact=tmp_path / "run" / "sel.h5", target=toy_target, output_dir=tmp_path / "run", force=True),
        ExportOptions(artifact=tmp_path / "run" / "sel.h5", output_dir=tmp_path / "run", force=True, quiet=True),
    ):
        with pytest.raises(LaborUsageError, match=r"run: the folder holds the input .*sel\.h5"):
            (run_show if isinstance(options, ShowOptions) else run_export)(options)
        assert [p.name for p in (tmp_path / "run").iterdir()] == ["sel.h5"]


def test_mark_points_changes_each_point_even_on_marker_coloured_pixels():
    image = np.zeros((50, 60, 3), np.uint8)
    image[:, :30] = (255, 0, 255)  # magenta half: the markers there must be green
    y, x = np.array([10, 25, 40]), np.array([5, 45, 29])
    out = mark_points(image, y, x)
    assert (out[y, x] != image[y, x]).any(axis=1).all()
    assert tuple(out[10, 5]) == (0, 255, 0) and tuple(out[25, 45]) == (255, 0, 255)
    assert mark_points(image, np.array([], int), np.array([], int)).tolist() == image.tolist()


def test_panels_side_by_side_scaled_up_through_the_command(tmp_path, toy_target, dataset):
    """The default: image | drawing, enlarged by whole pixels to 512 wide per panel (128 -> 4x), a 4-pixel gap."""
    from labor_cli.drawing import draw_labels

    ids = dataset.image_ids
    write_pixels(tmp_path / "sel.h5", "selection", ids, [(64, 128)] * 4, POINTS_Y, POINTS_X)
    assert (
        "selection: 1 PNGs (first 1 of 4)"
        in invoke(
            "show", tmp_path / "sel.h5", "--target", toy_target, "-o", tmp_path / "sel", "--limit", 1, "-q"
        ).output
    )
    png, image = png_of(tmp_path / "sel", ids[0]), dataset.read_image(0)
    assert png.shape == (64 * 4, 128 * 4 * 2 + 4, 3)
    assert np.array_equal(png[:, :512], image.repeat(4, 0).repeat(4, 1))
    assert (png[:, 512:516] == 255).all()
    assert np.array_equal(png[:, 516:], mark_points(image, POINTS_Y[0], POINTS_X[0]).repeat(4, 0).repeat(4, 1))

    labels = [np.array([13, 0, 255]), np.array([10, 2])]
    write_pixels(tmp_path / "labels.h5", "labels", ids[:2], [(64, 128)] * 2, POINTS_Y[:2], POINTS_X[:2], labels)
    invoke("show", tmp_path / "labels.h5", "--target", toy_target, "-o", tmp_path / "labels", "--scale", 2, "-q")
    png, image = png_of(tmp_path / "labels", ids[1]), dataset.read_image(1)
    drawn = draw_labels(image, POINTS_Y[1], POINTS_X[1], labels[1], "cityscapes19")
    gap = np.full((128, 4, 3), 255, np.uint8)
    assert np.array_equal(
        png, np.concatenate([image.repeat(2, 0).repeat(2, 1), gap, drawn.repeat(2, 0).repeat(2, 1)], axis=1)
    )

    write_masks(tmp_path / "masks.h5", dataset)
    invoke("show", tmp_path / "masks.h5", "--target", toy_target, "-o", tmp_path / "masks", "--limit", 1, "-q")
    png, image = png_of(tmp_path / "masks", ids[0]), dataset.read_image(0)
    assert png.shape == (256, 3 * 512 + 2 * 4, 3)
    middle, right = png[:, 516:1028], png[:, 1032:]
    colours = class_colours("cityscapes19")
    assert tuple(middle[0, 0]) == tuple(colours[0]) and tuple(middle[-1, -1]) == tuple(colours[13])
    assert tuple(right[15 * 4, 40 * 4]) == (255, 255, 255)  # inside the mask
    assert np.array_equal(right[40 * 4, 100 * 4], np.round(image[40, 100] * 0.35).astype(np.uint8))
    invoke("show", tmp_path / "masks.h5", "-o", tmp_path / "alone", "--scale", 1, "-q")  # no target: prediction | mask
    assert png_of(tmp_path / "alone", ids[3]).shape == (64, 128 * 2 + 4, 3)
