"""The embedded toy domain pair (labor_cli.data.toy): layouts, determinism, classes, safety."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run_executable
from PIL import Image

from labor_cli.data import toy
from labor_cli.data.labels import CITYSCAPES_LABELS, cityscapes_id_table
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import ToyOptions

TINY = toy.PRESETS["tiny"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("toy") / "pair"
    return out, toy.make_toy_pair(ToyOptions(directory=out, seed=0, size="tiny"))


def _source_labels(root: Path, split: str) -> list[np.ndarray]:
    names = (root / "source" / f"{split}.txt").read_text().split()
    return [np.asarray(Image.open(root / "source" / "labels" / n)) for n in names]


def _target_labels(root: Path, split: str) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(p)) for p in sorted((root / "target" / "gtFine" / split).rglob("*_gtFine_labelIds.png"))
    ]


def test_source_layout(pair):
    root, _ = pair
    src = root / "source"
    w, h = TINY["source"]["size"]
    train = (src / "train.txt").read_text().splitlines()
    val = (src / "val.txt").read_text().splitlines()
    assert len(train) == TINY["source"]["train"] and len(val) == TINY["source"]["val"]
    assert train[0] == "00000.png" and not set(train) & set(val)
    assert all(re.fullmatch(r"\d{5}\.png", n) for n in train + val)
    assert sorted(p.name for p in (src / "images").iterdir()) == sorted(train + val)
    assert sorted(p.name for p in (src / "labels").iterdir()) == sorted(train + val)
    image, label = Image.open(src / "images" / train[0]), Image.open(src / "labels" / train[0])
    assert image.mode == "RGB" and image.size == (w, h)
    assert label.mode == "L" and label.size == (w, h)
    meta = json.loads((src / "labor-dataset.json").read_text())
    assert meta == {"name": "toy source", "train_size": [w, h], "seed": 0, "generator": "labor data toy"}


def test_target_layout(pair):
    root, _ = pair
    tgt = root / "target"
    w, h = TINY["target"]["size"]
    pattern = re.compile(r"([a-z]+)_(\d{6})_(\d{6})_leftImg8bit\.png")
    for split in ("train", "val"):
        images = sorted((tgt / "leftImg8bit" / split).rglob("*.png"))
        labels = sorted((tgt / "gtFine" / split).rglob("*_gtFine_labelIds.png"))
        assert len(images) == len(labels) == TINY["target"][split]
        cities = set()
        for img in images:
            m = pattern.fullmatch(img.name)
            assert m, img.name
            assert img.parent.name == m.group(1) and m.group(1) in toy.TARGET_CITIES[split]
            cities.add(m.group(1))
            gt = tgt / "gtFine" / split / m.group(1) / img.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
            assert gt.is_file()
            assert Image.open(img).mode == "RGB" and Image.open(img).size == (w, h)
            assert Image.open(gt).mode == "L" and Image.open(gt).size == (w, h)
            # instance ids, as Cityscapes has them (16-bit); no instances drawn: the label ids
            instances = Image.open(str(gt).replace("_labelIds.png", "_instanceIds.png"))
            assert instances.mode.startswith("I") and np.array_equal(np.asarray(instances), np.asarray(Image.open(gt)))
        assert len(list((tgt / "gtFine" / split).rglob("*.png"))) == 2 * len(images)
        assert cities == set(toy.TARGET_CITIES[split][: len(images)])
    assert not set(toy.TARGET_CITIES["train"]) & set(toy.TARGET_CITIES["val"])
    meta = json.loads((tgt / "labor-dataset.json").read_text())
    assert meta == {"name": "toy target", "train_size": [w, h], "seed": 0, "generator": "labor data toy"}


def test_labels_are_cityscapes_label_ids_and_all_19_classes_appear_in_every_split(pair):
    root, _ = pair
    table = cityscapes_id_table()
    allowed = {lab.label_id for lab in CITYSCAPES_LABELS} | {toy.VOID, toy.EGO_VEHICLE}
    for domain, read in (("source", _source_labels), ("target", _target_labels)):
        for split in ("train", "val"):
            ids = np.unique(np.concatenate([lab.ravel() for lab in read(root, split)]))
            assert set(ids.tolist()) <= allowed, (domain, split, ids)
            present = set(table[ids].tolist()) - {255}
            assert present == set(range(19)), (domain, split, sorted(set(range(19)) - present))
    # the target has the ego vehicle's bonnet (ignored); the source has no void at all
    assert any((lab == toy.EGO_VEHICLE).any() for lab in _target_labels(root, "train"))
    assert not any((table[lab] == 255).any() for lab in _source_labels(root, "train"))


def test_summary(pair):
    root, summary = pair
    assert summary["out_dir"] == str(root) and summary["seed"] == 0 and summary["size"] == "tiny"
    assert summary["seconds"] > 0
    assert summary["counts"] == {f"{d} {sp}": TINY[d][sp] for d in ("source", "target") for sp in ("train", "val")}
    for domain in ("source", "target"):
        d = summary["domains"][domain]
        assert d["images"] == {"train": TINY[domain]["train"], "val": TINY[domain]["val"]}
        assert d["image_size"] == list(TINY[domain]["size"])
        shares = d["class_share"]
        assert set(shares) == {lab.name for lab in CITYSCAPES_LABELS}
        assert all(v > 0 for v in shares.values())
        assert sum(shares.values()) + d["void_share"] == pytest.approx(1.0)
    assert summary["domains"]["source"]["layout"] == "gta5"
    assert summary["domains"]["target"]["layout"] == "cityscapes"


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(pair, tmp_path):
    root, _ = pair
    again = toy.make_toy_pair(ToyOptions(directory=tmp_path / "again", seed=0, size="tiny"))
    assert again["domains"] == {d: {**v, "path": str(tmp_path / "again" / d)} for d, v in pair[1]["domains"].items()}
    first, second = _files(root), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)

    toy.make_toy_pair(
        ToyOptions(directory=tmp_path / "pool", seed=0, size="tiny"), workers=2
    )  # a process pool draws the same
    pooled = _files(tmp_path / "pool")
    assert pooled.keys() == first.keys() and all(first[k] == pooled[k] for k in first)

    toy.make_toy_pair(ToyOptions(directory=tmp_path / "other", seed=1, size="tiny"))
    third = _files(tmp_path / "other")
    assert third.keys() == first.keys()
    pngs = [k for k in first if k.endswith(".png")]
    assert all(first[k] != third[k] for k in pngs if "/images/" in k or "leftImg8bit" in k)
    assert sum(first[k] != third[k] for k in pngs) == len(pngs)


def test_images_are_independent_of_the_split_sizes():
    # an image depends on (seed, domain, index) only: rendering it alone gives the same pixels
    a = toy.render(3, "target", 5, 128, 64)
    b = toy.render(3, "target", 5, 128, 64)
    c = toy.render(3, "target", 6, 128, 64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_progress_is_reported_for_every_image(tmp_path):
    calls = []
    toy.make_toy_pair(
        ToyOptions(directory=tmp_path / "p", size="tiny"), progress=lambda done, total: calls.append((done, total))
    )
    total = sum(TINY[d][s] for d in ("source", "target") for s in ("train", "val"))
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_refuses_an_existing_output_unless_forced(tmp_path):
    out = tmp_path / "pair"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(LaborError, match=re.escape(str(out))) as err:
        toy.make_toy_pair(ToyOptions(directory=out, size="tiny"))
    assert type(err.value) is LaborError and "\n" not in str(err.value)
    assert (out / "keep.txt").read_text() == "mine"

    toy.make_toy_pair(ToyOptions(directory=out, size="tiny", force=True))
    assert not (out / "keep.txt").exists()
    assert (out / "source" / "train.txt").is_file() and (out / "target" / "labor-dataset.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair"]  # no temporary folders left

    empty = tmp_path / "empty"
    empty.mkdir()
    toy.make_toy_pair(ToyOptions(directory=empty, size="tiny"))  # an empty folder is fine
    assert (empty / "source").is_dir()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(LaborError, match="not a directory"):
        toy.make_toy_pair(ToyOptions(directory=a_file, size="tiny", force=True))


def test_an_interrupted_run_leaves_nothing_behind(tmp_path):
    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    out = tmp_path / "pair"
    with pytest.raises(KeyboardInterrupt):
        toy.make_toy_pair(ToyOptions(directory=out, size="tiny"), progress=interrupt)
    assert list(tmp_path.iterdir()) == []

    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        toy.make_toy_pair(ToyOptions(directory=out, size="tiny", force=True), progress=interrupt)
    assert [p.name for p in tmp_path.iterdir()] == ["pair"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_options_are_usage_errors(tmp_path):
    with pytest.raises(LaborUsageError, match="huge"):
        toy.make_toy_pair(ToyOptions(directory=tmp_path / "x", size="huge"))
    with pytest.raises(LaborUsageError, match="seed"):
        toy.make_toy_pair(ToyOptions(directory=tmp_path / "x", seed=-1, size="tiny"))
    assert not (tmp_path / "x").exists()


def test_a_folder_without_a_name_is_refused_before_drawing(tmp_path, monkeypatch):
    """`labor data toy .` in an empty folder: the pair is drawn beside its folder and renamed into place,
    which '.' cannot be; refused up front, not after drawing every image."""
    monkeypatch.chdir(tmp_path)
    drawn = []
    with pytest.raises(LaborError, match=r"^\.: expected a folder name"):
        toy.make_toy_pair(ToyOptions(directory=Path("."), size="tiny"), progress=lambda done, total: drawn.append(done))
    assert drawn == [] and list(tmp_path.iterdir()) == []


def test_the_real_loaders_read_the_pair(pair):
    datasets = pytest.importorskip("labor_cli.data.datasets")
    root, _ = pair
    table = cityscapes_id_table()
    for kind, domain in (("gta5", "source"), ("cityscapes", "target")):
        w, h = TINY[domain]["size"]
        for split in ("train", "val"):
            ds = datasets.open_dataset(f"{kind}:{root / domain}", split)
            assert len(ds) == TINY[domain][split] == len(ds.image_ids)
            assert tuple(ds.train_size) == (w, h)
            seen = set()
            for i in range(len(ds)):
                image, label = ds.read_image(i), ds.read_label(i)
                assert image.shape == (h, w, 3) and image.dtype == np.uint8
                assert label.shape == (h, w) and label.dtype == np.uint8
                seen |= set(np.unique(label).tolist())
            assert seen - {255} == set(range(19)), (kind, split)
        # the loader's train ids are the label ids of the same image mapped through the table
        ds = datasets.open_dataset(f"{kind}:{root / domain}", "train")
        if domain == "source":
            raw = {p.stem: p for p in (root / domain / "labels").iterdir()}
        else:
            raw = {
                p.name[: -len("_gtFine_labelIds.png")]: p for p in (root / domain / "gtFine" / "train").rglob("*.png")
            }
        for i in (0, len(ds) - 1):
            key = Path(str(ds.image_ids[i])).name.split(".")[0].replace("_leftImg8bit", "")
            assert key in raw, (ds.image_ids[i], sorted(raw))
            assert np.array_equal(ds.read_label(i), table[np.asarray(Image.open(raw[key]))])


# ---------------------------------------------------------------------------------------------
# A second kind of shift: the night target


@pytest.fixture(scope="module")
def night_pair(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("toy-night") / "pair"
    return out, toy.make_toy_pair(ToyOptions(directory=out, seed=0, size="tiny", shift="night"))


def test_night_target_labels_every_class_in_every_split_with_the_same_source(pair, night_pair):
    root, summary = night_pair
    table = cityscapes_id_table()
    allowed = {lab.label_id for lab in CITYSCAPES_LABELS} | {toy.VOID, toy.EGO_VEHICLE}
    for split in ("train", "val"):
        ids = np.unique(np.concatenate([lab.ravel() for lab in _target_labels(root, split)]))
        assert set(ids.tolist()) <= allowed, (split, ids)
        assert set(table[ids].tolist()) - {255} == set(range(19)), split
    assert any((lab == toy.EGO_VEHICLE).any() for lab in _target_labels(root, "train"))
    # the same source as the photo pair's, byte for byte; the target in the same layout and sizes
    photo_files, night_files = _files(pair[0]), _files(root)
    assert photo_files.keys() == night_files.keys()
    assert all(photo_files[k] == night_files[k] for k in photo_files if k.startswith("source/"))
    w, h = TINY["target"]["size"]
    assert all(
        Image.open(root / k).size == (w, h) for k in night_files if k.startswith("target/") and k.endswith(".png")
    )
    meta = json.loads((root / "target" / "labor-dataset.json").read_text())
    assert meta == {
        "name": "toy target",
        "train_size": [w, h],
        "seed": 0,
        "generator": "labor data toy",
        "shift": "night",
    }
    assert summary["shift"] == summary["domains"]["target"]["shift"] == "night"
    assert pair[1]["shift"] == pair[1]["domains"]["target"]["shift"] == "photo"


def test_night_is_drawn_the_same_for_the_same_seed_and_unlike_the_photo_target(pair, night_pair, tmp_path):
    root, _ = night_pair
    toy.make_toy_pair(ToyOptions(directory=tmp_path / "again", seed=0, size="tiny", shift="night"), workers=2)
    first, second = _files(root), _files(tmp_path / "again")
    assert first.keys() == second.keys() and all(first[k] == second[k] for k in first)
    photo = _files(pair[0])
    target_pngs = [k for k in first if k.startswith("target/") and k.endswith(".png")]
    assert target_pngs and all(first[k] != photo[k] for k in target_pngs)


def test_night_looks_like_night(pair, night_pair):
    """Dark frames with lights in them and a dark sky: what makes the night target a night."""

    def target_images(root):
        paths = sorted((root / "target" / "leftImg8bit").rglob("*_leftImg8bit.png"))
        images = [np.asarray(Image.open(p)).astype(np.float64) for p in paths]
        gt = [
            Path(str(p).replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png", "_gtFine_labelIds.png"))
            for p in paths
        ]
        return images, [np.asarray(Image.open(p)) for p in gt]

    photo_images, _ = target_images(pair[0])
    night_images, night_labels = target_images(night_pair[0])
    photo_mean = np.mean([image.mean() for image in photo_images])
    night_mean = np.mean([image.mean() for image in night_images])
    assert night_mean < 0.6 * photo_mean, (night_mean, photo_mean)
    lit = [(image.max(axis=2) >= 250).any() for image in night_images]  # lamps, lit windows, car lights
    assert sum(lit) >= len(lit) / 2
    sky = np.concatenate([image[label == 23].mean(axis=1) for image, label in zip(night_images, night_labels)])
    assert sky.size and np.median(sky) < 50  # the sky is dark; Cityscapes' label id 23 is sky


def test_photo_is_the_default_shift_and_an_unknown_shift_is_a_usage_error(pair, tmp_path):
    toy.make_toy_pair(ToyOptions(directory=tmp_path / "photo", seed=0, size="tiny", shift="photo"))
    first, photo = _files(pair[0]), _files(tmp_path / "photo")
    assert first.keys() == photo.keys() and all(first[k] == photo[k] for k in first)
    a, b = toy.render(3, "target", 5, 128, 64), toy.render(3, "target", 5, 128, 64, shift="photo")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert toy.SHIFTS == ("photo", "night")
    with pytest.raises(LaborUsageError, match=r"unknown toy shift 'dusk'; known: photo, night") as err:
        toy.make_toy_pair(ToyOptions(directory=tmp_path / "x", size="tiny", shift="dusk"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# The source in SYNTHIA's layout, and the full-size preset


@pytest.fixture(scope="module")
def synthia_pair(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("toy-synthia") / "pair"
    return out, toy.make_toy_pair(ToyOptions(directory=out, seed=0, size="tiny", source_layout="synthia"))


def test_synthia_source_layout_has_16_bit_labels_with_the_id_in_the_first_channel(synthia_pair, pair):
    from labor_cli.data.datasets import decode_png, png_header

    root, summary = synthia_pair
    src = root / "source"
    w, h = TINY["source"]["synthia_size"]
    train = (src / "train.txt").read_text().split()
    assert train[0] == "0000000.png" and len(train) == TINY["source"]["train"]
    assert sorted(p.name for p in (src / "RGB").iterdir()) == sorted(p.name for p in (src / "GT" / "LABELS").iterdir())
    assert Image.open(src / "RGB" / train[0]).size == (w, h)
    label = src / "GT" / "LABELS" / train[0]
    assert png_header(label) == (w, h, 16, 2, 0)  # 16 bits per sample, colour
    # SYNTHIA's own ids, typed from its documentation: what each Cityscapes class is there
    synthia_id = {"road": 3, "sidewalk": 4, "building": 2, "wall": 21, "fence": 5, "pole": 7}
    synthia_id |= {"traffic light": 15, "traffic sign": 9, "vegetation": 6, "terrain": 16, "sky": 1}
    synthia_id |= {"person": 10, "rider": 17, "car": 8, "truck": 18, "bus": 19, "train": 20}
    synthia_id |= {"motorcycle": 12, "bicycle": 11}
    samples = decode_png(label.read_bytes())
    cityscapes_ids = samples[:, :, 1].astype(int) - 1000  # the second channel names the drawn class
    for lab in CITYSCAPES_LABELS:
        assert (samples[:, :, 0][cityscapes_ids == lab.label_id] == synthia_id[lab.name]).all(), lab.name
    assert (samples[:, :, 0] < 256).all() and (samples[:, :, 1] >= 256).all()  # Pillow's high bytes would be 0 and 3
    assert not np.asarray(Image.open(label).convert("RGB"))[:, :, 0].any()
    assert summary["source_layout"] == "synthia" and summary["domains"]["source"]["layout"] == "synthia"
    assert summary["domains"]["source"]["image_size"] == [w, h]
    assert json.loads((src / "labor-dataset.json").read_text())["train_size"] == [w, h]
    # the target is the gta5 pair's, byte for byte
    assert _files(root / "target") == _files(pair[0] / "target")


def test_the_synthia_loader_reads_the_toy_source_as_synthia16(synthia_pair):
    from labor_cli.data.datasets import decode_png, open_dataset
    from labor_cli.data.labels import class_names

    root, _ = synthia_pair
    ds = open_dataset(f"synthia:{root / 'source'}", "train", class_set="synthia16")
    assert ds.class_set == "synthia16" and len(ds) == TINY["source"]["train"]
    index_of = {name: i for i, name in enumerate(class_names("synthia16"))}
    seen = set()
    for i in range(len(ds)):
        cityscapes_ids = decode_png(ds.label_path(i).read_bytes())[:, :, 1].astype(int) - 1000
        expected = np.full(cityscapes_ids.shape, 255, np.uint8)
        for lab in CITYSCAPES_LABELS:
            expected[cityscapes_ids == lab.label_id] = index_of.get(lab.name, 255)  # terrain, truck, train: ignored
        got = ds.read_label(i)
        np.testing.assert_array_equal(got, expected)
        seen |= set(np.unique(got).tolist())
    assert seen - {255} == set(range(16))


def test_full_preset_draws_the_real_sizes_and_trains_at_the_protocols(tmp_path, monkeypatch):
    from labor_cli.data.datasets import open_dataset
    from labor_cli.data.toy import writer

    full = toy.PRESETS["full"]
    assert full["source"]["size"] == (1914, 1052) and full["source"]["synthia_size"] == (1280, 760)
    assert full["target"]["size"] == (2048, 1024)
    # drawn small, as the preset's layout is the same at any size
    small = {
        "source": {**full["source"], "size": (96, 53), "synthia_size": (64, 38)},
        "target": {**full["target"], "size": (128, 64)},
        "protocol_train_sizes": True,
    }
    monkeypatch.setitem(writer.PRESETS, "full", small)
    for layout, kind, protocol in (("gta5", "gta5", (1280, 720)), ("synthia", "synthia", (1280, 760))):
        out = tmp_path / layout
        toy.make_toy_pair(ToyOptions(directory=out, size="full", source_layout=layout))
        assert "train_size" not in json.loads((out / "source" / "labor-dataset.json").read_text())
        source = open_dataset(f"{kind}:{out / 'source'}", "train")
        assert len(source) == full["source"]["train"] and source.train_size == protocol
        assert source.read_label(0).shape == source.read_image(0).shape[:2]
        target = open_dataset(f"cityscapes:{out / 'target'}", "val")
        assert len(target) == full["target"]["val"] and target.train_size == (1024, 512)
        assert target.read_image(0).shape == (64, 128, 3)


def test_an_unknown_source_layout_is_a_usage_error(tmp_path):
    with pytest.raises(LaborUsageError, match="psd"):
        toy.make_toy_pair(ToyOptions(directory=tmp_path / "x", size="tiny", source_layout="psd"))
    done = run_executable("data", "toy", tmp_path / "y", "--source-layout", "psd", check=False)
    assert done.returncode == 2 and "psd" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_many_or_full_size_images_are_drawn_in_a_pool(monkeypatch):
    from labor_cli.data.toy import writer

    monkeypatch.setattr(writer.os, "cpu_count", lambda: 16)
    assert writer.default_workers(writer._plan(toy.PRESETS["tiny"], 0, "photo", "gta5")) == 1
    assert writer.default_workers(writer._plan(toy.PRESETS["default"], 0, "photo", "gta5")) == 8
    assert writer.default_workers(writer._plan(toy.PRESETS["full"], 0, "photo", "synthia")) == 8  # 12 images
    monkeypatch.setattr(writer.os, "cpu_count", lambda: 2)
    assert writer.default_workers(writer._plan(toy.PRESETS["full"], 0, "photo", "gta5")) == 2
