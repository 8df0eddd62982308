"""The checkpoint artifact: networks A, B and D, and everything needed to continue training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from labor_cli.artifacts.provenance import Parent, open_artifact
from labor_cli.artifacts.tensor_tree import read_state_dict, read_tree, write_state_dict, write_tree
from labor_cli.errors import LaborError

NETWORK_NAMES = ("segmenter", "selector", "discriminator")


@dataclass
class TrainingState:
    """What continues a run bit for bit: the iteration, optimiser states and the loss history."""

    stage: str
    iteration: int
    iterations: int
    optimizers: dict[str, dict]
    history: dict[str, np.ndarray]


def write_checkpoint(f: h5py.File, networks, class_set: str, class_names: list[str], state: TrainingState) -> None:
    group = f.create_group("networks")
    group.attrs["config"] = json.dumps(networks.config())
    group.attrs["class_set"] = class_set
    group.attrs["class_names"] = json.dumps(list(class_names))
    for name in NETWORK_NAMES:
        write_state_dict(group.create_group(name), getattr(networks, name).state_dict())
    training = f.create_group("training")
    training.attrs["stage"] = state.stage
    training.attrs["iteration"] = state.iteration
    training.attrs["iterations"] = state.iterations
    write_tree(training.create_group("optimizers"), state.optimizers)
    history = training.create_group("history")
    for name, values in state.history.items():
        history.create_dataset(name, data=np.asarray(values, dtype=np.float32))


@dataclass
class Checkpoint:
    networks: Any  # labor_cli.models.Networks, on the CPU, in eval mode
    class_set: str
    class_names: list[str]
    state: TrainingState
    artifact: Parent
    config: dict


def load_checkpoint(path: Path) -> Checkpoint:
    from labor_cli.models import build_networks  # models import torchvision: load them only when needed

    with open_artifact(path, "checkpoint") as artifact:
        f = artifact.file
        try:
            group = f["networks"]
            networks = build_networks(**json.loads(group.attrs["config"]))
            for name in NETWORK_NAMES:
                state_dict = {k: torch.as_tensor(v) for k, v in read_state_dict(group[name]).items()}
                getattr(networks, name).load_state_dict(state_dict)
            training = f["training"]
            state = TrainingState(
                stage=str(training.attrs["stage"]),
                iteration=int(training.attrs["iteration"]),
                iterations=int(training.attrs["iterations"]),
                optimizers=read_tree(training["optimizers"]),
                history={name: np.asarray(ds[()]) for name, ds in training["history"].items()},
            )
            class_set = str(group.attrs["class_set"])
            class_names = json.loads(group.attrs["class_names"])
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise LaborError(f"{path}: damaged checkpoint: {exc}".splitlines()[0]) from exc
        networks.eval()
        return Checkpoint(networks, class_set, class_names, state, artifact.parent(), artifact.config)
