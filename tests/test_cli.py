"""The command line as a user meets it: help, the whole chain, and one-line errors."""

import json

import h5py
import pytest
from helpers import run_executable
from typer.testing import CliRunner

from labor_cli.cli import app

STAGES = (
    "data",
    "warmup",
    "extract",
    "select",
    "label",
    "adapt",
    "evaluate",
    "inspect",
    "export",
    "import",
    "show",
    "demo",
    "bench",
    "convert",
    "predict",
    "plot",
)


def test_help_lists_every_stage():
    result = run_executable("--help")
    for stage in STAGES:
        assert stage in result.stdout


@pytest.mark.slow
def test_whole_chain_on_the_tiny_toy_pair(tmp_path, toy_source, toy_target):
    runner = CliRunner()
    train = [
        "--arch",
        "small",
        "--iters",
        "4",
        "--source-batch",
        "2",
        "--target-batch",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
    ]

    def run(*args):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("warmup", "--source", toy_source, "--target", toy_target, "-o", tmp_path / "warmup.h5", *train)
    run(
        "extract",
        "-m",
        tmp_path / "warmup.h5",
        "--target",
        toy_target,
        "-o",
        tmp_path / "masks.h5",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
    )
    run(
        "select",
        "--masks",
        tmp_path / "masks.h5",
        "--mode",
        "ppl",
        "--points",
        "5",
        "-o",
        tmp_path / "selection.h5",
        "-q",
    )
    out = run(
        "label",
        "--selection",
        tmp_path / "selection.h5",
        "--target",
        toy_target,
        "--masks",
        tmp_path / "masks.h5",
        "-o",
        tmp_path / "labels.h5",
        "-q",
    )
    assert "A is wrong on" in out
    adapt_train = [a for a in train if a not in ("--arch", "small")]
    run(
        "adapt",
        "-m",
        tmp_path / "warmup.h5",
        "--labels",
        tmp_path / "labels.h5",
        "--source",
        toy_source,
        "--target",
        toy_target,
        "-o",
        tmp_path / "adapt.h5",
        *adapt_train,
    )
    out = run(
        "evaluate",
        "-m",
        tmp_path / "adapt.h5",
        "--target",
        toy_target,
        "-o",
        tmp_path / "eval.h5",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
    )
    assert "mIoU19" in out
    # the loss histories beside the checkpoints, a row per iteration; and the figures drawn from them
    assert (tmp_path / "warmup.losses.csv").read_text().splitlines()[0].startswith("iteration,seg_src,")
    assert len((tmp_path / "adapt.losses.csv").read_text().splitlines()) == 1 + 4
    out = run("plot", "curves", tmp_path / "warmup.h5", tmp_path / "adapt.losses.csv", "-o", tmp_path / "curves.png")
    assert "2 series (warmup.h5, adapt.losses.csv)" in " ".join(out.split())
    out = run("plot", "budget", tmp_path / "eval.h5", "-o", tmp_path / "budget.png")
    assert "1 series (ppl, 5 points" in " ".join(out.split())
    info = json.loads(run("inspect", tmp_path / "eval.h5", "--json"))
    assert info["kind"] == "evaluation" and info["lineage"][0]["path"] == str(tmp_path / "adapt.h5")
    with h5py.File(tmp_path / "adapt.h5") as f:
        kinds = sorted(parent["kind"] for parent in json.loads(f.attrs["lineage"]))
    assert kinds == ["checkpoint", "labels"]
    # a second round: exclude what is labeled, merge the labels
    run(
        "extract",
        "-m",
        tmp_path / "adapt.h5",
        "--target",
        toy_target,
        "--exclude",
        tmp_path / "labels.h5",
        "-o",
        tmp_path / "masks2.h5",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
    )
    run(
        "select",
        "--masks",
        tmp_path / "masks2.h5",
        "--mode",
        "ppl",
        "--points",
        "5",
        "-o",
        tmp_path / "selection2.h5",
        "-q",
    )
    run(
        "label",
        "--selection",
        tmp_path / "selection2.h5",
        "--target",
        toy_target,
        "--merge",
        tmp_path / "labels.h5",
        "-o",
        tmp_path / "labels2.h5",
        "-q",
    )
    from labor_cli import artifacts

    first, second = (
        artifacts.read_pixel_set(tmp_path / "labels.h5", "labels"),
        artifacts.read_pixel_set(tmp_path / "labels2.h5", "labels"),
    )
    asked = artifacts.read_pixel_set(tmp_path / "selection2.h5", "selection")
    assert len(asked.y) > 0
    assert len(second.y) == len(first.y) + len(asked.y)  # no pixel asked twice


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["inspect", "{tmp}/missing.h5"], 1, "missing.h5: no such file"),
        (
            ["evaluate", "-m", "{tmp}/plain.h5", "--target", "cityscapes:{tmp}", "-o", "{tmp}/e.h5"],
            1,
            "plain.h5: not a labor artifact",
        ),
        (["select", "--masks", "{tmp}/plain.h5", "--mode", "ppl", "--points", "0", "-o", "{tmp}/s.h5"], 2, "points"),
        (["warmup", "--source", "nonsense", "--target", "cityscapes:{tmp}", "-o", "{tmp}/w.h5"], 2, "nonsense"),
        (
            ["warmup", "--source", "gta5:{tmp}", "--target", "cityscapes:{tmp}", "-o", "{tmp}/w.h5", "--seed", "-1"],
            2,
            "seed",
        ),
        (
            ["warmup", "--source", "gta5:{tmp}/nowhere", "--target", "cityscapes:{tmp}", "-o", "{tmp}/w.h5"],
            1,
            "nowhere",
        ),
        (
            ["convert", "{tmp}/plain.h5", "-o", "{tmp}/c.h5"],
            1,
            "plain.h5: not a readable PyTorch weights file: an HDF5",
        ),
        (["select", "--masks", "{tmp}/plain.h5", "--mode", "ppl", "--points", "2", "-o", "/"], 1, "/: already exists"),
        (
            ["extract", "-m", "{tmp}/plain.h5", "--target", "cityscapes:{tmp}", "-o", "{tmp}/e.h5", "--workers", "-1"],
            2,
            "--workers",
        ),
        (["bench", "--device", "cpu", "--e2e-images", "-5"], 2, "--e2e-images"),
        (["show", "{tmp}/plain.h5", "-o", "{tmp}/p", "--scale", "100"], 2, "--scale 100: at most 16"),
        (["plot", "budget", "{tmp}/plain.h5", "-o", "{tmp}/p.png", "--size", "100000x100"], 2, "at most 16384"),
        (["bench", "--device", "cpu", "--profile", "{tmp}/plain.h5"], 1, "plain.h5: is a file, expected a folder"),
        (
            [
                "evaluate",
                "-m",
                "/nowhere/model.h5",
                "--target",
                "cityscapes:{tmp}",
                "-o",
                "{tmp}/e.h5",
                "--colour",
                "{tmp}",
            ],
            1,
            ": folder exists and is not empty; pass --force",
        ),
        (
            [
                "evaluate",
                "-m",
                "{tmp}/p",
                "--target",
                "cityscapes:{tmp}",
                "-o",
                "{tmp}/e.h5",
                "--predictions",
                "{tmp}/plain.h5",
            ],
            1,
            "plain.h5: is a file, expected a folder",
        ),
    ],
)
def test_bad_input_gives_one_line_an_exit_code_and_no_traceback(tmp_path, args, code, message):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = 1
    result = run_executable(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1
    assert not any(p.name in ("e.h5", "s.h5", "w.h5", "c.h5", "p.png", "p") for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "-m", "{f}", "--target", "cityscapes:{tmp}", "-o", "{f}"],
        ["extract", "-m", "{f}", "--target", "cityscapes:{tmp}", "-o", "{f}"],
        ["label", "--selection", "{tmp}/s.h5", "--target", "cityscapes:{tmp}", "--merge", "{f}", "-o", "{f}"],
        ["import", "{tmp}/a.csv", "--selection", "{f}", "-o", "{f}"],
        ["adapt", "-m", "{tmp}/w.h5", "--labels", "{f}", "--source", "gta5:{tmp}", "--target", "cityscapes:{tmp}"]
        + ["-o", "{f}"],
        ["convert", "advent:{f}", "-o", "{f}"],
        ["plot", "budget", "{f}", "-o", "{f}"],
        ["select", "--masks", "{f}", "--mode", "random", "--points", "2", "-o", "{f}"],
    ],
)
def test_an_output_that_is_one_of_the_inputs_is_refused_even_with_force(tmp_path, args):
    """The new artifact's lineage names its inputs; replacing one (evaluate -o model.h5 --force) would lose it."""
    given = tmp_path / "mine.h5"
    with h5py.File(given, "w") as f:
        f["x"] = 1
    before = given.read_bytes()
    result = run_executable(*[a.format(tmp=tmp_path, f=given) for a in args], "--force", check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "would replace its own input" in result.stderr and str(given) in result.stderr
    assert given.read_bytes() == before


def test_out_of_memory_is_one_labor_error():
    """A MemoryError (show --scale, plot --size, a batch too large for the machine) becomes the one-line
    LaborError main prints; other errors pass through untouched."""
    from labor_cli import cli
    from labor_cli.errors import LaborError

    with pytest.raises(LaborError, match="^out of memory$"):
        with cli.out_of_memory_hint(object()):
            raise MemoryError
    with pytest.raises(ValueError, match="unrelated"):
        with cli.out_of_memory_hint(object()):
            raise ValueError("unrelated")
