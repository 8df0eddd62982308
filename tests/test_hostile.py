"""Hostile artifacts: a seeded, time-bounded fuzz loop over the HDF5 schema. An artifact is a file
anyone may hand over, damaged or crafted; what it declares must never crash labor or make it
allocate without bound.

Each case copies a good artifact, changes one dataset or attribute (a huge declared size, a
negative or shifted offset, another dtype, NaN, a string where a number belongs, a deletion)
and hands it to the commands that read that kind. Every case must end in exit 0 or in one
`labor: error:` line naming the file, within seconds, without allocating what it declares.
"""

from __future__ import annotations

import os
import random
import signal
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from labor_cli import artifacts
from labor_cli.cli import main
from labor_cli.errors import LaborError
from labor_cli.options import ExtractOptions, LabelOptions, SelectOptions

SEED = int(os.environ.get("LABOR_FUZZ_SEED", "0"))
SECONDS = float(os.environ.get("LABOR_FUZZ_SECONDS", "10"))  # the loop's time bound
HUGE = 1 << 40  # elements: 1 TiB and more, were anything to allocate it
MEMORY_LIMIT = 256 << 20  # what one case may allocate (numpy and h5py buffers, as tracemalloc sees them)
MUTATIONS = ("huge", "negative", "shift", "big", "float", "nan", "string", "delete", "shorter")


@pytest.fixture(scope="module")
def good(tmp_path_factory, warm_checkpoint, toy_target) -> dict[str, Path]:
    from labor_cli.stages.extract import run_extract
    from labor_cli.stages.label import run_label
    from labor_cli.stages.select import run_select

    root = tmp_path_factory.mktemp("hostile")
    out = {
        "checkpoint": Path(warm_checkpoint),
        "masks": root / "masks.h5",
        "selection": root / "selection.h5",
        "labels": root / "labels.h5",
    }
    run_extract(
        ExtractOptions(
            model=warm_checkpoint,
            target=toy_target,
            output=out["masks"],
            device="cpu",
            quiet=True,
            workers=0,
            candidates_per_class=8,
            uncertain_per_image=64,
        )
    )
    run_select(SelectOptions(masks=out["masks"], mode="ppl", output=out["selection"], points=3, quiet=True))
    run_label(LabelOptions(selection=out["selection"], target=toy_target, output=out["labels"], quiet=True))
    return out


def commands(kind: str, path: Path, out: Path, good: dict, target: str) -> list[list[str]]:
    """The commands that read an artifact of this kind (the cheap ones, for the checkpoint)."""
    path = str(path)
    return {
        "masks": [
            ["select", "--masks", path, "--mode", "ppl", "--points", "2", "-o", f"{out}/s.h5", "-q"],
            ["select", "--masks", path, "--mode", "entropy", "--points", "2", "-o", f"{out}/e.h5", "-q"],
            ["show", path, "-o", f"{out}/show", "--target", target, "-q"],
            ["inspect", path],
        ],
        "selection": [
            ["label", "--selection", path, "--target", target, "-o", f"{out}/l.h5", "-q"],
            ["export", path, "-o", f"{out}/export", "-q"],
            ["inspect", path],
        ],
        "labels": [
            [
                "label",
                "--selection",
                str(good["selection"]),
                "--target",
                target,
                "--merge",
                path,
                "-o",
                f"{out}/m.h5",
                "-q",
            ],
            ["show", path, "-o", f"{out}/show", "--target", target, "-q"],
            ["inspect", path],
        ],
        "checkpoint": [["inspect", path]],
    }[kind]


def members(path: Path) -> list[tuple[str, str | None]]:
    """(object name, attribute name or None for the dataset itself) of every dataset and attribute."""
    out = []
    with h5py.File(path, "r") as f:

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                out.append((name, None))
            out.extend((name, key) for key in node.attrs)

        out.extend(("/", key) for key in f.attrs)
        f.visititems(visit)
    return out


def mutate(path: Path, target: tuple[str, str | None], how: str, rng: random.Random) -> None:
    """Change one dataset (attribute None) or attribute of the file at ``path``, in place."""
    name, attribute = target
    with h5py.File(path, "a") as f:
        node = f[name]
        if attribute is not None:
            value = node.attrs[attribute]
            del node.attrs[attribute]
            if how == "delete":
                return
            replacement = {
                "string": "not a number",
                "nan": np.nan,
                "negative": -(1 << 40),
                "big": HUGE,
                "huge": "[" * 100000,
                "float": 0.5,
            }.get(how, f"{value!s}"[::-1])
            node.attrs[attribute] = replacement
            return
        data = node[()]
        parent, leaf = node.parent, name.rsplit("/", 1)[-1]
        attrs = dict(node.attrs)

        def replace(**kwargs):
            del parent[leaf]
            new = parent.create_dataset(leaf, **kwargs)
            for key, value in attrs.items():
                new.attrs[key] = value

        array = np.asarray(data)
        if how == "delete":
            del parent[leaf]
        elif how == "huge":  # a declared size with no data behind it (HDF5 stores no unwritten chunk)
            replace(
                shape=(HUGE,) + array.shape[1:],
                dtype=array.dtype if array.dtype.kind != "O" else "i8",
                chunks=(1024,) + array.shape[1:],
            )
        elif how == "string":
            replace(
                data=np.array(["x"] * max(1, array.size), dtype=object).reshape(array.shape or (1,)),
                dtype=h5py.string_dtype(),
            )
        elif how == "shorter" and array.ndim >= 1 and len(array):
            replace(data=array[:-1])
        elif how == "float" and array.dtype.kind in "iu":
            replace(data=array.astype(np.float64) + 0.5)
        elif array.size and array.dtype.kind in "iuf":
            flat = array.reshape(-1).copy()
            at = rng.randrange(flat.size)
            if how == "nan":
                flat = flat.astype(np.float64)
                flat[at] = np.nan
            elif how == "negative":
                flat = flat.astype(np.int64) if flat.dtype.kind != "f" else flat
                flat[at] = -rng.randint(1, 1 << 20)
            elif how == "shift":
                flat[at] = flat[at] + rng.randint(1, 50)
            elif how == "big":
                flat = flat.astype(np.int64) if flat.dtype.kind != "f" else flat
                flat[at] = HUGE
            replace(data=flat.reshape(array.shape))


class Hang(Exception):
    pass


def _hang(signum, frame):
    raise Hang


def run_case(argv: list[str], capsys) -> tuple[int, str, int]:
    """Exit code, stderr and peak traced allocation of one in-process `labor` run (60 s at most:
    a second on a free machine; tracemalloc slows it)."""
    capsys.readouterr()
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(60)
    tracemalloc.start()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, capsys.readouterr().err, peak


def test_hostile_artifacts_get_one_line(tmp_path, capsys, good, toy_target):
    """The fuzz loop: seeded (LABOR_FUZZ_SEED replays a failure) and bounded (LABOR_FUZZ_SECONDS)."""
    rng = random.Random(SEED)
    kinds = sorted(good)
    targets = {
        kind: [
            m
            for m in members(good[kind])
            if m[0] != "/" or m[1] in ("labor_kind", "labor_schema", "uuid", "config", "class_names", "class_set")
        ]
        for kind in kinds
    }
    deadline, cases, outcomes = time.monotonic() + SECONDS, 0, {"refused": 0, "accepted": 0}
    while time.monotonic() < deadline or cases < 20:
        kind = kinds[cases % len(kinds)]
        target, how = rng.choice(targets[kind]), rng.choice(MUTATIONS)
        case = tmp_path / f"case{cases}"
        case.mkdir()
        path = case / f"{kind}.h5"
        path.write_bytes(good[kind].read_bytes())
        mutate(path, target, how, rng)
        label = f"seed {SEED} case {cases}: {kind} {target} {how}"
        for argv in commands(kind, path, case / "out", good, toy_target):
            try:
                code, err, peak = run_case(argv, capsys)
            except Hang:
                pytest.fail(f"{label}: {argv[0]} still running after 60 s")
            assert "Traceback" not in err, f"{label}: {argv[0]}: {err}"
            assert peak < MEMORY_LIMIT, f"{label}: {argv[0]} allocated {peak:,} bytes"
            if code == 0:
                outcomes["accepted"] += 1
                continue
            lines = err.strip().splitlines()
            assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("labor: error: "), f"{label}: {err}"
            assert path.name in lines[0], f"{label}: {lines[0]}"
            outcomes["refused"] += 1
        if kind == "checkpoint":  # loading it whole (what extract, adapt, evaluate do first)
            try:
                artifacts.load_checkpoint(path)
            except LaborError as exc:
                assert path.name in str(exc) and "\n" not in str(exc), f"{label}: {exc}"
        cases += 1
    print(f"hostile artifacts: seed {SEED}, {cases} cases, {outcomes}")
    assert cases >= 20


@pytest.mark.parametrize(
    "kind, target, how, needle",
    [
        ("masks", ("sizes", None), "big", "impossible image size"),
        ("masks", ("sizes", None), "huge", "declares"),
        ("masks", ("candidates/offsets", None), "negative", "offsets do not match"),
        ("masks", ("pixel_offsets", None), "shift", "pixel_offsets do not match"),
        ("masks", ("candidates/similarity", None), "nan", "NaN"),
        ("masks", ("uncertain/y", None), "string", "not integers"),
        ("masks", ("/", "class_names"), "string", "class_names"),
        ("selection", ("offsets", None), "shift", "offsets do not match"),
        ("labels", ("y", None), "big", "outside image bounds"),
        ("labels", ("label", None), "float", "not integers"),
        ("checkpoint", ("networks/segmenter/00000", None), "nan", "NaN"),
        ("checkpoint", ("networks", "config"), "big", "damaged checkpoint"),
        ("checkpoint", ("training", "iteration"), "string", "damaged checkpoint"),
        ("checkpoint", ("/", "labor_schema"), "string", "labor_schema is not a number"),
        ("checkpoint", ("/", "config"), "string", "bad provenance"),
    ],
)
def test_each_kind_of_damage_is_named(tmp_path, good, kind, target, how, needle):
    """The fuzz loop's mutations, one of each, with the words of their refusal."""
    path = tmp_path / f"{kind}.h5"
    path.write_bytes(good[kind].read_bytes())
    mutate(path, target, how, random.Random(0))
    reader = {
        "masks": artifacts.Masks,
        "checkpoint": artifacts.load_checkpoint,
        "selection": lambda p: artifacts.read_pixel_set(p, "selection"),
        "labels": lambda p: artifacts.read_pixel_set(p, "labels"),
    }[kind]
    with pytest.raises(LaborError, match=needle) as raised:
        reader(path)
    assert str(path) in str(raised.value)
