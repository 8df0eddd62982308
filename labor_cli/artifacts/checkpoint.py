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


def network_config(config: Any, class_names: Any) -> dict:
    """The stored networks' config, checked: the architecture is rebuilt from it before any weight
    is read, so a crafted one must not name a huge class count or an init to download."""
    known = {"arch", "num_classes", "init", "selector_backbone", "backbone_layout", "classifier_dilations"}
    if not isinstance(config, dict) or not set(config) <= known:  # Networks.config()'s keys
        raise ValueError("networks config is not the one labor writes")
    if config.get("backbone_layout", "torchvision") not in ("torchvision", "caffe"):
        raise ValueError(f"unknown backbone_layout {config.get('backbone_layout')!r}")
    dilations = config.get("classifier_dilations", [1])
    if (
        not isinstance(dilations, list)
        or not 1 <= len(dilations) <= 4
        or not all(type(d) is int and 1 <= d <= 64 for d in dilations)
    ):
        raise ValueError(f"classifier_dilations {dilations!r} is not a list of 1 to 4 dilations from 1 to 64")
    if (
        not isinstance(class_names, list)
        or not 2 <= len(class_names) <= 255
        or config.get("num_classes") != len(class_names)
    ):
        raise ValueError("networks num_classes does not match class_names")
    return {**config, "init": "none"}  # the weights come from the file


def load_checkpoint(path: Path) -> Checkpoint:
    from labor_cli.data.labels import CLASS_SETS
    from labor_cli.models import build_networks  # models import torchvision: load them only when needed

    with open_artifact(path, "checkpoint") as artifact:
        f = artifact.file
        try:
            group = f["networks"]
            class_set = str(group.attrs["class_set"])
            class_names = json.loads(group.attrs["class_names"])
            if class_set not in CLASS_SETS:
                raise ValueError(f"unknown class set {class_set!r}")
            networks = build_networks(**network_config(json.loads(group.attrs["config"]), class_names))
            for name in NETWORK_NAMES:
                state_dict = {k: torch.as_tensor(v) for k, v in read_state_dict(group[name]).items()}
                for key, tensor in state_dict.items():
                    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                        raise ValueError(f"{name} weight {key} holds NaN or infinity")
                getattr(networks, name).load_state_dict(state_dict)
            training = f["training"]
            state = TrainingState(
                stage=str(training.attrs["stage"]),
                iteration=int(training.attrs["iteration"]),
                iterations=int(training.attrs["iterations"]),
                optimizers=read_tree(training["optimizers"]),
                history={name: np.asarray(ds[()], dtype=np.float32) for name, ds in training["history"].items()},
            )
            if not 0 <= state.iteration <= state.iterations:
                raise ValueError(f"iteration {state.iteration} of {state.iterations}")
        except (
            KeyError,
            OSError,
            RuntimeError,
            ValueError,
            TypeError,
            AttributeError,
            RecursionError,
            LaborError,
        ) as exc:
            raise LaborError(f"{path}: damaged checkpoint: {exc}".splitlines()[0]) from exc
        networks.eval()
        return Checkpoint(networks, class_set, class_names, state, artifact.parent(), artifact.config)
