"""Shared fixtures: the tiny toy domain pair and a tiny warmed-up checkpoint, made once per session.
Plain functions the tests share are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import tiny_train_config, warmup_options  # noqa: F401 (test_options.py imports tiny_train_config from here)

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


@pytest.fixture(scope="session")
def warm_checkpoint(tmp_path_factory, toy_source, toy_target) -> Path:
    """A small-arch checkpoint after a few warmup iterations on the tiny pair."""
    from labor_cli.stages.train import run_training_stage

    output = tmp_path_factory.mktemp("warm") / "warmup.h5"
    run_training_stage(warmup_options(toy_source, toy_target, output))
    return output


@pytest.fixture(scope="session")
def whole_masks(tmp_path_factory, warm_checkpoint, toy_target) -> Path:
    """An uninterrupted extraction of warm_checkpoint on the tiny target, in this process (what the
    interrupted and resumed ones must equal)."""
    from labor_cli.options import ExtractOptions
    from labor_cli.stages.extract import run_extract

    output = tmp_path_factory.mktemp("whole") / "masks.h5"
    run_extract(
        ExtractOptions(model=warm_checkpoint, target=toy_target, output=output, device="cpu", quiet=True, workers=0)
    )
    return output
