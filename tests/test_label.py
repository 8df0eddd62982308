"""labor label / export / import on hand-made selections over the tiny toy target, with known answers."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
from PIL import Image

from labor_cli import artifacts
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import class_names
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import ExportOptions, ImportOptions, LabelOptions
from labor_cli.stages.exchange import print_export, print_import, run_export, run_import
from labor_cli.stages.label import print_label, run_label

NAMES = list(class_names("cityscapes19"))


@pytest.fixture(scope="module")
def truth(toy_target):
    """image id -> ground truth (H, W) class indices of the tiny toy target's train split."""
    dataset = open_dataset(toy_target, "train", "cityscapes19")
    return {image_id: dataset.read_label(i) for i, image_id in enumerate(dataset.image_ids)}


def pick_pixels(label: np.ndarray, count: int, seed: int, ignored: int = 0):
    """``count`` distinct pixels, ``ignored`` of them where the ground truth is ignored."""
    rng = np.random.default_rng(seed)
    flat = label.reshape(-1)
    chosen_ignored = rng.choice(np.flatnonzero(flat == 255), ignored, replace=False)
    chosen_known = rng.choice(np.flatnonzero(flat != 255), count - ignored, replace=False)
    chosen = np.concatenate([chosen_known, chosen_ignored])
    rng.shuffle(chosen)
    return np.divmod(chosen, label.shape[1])  # (y, x)


def write_pixels(path, kind, image_ids, sizes, ys, xs, labels=None, predicted=None, class_set="cityscapes19"):
    counts = [len(y) for y in ys]
    pixels = artifacts.PixelSet(
        image_ids=list(image_ids),
        sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=np.concatenate(ys).astype(np.int32) if ys else np.zeros(0, np.int32),
        x=np.concatenate(xs).astype(np.int32) if xs else np.zeros(0, np.int32),
        label=None if labels is None else np.concatenate(labels).astype(np.uint8),
        class_set=class_set,
        class_names=list(class_names(class_set)),
        predicted=None if predicted is None else np.concatenate(predicted).astype(np.uint8),
    )
    with artifacts.create_artifact(path, kind, {"mode": "test"}) as f:
        artifacts.write_pixel_set(f, pixels)
    return pixels


def make_selection(path, truth, image_ids, count=12, ignored=2, seed=0, predicted="truth"):
    """A selection of ``count`` pixels per image; ``predicted`` = the ground truth (255 -> 0) by default."""
    ys, xs, preds = [], [], []
    for k, image_id in enumerate(image_ids):
        y, x = pick_pixels(truth[image_id], count, seed + k, ignored)
        ys.append(y), xs.append(x)
        preds.append(np.where(truth[image_id][y, x] == 255, 0, truth[image_id][y, x]))
    sizes = [truth[i].shape for i in image_ids]
    return write_pixels(path, "selection", image_ids, sizes, ys, xs, predicted=preds if predicted == "truth" else None)


def read_h5(path) -> dict:
    with h5py.File(path) as f:
        data = {name: f[name][()] for name in ("image_ids", "sizes", "offsets", "y", "x", "label") if name in f}
        data["predicted"] = f["predicted"][()] if "predicted" in f else None
        data["class_set"] = f.attrs["class_set"]
        data["class_names"] = f.attrs["class_names"]
        data["lineage"] = json.loads(f.attrs["lineage"])
        data["summary"] = json.loads(f.attrs["summary"]) if "summary" in f.attrs else {}
        data["uuid"] = f.attrs["uuid"]
    return data


def assert_same_labels(a, b):
    for name in ("image_ids", "sizes", "offsets", "y", "x", "label", "predicted", "class_set", "class_names"):
        if a[name] is None or b[name] is None:
            assert a[name] is None and b[name] is None, name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --- labor label -------------------------------------------------------------------------------


def test_simulated_labels_are_the_ground_truth_and_ignored_stays_ignored(tmp_path, toy_target, truth, capsys):
    ids = list(truth)
    selection = make_selection(tmp_path / "sel.h5", truth, ids, count=12, ignored=2)
    result = run_label(
        LabelOptions(selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "labels.h5", quiet=True)
    )
    labels = artifacts.read_pixel_set(tmp_path / "labels.h5", "labels")
    assert labels.image_ids == ids
    for i, image_id in enumerate(ids):
        rows = labels.pixels_of(i)
        expected = truth[image_id][selection.y[rows], selection.x[rows]]
        np.testing.assert_array_equal(labels.label[rows], expected)
    assert (labels.label == 255).sum() == 2 * len(ids) == result.ignored
    np.testing.assert_array_equal(labels.predicted, selection.predicted)
    assert result.selected == result.labeled_round == result.labeled_total == 12 * len(ids)
    assert result.share == pytest.approx(100 * 12 * len(ids) / (len(ids) * 128 * 64))
    expected_counts = np.bincount(labels.label[labels.label != 255], minlength=19)
    assert list(result.per_class.values()) == expected_counts.tolist()
    assert result.error_selected == 0.0  # predicted = ground truth
    data = read_h5(tmp_path / "labels.h5")
    with h5py.File(tmp_path / "sel.h5") as f:
        assert data["lineage"] == [{"kind": "selection", "uuid": f.attrs["uuid"], "path": str(tmp_path / "sel.h5")}]
    assert data["summary"]["ignored_this_round"] == 2 * len(ids)
    assert data["summary"]["labeled_total"] == 12 * len(ids)
    print_label(result)
    assert "pixels labeled this round" in capsys.readouterr().out


def write_masks(path, truth, image_ids, wrong_rows: int, uncertain_rows: int = 0):
    """A masks artifact whose prediction is the ground truth except in the top ``wrong_rows`` rows;
    A's stored most uncertain pixels are those of the top ``uncertain_rows`` rows, row by row."""
    sizes = np.array([truth[i].shape for i in image_ids])
    with artifacts.create_artifact(path, "masks", {}) as f:
        writer = artifacts.MasksWriter(f, image_ids, sizes, "cityscapes19", NAMES)
        for i, image_id in enumerate(image_ids):
            groups = {name: {field: [] for field in fields} for name, fields in artifacts.MASK_GROUPS.items()}
            width = truth[image_id].shape[1]
            uncertain_y, uncertain_x = np.divmod(np.arange(uncertain_rows * width), width)
            groups["uncertain"] = {"y": uncertain_y, "x": uncertain_x, "entropy": np.linspace(2, 1, len(uncertain_y))}
            prediction = np.where(truth[image_id] == 255, 0, truth[image_id]).astype(np.uint8)
            prediction[:wrong_rows] = (prediction[:wrong_rows] + 1) % 19
            mask = np.zeros(truth[image_id].shape, bool)
            mask[10:20, 30:50] = True
            writer.add(i, prediction, (prediction + 1) % 19, mask, groups)
        writer.close()


def test_masks_compare_the_selection_with_random_and_entropy_at_the_same_budget(tmp_path, toy_target, truth, capsys):
    """Known answers: A is wrong in the top 16 rows of every image; its most uncertain pixels are
    the top 4 rows, row by row; the selection is 20 known pixels of each image, half of them in
    the wrong rows."""
    ids = list(truth)[:2]
    ys, xs = [], []
    for image_id in ids:
        known = truth[image_id] != 255
        inside = np.flatnonzero(known[:16].reshape(-1))[:10]
        outside = np.flatnonzero(known[16:].reshape(-1))[:10] + 16 * known.shape[1]
        y, x = np.divmod(np.concatenate([inside, outside]), known.shape[1])
        ys.append(y), xs.append(x)
    write_pixels(tmp_path / "sel.h5", "selection", ids, [truth[i].shape for i in ids], ys, xs)
    write_masks(tmp_path / "masks.h5", truth, ids, wrong_rows=16, uncertain_rows=4)
    result = run_label(
        LabelOptions(
            selection=tmp_path / "sel.h5",
            target=toy_target,
            output=tmp_path / "labels.h5",
            masks=tmp_path / "masks.h5",
            quiet=True,
        )
    )
    compared = read_h5(tmp_path / "labels.h5")["summary"]["compared"]
    wrong = {i: int((truth[i][:16] != 255).sum()) for i in ids}
    known = {i: int((truth[i] != 255).sum()) for i in ids}
    pixels = {i: truth[i].size for i in ids}
    assert compared["selection_error_percent"] == pytest.approx(50.0)
    assert compared["selection_errors_covered_percent"] == pytest.approx(100 * 20 / sum(wrong.values()), abs=1e-3)
    random_wrong = sum(20 * wrong[i] / pixels[i] for i in ids)
    random_known = sum(20 * known[i] / pixels[i] for i in ids)
    assert compared["random_error_percent"] == pytest.approx(100 * random_wrong / random_known, abs=1e-3)
    assert compared["random_errors_covered_percent"] == pytest.approx(
        100 * random_wrong / sum(wrong.values()), abs=1e-3
    )
    entropy_known = sum(int((truth[i][0, :20] != 255).sum()) for i in ids)  # the first 20 of row 0: all wrong
    assert compared["entropy_error_percent"] == pytest.approx(100.0)
    assert compared["entropy_errors_covered_percent"] == pytest.approx(
        100 * entropy_known / sum(wrong.values()), abs=1e-3
    )
    coverage = read_h5(tmp_path / "labels.h5")["summary"]["class_coverage"]
    labels = artifacts.read_pixel_set(tmp_path / "labels.h5", "labels").label
    for k in (0, 2):  # road, building
        predicted = [np.where(truth[i] == 255, 0, truth[i]).astype(np.uint8) for i in ids]
        for image in predicted:
            image[:16] = (image[:16] + 1) % 19
        area = sum(int((image == k).sum()) for image in predicted) / sum(image.size for image in predicted)
        assert coverage[NAMES[k]]["predicted_area_percent"] == pytest.approx(100 * area, abs=1e-3)
        assert coverage[NAMES[k]]["labels_percent"] == pytest.approx(100 * (labels == k).sum() / 40, abs=1e-3)
    print_label(result)
    out = capsys.readouterr().out
    assert "random (expected)" in out and "class coverage" in out


def test_entropy_is_not_compared_where_the_masks_store_too_few_uncertain_pixels(tmp_path, toy_target, truth):
    ids = list(truth)[:1]
    y, x = pick_pixels(truth[ids[0]], 30, 0)
    write_pixels(tmp_path / "sel.h5", "selection", ids, [truth[ids[0]].shape], [y], [x])
    write_masks(tmp_path / "masks.h5", truth, ids, wrong_rows=16, uncertain_rows=0)
    run_label(
        LabelOptions(
            selection=tmp_path / "sel.h5",
            target=toy_target,
            output=tmp_path / "labels.h5",
            masks=tmp_path / "masks.h5",
            quiet=True,
        )
    )
    compared = read_h5(tmp_path / "labels.h5")["summary"]["compared"]
    assert compared["entropy_error_percent"] is None and compared["random_error_percent"] is not None


def test_error_rates_on_a_hand_made_case(tmp_path, toy_target, truth, capsys):
    ids = list(truth)[:2]
    ys, xs, preds = [], [], []
    for k, image_id in enumerate(ids):
        y, x = pick_pixels(truth[image_id], 20, k, ignored=4)
        ys.append(y), xs.append(x)
        gt = truth[image_id][y, x]
        known = np.flatnonzero(gt != 255)
        pred = np.where(gt == 255, 3, gt).astype(np.uint8)
        pred[known[: len(known) // 2]] = (gt[known[: len(known) // 2]] + 1) % 19  # wrong on half the known pixels
        preds.append(pred)
    write_pixels(tmp_path / "sel.h5", "selection", ids, [truth[i].shape for i in ids], ys, xs, predicted=preds)
    write_masks(tmp_path / "masks.h5", truth, list(truth), wrong_rows=16)  # masks cover every image, in any order
    result = run_label(
        LabelOptions(
            selection=tmp_path / "sel.h5",
            target=toy_target,
            output=tmp_path / "labels.h5",
            masks=tmp_path / "masks.h5",
            quiet=True,
        )
    )
    assert result.error_selected == pytest.approx(50.0)
    known = sum(int((truth[i] != 255).sum()) for i in ids)
    wrong = sum(int((truth[i][:16] != 255).sum()) for i in ids)
    assert result.error_all == pytest.approx(100 * wrong / known)
    summary = read_h5(tmp_path / "labels.h5")["summary"]
    assert summary["error_rate_selected_percent"] == pytest.approx(50.0)
    assert summary["error_rate_all_percent"] == pytest.approx(100 * wrong / known, abs=1e-3)
    print_label(result)
    out = capsys.readouterr().out
    assert "50.0% of the selected pixels vs" in out

    # A selection without `predicted`: A's class at each pixel comes from the masks' prediction.
    write_pixels(tmp_path / "bare.h5", "selection", ids, [truth[i].shape for i in ids], ys, xs)
    bare = run_label(
        LabelOptions(
            selection=tmp_path / "bare.h5",
            target=toy_target,
            output=tmp_path / "bare_labels.h5",
            masks=tmp_path / "masks.h5",
            quiet=True,
        )
    )
    labels = artifacts.read_pixel_set(tmp_path / "bare_labels.h5", "labels")
    top = labels.y < 16
    known_sel = labels.label != 255
    assert bare.error_selected == pytest.approx(100 * (top & known_sel).sum() / known_sel.sum())
    assert bare.errors_covered == pytest.approx(
        100 * (top & known_sel).sum() / wrong
    )  # of A's wrong pixels, the share selected
    no_masks = run_label(
        LabelOptions(selection=tmp_path / "bare.h5", target=toy_target, output=tmp_path / "bare2.h5", quiet=True)
    )
    assert no_masks.error_selected is None and no_masks.error_all is None


def test_merge_accumulates_rounds(tmp_path, toy_target, truth):
    ids = list(truth)
    shape = truth[ids[0]].shape
    # Round 1 (earlier labels, as a person answered them): images 2 and 0, answers deliberately != truth.
    y1 = {ids[2]: np.array([1, 2, 3]), ids[0]: np.array([5, 6])}
    x1 = {ids[2]: np.array([10, 11, 12]), ids[0]: np.array([7, 8])}
    earlier_label = {k: np.full(len(v), 17, np.uint8) for k, v in y1.items()}
    write_pixels(
        tmp_path / "round1.h5",
        "labels",
        [ids[2], ids[0]],
        [shape, shape],
        [y1[ids[2]], y1[ids[0]]],
        [x1[ids[2]], x1[ids[0]]],
        labels=[earlier_label[ids[2]], earlier_label[ids[0]]],
    )
    # Round 2 selection: images 1 and 2; on image 2 it repeats pixel (y=2, x=11) and adds two.
    write_pixels(
        tmp_path / "sel2.h5",
        "selection",
        [ids[2], ids[1]],
        [shape, shape],
        [np.array([2, 30, 40]), np.array([0, 63])],
        [np.array([11, 60, 70]), np.array([0, 127])],
        predicted=[np.array([1, 2, 3]), np.array([4, 5])],
    )
    result = run_label(
        LabelOptions(
            selection=tmp_path / "sel2.h5",
            target=toy_target,
            output=tmp_path / "round2.h5",
            merge=tmp_path / "round1.h5",
            quiet=True,
        )
    )
    merged = artifacts.read_pixel_set(tmp_path / "round2.h5", "labels")
    assert merged.image_ids == [ids[0], ids[1], ids[2]]  # the dataset's order, images of both rounds
    assert merged.counts().tolist() == [2, 2, 5]
    assert result.already_labeled == 1 and result.labeled_round == 4 and result.labeled_total == 9
    rows = merged.pixels_of(2)
    pixels = list(zip(merged.y[rows].tolist(), merged.x[rows].tolist()))
    assert len(set(pixels)) == len(pixels) == 5  # union without duplicates
    by_pixel = dict(zip(pixels, merged.label[rows].tolist()))
    assert by_pixel[(2, 11)] == 17  # the earlier answer wins
    assert by_pixel[(1, 10)] == 17 and by_pixel[(3, 12)] == 17
    assert by_pixel[(30, 60)] == truth[ids[2]][30, 60] and by_pixel[(40, 70)] == truth[ids[2]][40, 70]
    rows = merged.pixels_of(1)
    assert merged.label[rows].tolist() == [truth[ids[1]][0, 0], truth[ids[1]][63, 127]]
    assert merged.label[merged.pixels_of(0)].tolist() == [17, 17]
    # predicted: unknown (255) for the earlier pixels, the selection's for the new ones.
    assert merged.predicted[merged.pixels_of(1)].tolist() == [4, 5]
    assert merged.predicted[merged.pixels_of(2)].tolist() == [255, 255, 255, 2, 3]
    data = read_h5(tmp_path / "round2.h5")
    assert [p["kind"] for p in data["lineage"]] == ["selection", "labels"]
    assert data["lineage"][1]["uuid"] == read_h5(tmp_path / "round1.h5")["uuid"]
    assert data["summary"]["already_labeled"] == 1

    # Earlier labels of another class set are refused, naming them.
    write_pixels(
        tmp_path / "synthia.h5",
        "labels",
        [ids[0]],
        [shape],
        [np.array([1])],
        [np.array([1])],
        labels=[np.array([0])],
        class_set="synthia16",
    )
    with pytest.raises(LaborError, match="synthia.h5.*class set"):
        run_label(
            LabelOptions(
                selection=tmp_path / "sel2.h5",
                target=toy_target,
                output=tmp_path / "round3.h5",
                merge=tmp_path / "synthia.h5",
                quiet=True,
            )
        )
    assert not (tmp_path / "round3.h5").exists()


def test_label_refuses_bad_inputs(tmp_path, toy_target, truth):
    ids = list(truth)
    shape = truth[ids[0]].shape
    write_pixels(
        tmp_path / "missing.h5",
        "selection",
        [ids[0], "nowhere/nowhere_000000_000019"],
        [shape, shape],
        [np.array([1]), np.array([2])],
        [np.array([1]), np.array([2])],
    )
    with pytest.raises(LaborError, match=r"missing\.h5.*'nowhere/nowhere_000000_000019'"):
        run_label(
            LabelOptions(selection=tmp_path / "missing.h5", target=toy_target, output=tmp_path / "out.h5", quiet=True)
        )
    write_pixels(tmp_path / "size.h5", "selection", [ids[0]], [(32, 64)], [np.array([1])], [np.array([1])])
    with pytest.raises(LaborError, match=r"size\.h5.*64x32 there but 128x64"):
        run_label(
            LabelOptions(selection=tmp_path / "size.h5", target=toy_target, output=tmp_path / "out.h5", quiet=True)
        )
    write_pixels(tmp_path / "outside.h5", "selection", [ids[0]], [shape], [np.array([64])], [np.array([1])])
    with pytest.raises(LaborError, match=r"outside\.h5.*outside image"):
        run_label(
            LabelOptions(selection=tmp_path / "outside.h5", target=toy_target, output=tmp_path / "out.h5", quiet=True)
        )
    write_pixels(tmp_path / "twice.h5", "selection", [ids[0]], [shape], [np.array([3, 3])], [np.array([4, 4])])
    with pytest.raises(LaborError, match=r"twice\.h5.*listed twice"):
        run_label(
            LabelOptions(selection=tmp_path / "twice.h5", target=toy_target, output=tmp_path / "out.h5", quiet=True)
        )
    # A labels artifact where a selection is expected.
    write_pixels(
        tmp_path / "labels.h5", "labels", [ids[0]], [shape], [np.array([1])], [np.array([1])], labels=[np.array([0])]
    )
    with pytest.raises(LaborError, match=r"labels\.h5: is a labels artifact, expected a selection"):
        run_label(
            LabelOptions(selection=tmp_path / "labels.h5", target=toy_target, output=tmp_path / "out.h5", quiet=True)
        )
    assert not (tmp_path / "out.h5").exists()
    # An existing output is not replaced without force (checked before any work).
    make_selection(tmp_path / "sel.h5", truth, ids[:1])
    (tmp_path / "out.h5").write_bytes(b"keep me")
    with pytest.raises(LaborError, match=r"out\.h5: already exists"):
        run_label(
            LabelOptions(selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "out.h5", quiet=True)
        )
    assert (tmp_path / "out.h5").read_bytes() == b"keep me"
    run_label(
        LabelOptions(
            selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "out.h5", force=True, quiet=True
        )
    )
    assert artifacts.read_pixel_set(tmp_path / "out.h5", "labels").image_ids == ids[:1]
    # Masks that lack an image of the selection.
    write_masks(tmp_path / "masks.h5", truth, ids[1:], wrong_rows=0)
    with pytest.raises(LaborError, match=rf"masks\.h5: has no image '{ids[0]}'"):
        run_label(
            LabelOptions(
                selection=tmp_path / "sel.h5",
                target=toy_target,
                output=tmp_path / "out2.h5",
                masks=tmp_path / "masks.h5",
                quiet=True,
            )
        )


# --- labor export / import ---------------------------------------------------------------------


def test_export_csv_then_import_gives_the_simulated_labels(tmp_path, toy_target, truth, capsys):
    ids = list(truth)
    make_selection(tmp_path / "sel.h5", truth, ids, count=15, ignored=3)
    run_label(
        LabelOptions(selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "simulated.h5", quiet=True)
    )
    exported = run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "export"))
    assert exported.points_file == tmp_path / "export" / "points.csv" and exported.pixels == 15 * len(ids)
    with open(exported.points_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["image_id", "x", "y", "predicted_class"]
    assert len(rows) == 15 * len(ids)
    # The annotator fills in a class column; ignored pixels answered "ignore" for some, left out for others.
    with open(tmp_path / "answers.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "x", "y", "class"])
        skipped = 0
        for k, row in enumerate(reversed(rows)):  # any order
            value = truth[row["image_id"]][int(row["y"]), int(row["x"])]
            if value == 255 and k % 2:
                skipped += 1
                continue
            writer.writerow([row["image_id"], row["x"], row["y"], "ignore" if value == 255 else NAMES[value]])
    result = run_import(
        ImportOptions(answers=tmp_path / "answers.csv", selection=tmp_path / "sel.h5", output=tmp_path / "imported.h5")
    )
    assert_same_labels(read_h5(tmp_path / "imported.h5"), read_h5(tmp_path / "simulated.h5"))
    assert result.unanswered == skipped > 0
    assert result.answered == 15 * len(ids) - skipped
    assert result.ignored == 3 * len(ids) - skipped
    imported = read_h5(tmp_path / "imported.h5")
    assert [p["kind"] for p in imported["lineage"]] == ["selection"]
    assert imported["summary"]["unanswered"] == skipped
    print_export(exported)
    print_import(result)
    out = capsys.readouterr().out
    assert "have no answer" in out


def test_export_json_then_import_with_class_indices(tmp_path, toy_target, truth):
    ids = list(truth)[1:3]
    make_selection(tmp_path / "sel.h5", truth, ids, count=10, ignored=1)
    run_label(
        LabelOptions(selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "simulated.h5", quiet=True)
    )
    exported = run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "export", fmt="json"))
    items = json.loads(exported.points_file.read_text())
    assert {"image_id", "x", "y"} <= set(items[0]) and len(items) == 20
    answers = []
    for item in items:
        value = int(truth[item["image_id"]][item["y"], item["x"]])
        if value != 255:  # unanswered -> ignored, like the ground truth's 255
            answers.append({"image_id": item["image_id"], "x": item["x"], "y": item["y"], "class": value})
    (tmp_path / "answers.json").write_text(json.dumps(answers, indent=2))
    result = run_import(
        ImportOptions(answers=tmp_path / "answers.json", selection=tmp_path / "sel.h5", output=tmp_path / "imported.h5")
    )
    assert_same_labels(read_h5(tmp_path / "imported.h5"), read_h5(tmp_path / "simulated.h5"))
    assert result.unanswered == 2 and result.error_selected == 0.0


def test_export_of_labels_and_overlays(tmp_path, toy_target, truth):
    ids = list(truth)
    make_selection(tmp_path / "sel.h5", truth, ids, count=8, ignored=1)
    run_label(LabelOptions(selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "labels.h5", quiet=True))
    result = run_export(
        ExportOptions(
            artifact=tmp_path / "labels.h5",
            output_dir=tmp_path / "export",
            target=toy_target,
            overlays=True,
            quiet=True,
        )
    )
    assert result.overlays == len(ids)
    with open(result.points_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["image_id", "x", "y", "predicted_class", "class"]
    for row in rows:
        value = truth[row["image_id"]][int(row["y"]), int(row["x"])]
        assert row["class"] == ("" if value == 255 else NAMES[value])
    dataset = open_dataset(toy_target, "train", "cityscapes19")
    labels = artifacts.read_pixel_set(tmp_path / "labels.h5", "labels")
    for i, image_id in enumerate(labels.image_ids):
        png = np.array(Image.open(tmp_path / "export" / (image_id.replace("/", "__") + ".png")))
        plain = dataset.read_image(dataset.index_of(image_id))
        assert png.shape == plain.shape
        rows = labels.pixels_of(i)
        assert (png[labels.y[rows], labels.x[rows]] != plain[labels.y[rows], labels.x[rows]]).any(axis=1).all()
    # An existing non-empty folder is refused without force, replaced with it.
    with pytest.raises(LaborError, match=r"export: folder exists and is not empty"):
        run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "export"))
    run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "export", fmt="json", force=True))
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["points.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no temporary left
    with pytest.raises(LaborUsageError, match="--format"):
        run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "x", fmt="xml"))
    with pytest.raises(LaborUsageError, match="--overlays needs"):
        run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "x", overlays=True))


def test_dense_selection_overlays_tint_every_selected_pixel(tmp_path, toy_target, truth):
    image_id = list(truth)[0]
    y, x = np.mgrid[20:40, 30:70]  # 800 pixels: too dense for rings
    write_pixels(tmp_path / "spl.h5", "selection", [image_id], [truth[image_id].shape], [y.ravel()], [x.ravel()])
    run_export(
        ExportOptions(
            artifact=tmp_path / "spl.h5", output_dir=tmp_path / "export", target=toy_target, overlays=True, quiet=True
        )
    )
    png = np.array(Image.open(tmp_path / "export" / (image_id.replace("/", "__") + ".png")))
    dataset = open_dataset(toy_target, "train", "cityscapes19")
    plain = dataset.read_image(dataset.index_of(image_id))
    changed = (png != plain).any(axis=2)
    assert changed[20:40, 30:70].all()
    assert not changed[:20].any() and not changed[40:].any()  # a tint, not rings spilling over


def write_text(path, text):
    path.write_text(text)
    return path


def test_import_refuses_bad_answers(tmp_path, truth):
    ids = list(truth)
    shape = truth[ids[0]].shape
    write_pixels(
        tmp_path / "sel.h5",
        "selection",
        ids[:2],
        [shape, shape],
        [np.array([1, 2]), np.array([3])],
        [np.array([4, 5]), np.array([6])],
    )
    sel = tmp_path / "sel.h5"
    header = "image_id,x,y,class\n"
    good = f"{ids[0]},4,1,road\n"
    cases = [
        (
            f"{header}{good}{ids[0]},5,3,road\n",
            r"outside\.csv: line 3: pixel \(x=5, y=3\).*not a pixel of the selection",
            "outside.csv",
        ),
        (
            f"{header}{good}{ids[3]},6,3,road\n",
            rf"other\.csv: line 3: image '{ids[3]}' is not in the selection",
            "other.csv",
        ),
        (f"{header}{good}{ids[1]},6,3,roadd\n", r"unknown\.csv: line 3: unknown class 'roadd'", "unknown.csv"),
        (f"{header}{good}{ids[1]},6,3,42\n", r"index\.csv: line 3: class index '42'", "index.csv"),
        (
            f"image,x,y,label\n{good}",
            r"header\.csv: malformed CSV: the header has no image_id, class column",
            "header.csv",
        ),
        (f"{header}{good}{ids[1]},6,3\n", r"fields\.csv: malformed CSV: line 3 has 3 fields", "fields.csv"),
        (f"{header}{ids[0]},four,1,road\n", r"coord\.csv: line 2: x 'four' is not an integer", "coord.csv"),
        (f"{header}{ids[0]},{10**20},1,road\n", rf"big\.csv: line 2: x '{10**20}' is out of range", "big.csv"),
        ("[" * 100000 + "]" * 100000, r"deep\.json: malformed JSON: nested too deeply", "deep.json"),
        (
            f'[{{"image_id": "{ids[0]}", "x": {"[" * 600}{"]" * 600}, "y": 1, "class": "road"}}]',
            r"nested\.json: item 1: x .* is not an integer",
            "nested.json",
        ),
        ("", r"empty\.csv: malformed CSV: empty file", "empty.csv"),
        (f"{header}{good}{ids[0]},4,1,sky\n", r"twice\.csv: lines 2 and 3 give pixel \(x=4, y=1\)", "twice.csv"),
        ('[{"image_id": "a", "x": 1,', r"broken\.json: malformed JSON: line 1", "broken.json"),
        ('{"image_id": "a"}', r"object\.json: malformed JSON: expected a JSON list", "object.json"),
        (
            f'[\n{{"image_id": "{ids[0]}", "x": 4, "y": 1, "class": "road"}},\n{{"image_id": "{ids[1]}", "x": 6, "y": 3, "class": "sand"}}\n]',
            r"name\.json: line 3: unknown class 'sand'",
            "name.json",
        ),
        (
            f'[\n{{"image_id": "{ids[0]}", "x": 4, "y": 1}}\n]',
            r"keys\.json: line 2: expected a JSON list of",
            "keys.json",
        ),
    ]
    for text, message, name in cases:
        with pytest.raises(LaborError, match=message):
            run_import(
                ImportOptions(answers=write_text(tmp_path / name, text), selection=sel, output=tmp_path / "out.h5")
            )
        assert not (tmp_path / "out.h5").exists()
    with pytest.raises(LaborError, match=r"nothing\.csv: no such file"):
        run_import(ImportOptions(answers=tmp_path / "nothing.csv", selection=sel, output=tmp_path / "out.h5"))
    # Good answers: the same answer twice is fine; case and spaces in class names do not matter.
    answers = write_text(tmp_path / "ok.csv", f"{header}{good}{good}{ids[1]},6,3, Traffic Light \n")
    result = run_import(ImportOptions(answers=answers, selection=sel, output=tmp_path / "out.h5"))
    labels = artifacts.read_pixel_set(tmp_path / "out.h5", "labels")
    assert labels.label.tolist() == [0, 255, 6]
    assert result.answered == 2 and result.unanswered == 1 and result.answers == 3
    with pytest.raises(LaborError, match=r"out\.h5: already exists"):
        run_import(ImportOptions(answers=answers, selection=sel, output=tmp_path / "out.h5"))
    run_import(ImportOptions(answers=answers, selection=sel, output=tmp_path / "out.h5", force=True))


# --- what a selection costs a person, and agreement on merged pixels ----------------------------


def write_spl_selection(path, image_id, shape, picture: str, top: int = 20, left: int = 10):
    """An SPL selection drawn as text (a digit: a selected pixel and A's class there), placed at (top, left)."""
    ys, xs, predicted = [], [], []
    for row, line in enumerate(picture.strip().split()):
        for column, char in enumerate(line):
            if char != ".":
                ys.append(top + row), xs.append(left + column), predicted.append(int(char))
    pixels = artifacts.PixelSet(
        image_ids=[image_id],
        sizes=np.array([shape], np.int32),
        offsets=np.array([0, len(ys)]),
        y=np.array(ys, np.int32),
        x=np.array(xs, np.int32),
        label=None,
        class_set="cityscapes19",
        class_names=NAMES,
        predicted=np.array(predicted, np.uint8),
    )
    with artifacts.create_artifact(path, "selection", {"mode": "spl"}) as f:
        artifacts.write_pixel_set(f, pixels)
    return pixels


# Regions at annotate's default grouping (--min-region 4, reach 2): the road block (12 pixels) with the
# 2-pixel road fragment 2 pixels away merged in; the building column (4); the car (4, 8-connected); the
# lone building pixel is left out (the near car is another class). Faithful (--min-region 1): 5 regions.
SPL_PICTURE = """
0000.00.......2
0000..........2
0000..........2
..............2
.......2..33...
.........33....
"""


def test_masks_show_what_an_spl_selection_costs_a_person(tmp_path, toy_target, truth, capsys):
    image_id = list(truth)[0]
    write_spl_selection(tmp_path / "spl.h5", image_id, truth[image_id].shape, SPL_PICTURE)
    write_masks(tmp_path / "masks.h5", truth, [image_id], wrong_rows=16, uncertain_rows=1)
    result = run_label(
        LabelOptions(
            selection=tmp_path / "spl.h5",
            target=toy_target,
            output=tmp_path / "labels.h5",
            masks=tmp_path / "masks.h5",
            quiet=True,
        )
    )
    summary = read_h5(tmp_path / "labels.h5")["summary"]
    questions = summary["questions"]
    assert questions["unit"] == "region" and questions["per_image"] == 3.0
    regions = questions["regions"]
    assert (regions["regions"], regions["merged_pixels"], regions["dropped_pixels"]) == (3, 2, 1)
    assert "regions_spanning_classes" in regions  # the ground truth was at hand
    assert questions["faithful_regions"]["regions"] == 5 and questions["faithful_regions"]["single_pixel_regions"] == 1
    assert summary["compared"]["keypresses_per_image"] == {"selection": 3.0, "points_same_budget": 23.0}
    print_label(result)
    out = capsys.readouterr().out
    assert "a person answers it in labor annotate: 23 pixels grouped into 3 regions (3.0 per image)" in out
    assert "2 pixels merged into a neighbour, 1 pixel left out" in out
    assert "keypresses / image" in out and "the faithful SPL (labor annotate --min-region 1): 5 regions" in out

    exported = run_export(ExportOptions(artifact=tmp_path / "spl.h5", output_dir=tmp_path / "export"))
    assert exported.unit == "region" and exported.regions.regions == 3 and exported.faithful.regions == 5
    print_export(exported)
    out = capsys.readouterr().out
    assert (
        "one key per region: 3.0 keypresses per image; the faithful SPL (--min-region 1) 5.0, point by point 23.0"
        in out
    )


def test_export_of_points_says_one_key_per_point(tmp_path, truth, capsys):
    make_selection(tmp_path / "sel.h5", truth, list(truth), count=10, ignored=0)
    print_export(run_export(ExportOptions(artifact=tmp_path / "sel.h5", output_dir=tmp_path / "export")))
    assert (
        f"a person answers it point by point: {10 * len(truth)} keypresses, 10.0 per image" in capsys.readouterr().out
    )


def test_agreement_of_two_label_sets_on_shared_pixels():
    from labor_cli.agreement import agreement

    def labels(ys, xs, values):
        return artifacts.PixelSet(
            image_ids=["a"],
            sizes=np.array([[10, 10]], np.int32),
            offsets=np.array([0, len(ys)]),
            y=np.array(ys, np.int32),
            x=np.array(xs, np.int32),
            label=np.array(values, np.uint8),
            class_set="cityscapes19",
            class_names=NAMES,
        )

    # Shared: (0,0) (0,1) (0,2) (0,3) (0,4); (0,4) is 255 in one of them; (5,5) and (6,6) in one set only.
    first = labels([0, 0, 0, 0, 0, 5], [0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 7, 3])
    second = labels([0, 0, 0, 0, 0, 6], [3, 2, 1, 0, 4, 6], [1, 1, 1, 0, 255, 3])
    found = agreement(first, second)
    assert (found.shared, found.compared, found.agreed) == (5, 4, 3)
    # Observed 3/4; chance: first 0,0,1,1 and second 0,1,1,1 -> (2*1 + 2*3) / 16 = 0.5; kappa = 0.5.
    assert found.kappa == pytest.approx(0.5)
    assert found.summary()["agreement_percent"] == 75.0
    assert "agree on 3 of the 4 pixels both give a class (75.0%, Cohen's kappa 0.50); 1 more" in found.describe(
        "A", "B"
    )
    none = agreement(first, labels([9], [9], [2]))
    assert (none.shared, none.compared, none.kappa) == (0, 0, None)


def test_merge_reports_how_the_earlier_labels_agree_with_the_ground_truth(tmp_path, toy_target, truth, capsys):
    image_id = list(truth)[0]
    shape = truth[image_id].shape
    y, x = pick_pixels(truth[image_id], 6, seed=4)
    earlier = truth[image_id][y, x].copy()
    earlier[0] = (earlier[0] + 1) % 19  # the earlier annotator got one pixel wrong
    earlier[1] = 255  # and was unsure of another
    write_pixels(tmp_path / "person.h5", "labels", [image_id], [shape], [y], [x], labels=[earlier])
    write_pixels(tmp_path / "sel.h5", "selection", [image_id], [shape], [y[:5]], [x[:5]])  # 5 of its 6 pixels
    result = run_label(
        LabelOptions(
            selection=tmp_path / "sel.h5",
            target=toy_target,
            output=tmp_path / "merged.h5",
            merge=tmp_path / "person.h5",
            quiet=True,
        )
    )
    assert (result.agreement.shared, result.agreement.compared, result.agreement.agreed) == (5, 4, 3)
    assert read_h5(tmp_path / "merged.h5")["summary"]["agreement_with_merged"]["agreement_percent"] == 75.0
    print_label(result)
    out = capsys.readouterr().out
    assert "and the ground truth agree on 3 of the 4 pixels both give a class (75.0%" in out
