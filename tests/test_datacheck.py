"""labor data check: counts, sizes, unpaired files and unknown label ids, with known answers."""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from labor_cli.data.check import exit_code, print_data_check
from labor_cli.data.check import run_data_check as run_check
from labor_cli.errors import LaborError
from labor_cli.options import DataCheckOptions


def run_data_check(spec: str, workers: int | None = None):
    return run_check(DataCheckOptions(dataset=spec, workers=workers))


def copy_of(toy_pair, tmp_path, side):
    return shutil.copytree(toy_pair / side, tmp_path / side)


def test_a_clean_toy_pair_has_no_problems_and_the_right_counts(toy_pair, capsys):
    check = run_data_check(f"cityscapes:{toy_pair / 'target'}", workers=1)
    by_split = {s.split: s for s in check.splits}
    assert sorted(by_split) == ["train", "val"]
    for split, report in by_split.items():
        images = sorted((toy_pair / "target" / "leftImg8bit" / split).glob("*/*.png"))
        assert report.images == report.labeled == len(images)
        sizes = {}
        for path in images:
            width, height = Image.open(path).size
            sizes[f"{width}x{height}"] = sizes.get(f"{width}x{height}", 0) + 1
        assert report.sizes == sizes
        labels = sorted((toy_pair / "target" / "gtFine" / split).glob("*/*_labelIds.png"))
        present = np.concatenate([np.unique(np.array(Image.open(p))) for p in labels])
        assert report.ids_seen == sorted(set(present.tolist()))
    assert check.errors == [] and check.warnings == [] and exit_code(check) == 0
    print_data_check(check)
    assert "no problems found" in capsys.readouterr().out


def test_cityscapes_problems_are_found_and_judged(toy_pair, tmp_path):
    root = copy_of(toy_pair, tmp_path, "target")
    labels = sorted((root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    images = sorted((root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    labels[0].unlink()  # an image without its label
    foreign = np.array(Image.open(labels[1]))
    foreign[0, :3] = 200  # an id no Cityscapes label has
    Image.fromarray(foreign).save(labels[1])
    Image.fromarray(np.full((10, 20), 7, np.uint8)).save(labels[2])  # another size than its image
    orphan = labels[2].with_name("voxelstadt_999999_000019_gtFine_labelIds.png")
    Image.fromarray(np.full((64, 128), 7, np.uint8)).save(orphan)
    train_images = sorted((root / "leftImg8bit" / "train").glob("*/*.png"))
    train_images[0].write_bytes(b"\x89PNG\r\n")  # truncated
    check = run_data_check(f"cityscapes:{root}", workers=2)
    val = {s.split: s for s in check.splits}["val"]
    assert (val.images, val.labeled) == (len(images), len(images) - 1)
    assert val.unknown_ids == {200: 1} and val.unknown_examples[200] == str(labels[1])
    assert val.orphan_labels == [str(orphan)]
    assert len(val.size_mismatches) == 1 and "10x20" not in val.size_mismatches[0] and "20x10" in val.size_mismatches[0]
    errors, warnings = "\n".join(check.errors), "\n".join(check.warnings)
    assert "val: 1 image(s) without a label" in errors and "refuse" in errors
    assert "label ids outside the cityscapes id table: 200 in 1 file(s)" in errors
    assert f"train: 1 unreadable file(s): {train_images[0]}" in errors
    assert "val: 1 label(s) without an image" in warnings and "another size" in warnings
    assert exit_code(check) == 1
    report = json.loads(json.dumps(check.as_dict()))
    assert report["splits"][1]["unknown_ids"] == {"200": 1}


def test_a_label_folder_without_images_is_an_error(toy_pair, tmp_path):
    root = copy_of(toy_pair, tmp_path, "target")
    shutil.copytree(root / "gtFine" / "val", root / "gtFine" / "test")
    check = run_data_check(f"cityscapes:{root}", workers=1)
    test = {s.split: s for s in check.splits}["test"]
    assert test.images == 0 and len(test.orphan_labels) == 3
    assert any("no leftImg8bit/test folder" in e for e in check.errors)


def test_a_listed_train_split_does_not_call_the_val_labels_unpaired(toy_pair, tmp_path):
    """The toy source lists train.txt and val.txt: a label of val has no image *in train*, and is no orphan;
    a label no image claims at all is one, under 'all'."""
    root = copy_of(toy_pair, tmp_path, "source")
    clean = run_data_check(f"gta5:{root}", workers=1)
    assert clean.errors == [] and clean.warnings == [] and exit_code(clean) == 0
    orphan = root / "labels" / "99999.png"
    shutil.copy(next((root / "labels").glob("*.png")), orphan)
    by_split = {s.split: s for s in run_data_check(f"gta5:{root}", workers=1).splits}
    assert by_split["all"].orphan_labels == [str(orphan)]
    assert by_split["train"].orphan_labels == [] and by_split["val"].orphan_labels == []


def test_gta5_images_without_labels_are_a_warning(toy_pair, tmp_path):
    root = copy_of(toy_pair, tmp_path, "source")
    listed = [name.removesuffix(".png") for name in (root / "val.txt").read_text().split()]
    (root / "labels" / f"{listed[0]}.png").unlink()
    one = run_data_check(f"gta5:{root}", workers=1)
    two = run_data_check(f"gta5:{root}", workers=2)
    assert [s.split for s in one.splits] == ["all", "train", "val"]
    val = {s.split: s for s in one.splits}["val"]
    assert val.unlabeled == [listed[0]] and val.labeled == len(listed) - 1
    assert one.errors == [] and any("without a label" in w and "leave them out" in w for w in one.warnings)
    assert exit_code(one) == 0

    def without_times(check):
        return {k: v for k, v in check.as_dict().items() if k not in ("seconds", "images_per_s")}

    assert without_times(one) == without_times(two)


def write_png16_rgb(path, channels: np.ndarray) -> None:
    """A 16-bit RGB PNG (what SYNTHIA's labels are; Pillow cannot write one)."""
    height, width, _ = channels.shape
    rows = channels.astype(">u2").reshape(height, width * 6 // 2).view(np.uint8).reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_synthia_16_bit_ids_are_read_exactly(tmp_path):
    root = tmp_path / "synthia"
    (root / "RGB").mkdir(parents=True)
    (root / "GT" / "LABELS").mkdir(parents=True)
    for i, top in enumerate((22, 300)):  # 22: wall-less lanemarking, known; 300 (high byte 1): unknown
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "RGB" / f"{i:07d}.png")
        ids = np.zeros((6, 8, 3), np.uint16)
        ids[..., 0] = [[1, 2, 3, 4, 5, 6, 7, top]] * 6
        ids[..., 1] = 999  # instance ids in the second channel: not labels
        write_png16_rgb(root / "GT" / "LABELS" / f"{i:07d}.png", ids)
    check = run_data_check(f"synthia:{root}", workers=1)
    report = check.splits[0]
    assert report.ids_seen == [1, 2, 3, 4, 5, 6, 7, 22, 300]
    assert report.unknown_ids == {300: 1} and exit_code(check) == 1


def test_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(LaborError, match="no such folder"):
        run_data_check(f"gta5:{tmp_path / 'nothing'}")


def test_the_command_prints_the_report_and_exits_1_on_errors(toy_pair, tmp_path, capsys):
    from typer.testing import CliRunner

    from labor_cli.cli import app, main

    clean = CliRunner().invoke(app, ["data", "check", f"cityscapes:{toy_pair / 'target'}", "--workers", "1"])
    assert clean.exit_code == 0 and "no problems found" in clean.output
    root = copy_of(toy_pair, tmp_path, "target")
    label = sorted((root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))[0]
    Image.fromarray(np.full((64, 128), 99, np.uint8)).save(label)
    broken = CliRunner().invoke(app, ["data", "check", f"cityscapes:{root}", "--workers", "1", "--json"])
    report = json.loads(broken.output)
    assert broken.exit_code == 1 and report["dataset"] == f"cityscapes:{root}"
    assert report["errors"] == [f"val: label ids outside the cityscapes id table: 99 in 1 file(s), e.g. {label}"]
    with pytest.raises(SystemExit) as stop:
        main(["data", "check", f"gta5:{tmp_path / 'nothing'}"])
    err = capsys.readouterr().err
    assert (
        stop.value.code == 1
        and err == f"labor: error: gta5:{tmp_path / 'nothing'}: no such folder {tmp_path / 'nothing'}\n"
    )
