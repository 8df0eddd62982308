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


def run_demo(demo: DemoOptions) -> list[DemoRow]:
    from labor_cli.data.toy import make_toy_pair
    from labor_cli.stages.evaluate import run_evaluate
    from labor_cli.stages.extract import run_extract
    from labor_cli.stages.label import run_label
    from labor_cli.stages.select import run_select
    from labor_cli.stages.train import run_training_stage

    workdir = Path(demo.workdir)
    if demo.force and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "toy"
    source, target = f"gta5:{data / 'source'}", f"cityscapes:{data / 'target'}"
    common = dict(device="auto", quiet=demo.quiet, workers=demo.workers)
    started = time.perf_counter()

    def step(title: str, output: Path, make) -> Path:
        if output.exists():
            stderr.print(f"[dim]{title}: {output} exists, kept[/dim]")
        else:
            stderr.print(f"[bold]{title}[/bold] -> {output}")
            make()
        return output

    def evaluate(model: Path, name: str) -> Path:
        output = workdir / f"eval-{name}.h5"
        return step(
            f"evaluate {name}",
            output,
            lambda: run_evaluate(EvaluateOptions(model=model, target=target, split="val", output=output, **common)),
        )

    step("drawing the toy domain pair", data, lambda: make_toy_pair(ToyOptions(directory=data, seed=demo.seed)))
    warm = step(
        "warmup (source labels + adversarial alignment)",
        workdir / "warmup.h5",
        lambda: run_training_stage(
            training_options(
                WarmupOptions,
                "toy-warmup",
                demo,
                demo.warmup_iters,
                source=source,
                target=target,
                output=workdir / "warmup.h5",
                **common,
            )
        ),
    )
    rows = [
        DemoRow(
            "adversarial warmup (no target labels)", 0.0, _miou(evaluate(warm, "warmup")), workdir / "eval-warmup.h5"
        )
    ]
    masks = step(
        "extract masks",
        workdir / "masks.h5",
        lambda: run_extract(ExtractOptions(model=warm, target=target, output=workdir / "masks.h5", **common)),
    )

    def labeled_round(name: str, select_options: dict) -> tuple[Path, Path]:
        """select -> label -> adapt from the warmup; the labels and the adapted checkpoint."""
        selection = step(
            f"select {name}",
            workdir / f"selection-{name}.h5",
            lambda: run_select(
                SelectOptions(
                    masks=masks,
                    output=workdir / f"selection-{name}.h5",
                    seed=demo.seed,
                    quiet=demo.quiet,
                    **select_options,
                )
            ),
        )
        labels = step(
            f"label {name}",
            workdir / f"labels-{name}.h5",
            lambda: run_label(
                LabelOptions(
                    selection=selection,
                    target=target,
                    output=workdir / f"labels-{name}.h5",
                    masks=masks,
                    quiet=demo.quiet,
                )
            ),
        )
        model = step(
            f"adapt {name}",
            workdir / f"adapt-{name}.h5",
            lambda: run_training_stage(
                training_options(
                    AdaptOptions,
                    "toy-adapt",
                    demo,
                    demo.adapt_iters,
                    model=warm,
                    labels=labels,
                    source=source,
                    target=target,
                    output=workdir / f"adapt-{name}.h5",
                    **common,
                )
            ),
        )
        return labels, model

    for name, title, select_options in (
        ("ppl", f"LabOR-PPL ({demo.points} points / image)", {"mode": "ppl", "points": demo.points}),
        ("random", f"random ({demo.points} points / image)", {"mode": "random", "points": demo.points}),
        ("balanced", f"ours: balanced ({demo.points} points / image)", {"mode": "balanced", "points": demo.points}),
    ):
        labels, model = labeled_round(name, select_options)
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

    table = Table(
        "method",
        "labeled target pixels (%)",
        "mIoU (toy target val)",
        title="labor demo: toy GTA5-like -> Cityscapes-like",
    )
    for row in rows:
        table.add_row(row.method, f"{row.labeled_percent:.3f}", f"{row.miou:.1f}")
    stdout.print(table)
