import json
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest
import torch

from labor_cli import artifacts
from labor_cli.errors import LaborError
from labor_cli.models import build_networks


def _write_labels(path, **kwargs):
    pixels = artifacts.PixelSet(
        image_ids=["a/a_1", "b/b_2"],
        sizes=np.array([[4, 6], [5, 7]]),
        offsets=np.array([0, 2, 3]),
        y=np.array([0, 3, 4]),
        x=np.array([5, 1, 6]),
        label=np.array([7, 255, 1], dtype=np.uint8),
        class_set="cityscapes19",
        class_names=["road"] * 19,
    )
    with artifacts.create_artifact(path, "labels", {"mode": "test"}, **kwargs) as f:
        artifacts.write_pixel_set(f, pixels)
    return pixels


def test_pixel_set_round_trip_and_provenance(tmp_path):
    path = tmp_path / "labels.h5"
    written = _write_labels(path, parents=[artifacts.Parent("selection", "1234", "sel.h5")])
    read = artifacts.read_pixel_set(path, "labels")
    assert read.image_ids == written.image_ids
    for name in ("sizes", "offsets", "y", "x", "label"):
        np.testing.assert_array_equal(getattr(read, name), getattr(written, name))
    assert read.counts().tolist() == [2, 1]
    assert read.labeled_share() == pytest.approx(100 * 3 / (24 + 35))
    with h5py.File(path) as f:
        assert f.attrs["labor_kind"] == "labels"
        assert json.loads(f.attrs["config"]) == {"mode": "test"}
        assert json.loads(f.attrs["lineage"]) == [{"kind": "selection", "uuid": "1234", "path": "sel.h5"}]
        assert "pytest" in f.attrs["command"] or f.attrs["command"]
        assert len(f.attrs["uuid"]) == 36


def test_checkpoint_round_trip_keeps_every_weight_and_optimizer_state(tmp_path):
    torch.manual_seed(0)
    networks = build_networks("small", 19)
    optimizer = torch.optim.SGD(networks.segmenter.parameters(), lr=0.1, momentum=0.9)
    networks.segmenter(torch.randn(1, 3, 32, 32)).sum().backward()
    optimizer.step()
    state = artifacts.TrainingState("warmup", 5, 10, {"segmenter": optimizer.state_dict()}, {"seg_src": np.arange(5.0)})
    path = tmp_path / "model.h5"
    with artifacts.create_artifact(path, "checkpoint", {}) as f:
        artifacts.write_checkpoint(f, networks, "cityscapes19", ["c"] * 19, state)
    loaded = artifacts.load_checkpoint(path)
    for name in ("segmenter", "selector", "discriminator"):
        original, restored = getattr(networks, name).state_dict(), getattr(loaded.networks, name).state_dict()
        assert original.keys() == restored.keys()
        for key in original:
            assert torch.equal(original[key], restored[key]), key
    assert loaded.state.iteration == 5 and loaded.state.stage == "warmup"
    momentum = loaded.state.optimizers["segmenter"]["state"][0]["momentum_buffer"]
    assert np.array_equal(momentum, optimizer.state_dict()["state"][0]["momentum_buffer"].numpy())
    np.testing.assert_array_equal(loaded.state.history["seg_src"], np.arange(5.0))


def test_wrong_kind_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "labels.h5"
    _write_labels(path)
    with pytest.raises(LaborError, match=r"labels.h5: is a labels artifact, expected a checkpoint artifact"):
        artifacts.open_artifact(path, "checkpoint")


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "labels.h5"
    _write_labels(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(LaborError, match="labels.h5: not a readable HDF5 file"):
        artifacts.read_pixel_set(path, "labels")


def test_plain_hdf5_and_newer_schema_are_refused(tmp_path):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = 1
    with pytest.raises(LaborError, match="not a labor artifact"):
        artifacts.open_artifact(plain, "labels")
    newer = tmp_path / "newer.h5"
    _write_labels(newer)
    with h5py.File(newer, "a") as f:
        f.attrs["labor_schema"] = 99
    with pytest.raises(LaborError, match="schema version 99 is newer"):
        artifacts.open_artifact(newer, "labels")


def test_open_artifact_and_read_any_run_the_same_checks(tmp_path):
    """One check serves both: a typed open (a stage's input) and an untyped one (inspect)."""
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = 1
    alien = tmp_path / "alien.h5"
    with h5py.File(alien, "w") as f:
        f.attrs["labor_kind"] = "spreadsheet"
    newer = tmp_path / "newer.h5"
    _write_labels(newer)
    with h5py.File(newer, "a") as f:
        f.attrs["labor_schema"] = 99
    cases = [
        (tmp_path, "is a folder, expected a labor labels artifact", "is a folder, expected a labor artifact"),
        (tmp_path / "missing.h5", "missing.h5: no such file", "missing.h5: no such file"),
        (plain, "plain.h5: not a labor artifact", "plain.h5: not a labor artifact"),
        (alien, "alien.h5: is a spreadsheet artifact, expected a labels", "alien.h5: not a labor artifact"),
        (newer, "labels schema version 99 is newer than this labor", "labels schema version 99 is newer"),
    ]
    for path, typed, untyped in cases:
        with pytest.raises(LaborError, match=typed) as error:
            artifacts.open_artifact(path, "labels")
        assert "\n" not in str(error.value)
        with pytest.raises(LaborError, match=untyped):
            artifacts.read_any(path)
    good = tmp_path / "good.h5"
    _write_labels(good)
    with artifacts.read_any(good) as f:
        assert f.attrs["labor_kind"] == "labels"
    with artifacts.open_artifact(good, "labels") as artifact:
        assert artifact.parent().kind == "labels" and artifact.config == {"mode": "test"}


def test_the_package_keeps_every_name_the_stages_use():
    """artifacts became a package: each name the code base imports is still ``artifacts.NAME``."""
    from labor_cli.artifacts import checkpoint, masks, pixel_sets, provenance, tensor_tree

    for module, names in (
        (
            provenance,
            (
                "create_artifact",
                "check_output_path",
                "Parent",
                "KeepPartial",
                "open_artifact",
                "read_any",
                "command_line",
                "write_image_ids",
                "read_image_ids",
                "SCHEMA_VERSIONS",
            ),
        ),
        (tensor_tree, ("write_tree", "read_tree", "write_state_dict", "read_state_dict")),
        (checkpoint, ("TrainingState", "write_checkpoint", "Checkpoint", "load_checkpoint")),
        (pixel_sets, ("PixelSet", "write_pixel_set", "read_pixel_set")),
        (masks, ("MasksWriter", "Masks", "unpack_mask", "GzipChunkStream", "MASK_GROUPS")),
    ):
        for name in names:
            assert getattr(artifacts, name) is getattr(module, name), name


def test_interrupted_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(KeyboardInterrupt):
        with artifacts.create_artifact(path, "labels", {}) as f:
            f["partial"] = np.zeros(10)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    _write_labels(path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with artifacts.create_artifact(path, "labels", {}, force=True):
            raise RuntimeError("crash")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_existing_output_needs_force_and_unwritable_folder_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "out.h5"
    _write_labels(path)
    with pytest.raises(LaborError, match="already exists; pass --force"):
        _write_labels(path)
    _write_labels(path, force=True)
    # CI runs as root, who may write anywhere: simulate a read-only folder for the check.
    import labor_cli.artifacts.provenance as provenance

    monkeypatch.setattr(provenance.os, "access", lambda folder, mode: False)
    with pytest.raises(LaborError, match="permission denied"):
        artifacts.check_output_path(tmp_path / "sub" / "out.h5", force=False)
    with pytest.raises(LaborError, match=r"out\.h5: it is a file, not a folder"):
        artifacts.check_output_path(path / "inside.h5", force=False)


def test_disk_full_during_write_leaves_nothing(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "out.h5"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(LaborError, match="disk full"):
        with artifacts.create_artifact(path, "labels", {}) as f:
            monkeypatch.setattr(h5py.Group, "create_dataset", full)
            f.create_dataset("x", data=np.zeros(3))
    assert list(tmp_path.iterdir()) == []


def test_trees_store_no_pickle(tmp_path):
    path = tmp_path / "tree.h5"
    tree = {
        "state": {0: {"momentum_buffer": torch.ones(3)}},
        "param_groups": [{"lr": 0.1, "params": [0]}],
        "bf16": torch.tensor([1.5], dtype=torch.bfloat16),
    }
    with h5py.File(path, "w") as f:
        artifacts.write_tree(f.create_group("t"), tree)
    with h5py.File(path) as f:
        back = artifacts.read_tree(f["t"])
        dtypes = []
        f.visititems(lambda name, node: dtypes.append(node.dtype) if isinstance(node, h5py.Dataset) else None)
    assert all(d.kind in "fiub" for d in dtypes)  # numbers only: nothing opaque that could be unpickled
    assert back["param_groups"] == [{"lr": 0.1, "params": [0]}]
    assert torch.equal(back["state"][0]["momentum_buffer"], torch.ones(3))
    assert back["bf16"].dtype == torch.bfloat16


@pytest.mark.parametrize("chunk", [7, 64, 513])  # 513: the whole dataset in one chunk
def test_gzip_chunk_stream_reads_back_exactly_what_was_appended_across_flushes_and_reopening(tmp_path, chunk):
    rng = np.random.default_rng(chunk)
    pieces = [rng.integers(0, 19, size).astype(np.uint8) for size in (1, 6, 64, 129, 0, 300, 13)]
    total = sum(len(p) for p in pieces)
    path = tmp_path / "stream.h5"
    with h5py.File(path, "w") as f, ThreadPoolExecutor(2) as pool:
        f.create_dataset(
            "data", shape=(total,), dtype=np.uint8, chunks=(chunk,), compression="gzip", compression_opts=1
        )
        stream = artifacts.GzipChunkStream(f["data"], 0, pool, max_in_flight=2)
        for piece in pieces[:4]:
            stream.append(piece)
        stream.flush()  # what a stopped extraction does: the partial last chunk is stored padded
        position = sum(len(p) for p in pieces[:4])
    with h5py.File(path, "a") as f, ThreadPoolExecutor(2) as pool:
        assert (f["data"][:position] == np.concatenate(pieces[:4])).all()
        stream = artifacts.GzipChunkStream(f["data"], position, pool)  # reopened, as --resume does
        for piece in pieces[4:]:
            stream.append(piece)
        stream.flush()
    with h5py.File(path, "r") as f:
        assert f["data"].compression == "gzip"
        assert (f["data"][()] == np.concatenate(pieces)).all()
