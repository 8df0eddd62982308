"""Shared fixtures: the tiny toy domain pair and a tiny warmed-up checkpoint, made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two CPU cores: keep torch from oversubscribing when pytest runs alongside data workers.
torch.set_num_threads(min(2, os.cpu_count() or 1))
# oneDNN compiles kernels for every new convolution shape (seconds each on a small CPU); the tests
# use many tiny shapes a few times each, where torch's native kernels are faster overall.
torch.backends.mkldnn.enabled = False


@pytest.fixture(scope="session")
def toy_pair(tmp_path_factory) -> Path:
    from labor_cli.data.toy import make_toy_pair
    from labor_cli.options import ToyOptions

    directory = tmp_path_factory.mktemp("toy") / "pair"
    make_toy_pair(ToyOptions(directory=directory, seed=0, size="tiny"))
    return directory


@pytest.fixture(scope="session")
def toy_source(toy_pair) -> str:
    return f"gta5:{toy_pair / 'source'}"


@pytest.fixture(scope="session")
def toy_target(toy_pair) -> str:
    return f"cityscapes:{toy_pair / 'target'}"


def tiny_train_config(**overrides):
    from labor_cli.options import TrainConfig

    values = dict(iterations=6, lr=2e-3, source_batch=2, target_batch=2, save_every=3, log_every=2, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def warmup_options(source, target, output, config=None, **overrides):
    """The tests' warmup: the small arch on the CPU, data loaded in the test process, quiet."""
    from labor_cli.options import WarmupOptions

    values = dict(arch="small", device="cpu", workers=0, quiet=True)
    values.update(overrides)
    return WarmupOptions(source=source, target=target, output=output, train=config or tiny_train_config(), **values)


@pytest.fixture(scope="session")
def warm_checkpoint(tmp_path_factory, toy_source, toy_target) -> Path:
    """A small-arch checkpoint after a few warmup iterations on the tiny pair."""
    from labor_cli.stages.train import run_training_stage

    output = tmp_path_factory.mktemp("warm") / "warmup.h5"
    run_training_stage(warmup_options(toy_source, toy_target, output))
    return output
