"""Datasets on disk (every kind in its real layout), label mapping, the 16-bit PNG reader, transforms."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import image_to_tensor
from PIL import Image

from labor_cli.data.datasets import (
    DATASET_KINDS,
    PNGError,
    decode_png,
    default_class_set,
    open_dataset,
    parse_dataset_spec,
    read_synthia_ids,
)
from labor_cli.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageNormalizer,
    resize_image,
    resize_label,
)
from labor_cli.data.views import SegmentationView
from labor_cli.errors import LaborError, LaborUsageError

# The oracle, typed from the paper's tables (docs/method.md), independently of labels.py.
PAPER_CITYSCAPES = {  # label id -> train id
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
PAPER_SYNTHIA16 = [3, 4, 2, 21, 5, 7, 15, 9, 6, 1, 10, 17, 8, 19, 12, 11]  # ids of indices 0..15

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# A raw PNG writer (zlib), with the filter type of every row chosen by the test


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_rows(rows: np.ndarray, types: list[int], bpp: int) -> bytes:
    out, prev = [], np.zeros(rows.shape[1], np.int32)
    for row, t in zip(rows.astype(np.int32), types):
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        pred = {0: 0, 1: left, 2: prev, 3: (left + prev) // 2, 4: _paeth(left, prev, upleft)}[t]
        out.append(bytes([t]) + ((row - pred) & 255).astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def encode_png(array: np.ndarray, filters=lambda y: y % 5, interlace: bool = False) -> bytes:
    """HxW or HxWxC uint8/uint16 -> PNG bytes, row y filtered with filter type filters(y)."""
    if array.ndim == 2:
        array = array[:, :, None]
    h, w, c = array.shape
    depth = 16 if array.dtype == np.uint16 else 8
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    bpp = c * depth // 8

    def raw(sub: np.ndarray) -> bytes:
        data = sub.astype(">u2" if depth == 16 else np.uint8).tobytes()
        rows = np.frombuffer(data, np.uint8).reshape(sub.shape[0], sub.shape[1] * bpp)
        return _filter_rows(rows, [filters(y) for y in range(sub.shape[0])], bpp)

    if interlace:
        body = b"".join(raw(array[y0::dy, x0::dx]) for x0, y0, dx, dy in ADAM7 if array[y0::dy, x0::dx].size)
    else:
        body = raw(array)
    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, int(interlace))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(body)) + _chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------
# Fixtures in the real layouts


def save(path: Path, array: np.ndarray, **kwargs) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return array


def random_rgb(h: int = 6, w: int = 8) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


ALL_CS_IDS = np.array(list(range(34)) + [255], dtype=np.uint8).reshape(5, 7)  # 0..33 and 255


def expected_cityscapes(ids: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: PAPER_CITYSCAPES.get(int(v), 255))(ids).astype(np.uint8)


@pytest.fixture
def cityscapes(tmp_path):
    root = tmp_path / "cityscapes"
    made = {}
    for split, cities in (("val", ("frankfurt", "aachen")), ("train", ("bochum",))):
        for city in cities:
            for n in (2, 1):
                base = f"{city}_000000_{n:06d}"
                image = save(root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png", random_rgb(5, 7))
                ids = ALL_CS_IDS if n == 1 else np.roll(ALL_CS_IDS, n)
                save(root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png", ids)
                # The other gtFine files must be ignored.
                save(root / "gtFine" / split / city / f"{base}_gtFine_color.png", random_rgb(5, 7))
                save(root / "gtFine" / split / city / f"{base}_gtFine_instanceIds.png", ids.astype(np.uint16) * 1000)
                made[f"{city}/{base}"] = (image, ids)
    return root, made


def make_gta5(root: Path, n: int = 4, missing_label: int | None = 3) -> dict:
    palette = [v for label_id in range(256) for v in (label_id, 255 - label_id, label_id // 2)]
    made = {}
    for k in range(1, n + 1):
        image = save(root / "images" / f"{k:05d}.png", random_rgb(5, 7))
        ids = np.roll(ALL_CS_IDS, k)
        if k != missing_label:
            label = Image.fromarray(ids, mode="L").convert("P")  # GTA5 labels are palette PNGs
            label.putpalette(palette)
            (root / "labels").mkdir(parents=True, exist_ok=True)
            label.save(root / "labels" / f"{k:05d}.png")
        made[f"{k:05d}"] = (image, ids)
    return made


SYNTHIA_IDS = np.array(
    [
        [3, 21, 789, 65535, 0, 1, 2],
        [4, 5, 6, 7, 8, 9, 10],
        [11, 12, 13, 14, 15, 16, 17],
        [18, 19, 20, 22, 256 + 3, 512 + 21, 1000],
    ],
    dtype=np.uint16,
)


def expected_synthia16(ids: np.ndarray) -> np.ndarray:
    index = {raw: i for i, raw in enumerate(PAPER_SYNTHIA16)}
    return np.vectorize(lambda v: index.get(int(v), 255))(ids).astype(np.uint8)


def make_synthia(root: Path) -> dict:
    made = {}
    for k, kind in ((1, "rgb48"), (2, "gray16"), (3, "rgba64"), (4, "rgb48-interlaced")):
        image = save(root / "RGB" / f"{k:07d}.png", random_rgb(4, 7))
        ids = np.roll(SYNTHIA_IDS, k, axis=1)
        path = root / "GT" / "LABELS" / f"{k:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        instances = RNG.integers(0, 65536, ids.shape + (3,), dtype=np.uint16)  # must not leak
        if kind == "gray16":
            path.write_bytes(encode_png(ids))
        elif kind == "rgba64":
            path.write_bytes(encode_png(np.dstack([ids, instances]), filters=lambda y: 4 - y % 5))
        else:
            path.write_bytes(encode_png(np.dstack([ids, instances[..., :2]]), interlace="interlaced" in kind))
        made[f"{k:07d}"] = (image, ids)
    return made


def make_folder(root: Path, classes=("sky", "road", "car", "Traffic_Light")) -> dict:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n\n")
    made = {}
    values = np.array([[0, 1, 2, 3, 4, 255]], dtype=np.uint8).repeat(3, axis=0)
    for stem in ("b", "a"):
        image = save(root / "images" / f"{stem}.png", random_rgb(3, 6))
        save(root / "labels" / f"{stem}.png", values)
        made[stem] = (image, values)
    save(root / "images" / "c.jpg", random_rgb(3, 6), quality=95)
    save(root / "labels" / "c.png", values)
    (root / "images" / "notes.txt").write_text("not an image")
    return made


# ---------------------------------------------------------------------------------------------
# Label tables, through the real loaders


def test_every_cityscapes_and_gta5_label_id_maps_as_paper_says(tmp_path):
    label_ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = expected_cityscapes(label_ids)
    assert sorted(set(expected.ravel())) == list(range(19)) + [255]
    for ignored in (0, 1, 6, 9, 34, 255):
        assert expected[label_ids == ignored] == 255

    root = tmp_path / "cs"
    save(root / "leftImg8bit" / "val" / "x" / "x_0_0_leftImg8bit.png", random_rgb(16, 16))
    save(root / "gtFine" / "val" / "x" / "x_0_0_gtFine_labelIds.png", label_ids)
    gta = tmp_path / "gta"
    save(gta / "images" / "00001.png", random_rgb(16, 16))
    save(gta / "labels" / "00001.png", label_ids)
    for spec in (f"cityscapes:{root}", f"gta5:{gta}"):
        ds = open_dataset(spec, "val" if spec.startswith("city") else "train")
        np.testing.assert_array_equal(ds.read_label(0), expected)
        for label_id, train_id in PAPER_CITYSCAPES.items():
            assert ds.read_label(0)[label_ids == label_id].tolist() == [train_id]

    # The 16-class protocol keeps the same pixels by name (terrain, truck, train -> ignore).
    ds = open_dataset(f"cityscapes:{root}", "val", class_set="synthia16")
    got = ds.read_label(0)
    for label_id, name_index in ((7, 0), (12, 3), (23, 9), (33, 15), (22, 255), (27, 255), (31, 255)):
        assert got[label_ids == label_id].tolist() == [name_index]


def test_every_synthia_id_maps_as_paper_says(tmp_path):
    root = tmp_path / "synthia"
    ids = np.arange(0, 48, dtype=np.uint16).reshape(6, 8)
    ids[5, 4:] = [256 + 21, 21 * 256, 1000, 65535]
    save(root / "RGB" / "0000001.png", random_rgb(6, 8))
    (root / "GT" / "LABELS").mkdir(parents=True)
    (root / "GT" / "LABELS" / "0000001.png").write_bytes(encode_png(np.dstack([ids, ids * 7, ids])))
    ds = open_dataset(f"synthia:{root}", "all", class_set="synthia16")
    got = ds.read_label(0)
    np.testing.assert_array_equal(got, expected_synthia16(ids))
    for index, raw in enumerate(PAPER_SYNTHIA16):
        assert got[ids == raw].tolist() == [index]
    assert got[ids == 21].tolist() == [3]  # wall
    assert set(got[ids > 21].tolist()) == {255}
    assert got[ids == 0].tolist() == [255]


# ---------------------------------------------------------------------------------------------
# Each kind reads its fixture


def test_cityscapes_reads_its_layout(cityscapes):
    root, made = cityscapes
    ds = open_dataset(f"cityscapes:{root}", "val")
    val_ids = sorted(k for k in made if not k.startswith("bochum"))
    assert ds.image_ids == val_ids
    assert ds.image_ids[0] == "aachen/aachen_000000_000001"
    assert (ds.kind, ds.split, ds.class_set, ds.spec) == ("cityscapes", "val", "cityscapes19", f"cityscapes:{root}")
    assert ds.train_size == (1024, 512) and len(ds) == 4
    for i, image_id in enumerate(ds.image_ids):
        image, ids = made[image_id]
        np.testing.assert_array_equal(ds.read_image(i), image)
        np.testing.assert_array_equal(ds.read_label(i), expected_cityscapes(ids))
        assert ds.read_label(i).dtype == np.uint8
        assert ds.image_size(i) == (7, 5)
        assert ds.index_of(image_id) == i
        assert ds.label_path(i).name.endswith("_gtFine_labelIds.png")
        assert ds.image_path(i).name.endswith("_leftImg8bit.png")
    assert open_dataset(f"cityscapes:{root}", "train").image_ids == [
        "bochum/bochum_000000_000001",
        "bochum/bochum_000000_000002",
    ]
    with pytest.raises(LaborError, match="nowhere/x_0_0"):
        ds.index_of("nowhere/x_0_0")


def test_gta5_reads_its_layout_and_skips_missing_labels(tmp_path):
    root = tmp_path / "GTA5"
    made = make_gta5(root, n=4, missing_label=3)
    ds = open_dataset(f"gta5:{root}", "train")
    assert ds.image_ids == ["00001", "00002", "00004"]
    assert ds.skipped_ids == ["00003"]
    assert ds.train_size == (1280, 720)
    for i, image_id in enumerate(ds.image_ids):
        image, ids = made[image_id]
        np.testing.assert_array_equal(ds.read_image(i), image)
        np.testing.assert_array_equal(ds.read_label(i), expected_cityscapes(ids))
    assert open_dataset(f"gta5:{root}", "all").image_ids == ds.image_ids
    unlabeled = open_dataset(f"gta5:{root}", "all", require_labels=False)
    assert unlabeled.image_ids == ["00001", "00002", "00003", "00004"]
    assert unlabeled.label_path(2) is None
    with pytest.raises(LaborError, match="00003"):
        unlabeled.read_label(2)


def test_gta5_split_lists(tmp_path):
    root = tmp_path / "GTA5"
    make_gta5(root, n=5, missing_label=3)
    (root / "val.txt").write_text("00005.png\n00002.png\n\n00003.png\n")
    ds = open_dataset(f"gta5:{root}", "val")
    assert ds.image_ids == ["00002", "00005"]  # sorted; 00003 has no label
    (root / "train.txt").write_text("00001.png\n")
    assert open_dataset(f"gta5:{root}", "train").image_ids == ["00001"]
    with pytest.raises(LaborError, match=r"test\.txt") as err:
        open_dataset(f"gta5:{root}", "test")
    assert str(root) in str(err.value)
    (root / "bad.txt").write_text("00001.png\n00099.png\n")
    with pytest.raises(LaborError, match=r"bad\.txt: line 2: '00099\.png'"):
        open_dataset(f"gta5:{root}", "bad")


def test_synthia_reads_16_bit_first_channel(tmp_path):
    root = tmp_path / "RAND_CITYSCAPES"
    made = make_synthia(root)
    ds = open_dataset(f"synthia:{root}", "train", class_set=default_class_set("synthia"))
    assert ds.class_set == "synthia16" and ds.train_size == (1280, 760)
    assert ds.image_ids == ["0000001", "0000002", "0000003", "0000004"]
    for i, image_id in enumerate(ds.image_ids):
        image, ids = made[image_id]
        np.testing.assert_array_equal(read_synthia_ids(ds.label_path(i)), ids)
        np.testing.assert_array_equal(ds.read_image(i), image)
        np.testing.assert_array_equal(ds.read_label(i), expected_synthia16(ids))
    raw = read_synthia_ids(ds.label_path(0))
    assert raw.dtype == np.uint16
    assert {3, 21, 789, 65535} <= set(raw.ravel().tolist())


def test_folder_reads_its_layout_by_class_name(tmp_path):
    root = tmp_path / "mine"
    made = make_folder(root)
    ds = open_dataset(f"folder:{root}", "all")
    assert ds.image_ids == ["a", "b", "c"] and ds.train_size is None
    # folder values 0 sky, 1 road, 2 car, 3 traffic light; 4 is not listed; 255 ignore
    expected19 = np.array([10, 0, 13, 6, 255, 255], np.uint8)
    for i, stem in enumerate(("a", "b")):
        image, _ = made[stem]
        np.testing.assert_array_equal(ds.read_image(i), image)
        np.testing.assert_array_equal(ds.read_label(i), np.tile(expected19, (3, 1)))
    assert ds.read_image(2).shape == (3, 6, 3)  # the jpg
    ds16 = open_dataset(f"folder:{root}", "train", class_set="synthia16")
    np.testing.assert_array_equal(ds16.read_label(0)[0], [9, 0, 12, 6, 255, 255])


def test_split_file_restricts_a_split(tmp_path, cityscapes):
    root, _ = cityscapes
    split_file = tmp_path / "few.txt"
    split_file.write_text(
        "frankfurt/frankfurt_000000_000002\n# a comment\naachen/aachen_000000_000001_leftImg8bit.png\n"
    )
    ds = open_dataset(f"cityscapes:{root}", "val", split_file=split_file)
    assert ds.image_ids == ["aachen/aachen_000000_000001", "frankfurt/frankfurt_000000_000002"]
    split_file.write_text("aachen/aachen_000000_000001\nbochum/bochum_000000_000001\n")
    with pytest.raises(LaborError, match=r"few\.txt: line 2: image id 'bochum/bochum_000000_000001'"):
        open_dataset(f"cityscapes:{root}", "val", split_file=split_file)
    gta = tmp_path / "gta"
    make_gta5(gta, n=4, missing_label=3)
    split_file.write_text("00004\n00002.png\n")
    assert open_dataset(f"gta5:{gta}", "all", split_file=split_file).image_ids == ["00002", "00004"]
    split_file.write_text("00003\n")  # exists, but has no label
    with pytest.raises(LaborError, match=r"few\.txt.*00003"):
        open_dataset(f"gta5:{gta}", "all", split_file=split_file)


def test_unlabeled_target_split(tmp_path):
    root = tmp_path / "cs"
    save(root / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png", random_rgb())
    with pytest.raises(LaborError, match=r"gtFine/test"):
        open_dataset(f"cityscapes:{root}", "test")
    ds = open_dataset(f"cityscapes:{root}", "test", require_labels=False)
    assert ds.image_ids == ["berlin/berlin_000000_000019"] and ds.label_path(0) is None
    with pytest.raises(LaborError, match="berlin_000000_000019_gtFine_labelIds.png"):
        ds.read_label(0)
    assert ds.read_image(0).shape == (6, 8, 3)


def test_train_size_setting_overrides_the_default(tmp_path):
    root = tmp_path / "GTA5"
    make_gta5(root, n=2, missing_label=None)
    (root / "labor-dataset.json").write_text(json.dumps({"train_size": [64, 32]}))
    assert open_dataset(f"gta5:{root}", "train").train_size == (64, 32)
    (root / "labor-dataset.json").write_text(json.dumps({"train_size": [64]}))
    with pytest.raises(LaborError, match=r"labor-dataset\.json: train_size"):
        open_dataset(f"gta5:{root}", "train")
    (root / "labor-dataset.json").write_text("{not json")
    with pytest.raises(LaborError, match=r"labor-dataset\.json"):
        open_dataset(f"gta5:{root}", "train")


# ---------------------------------------------------------------------------------------------
# The 16-bit PNG reader (TorchCodec's libpng)


@pytest.mark.parametrize(
    "filters",
    [lambda y: 0, lambda y: 1, lambda y: 2, lambda y: 3, lambda y: 4, lambda y: y % 5, lambda y: (3 * y + 2) % 5],
    ids=["none", "sub", "up", "average", "paeth", "mixed", "mixed2"],
)
def test_decode_png_every_filter_type(filters):
    # 8-bit RGB and 16-bit grey: Pillow reads them exactly, which checks the writer too.
    rgb8 = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    data = encode_png(rgb8, filters)
    np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(data))), rgb8)
    np.testing.assert_array_equal(decode_png(data), rgb8)
    grey16 = RNG.integers(0, 65536, (7, 5), dtype=np.uint16)
    data = encode_png(grey16, filters)
    np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(data))), grey16)
    np.testing.assert_array_equal(decode_png(data)[:, :, 0], grey16)
    # 16-bit colour, which Pillow cannot give exactly.
    for channels in (2, 3, 4):
        for h, w in ((6, 13), (1, 1), (1, 9), (8, 1)):
            array = RNG.integers(0, 65536, (h, w, channels), dtype=np.uint16)
            array[0, 0, 0] = 21
            data = encode_png(array, filters)
            decoded = decode_png(data)
            assert decoded.dtype == np.uint16
            np.testing.assert_array_equal(decoded, array)
            np.testing.assert_array_equal(decoded[:, :, 0], array[:, :, 0])
            np.testing.assert_array_equal(decoded[:, :, -1], array[:, :, -1])
            np.testing.assert_array_equal(decode_png(encode_png(array, filters, interlace=True)), array)


def test_pillow_drops_low_byte_of_48_bit_png_but_we_do_not(tmp_path):
    ids = np.array([[3, 21, 300]], dtype=np.uint16)
    path = tmp_path / "label.png"
    path.write_bytes(encode_png(np.dstack([ids, ids, ids])))
    assert read_synthia_ids(path).tolist() == [[3, 21, 300]]


def test_decode_png_rejects_damaged_files(tmp_path):
    data = encode_png(RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16))
    with pytest.raises(PNGError, match="Out of bound read"):  # libpng's word for a truncated file
        decode_png(data[:-20])
    damaged = bytearray(data)
    damaged[45] ^= 0xFF  # inside IDAT: the deflate stream breaks before the chunk's CRC is read
    with pytest.raises(PNGError, match="IDAT"):
        decode_png(bytes(damaged))
    damaged = bytearray(data)
    damaged[-13] ^= 0x01  # the IDAT chunk's CRC itself
    with pytest.raises(PNGError, match="CRC"):
        decode_png(bytes(damaged))
    with pytest.raises(PNGError, match="\\S") as error:
        decode_png(b"\x89PNG\r\n\x1a\n not really")
    assert "\n" not in str(error.value) and ".cpp" not in str(error.value)
    bad_filter = encode_png(np.zeros((2, 2, 3), np.uint16), filters=lambda y: 0)
    body = bytearray(zlib.decompress(bad_filter[33 + 8 : -12 - 4]))
    body[0] = 7
    header = struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0)
    forged = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(body)))
        + _chunk(b"IEND", b"")
    )
    with pytest.raises(PNGError, match="bad adaptive filter value"):
        decode_png(forged)
    # Through a dataset: a LaborError naming the file.
    root = tmp_path / "synthia"
    save(root / "RGB" / "0000001.png", random_rgb(4, 5))
    (root / "GT" / "LABELS").mkdir(parents=True)
    label = root / "GT" / "LABELS" / "0000001.png"
    label.write_bytes(data[:-20])
    ds = open_dataset(f"synthia:{root}", "train")
    with pytest.raises(LaborError, match=str(label)):
        ds.read_label(0)


# ---------------------------------------------------------------------------------------------
# Bad inputs


def test_specs():
    assert parse_dataset_spec("gta5:/data/GTA5") == ("gta5", Path("/data/GTA5"))
    assert parse_dataset_spec("folder:rel/dir") == ("folder", Path("rel/dir"))
    assert DATASET_KINDS == ("cityscapes", "gta5", "synthia", "folder")
    assert default_class_set("synthia") == "synthia16"
    assert default_class_set("gta5") == default_class_set("folder") == "cityscapes19"
    with pytest.raises(LaborUsageError, match="imagenet:/data/x"):
        parse_dataset_spec("imagenet:/data/x")
    for bad in ("/data/GTA5", "gta5:", ":/data/x"):
        with pytest.raises(LaborUsageError, match="KIND:PATH"):
            parse_dataset_spec(bad)
    with pytest.raises(LaborUsageError, match="class set"):
        open_dataset("gta5:/nowhere", "train", class_set="coco")


def test_missing_root_and_wrong_layout(tmp_path, cityscapes):
    cs_root, _ = cityscapes
    with pytest.raises(LaborError, match=f"no such folder {tmp_path / 'nope'}"):
        open_dataset(f"gta5:{tmp_path / 'nope'}", "train")
    gta = tmp_path / "GTA5"
    make_gta5(gta, n=2, missing_label=None)
    with pytest.raises(LaborError) as err:
        open_dataset(f"cityscapes:{gta}", "val")
    message = str(err.value)
    assert f"no leftImg8bit/val folder under {gta}" in message and "gta5:" in message
    assert "\n" not in message
    with pytest.raises(LaborError, match=f"no images folder under {cs_root}.*cityscapes"):
        open_dataset(f"gta5:{cs_root}", "train")
    with pytest.raises(LaborError, match=f"no RGB folder under {gta}"):
        open_dataset(f"synthia:{gta}", "train")
    with pytest.raises(LaborError, match=f"leftImg8bit/test folder under {cs_root}"):
        open_dataset(f"cityscapes:{cs_root}", "test")
    with pytest.raises(LaborError, match=f"no classes.txt under {gta}"):
        open_dataset(f"folder:{gta}", "all")


def test_empty_folders(tmp_path):
    root = tmp_path / "GTA5"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    with pytest.raises(LaborError, match=f"no \\*.png images in {root / 'images'}"):
        open_dataset(f"gta5:{root}", "train")
    save(root / "images" / "00001.png", random_rgb())
    with pytest.raises(LaborError, match=f"gta5:{root}: no image of split 'train' has a label"):
        open_dataset(f"gta5:{root}", "train")
    cs = tmp_path / "cs"
    (cs / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    with pytest.raises(LaborError, match=f"no <city>/\\*_leftImg8bit.png images under {cs}"):
        open_dataset(f"cityscapes:{cs}", "val")


def test_corrupt_images(tmp_path):
    root = tmp_path / "GTA5"
    make_gta5(root, n=2, missing_label=None)
    (root / "images" / "00001.png").write_bytes(b"this is not a png")
    good = (root / "images" / "00002.png").read_bytes()
    (root / "images" / "00002.png").write_bytes(good[: len(good) // 2])
    (root / "labels" / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    ds = open_dataset(f"gta5:{root}", "train")
    for i in (0, 1):
        with pytest.raises(LaborError, match=f"{ds.image_path(i)}: cannot read image"):
            ds.read_image(i)
    with pytest.raises(LaborError, match=f"{ds.image_path(0)}: cannot read image"):
        ds.image_size(0)
    with pytest.raises(LaborError, match=f"{ds.label_path(1)}: cannot read label"):
        ds.read_label(1)
    save(root / "labels" / "00001.png", random_rgb(5, 7))  # a colour image is not a label
    with pytest.raises(LaborError, match=f"{ds.label_path(0)}: expected a single-channel"):
        ds.read_label(0)


def test_unknown_class_name_in_classes_txt(tmp_path):
    root = tmp_path / "mine"
    make_folder(root, classes=("road", "sky", "tree"))
    with pytest.raises(LaborError, match=f"{root / 'classes.txt'}: line 3: unknown class name 'tree'"):
        open_dataset(f"folder:{root}", "all")


# ---------------------------------------------------------------------------------------------
# Transforms


def test_image_normalizer_keeps_the_memory_format_and_refuses_floats():
    images = torch.from_numpy(RNG.integers(0, 256, (2, 3, 4, 5), dtype=np.uint8))
    out = ImageNormalizer(memory_format=torch.channels_last)(images)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        out, torch.stack([image_to_tensor(im.permute(1, 2, 0).numpy()) for im in images]), rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="uint8"):
        ImageNormalizer()(out)


def test_image_to_tensor_normalises():
    image = RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 4, 5) and tensor.dtype == torch.float32
    for c in range(3):
        expected = (image[:, :, c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(tensor[c].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_resize_label_is_nearest_and_resize_image_bilinear():
    label = RNG.choice(np.array([0, 3, 7, 255], np.uint8), size=(9, 13))
    for size in ((26, 18), (5, 4), (40, 7)):
        resized = resize_label(label, size)
        assert resized.shape == (size[1], size[0]) and resized.dtype == np.uint8
        assert set(np.unique(resized)) <= {0, 3, 7, 255}
    two = np.zeros((2, 2, 3), np.uint8)
    two[:, 1] = 200
    up = resize_image(two, (8, 2))
    assert up.shape == (2, 8, 3) and 0 < up[0, 3, 0] < 200  # blended, not nearest
    assert resize_image(two, (2, 2)) is two


def test_segmentation_view(tmp_path):
    root = tmp_path / "GTA5"
    made = make_gta5(root, n=2, missing_label=None)
    ds = open_dataset(f"gta5:{root}", "train")
    item = SegmentationView(ds, (14, 10))[1]
    assert item["index"] == 1
    assert item["image"].shape == (3, 10, 14) and item["image"].dtype == torch.uint8  # normalised on the device
    assert item["label"].shape == (10, 14) and item["label"].dtype == torch.uint8
    assert set(item["label"].unique().tolist()) <= set(expected_cityscapes(made["00002"][1]).ravel().tolist())
    native = SegmentationView(ds, None)[0]
    image, ids = made["00001"]
    assert native["image"].permute(1, 2, 0).numpy().tolist() == image.tolist()
    torch.testing.assert_close(ImageNormalizer()(native["image"][None])[0], image_to_tensor(image), rtol=0, atol=0)
    assert native["label"].tolist() == expected_cityscapes(ids).astype(np.int64).tolist()
    assert "label" not in SegmentationView(ds, None, with_labels=False)[0]
    batch = next(iter(torch.utils.data.DataLoader(SegmentationView(ds, (14, 10)), batch_size=2)))
    assert batch["image"].shape == (2, 3, 10, 14) and batch["index"].tolist() == [0, 1]
