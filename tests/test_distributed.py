"""Several processes (torchrun, gloo on the CPU, 2 processes) against one, on the tiny toy pair."""

import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from helpers import tiny_train_config, warmup_options

from labor_cli import artifacts, distributed
from labor_cli.data.views import ShardBatches
from labor_cli.distributed import Rank
from labor_cli.stages.train import resume_path_for, run_training_stage
from labor_cli.training.data import StreamSampler

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is needed",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    return env


def _labor(processes: int, *args: str) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "labor_cli", *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "labor_cli",
        *args,
    ]


def _run(processes: int, *args: str, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run(_labor(processes, *args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, node: out.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None)
    return out


def _assert_same_data(a, b) -> None:
    data_a, data_b = _datasets(a), _datasets(b)
    assert sorted(data_a) == sorted(data_b)
    for name in data_a:
        np.testing.assert_array_equal(data_a[name], data_b[name], err_msg=name)


def test_the_processes_split_each_global_batch_and_every_image_once():
    single = list(StreamSampler(7, 4, seed=3, stream=1, start_batch=0, stop_batch=5))
    per_rank = [
        list(StreamSampler(7, 2, seed=3, stream=1, start_batch=0, stop_batch=5, rank=r, world_size=2)) for r in range(2)
    ]
    assert [a + b for a, b in zip(*per_rank)] == single  # together: the one-process stream of the global batch
    for size, batch, world in [(10, 3, 2), (5, 1, 3), (2, 4, 3), (9, 2, 1)]:
        shards = [ShardBatches(size, batch, Rank(r, world, r)) for r in range(world)]
        rounds = shards[0].rounds()
        assert all(len(s) <= rounds for s in shards)
        in_order = [i for k in range(rounds) for s in shards for i in (list(s)[k] if k < len(s) else [])]
        assert in_order == list(range(size))
    assert list(ShardBatches(5, 2)) == [[0, 1], [2, 3], [4]]  # one process: the images in order


def test_one_process_joins_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.start("cpu") as rank:
        assert rank == Rank() and rank.is_main and not rank.distributed
        assert not torch.distributed.is_initialized()
        assert distributed.gather_to_main(3, rank) == [3] and distributed.any_rank(True, rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.from_environment() == Rank(1, 2, 1)


def test_one_process_under_torchrun_joins_a_group_of_one(monkeypatch):
    """torchrun --nproc_per_node 1: the multi-process path (group, collectives) with one process."""
    for name, value in {
        "TORCHELASTIC_RUN_ID": "test",
        "WORLD_SIZE": "1",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    with distributed.start("cpu") as rank:
        assert rank.distributed and rank.world_size == 1 and rank.backend == "gloo"
        assert torch.distributed.is_initialized() and torch.distributed.get_world_size() == 1
        assert distributed.all_reduce_sum(torch.tensor([2.0]), rank).item() == 2.0
        assert distributed.gather_to_main(3, rank) == [3] and distributed.any_rank(True, rank)
    assert not torch.distributed.is_initialized()


@pytest.mark.slow
def test_extract_and_evaluate_with_two_processes_equal_one(tmp_path, warm_checkpoint, toy_target):
    common = ["--target", toy_target, "--device", "cpu", "--workers", "0", "-q"]
    for processes in (1, 2):
        out = _run(
            processes, "extract", "-m", str(warm_checkpoint), *common, "-o", f"masks{processes}.h5", cwd=tmp_path
        )
        assert out.stdout.count("images, mask") == 1  # rank 1 prints nothing
        _run(
            processes,
            "evaluate",
            "-m",
            str(warm_checkpoint),
            *common,
            "--split",
            "val",
            "-o",
            f"eval{processes}.h5",
            cwd=tmp_path,
        )
    _assert_same_data(tmp_path / "masks1.h5", tmp_path / "masks2.h5")
    _assert_same_data(tmp_path / "eval1.h5", tmp_path / "eval2.h5")
    assert _datasets(tmp_path / "eval2.h5")["confusion"].sum() > 0
    with h5py.File(tmp_path / "masks1.h5") as one, h5py.File(tmp_path / "masks2.h5") as two:
        assert one.attrs["summary"] == two.attrs["summary"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval1.h5", "eval2.h5", "masks1.h5", "masks2.h5"]


@pytest.mark.slow
def test_warmup_with_two_processes_stops_together_resumes_and_matches_the_global_batch(
    tmp_path, toy_source, toy_target
):
    """2 processes x batch 1 = 1 process x batch 2 (same images, averaged gradients), through a SIGTERM and --resume."""
    # Without B's pseudo labels (--pseudo-from 16): their class-balanced thresholds are taken over
    # each process's own batch, so 2 x 1 image and 1 x 2 images keep different pixels.
    config = tiny_train_config(iterations=16, save_every=2, log_every=2, pseudo_from=16)
    args = [
        "warmup",
        "--source",
        toy_source,
        "--target",
        toy_target,
        "--arch",
        "small",
        "--iters",
        "16",
        "--lr",
        str(config.lr),
        "--save-every",
        "2",
        "--log-every",
        "2",
        "--source-batch",
        "1",
        "--target-batch",
        "1",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
        "-o",
        "two.h5",
        "--pseudo-from",
        "16",
    ]
    resume_file = resume_path_for(tmp_path / "two.h5")
    launcher = subprocess.Popen(
        _labor(2, *args), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not resume_file.exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.send_signal(signal.SIGTERM)  # torchrun passes it to both processes
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0, stderr[-3000:]
    assert stderr.count("stopped after iteration") == 1, stderr[-3000:]  # said once, by rank 0
    stopped_at = artifacts.load_checkpoint(resume_file).state.iteration
    assert 2 <= stopped_at < 16 and stopped_at % 2 == 0
    assert not (tmp_path / "two.h5").exists()

    out = _run(2, *args, "--resume", cwd=tmp_path)
    assert out.stdout.count("16 iterations") == 1
    assert not resume_file.exists()
    # one artifact and its loss history, no stray partial files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.h5", "two.losses.csv"]
    two = artifacts.load_checkpoint(tmp_path / "two.h5")
    assert two.state.iteration == 16 and two.config["world_size"] == 2

    run_training_stage(warmup_options(toy_source, toy_target, tmp_path / "one.h5", config))
    one = artifacts.load_checkpoint(tmp_path / "one.h5")
    for name in ("segmenter", "selector", "discriminator"):
        ours, theirs = getattr(two.networks, name).state_dict(), getattr(one.networks, name).state_dict()
        for key in ours:  # equal up to float rounding (summation order, kernels)
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-3, atol=1e-4, msg=f"{name}.{key}")
    for name, values in one.state.history.items():
        assert len(two.state.history[name]) == 16 and np.all(np.isfinite(two.state.history[name]))
        # The mask share counts pixels whose two classes differ: float rounding may flip a pixel or two.
        atol = 1e-3 if name in ("mask_share", "mask_kept") else 1e-4
        np.testing.assert_allclose(two.state.history[name], values, rtol=1e-3, atol=atol, err_msg=name)
