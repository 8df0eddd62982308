"""The reliability matrix: every subcommand x every bad input it can meet, so that a user who hands
labor a wrong file learns which file and what is wrong, and loses nothing.

Each case runs `labor` in-process (``labor_cli.cli.main(argv)``) and asserts: the exit code (2 for
usage errors, 1 for the rest), exactly one line on stderr naming the file and the problem, no
traceback, and nothing new under the output folder (no partial or resume files either).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import h5py
import pytest
from helpers import run_executable, run_main

from labor_cli import artifacts
from labor_cli.options import ExtractOptions, LabelOptions, SelectOptions

RUN = ["--device", "cpu", "--workers", "0", "-q"]
TRAIN = ["--iters", "2", "--source-batch", "2", "--target-batch", "2", "--save-every", "1000", *RUN]

# The good command of each subcommand; {name} are the inputs below, OUT/OUTDIR the output.
COMMANDS = {
    "warmup": ["warmup", "--source", "{src}", "--target", "{tgt}", "-o", "{out}/o.h5", "--arch", "small", *TRAIN],
    "extract": ["extract", "-m", "{ckpt}", "--target", "{tgt}", "-o", "{out}/o.h5", *RUN],
    "select": ["select", "--masks", "{masks}", "--mode", "ppl", "--points", "3", "-o", "{out}/o.h5", "-q"],
    "label": ["label", "--selection", "{sel}", "--target", "{tgt}", "-o", "{out}/o.h5", "-q"],
    "export": ["export", "{sel}", "-o", "{out}/o", "--overlays", "--target", "{tgt}", "-q"],
    "import": ["import", "{answers}", "--selection", "{sel}", "-o", "{out}/o.h5"],
    "show": ["show", "{masks}", "-o", "{out}/o", "--target", "{tgt}", "-q"],
    "adapt": [
        "adapt",
        "-m",
        "{ckpt}",
        "--labels",
        "{labels}",
        "--source",
        "{src}",
        "--target",
        "{tgt}",
        "-o",
        "{out}/o.h5",
        *TRAIN,
    ],
    "evaluate": ["evaluate", "-m", "{ckpt}", "--target", "{tgt}", "-o", "{out}/o.h5", *RUN],
    "inspect": ["inspect", "{masks}"],
    "data toy": ["data", "toy", "{out}/o", "--size", "tiny"],
}
# Which input of each command holds which kind of artifact (for the artifact-level bad inputs).
ARTIFACT_INPUTS = {
    "extract": [("{ckpt}", "checkpoint")],
    "select": [("{masks}", "masks")],
    "label": [("{sel}", "selection")],
    "export": [("{sel}", "selection")],
    "import": [("{sel}", "selection")],
    "show": [("{masks}", "masks")],
    "adapt": [("{ckpt}", "checkpoint"), ("{labels}", "labels")],
    "evaluate": [("{ckpt}", "checkpoint")],
    "inspect": [("{masks}", "masks")],
}
DATASET_INPUTS = {
    "warmup": ["{src}", "{tgt}"],
    "extract": ["{tgt}"],
    "label": ["{tgt}"],
    "export": ["{tgt}"],
    "show": ["{tgt}"],
    "adapt": ["{src}", "{tgt}"],
    "evaluate": ["{tgt}"],
}
WRITERS = [c for c in COMMANDS if c != "inspect"]
WRONG_KIND = {"checkpoint": "masks", "masks": "checkpoint", "selection": "labels", "labels": "selection"}


def cases():
    """(id, command, {placeholder: replacement}, extra args, exit code, needles in the error line)."""
    out = []

    def add(command, what, replace, code, *needles, extra=()):
        out.append(pytest.param(command, what, replace, list(extra), code, needles, id=f"{command}-{what}"))

    for command, inputs in ARTIFACT_INPUTS.items():
        for slot, kind in inputs:
            name = slot.strip("{}")
            add(command, f"missing-{name}", {slot: "{bad}/missing.h5"}, 1, "missing.h5", "no such file")
            add(command, f"folder-as-{name}", {slot: "{bad}/empty"}, 1, "empty", "folder")
            add(command, f"plain-hdf5-as-{name}", {slot: "{bad}/plain.h5"}, 1, "plain.h5", "not a labor artifact")
            if command != "inspect":
                other = "checkpoint" if command == "export" else WRONG_KIND[kind]  # export takes labels too
                add(
                    command,
                    f"{other}-as-{name}",
                    {slot: f"{{bad}}/{other}.h5"},
                    1,
                    f"{other}.h5",
                    f"is a {other} artifact",
                )
            add(
                command,
                f"truncated-{name}",
                {slot: f"{{bad}}/truncated-{kind}.h5"},
                1,
                f"truncated-{kind}.h5",
                "truncated",
            )
            add(command, f"newer-{name}", {slot: f"{{bad}}/newer-{kind}.h5"}, 1, f"newer-{kind}.h5", "newer")
            add(command, f"not-hdf5-{name}", {slot: "{bad}/answers.csv"}, 1, "answers.csv", "not a readable HDF5")
    for command, slots in DATASET_INPUTS.items():
        for slot in slots:
            name = slot.strip("{}")
            add(command, f"missing-{name}", {slot: "gta5:{bad}/nowhere"}, 1, "nowhere", "no such folder")
            add(
                command,
                f"empty-{name}",
                {slot: f"{'gta5' if name == 'src' else 'cityscapes'}:{{bad}}/empty"},
                1,
                "empty",
                "no ",
            )
            if name == "tgt":
                add(
                    command,
                    "gta5-as-cityscapes",
                    {slot: "cityscapes:{toy}/source"},
                    1,
                    "source",
                    "looks like a gta5 dataset",
                )
            else:
                add(
                    command,
                    "cityscapes-as-gta5",
                    {slot: "gta5:{toy}/target"},
                    1,
                    "target",
                    "looks like a cityscapes dataset",
                )
            add(command, f"file-as-{name}", {slot: "gta5:{bad}/plain.h5"}, 1, "plain.h5", "not a folder")
    # corrupt PNGs, where the stage reads pixels
    for command in ("warmup", "extract", "export", "show", "adapt"):
        add(
            command,
            "corrupt-image-tgt",
            {"{tgt}": "cityscapes:{bad}/corrupt-target"},
            1,
            "_leftImg8bit.png",
            "cannot read image",
        )
    add("warmup", "corrupt-image-src", {"{src}": "gta5:{bad}/corrupt-source"}, 1, "00000.png", "cannot read image")
    add(
        "evaluate",
        "corrupt-image-tgt",
        {"{tgt}": "cityscapes:{bad}/corrupt-target"},
        1,
        "voxelstadt",
        "cannot read image",
    )
    add(
        "label",
        "corrupt-label-tgt",
        {"{tgt}": "cityscapes:{bad}/corrupt-target"},
        1,
        "_gtFine_labelIds.png",
        "cannot read label",
    )
    # a class set the checkpoint has and the dataset cannot label
    add(
        "evaluate",
        "class-set-mismatch",
        {"{tgt}": "folder:{bad}/three-classes"},
        1,
        "three-classes",
        "labels have no",
        extra=["--split", "all"],
    )
    add("adapt", "class-set-mismatch", {"{src}": "folder:{bad}/three-classes"}, 1, "three-classes", "labels have no")
    add("warmup", "class-set-mismatch", {"{src}": "folder:{bad}/three-classes"}, 1, "three-classes", "labels have no")
    # image ids that match neither each other nor the dataset
    add("label", "ids-not-in-dataset", {}, 1, "sel.h5", "is not in", extra=["--split", "val"])
    add("show", "ids-not-in-dataset", {}, 1, "masks.h5", "is not in", extra=["--split", "val"])
    add("export", "ids-not-in-dataset", {}, 1, "sel.h5", "is not in", extra=["--split", "val"])
    add("adapt", "ids-not-in-dataset", {}, 1, "labels.h5", "is not in", extra=["--target-split", "val"])
    add(
        "extract",
        "exclude-ids-not-in-dataset",
        {},
        1,
        "labels.h5",
        "is not in",
        extra=["--split", "val", "--exclude", "{labels}"],
    )
    add("label", "masks-of-other-images", {}, 1, "val-masks.h5", "", extra=["--masks", "{bad}/val-masks.h5"])
    add("import", "answer-for-other-image", {"{answers}": "{bad}/stranger.csv"}, 1, "stranger.csv", "not in")
    # point budgets
    add("select", "points-0", {"3": "0"}, 2, "--points", "positive")
    add("select", "points-negative", {"3": "-5"}, 2, "--points", "positive")
    add("select", "points-above-pixels", {"3": "100000"}, 2, "--points 100000", "more than")
    add("select", "ratio-above-1", {"ppl": "random", "--points": "--ratio", "3": "1.5"}, 2, "--ratio", "")
    # outputs
    for command in WRITERS:
        add(command, "output-under-a-file", {"{out}": "{bad}/blocker"}, 1, "blocker", "cannot")
        add(command, "existing-output", {}, 1, "o", "exists")
    return out


@pytest.fixture(scope="session")
def chain(tmp_path_factory, toy_pair, toy_source, toy_target, warm_checkpoint):
    """Good inputs (checkpoint, masks, selection, labels, answers) and bad ones, made once."""
    from labor_cli.stages.extract import run_extract
    from labor_cli.stages.label import run_label
    from labor_cli.stages.select import run_select

    root = tmp_path_factory.mktemp("matrix")
    good = {"ckpt": warm_checkpoint, "masks": root / "masks.h5", "sel": root / "sel.h5", "labels": root / "labels.h5"}
    run_extract(
        ExtractOptions(
            model=warm_checkpoint, target=toy_target, output=good["masks"], device="cpu", quiet=True, workers=0
        )
    )
    run_select(SelectOptions(masks=good["masks"], mode="ppl", output=good["sel"], points=3, quiet=True))
    run_label(LabelOptions(selection=good["sel"], target=toy_target, output=good["labels"], quiet=True))
    chosen = artifacts.read_pixel_set(good["sel"], "selection")
    good["answers"] = root / "answers.csv"
    good["answers"].write_text(f"image_id,x,y,class\n{chosen.image_ids[0]},{chosen.x[0]},{chosen.y[0]},road\n")

    bad = root / "bad"
    bad.mkdir()
    (bad / "empty").mkdir()
    (bad / "blocker").write_text("a file, not a folder\n")
    (bad / "answers.csv").write_text("image_id,x,y,class\n")
    (bad / "stranger.csv").write_text("image_id,x,y,class\nnowhere/nowhere_000000_000019,1,1,road\n")
    with h5py.File(bad / "plain.h5", "w") as f:
        f["x"] = 1
    for kind, path in (
        ("checkpoint", good["ckpt"]),
        ("masks", good["masks"]),
        ("selection", good["sel"]),
        ("labels", good["labels"]),
    ):
        shutil.copyfile(path, bad / f"{kind}.h5")
        data = Path(path).read_bytes()
        (bad / f"truncated-{kind}.h5").write_bytes(data[: len(data) // 2])
        shutil.copyfile(path, bad / f"newer-{kind}.h5")
        with h5py.File(bad / f"newer-{kind}.h5", "a") as f:
            f.attrs["labor_schema"] = 99
    run_extract(
        ExtractOptions(
            model=warm_checkpoint,
            target=toy_target,
            output=bad / "val-masks.h5",
            split="val",
            device="cpu",
            quiet=True,
            workers=0,
        )
    )
    # a dataset copy with a truncated image (train and val) and a truncated label (train)
    target = bad / "corrupt-target"
    shutil.copytree(toy_pair / "target", target)
    train_images = sorted((target / "leftImg8bit" / "train").rglob("*.png"))
    val_images = sorted((target / "leftImg8bit" / "val").rglob("*.png"))
    for png in (train_images[0], val_images[0]):
        png.write_bytes(png.read_bytes()[:200])
    labeled = chosen.image_ids[0]
    label_png = target / "gtFine" / "train" / f"{labeled}_gtFine_labelIds.png"
    label_png.write_bytes(label_png.read_bytes()[:200])
    source = bad / "corrupt-source"
    shutil.copytree(toy_pair / "source", source)
    (source / "images" / "00000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    # a folder dataset labeling three classes only
    folder = bad / "three-classes"
    shutil.copytree(toy_pair / "source" / "images", folder / "images")
    (folder / "labels").mkdir()
    for png in (folder / "images").glob("*.png"):
        shutil.copyfile(toy_pair / "source" / "labels" / png.name, folder / "labels" / png.name)
    (folder / "classes.txt").write_text("road\nsidewalk\nbuilding\n")
    return {
        **{k: str(v) for k, v in good.items()},
        "bad": str(bad),
        "toy": str(toy_pair),
        "src": toy_source,
        "tgt": toy_target,
        "label_png": label_png,
        "train_image": train_images[0],
    }


def build(command, chain, out, replace=(), extra=()):
    values = {**chain, "out": str(out)}
    argv = []
    for arg in COMMANDS[command]:
        arg = dict(replace).get(arg, arg)
        for key, value in dict(replace).items():
            if key.startswith("{") and key in arg:
                arg = arg.replace(key, value)
        argv.append(arg.format(**values))
    return argv + [a.format(**values) for a in extra]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"") for p in sorted(folder.rglob("*"))}


def assert_one_line_error(code, err, expected_code, needles):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("labor: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command, what, replace, extra, code, needles", cases())
def test_bad_input(tmp_path, capsys, chain, command, what, replace, extra, code, needles):
    out = tmp_path / "out"
    out.mkdir()
    if what == "existing-output":
        (out / "o.h5").write_bytes(b"precious")
        (out / "o").mkdir()
        (out / "o" / "keep.txt").write_text("precious")
    before, bad_before = snapshot(out), snapshot(Path(chain["bad"]))
    code_got, _, err = run_main(build(command, chain, out, replace, extra), capsys)
    assert_one_line_error(code_got, err, code, needles)
    assert snapshot(out) == before  # nothing written, nothing half-written, nothing replaced
    assert snapshot(Path(chain["bad"])) == bad_before


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("command", WRITERS)
def test_a_disk_that_fills_during_the_write(tmp_path, capsys, chain, monkeypatch, command):
    from PIL import Image

    out = tmp_path / "out"
    out.mkdir()
    argv = build(command, chain, out)
    if command == "data toy":
        monkeypatch.setattr(Path, "write_bytes", _disk_full)  # the toy pair draws PNGs in memory first
    else:
        monkeypatch.setattr(h5py.Group, "create_dataset", _disk_full)
        monkeypatch.setattr(Image.Image, "save", _disk_full)
    code, _, err = run_main(argv, capsys)
    assert_one_line_error(
        code, err, 1, ["o", "No space left on device" if command in ("export", "show", "data toy") else "disk full"]
    )
    assert snapshot(out) == {}


@pytest.mark.parametrize("command", ["warmup", "extract", "evaluate", "adapt", "label"])
def test_skip_bad_continues_without_the_unreadable_files_and_counts_them(tmp_path, capsys, chain, command):
    out = tmp_path / "out"
    out.mkdir()
    replace = {"{tgt}": "cityscapes:{bad}/corrupt-target"}
    if command == "warmup":
        replace["{src}"] = "gta5:{bad}/corrupt-source"
    code, _, err = run_main(build(command, chain, out, replace, ["--skip-bad"]), capsys)
    assert code == 0, err
    assert "skipped" in err and "unreadable" in err
    with h5py.File(out / "o.h5") as f:
        config = json.loads(f.attrs["config"])
    skipped = config["skipped_unreadable"]
    expected = {"warmup": 2, "extract": 1, "evaluate": 1, "adapt": 1, "label": 1}[command]
    assert sum(len(v) for v in skipped.values()) == expected, skipped


# --- the same bad inputs read in DataLoader worker processes -----------------------------------

LOADER_STAGES = ("warmup", "extract", "evaluate", "adapt")  # the stages whose images a DataLoader reads
WORKER_CASES = [case for case in cases() if case.values[0] in LOADER_STAGES and "corrupt" in case.values[1]]


def with_workers(argv: list[str], workers: int) -> list[str]:
    i = argv.index("--workers")
    return argv[: i + 1] + [str(workers)] + argv[i + 2 :]


@pytest.mark.parametrize("command, what, replace, extra, code, needles", WORKER_CASES)
def test_bad_input_read_in_a_worker_process(tmp_path, capsys, chain, command, what, replace, extra, code, needles):
    """torch re-raises a worker's error as "Caught LaborError in DataLoader worker process 0." with
    the worker's traceback: still the one line the same error gives in-process."""
    out = tmp_path / "out"
    out.mkdir()
    code_got, _, err = run_main(with_workers(build(command, chain, out, replace, extra), 1), capsys)
    assert_one_line_error(code_got, err, code, needles)
    assert snapshot(out) == {}


def _evaluate_val(chain, out, target, workers=1):
    return [
        "evaluate",
        "-m",
        chain["ckpt"],
        "--target",
        f"cityscapes:{target}",
        "--split",
        "val",
        "-o",
        f"{out}/o.h5",
        "--device",
        "cpu",
        "--workers",
        str(workers),
        "-q",
    ]


@pytest.mark.parametrize("fault", ["deleted", "permission", "label-size"])
def test_a_file_that_changes_under_a_worker(tmp_path, capsys, chain, monkeypatch, fault):
    """A file deleted or made unreadable after the stage listed the folder, and a label whose size
    is not its image's: one line from the worker that reads it."""
    from PIL import Image

    from labor_cli.data.views import FullLabelView

    target = tmp_path / "target"
    shutil.copytree(Path(chain["toy"]) / "target", target)
    images = sorted((target / "leftImg8bit" / "val").rglob("*.png"))
    victim = images[1]
    expected = {"deleted": "No such file", "permission": "Permission denied"}.get(fault)
    if fault == "label-size":
        victim = target / "gtFine" / "val" / victim.parent.name / victim.name.replace("leftImg8bit", "gtFine_labelIds")
        with Image.open(victim) as im:
            im.resize((im.width // 2, im.height)).save(victim)
            expected = f"label is {im.width // 2}x{im.height}, its image {im.width}x{im.height}"
    else:
        real_item, real_open = FullLabelView.__getitem__, Image.open

        def item(self, i):  # runs in the worker, after the dataset was scanned in the main process
            if i == 1 and fault == "deleted":
                victim.unlink()
            if i == 1 and fault == "permission":
                victim.chmod(0)
            return real_item(self, i)

        def refused(fp) -> bool:  # root reads a mode-000 file anyway: refuse it as for anyone else
            return os.geteuid() == 0 and Path(str(fp)) == victim and victim.stat().st_mode & 0o777 == 0

        def refusing_open(fp, *args, **kwargs):
            if refused(fp):
                raise PermissionError(errno.EACCES, "Permission denied", str(fp))
            return real_open(fp, *args, **kwargs)

        real_read_bytes = Path.read_bytes

        def refusing_read_bytes(path):  # how the images' libpng path reads a file
            if refused(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", refusing_read_bytes)
        monkeypatch.setattr(FullLabelView, "__getitem__", item)
        monkeypatch.setattr(Image, "open", refusing_open)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_main(_evaluate_val(chain, out, target), capsys)
    assert_one_line_error(code, err, 1, [victim.name, expected])
    assert snapshot(out) == {}


@pytest.mark.parametrize("command", ["evaluate", "warmup"])
def test_bad_input_through_the_executable_with_workers(tmp_path, chain, command):
    """A corrupt image read by a loader worker reaches the user through torch's worker error
    wrapping, which carries the worker's traceback. Through the real executable, with 2 workers:
    still one line."""
    out = tmp_path / "out"
    out.mkdir()
    if command == "evaluate":
        argv = _evaluate_val(chain, out, Path(chain["bad"]) / "corrupt-target", workers=2)
        needles = ("voxelstadt", "cannot read image")
    else:
        argv = with_workers(build("warmup", chain, out, {"{src}": "gta5:{bad}/corrupt-source"}), 2)
        needles = ("00000.png", "cannot read image")
    result = run_executable(*argv, check=False)
    assert_one_line_error(result.returncode, result.stderr, 1, needles)
    assert snapshot(out) == {}
    if command == "warmup":
        return
    # and --skip-bad goes on without the file, in the workers as in-process
    result = run_executable(*argv, "--skip-bad", check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "skipped" in result.stderr
