"""Trees of tensors (weights, optimiser states, RNG states) as plain HDF5 groups and datasets.

A nested dict/list of tensors, arrays and JSON values becomes groups and datasets; nothing is
pickled, so loading a stranger's file cannot run code. Each group's ``keys`` attribute (JSON)
maps the tree's keys, in order, to the dataset or group names.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import torch

from labor_cli.artifacts.provenance import check_declared_size

# The attribute naming a tensor's torch dtype (bfloat16 is stored as float32 and restored).
TORCH_DTYPE_ATTR = "torch_dtype"


def write_tree(group: h5py.Group, tree: dict, compression: str | None = None) -> None:
    keys = []
    for position, (key, value) in enumerate(tree.items()):
        name = f"{position:05d}"
        keys.append([key, name])
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            dtype_name = str(tensor.dtype).removeprefix("torch.")
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            data = tensor.contiguous().numpy()
            dataset = group.create_dataset(name, data=data, compression=compression if data.size > 1024 else None)
            dataset.attrs[TORCH_DTYPE_ATTR] = dtype_name
        elif isinstance(value, np.ndarray):
            group.create_dataset(name, data=value)
        elif isinstance(value, dict):
            write_tree(group.create_group(name), value, compression)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (torch.Tensor, dict)) for v in value):
            sub = group.create_group(name)
            sub.attrs["sequence"] = True
            write_tree(sub, dict(enumerate(value)), compression)
        else:
            group.attrs[f"json_{name}"] = json.dumps(value)
    group.attrs["keys"] = json.dumps(keys)


def read_tree(group: h5py.Group) -> dict:
    tree = {}
    for key, name in json.loads(group.attrs["keys"]):
        if f"json_{name}" in group.attrs:
            tree[key] = json.loads(group.attrs[f"json_{name}"])
            continue
        node = group[name]
        if isinstance(node, h5py.Dataset) and node.dtype.kind not in "biuf":
            # weights and optimiser states are numbers; anything else (say, pickled bytes) is refused unread
            raise ValueError(f"{node.name} holds {node.dtype} data, not numbers")
        if isinstance(node, h5py.Dataset):
            check_declared_size(node)
        if isinstance(node, h5py.Group):
            value = read_tree(node)
            tree[key] = list(value.values()) if node.attrs.get("sequence", False) else value
        elif TORCH_DTYPE_ATTR in node.attrs:
            tensor = torch.from_numpy(np.asarray(node[()]))
            tree[key] = tensor.to(getattr(torch, str(node.attrs[TORCH_DTYPE_ATTR])))
        else:
            tree[key] = np.asarray(node[()])
    return tree


def write_state_dict(group: h5py.Group, state_dict: dict[str, torch.Tensor]) -> None:
    write_tree(group, dict(state_dict))


def read_state_dict(group: h5py.Group) -> dict[str, torch.Tensor]:
    return read_tree(group)
