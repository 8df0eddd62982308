"""labor extract's loader and writer outside the networks: the fast decode, the exact halving
resize, the batch hand-off and the buffered masks writer keep the artifact's content what the
plain Pillow path and the per-image writer gave; `labor bench --pipeline` reports every step."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import run_executable, run_main
from PIL import Image, PngImagePlugin

from labor_cli import artifacts
from labor_cli.data.datasets import read_rgb
from labor_cli.data.transforms import resize_image


def scene(height: int, width: int, seed: int) -> np.ndarray:
    """A street-like test image: a vertical gradient, flat blocks and noise (every rounding case)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    image = (np.array([70, 130, 180]) * (1 - y) + np.array([128, 64, 128]) * y) * np.ones((1, width, 1))
    for _ in range(6):
        top, left = rng.integers(0, height), rng.integers(0, width)
        image[top : top + rng.integers(2, height), left : left + rng.integers(2, width)] = rng.integers(0, 256, 3)
    image += rng.normal(0, 20, image.shape)
    return image.clip(0, 255).astype(np.uint8)


def pillow_rgb(path: Path) -> np.ndarray:
    """How images were read before: Pillow, converted to RGB."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def pillow_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def test_images_read_as_pillow_reads_them_whichever_decoder_reads_them(tmp_path):
    rgb = scene(37, 53, 0)
    gamma = PngImagePlugin.PngInfo()
    gamma.add(b"gAMA", struct.pack(">I", 45455))  # libpng must not apply it (Pillow does not)
    files = {
        "rgb.png": (Image.fromarray(rgb), {}),
        "rgb-gamma-trns.png": (
            Image.fromarray(rgb),
            {"pnginfo": gamma, "transparency": tuple(int(v) for v in rgb[0, 0])},
        ),
        "rgba.png": (Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])), {}),
        "grey.png": (Image.fromarray(rgb[:, :, 0]), {}),
        "palette.png": (Image.fromarray(rgb).convert("P"), {}),
        "photo.jpg": (Image.fromarray(rgb), {"quality": 90}),
    }
    for name, (image, options) in files.items():
        image.save(tmp_path / name, **options)
        read = read_rgb(tmp_path / name)
        assert read.dtype == np.uint8 and read.shape == (37, 53, 3), name
        np.testing.assert_array_equal(read, pillow_rgb(tmp_path / name), err_msg=name)
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgb.png"), rgb)


def test_only_plain_8bit_rgb_pngs_take_the_libpng_path():
    from labor_cli.data.datasets import _plain_rgb_png

    def header(width=4, height=3, depth=8, colour=2, interlace=0) -> bytes:
        ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
        return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4

    assert _plain_rgb_png(header())
    assert not _plain_rgb_png(header(depth=16))  # Pillow keeps the high bytes: its path keeps its pixels
    assert not _plain_rgb_png(header(colour=6))
    assert not _plain_rgb_png(header(interlace=1))
    assert not _plain_rgb_png(header(width=1 << 16, height=1 << 16))  # beyond Pillow's bomb limit: Pillow says so
    assert not _plain_rgb_png(b"\xff\xd8\xff" + b"\0" * 40)  # a JPEG


def test_a_damaged_png_still_gets_pillows_one_line(tmp_path):
    from labor_cli.data.datasets import open_dataset
    from labor_cli.errors import LaborError

    folder = tmp_path / "cs" / "leftImg8bit" / "train" / "city"
    folder.mkdir(parents=True)
    path = folder / "city_000000_000019_leftImg8bit.png"
    Image.fromarray(scene(40, 60, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside IDAT: its CRC no longer matches
    path.write_bytes(bytes(data))
    dataset = open_dataset(f"cityscapes:{tmp_path / 'cs'}", "train", require_labels=False, reads=("images",))
    with pytest.raises(LaborError, match=f"{path}: cannot read image") as error:
        dataset.read_image(0)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("size", [(2048, 1024), (106, 74), (10, 6), (2, 2), (100, 51)])
def test_halving_gives_pillows_pixels_and_other_sizes_are_pillows(size):
    """Halving runs on torch's kernel: exactly Pillow's pixels, borders included, on noise."""
    width, height = size
    noise = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for target in ((width // 2, height // 2), (max(1, width // 3), max(1, height // 3)), (width + 5, height)):
        np.testing.assert_array_equal(resize_image(noise, target), pillow_resize(noise, target), err_msg=str(target))


def test_extraction_items_and_batches_hold_the_values_of_the_plain_way():
    from labor_cli.data.views import ExtractionView, collate_extraction

    class Images:
        def __init__(self, images):
            self.images = images

        def __len__(self):
            return len(self.images)

        def read_image(self, i):
            return self.images[i]

    images = [scene(48, 96, 2), scene(50, 100, 3)]  # halved by torch, resized by Pillow
    view = ExtractionView(Images(images), (48, 24))
    items = [view[i] for i in range(2)]
    batch = collate_extraction(items)
    for i, image in enumerate(images):
        plain = np.ascontiguousarray(pillow_resize(image, (48, 24)).transpose(2, 0, 1))
        assert torch.equal(items[i]["image"], torch.from_numpy(plain))
        assert torch.equal(batch["image"][i], torch.from_numpy(plain))
    assert batch["image"].is_contiguous() and batch["image"].dtype == torch.uint8
    assert batch["native_size"].tolist() == [[48, 96], [50, 100]] and batch["index"].tolist() == [0, 1]


def _hand_made_target(root: Path) -> str:
    """A Cityscapes-layout target of four hand-made images: two 8-bit RGB PNGs halved to the
    training size, a palette PNG, and one whose size is resized by Pillow."""
    folder = root / "leftImg8bit" / "train" / "handcity"
    folder.mkdir(parents=True)
    for i, (height, width, mode) in enumerate([(48, 96, "RGB"), (48, 96, "RGB"), (48, 96, "P"), (50, 100, "RGB")]):
        Image.fromarray(scene(height, width, 10 + i)).convert(mode).save(
            folder / f"handcity_{i:06d}_000019_leftImg8bit.png"
        )
    (root / "labor-dataset.json").write_text(json.dumps({"train_size": [48, 24]}))
    return f"cityscapes:{root}"


def test_extract_writes_what_the_plain_loader_and_writer_gave(tmp_path, warm_checkpoint, monkeypatch):
    """labor extract with its default loader workers, on hand-made images, against the rows the
    plain way makes (Pillow's decode and resize, a contiguous copy, each image's rows as they are):
    the artifact's maps and rows are byte-identical. Rows are stored in small blocks here."""
    import labor_cli.artifacts.masks as masks_module
    from labor_cli.extraction.scores import Budgets, batch_extractor
    from labor_cli.inference import inference_networks
    from labor_cli.options import ExtractOptions
    from labor_cli.stages.extract import open_inputs, run_extract

    monkeypatch.setattr(masks_module, "ROWS_PER_BLOCK", 300)
    target = _hand_made_target(tmp_path / "cs")
    options = ExtractOptions(
        model=warm_checkpoint, target=target, output=tmp_path / "masks.h5", device="cpu", quiet=True
    )
    run_extract(options)
    inputs = open_inputs(options)
    budgets = Budgets(options.candidates_per_class, options.uncertain_per_image, inputs.mask_share)
    compute = batch_extractor(
        inference_networks(inputs.checkpoint, torch.device("cpu")),
        inputs.excluded_by_id,
        inputs.dataset.image_ids,
        budgets,
        torch.device("cpu"),
        "fp32",
    )
    with artifacts.Masks(options.output) as stored:
        for i in range(len(inputs.dataset)):
            image = pillow_rgb(inputs.dataset.image_path(i))
            plain = np.ascontiguousarray(pillow_resize(image, (48, 24)).transpose(2, 0, 1))
            batch = {
                "image": torch.from_numpy(plain)[None],
                "native_size": np.array([image.shape[:2]]),
                "index": np.array([i]),
            }
            [(_, rows)] = compute(batch)
            np.testing.assert_array_equal(stored.prediction(i), rows.prediction)
            np.testing.assert_array_equal(stored.runner_up(i), rows.runner_up)
            np.testing.assert_array_equal(stored.mask(i), artifacts.unpack_mask(rows.mask_packed, image.shape[:2]))
            for group, fields in artifacts.MASK_GROUPS.items():
                got = stored.rows(group, i)
                for name in fields:
                    expected = np.asarray(rows.groups[group][name], dtype=artifacts.MASK_DTYPES[name])
                    np.testing.assert_array_equal(got[name], expected, err_msg=f"{group}/{name} of image {i}")
            assert len(stored.rows("candidates", i)["y"]) > 0


def test_masks_writer_stores_every_row_across_blocks_saves_and_a_reopening(tmp_path, monkeypatch):
    import labor_cli.artifacts.masks as masks_module

    monkeypatch.setattr(masks_module, "ROWS_PER_BLOCK", 7)
    rng = np.random.default_rng(0)
    sizes = np.array([(5, 7), (3, 4), (8, 8), (1, 1), (6, 5)])
    images = []
    for height, width in sizes:
        rows = {}
        for group, fields in artifacts.MASK_GROUPS.items():
            count = int(rng.integers(0, 12))
            rows[group] = {
                name: rng.integers(0, 1, count) if name in ("y", "x") else rng.random(count) for name in fields
            }
            if "class" in fields:
                rows[group]["class"] = rng.integers(0, 3, count)
        mask = rng.random((height, width)) < 0.3
        maps = rng.integers(0, 3, (2, height, width)).astype(np.uint8)
        images.append((maps[0], maps[1], np.packbits(mask.reshape(-1)), rows, mask))
    path = tmp_path / "masks.h5"
    ids = [f"im{i}" for i in range(len(sizes))]
    with h5py.File(path, "w") as f:
        writer = artifacts.MasksWriter(f, ids, sizes, "test3", ["a", "b", "c"])
        for i in range(3):
            prediction, runner_up, packed, rows, _ = images[i]
            writer.add(i, prediction, runner_up, packed, rows)
        state = json.loads(json.dumps(writer.state()))  # as a stopped extraction keeps it
        writer.pool.shutdown()
    with h5py.File(path, "a") as f:
        writer = artifacts.MasksWriter.reopen(f, state)
        for i in range(3, len(sizes)):
            prediction, runner_up, packed, rows, _ = images[i]
            writer.add(i, prediction, runner_up, packed, rows)
        writer.close()
        for i, (prediction, runner_up, _, rows, mask) in enumerate(images):
            pixels = slice(int(f["pixel_offsets"][i]), int(f["pixel_offsets"][i + 1]))
            np.testing.assert_array_equal(f["prediction"][pixels], prediction.reshape(-1))
            np.testing.assert_array_equal(f["runner_up"][pixels], runner_up.reshape(-1))
            packed = f["mask"][int(f["mask_offsets"][i]) : int(f["mask_offsets"][i + 1])]
            np.testing.assert_array_equal(artifacts.unpack_mask(packed, tuple(sizes[i])), mask)
            for group, fields in artifacts.MASK_GROUPS.items():
                start, stop = f[group]["offsets"][i], f[group]["offsets"][i + 1]
                for name in fields:
                    expected = np.asarray(rows[group][name], dtype=artifacts.MASK_DTYPES[name])
                    np.testing.assert_array_equal(f[group][name][start:stop], expected, err_msg=f"{group}/{name} {i}")


def test_gzip_stream_compresses_whole_chunks_from_the_callers_array_and_reads_back_exactly(tmp_path):
    """Whole chunks are compressed straight from the appended array; what is stored is what was appended."""
    from concurrent.futures import ThreadPoolExecutor

    data = np.random.default_rng(1).integers(0, 5, 1000).astype(np.uint8)
    compressed = []

    class Pool(ThreadPoolExecutor):
        def submit(self, fn, block, *args):
            compressed.append(block)
            return super().submit(fn, block, *args)

    with h5py.File(tmp_path / "s.h5", "w") as f, Pool(2) as pool:
        f.create_dataset("d", shape=(1000,), dtype=np.uint8, chunks=(64,), compression="gzip", compression_opts=1)
        stream = artifacts.GzipChunkStream(f["d"], 0, pool)
        stream.append(data[:10])
        stream.append(data[10:])
        stream.flush()
        np.testing.assert_array_equal(f["d"][()], data)
    # the first chunk is completed from the pending bytes, the next 14 come from the array itself
    assert [type(block) for block in compressed[:2]] == [bytearray, memoryview]
    assert sum(isinstance(block, memoryview) for block in compressed) == (1000 - 64) // 64


# --- labor bench --pipeline --------------------------------------------------------------------

STEPS = ("decode", "resize", "item", "collate", "hand-off", "post-processing", "writing", "compression")


def bench(*args: str) -> subprocess.CompletedProcess:
    return run_executable("bench", "--device", "cpu", *args, check=False)


def test_bench_pipeline_prints_every_step_the_verdicts_and_the_workers_needed():
    result = bench("--pipeline", "--pipeline-images", "5", "--pipeline-size", "64x32", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") >= 4}
    assert set(STEPS) <= rows, result.stdout
    assert "5 PNGs of 64x32" in result.stdout and "input 32x16" in result.stdout
    assert "a bare decode with" in result.stdout and "target 1.25x:" in result.stdout
    assert "target 10 ms:" in result.stdout
    assert "loader workers needed: 60 images/s: " in result.stdout and ", 100 images/s: " in result.stdout


def test_bench_pipeline_json_holds_every_step_and_the_workers_for_each_rate(capsys):
    code, out, err = run_main(
        ["bench", "--device", "cpu", "--pipeline", "--pipeline-images", "3", "--pipeline-size", "32x16", "--json"],
        capsys,
    )
    assert code == 0, err
    report = json.loads(out)["pipeline"]
    assert [step["name"] for step in report["steps"]] == list(STEPS)
    assert all(step["ms"] >= 0 for step in report["steps"])
    assert report["native_size"] == [32, 16] and report["input_size"] == [16, 8] and report["images"] == 3
    assert set(report["workers_needed"]) == {"60", "100"} and all(n >= 1 for n in report["workers_needed"].values())
    assert report["workers_needed"]["100"] >= report["workers_needed"]["60"]
    assert report["bare_decoder"] in report["bare_decode_ms"]
    assert isinstance(report["worker_target_met"], bool) and isinstance(report["main_target_met"], bool)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pipeline", "--pipeline-images", "0"], "--pipeline-images"),
        (["--pipeline", "--pipeline-size", "8x8"], "--pipeline-size 8x8: at least 16 pixels each way"),
        (["--pipeline", "--pipeline-size", "wide"], "--pipeline-size 'wide': expected WIDTHxHEIGHT"),
        (["--pipeline", "--pipeline-size", "0x64"], "width and height must be positive"),
        (["--pipeline", "--e2e-images", "2"], "--pipeline times the loader and the writer alone"),
    ],
)
def test_bad_pipeline_options_are_one_line_errors(args, message, capsys):
    code, _, err = run_main(["bench", "--device", "cpu", *args], capsys)
    assert code == 2, err
    assert "Traceback" not in err and message in err
