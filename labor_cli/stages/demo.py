"""labor demo: the whole chain on the embedded toy pair, with a results table.

toy pair -> warmup -> evaluate (no target labels)
         -> extract -> select ppl 40 -> label -> adapt -> evaluate   (LabOR-PPL)
                    -> select spl    -> label -> adapt -> evaluate   (LabOR-SPL)
Each step is skipped when its artifact already exists (so a second `make demo` only prints
the table, and an interrupted one continues where it stopped); --force redoes everything.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from labor_cli import artifacts
from labor_cli.console import stderr, stdout
from labor_cli.presets import read_config_file
from labor_cli.training import TrainConfig


@dataclass
class DemoRow:
    method: str
    labeled_percent: float
    miou: float
    evaluation: Path


def train_config_from_preset(name: str, seed: int, **overrides) -> tuple[TrainConfig, dict]:
    """A preset's training values as a TrainConfig, and the rest (e.g. arch) as a dict."""
    values = read_config_file(Path(name))
    fields = {k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__}
    rest = {k: v for k, v in values.items() if k not in fields}
    fields.update(seed=seed, **overrides)
    return TrainConfig(**fields), rest


def run_demo(workdir: Path, seed: int = 0, points: int = 40, force: bool = False, quiet: bool = False,
             warmup_iterations: int | None = None, adapt_iterations: int | None = None, workers: int = 0) -> list[DemoRow]:
    from labor_cli.data.toy import make_toy_pair
    from labor_cli.stages.evaluate import run_evaluate
    from labor_cli.stages.extract import run_extract
    from labor_cli.stages.label import run_label
    from labor_cli.stages.select import run_select
    from labor_cli.stages.train import run_training_stage

    workdir = Path(workdir)
    if force and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "toy"
    source, target = f"gta5:{data / 'source'}", f"cityscapes:{data / 'target'}"
    common = dict(device="auto", quiet=quiet)
    started = time.perf_counter()

    def step(title: str, output: Path, make) -> Path:
        if output.exists():
            stderr.print(f"[dim]{title}: {output} exists, kept[/dim]")
        else:
            stderr.print(f"[bold]{title}[/bold] -> {output}")
            make()
        return output

    step("drawing the toy domain pair", data, lambda: make_toy_pair(data, seed=seed))
    warm_config, warm_rest = train_config_from_preset("toy-warmup", seed, **({"iterations": warmup_iterations} if warmup_iterations else {}))
    adapt_config, _ = train_config_from_preset("toy-adapt", seed, **({"iterations": adapt_iterations} if adapt_iterations else {}))
    warm = step("warmup (source labels + adversarial alignment)", workdir / "warmup.h5", lambda: run_training_stage(
        "warmup", source, target, workdir / "warmup.h5", warm_config, arch=warm_rest.get("arch", "small"),
        selector_backbone=warm_rest.get("selector_backbone", "separate"), workers=workers, **common))

    def evaluate(model: Path, name: str) -> Path:
        output = workdir / f"eval-{name}.h5"
        return step(f"evaluate {name}", output, lambda: run_evaluate(model, target, "val", output, workers=workers, **common))

    rows = [DemoRow("adversarial warmup (no target labels)", 0.0, _miou(evaluate(warm, "warmup")), workdir / "eval-warmup.h5")]
    masks = step("extract masks", workdir / "masks.h5", lambda: run_extract(warm, target, workdir / "masks.h5", workers=workers, **common))
    for name, title, select_options in (
        ("ppl", f"LabOR-PPL ({points} points / image)", {"mode": "ppl", "points": points}),
        ("spl", "LabOR-SPL (whole mask)", {"mode": "spl"}),
    ):
        selection = step(f"select {name}", workdir / f"selection-{name}.h5",
                         lambda: run_select(masks, output=workdir / f"selection-{name}.h5", seed=seed, quiet=quiet, **select_options))
        labels = step(f"label {name}", workdir / f"labels-{name}.h5",
                      lambda: run_label(selection, target, workdir / f"labels-{name}.h5", masks=masks, quiet=quiet))
        model = step(f"adapt {name}", workdir / f"adapt-{name}.h5", lambda: run_training_stage(
            "adapt", source, target, workdir / f"adapt-{name}.h5", adapt_config, start_from=warm, labels=labels,
            workers=workers, **common))
        share = artifacts.read_pixel_set(labels, "labels").labeled_share()
        rows.append(DemoRow(title, share, _miou(evaluate(model, name)), workdir / f"eval-{name}.h5"))
    stderr.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return rows


def _miou(evaluation: Path) -> float:
    import json

    with artifacts.open_artifact(evaluation, "evaluation") as artifact:
        scores = json.loads(artifact.file.attrs["scores"])
    return next(value for key, value in scores.items() if key.startswith("mIoU"))


def print_demo(rows: list[DemoRow]) -> None:
    from rich.table import Table

    table = Table("method", "labeled target pixels (%)", "mIoU (toy target val)", title="labor demo: toy GTA5-like -> Cityscapes-like")
    for row in rows:
        table.add_row(row.method, f"{row.labeled_percent:.3f}", f"{row.miou:.1f}")
    stdout.print(table)
