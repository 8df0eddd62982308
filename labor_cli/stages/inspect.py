"""labor inspect: any artifact, for people: kind, provenance, lineage and a summary of its contents."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from rich.table import Table

from labor_cli import artifacts
from labor_cli.console import stdout
from labor_cli.errors import LaborError
from labor_cli.protocols import describe_recorded


def describe(path: Path) -> dict:
    """Everything inspect prints, as plain data (also what `--json` prints); an attribute or
    dataset that is missing or not what labor writes means a damaged file, said in one line."""
    try:
        return _describe(path)
    except (KeyError, ValueError, TypeError, OSError, AttributeError, IndexError, RecursionError) as exc:
        raise LaborError(f"{path}: damaged artifact: {exc}".splitlines()[0]) from exc


# The longest attribute labor writes is a config of a few KiB: a much longer one is a crafted file
# (and printing 100,000 characters in a table takes rich minutes).
MAX_ATTRIBUTE_CHARS = 16 << 10


def _describe(path: Path) -> dict:
    with artifacts.read_any(path) as f:
        attrs = f.attrs
        for key, value in attrs.items():
            if isinstance(value, (str, bytes)) and len(value) > MAX_ATTRIBUTE_CHARS:
                raise ValueError(f"attribute {key} is {len(value):,} characters long")
        info = {
            "path": str(path),
            "kind": str(attrs["labor_kind"]),
            "schema": int(attrs["labor_schema"]),
            "labor_version": str(attrs["labor_version"]),
            "created": str(attrs["created"]),
            "command": str(attrs["command"]),
            "uuid": str(attrs["uuid"]),
            "lineage": json.loads(attrs["lineage"]),
            "config": json.loads(attrs["config"]),
            "summary": json.loads(attrs["summary"]) if "summary" in attrs else {},
            "contents": _contents(f),
        }
        if info["kind"] == "evaluation":
            names = json.loads(attrs["class_names"])
            info["summary"].update(json.loads(attrs["scores"]))
            info["summary"]["protocol"] = describe_recorded(info["config"])
            artifacts.check_declared_size(f["iou"])
            info["iou"] = dict(zip(names, [None if np.isnan(v) else round(float(v) * 100, 2) for v in f["iou"][()]]))
        if info["kind"] == "checkpoint":
            info["summary"].update(_checkpoint_summary(f))
    return info


def _contents(f: h5py.File) -> list[str]:
    """Top-level and second-level entries with shapes; weight groups are summarised by count."""
    lines = []
    for name, node in f.items():
        if isinstance(node, h5py.Dataset):
            lines.append(f"{name}: {node.dtype} {node.shape}")
            continue
        lines.append(f"{name}/")
        for child_name, child in node.items():
            if isinstance(child, h5py.Dataset):
                lines.append(f"  {child_name}: {child.dtype} {child.shape}")
            else:
                count, size = _group_size(child)
                lines.append(f"  {child_name}/ ({count} arrays, {size:,} values)")
    return lines


def _group_size(group: h5py.Group) -> tuple[int, int]:
    sizes = []
    group.visititems(lambda _, node: sizes.append(node.size) if isinstance(node, h5py.Dataset) else None)
    return len(sizes), int(sum(sizes))


def _checkpoint_summary(f: h5py.File) -> dict:
    networks, training = f["networks"], f["training"]
    summary = {
        "networks": json.loads(networks.attrs["config"]),
        "class_set": str(networks.attrs["class_set"]),
        "stage": str(training.attrs["stage"]),
        "iteration": f"{int(training.attrs['iteration'])} / {int(training.attrs['iterations'])}",
    }
    for name in ("segmenter", "selector", "discriminator"):
        summary[f"{name}_parameters"] = _group_size(networks[name])[1]
    history = training["history"]
    summary["last_losses"] = {
        name: round(float(np.mean(ds[-min(20, len(ds)) :])), 4) for name, ds in history.items() if len(ds)
    }
    return summary


def print_description(info: dict) -> None:
    stdout.print(f"[bold]{info['path']}[/bold]: labor {info['kind']} (schema {info['schema']})")
    stdout.print(f"  made by labor {info['labor_version']} at {info['created']}, uuid {info['uuid']}")
    stdout.print(f"  command: {info['command']}")
    if info["lineage"]:
        stdout.print("  made from:")
        for parent in info["lineage"]:
            stdout.print(f"    {parent['kind']} {parent['path']} ({parent['uuid']})")
    else:
        stdout.print("  made from: nothing (a first artifact)")
    stdout.print("  configuration: " + json.dumps(info["config"], sort_keys=True))
    if info["summary"]:
        stdout.print("[bold]summary[/bold]")
        for key, value in info["summary"].items():
            stdout.print(f"  {key}: {_format_value(value)}")
    if "iou" in info:
        table = Table("class", "IoU")
        for name, value in info["iou"].items():
            table.add_row(name, "-" if value is None else f"{value:.2f}")
        stdout.print(table)
    stdout.print("[bold]contents[/bold]")
    for line in info["contents"]:
        stdout.print("  " + line, highlight=False)


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format_value(v)}" for k, v in value.items())
    return str(value)
