"""labor demo: the whole chain on the embedded toy pair, with a results table.

toy pair -> warmup -> evaluate (no target labels)
         -> extract -> select ppl 40      -> label -> adapt -> evaluate   (LabOR-PPL)
                    -> select random 40   -> label -> adapt -> evaluate   (random points, the baseline)
                    -> select balanced 40 -> label -> adapt -> evaluate   (ours, docs/method.md)
Three methods at the same budget keep the demo within 10 minutes on 2 CPU cores; LabOR-SPL and
the rest are in examples/compare.sh.
Each step is skipped when its artifact already exists (so a second `make demo` only prints
the table, and an interrupted one continues where it stopped); --force redoes everything.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labor_cli import artifacts
from labor_cli.console import stderr, stdout
from labor_cli.option_machinery import build, values_from_file
from labor_cli.options import (
    AdaptOptions,
    DemoOptions,
    EvaluateOptions,
    ExtractOptions,
    LabelOptions,
    SelectOptions,
    ToyOptions,
    WarmupOptions,
)


@dataclass
class DemoRow:
    method: str
    labeled_percent: float
    miou: float
    evaluation: Path


def training_options(options_class: type, preset: str, demo: DemoOptions, iterations: int | None, **values) -> Any:
    """A training stage's options as `--config PRESET` gives them, with the demo's seed, iteration
    override and inputs."""
    from_preset = values_from_file(Path(preset), options_class)
    overrides = {"seed": demo.seed, **({"iterations": iterations} if iterations else {})}
    return build(options_class, {**from_preset, **overrides, **values})


@dataclass
class DemoRun:
    """The demo's steps in one work folder: each writes one artifact there, and is skipped when
    that artifact exists."""

    demo: DemoOptions
    workdir: Path

    @property
    def data(self) -> Path:
        return self.workdir / "toy"

    @property
    def source(self) -> str:
        return f"gta5:{self.data / 'source'}"

    @property
    def target(self) -> str:
        return f"cityscapes:{self.data / 'target'}"

    @property
    def common(self) -> dict:
        """The options every training and inference stage of the demo shares."""
        return dict(device="auto", quiet=self.demo.quiet, workers=self.demo.workers)

    def step(self, title: str, output: Path, make) -> Path:
        """``output``, made by ``make()`` unless it exists."""
        if output.exists():
            stderr.print(f"[dim]{title}: {output} exists, kept[/dim]")
        else:
            stderr.print(f"[bold]{title}[/bold] -> {output}")
            make()
        return output

    def draw_toy_pair(self) -> Path:
        from labor_cli.data.toy import make_toy_pair

        return self.step(
            "drawing the toy domain pair",
            self.data,
            lambda: make_toy_pair(ToyOptions(directory=self.data, seed=self.demo.seed)),
        )

    def warmup(self) -> Path:
        """The model trained on source labels with adversarial alignment to the target."""
        from labor_cli.stages.train import run_training_stage

        output = self.workdir / "warmup.h5"
        options = dict(source=self.source, target=self.target, output=output, **self.common)
        return self.step(
            "warmup (source labels + adversarial alignment)",
            output,
            lambda: run_training_stage(
                training_options(WarmupOptions, "toy-warmup", self.demo, self.demo.warmup_iters, **options)
            ),
        )

    def evaluate(self, model: Path, name: str) -> Path:
        from labor_cli.stages.evaluate import run_evaluate

        output = self.workdir / f"eval-{name}.h5"
        options = dict(model=model, target=self.target, split="val", output=output, **self.common)
        return self.step(f"evaluate {name}", output, lambda: run_evaluate(EvaluateOptions(**options)))

    def extract(self, model: Path) -> Path:
        """The masks that every selection round picks from."""
        from labor_cli.stages.extract import run_extract

        output = self.workdir / "masks.h5"
        options = dict(model=model, target=self.target, output=output, **self.common)
        return self.step("extract masks", output, lambda: run_extract(ExtractOptions(**options)))

    def labeled_round(self, name: str, select_options: dict, warm: Path, masks: Path) -> tuple[Path, Path]:
        """select -> label -> adapt from the warmup; the labels and the adapted checkpoint."""
        from labor_cli.stages.label import run_label
        from labor_cli.stages.select import run_select
        from labor_cli.stages.train import run_training_stage

        demo, workdir = self.demo, self.workdir
        selection = workdir / f"selection-{name}.h5"
        select = dict(masks=masks, output=selection, seed=demo.seed, quiet=demo.quiet, **select_options)
        self.step(f"select {name}", selection, lambda: run_select(SelectOptions(**select)))
        labels = workdir / f"labels-{name}.h5"
        label = dict(selection=selection, target=self.target, output=labels, masks=masks, quiet=demo.quiet)
        self.step(f"label {name}", labels, lambda: run_label(LabelOptions(**label)))
        model = workdir / f"adapt-{name}.h5"
        adapt = dict(model=warm, labels=labels, source=self.source, target=self.target, output=model, **self.common)
        self.step(
            f"adapt {name}",
            model,
            lambda: run_training_stage(training_options(AdaptOptions, "toy-adapt", demo, demo.adapt_iters, **adapt)),
        )
        return labels, model


def labeled_methods(demo: DemoOptions) -> tuple[tuple[str, str, dict], ...]:
    """The methods compared at the same budget: their artifacts' name, their row's title and their
    `labor select` options."""
    points = demo.points
    return (
        ("ppl", f"LabOR-PPL ({points} points / image)", {"mode": "ppl", "points": points}),
        ("random", f"random ({points} points / image)", {"mode": "random", "points": points}),
        ("balanced", f"ours: balanced ({points} points / image)", {"mode": "balanced", "points": points}),
    )


def run_demo(demo: DemoOptions) -> list[DemoRow]:
    """Every step of the demo (those whose artifact exists skipped) and the table's rows."""
    workdir = Path(demo.workdir)
    if demo.force and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    run = DemoRun(demo, workdir)
    started = time.perf_counter()
    run.draw_toy_pair()
    warm = run.warmup()
    evaluation = run.evaluate(warm, "warmup")
    rows = [DemoRow("adversarial warmup (no target labels)", 0.0, _miou(evaluation), evaluation)]
    masks = run.extract(warm)
    for name, title, select_options in labeled_methods(demo):
        labels, model = run.labeled_round(name, select_options, warm, masks)
        share = artifacts.read_pixel_set(labels, "labels").labeled_share()
        evaluation = run.evaluate(model, name)
        rows.append(DemoRow(title, share, _miou(evaluation), evaluation))
    stderr.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return rows


def _miou(evaluation: Path) -> float:
    import json

    with artifacts.open_artifact(evaluation, "evaluation") as artifact:
        scores = json.loads(artifact.file.attrs["scores"])
    return next(value for key, value in scores.items() if key.startswith("mIoU"))


def print_demo(rows: list[DemoRow]) -> None:
    from rich.table import Table

    table = Table(
        "method",
        "labeled target pixels (%)",
        "mIoU (toy target val)",
        title="labor demo: toy GTA5-like -> Cityscapes-like",
    )
    for row in rows:
        table.add_row(row.method, f"{row.labeled_percent:.3f}", f"{row.miou:.1f}")
    stdout.print(table)
