"""The `labor` command: one thin function per subcommand, which hands its stage one options object.

Each command's options are declared once, as a dataclass in labor_cli/options.py; ``command``
turns that dataclass's fields into the command's typer options (labor_cli/option_machinery.py
reads them), so a new option is one field.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any, Optional

import typer

from labor_cli import __version__
from labor_cli.errors import Interrupted, LaborError
from labor_cli.option_machinery import Declared, build, declared, values_from_file
from labor_cli.options import (
    AdaptOptions,
    AnnotateOptions,
    BenchOptions,
    ConvertOptions,
    DataCheckOptions,
    DemoOptions,
    EvaluateOptions,
    ExportOptions,
    ExtractOptions,
    ImportOptions,
    InspectOptions,
    LabelOptions,
    PlotOptions,
    PredictOptions,
    SelectOptions,
    ShowOptions,
    ToyOptions,
    WarmupOptions,
)
from labor_cli.resume import interrupts_exit

app = typer.Typer(
    name="labor",
    help="LabOR (Labeling Only if Required) for domain adaptive semantic segmentation: "
    "warmup -> extract -> select -> label -> adapt -> evaluate, each stage file to file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="Datasets: draw the embedded toy domain pair, check a dataset on disk.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


# --- from declarations to typer parameters ----------------------------------------------------


def _choice_type(option: Declared) -> type:
    """An Enum of the option's choices: typer checks the value and exits 2 on a wrong one."""
    return enum.Enum(f"{option.name}_choices", {choice: choice for choice in option.spec.choices}, type=str)


def typer_parameter(option: Declared) -> inspect.Parameter:
    """One declared option as a typer parameter (text for options a parser reads, e.g. sizes)."""
    spec = option.spec
    annotation = option.type
    if spec.parse is not None:
        annotation = Optional[str] if option.default is None else str
    elif spec.choices:
        annotation = Optional[_choice_type(option)] if option.default is None else _choice_type(option)
    metavar = spec.metavar or ("[" + "|".join(spec.choices) + "]" if spec.choices else None)
    default = ... if option.required else option.default
    if spec.argument:
        info = typer.Argument(default, help=spec.help, metavar=metavar)
    else:
        info = typer.Option(
            default, *option.flags, help=spec.help, metavar=metavar, min=spec.min, case_sensitive=spec.case_sensitive
        )
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def options_from_command_line(ctx: typer.Context, options_class: type, values: dict[str, Any]) -> Any:
    """The command's options object: the command line wins over a --config file, which wins
    over the declared defaults."""
    by_name = {option.name: option for option in declared(options_class)}
    values = {name: value.value if isinstance(value, enum.Enum) else value for name, value in values.items()}
    for name, value in values.items():
        if isinstance(value, str) and by_name[name].spec.parse is not None:
            values[name] = by_name[name].spec.parse(value, by_name[name].flag)
    if values.get("config_file"):
        from_file = values_from_file(values["config_file"], options_class)
        for name, value in from_file.items():
            if ctx.get_parameter_source(name).name == "DEFAULT":
                values[name] = value
    return build(options_class, values)


def command(name: str, options_class: type, parent: typer.Typer = app) -> Callable:
    """Register the decorated ``run(options)`` as `labor NAME`, with ``options_class``'s declared
    options (arguments first, then required options, then the rest in declaration order); the
    function's docstring is the command's help."""

    def register(run: Callable[[Any], None]) -> Callable[[Any], None]:
        def callback(ctx: typer.Context, **values: Any) -> None:
            options = options_from_command_line(ctx, options_class, values)
            with output_locked(options), interrupts_exit(not _rank_note()), out_of_memory_hint(options):
                run(options)

        options = sorted(declared(options_class), key=lambda o: (not o.spec.argument, not o.required))
        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        callback.__signature__ = inspect.Signature([context, *map(typer_parameter, options)])
        callback.__annotations__ = {}
        callback.__name__, callback.__doc__ = run.__name__, run.__doc__
        callback.options_class = options_class  # what the command hands its stage
        parent.command(name)(callback)
        return run

    return register


# The fields that name what a command writes (a file or a folder).
OUTPUT_FIELDS = ("output", "output_dir", "directory", "workdir")


def output_locked(options: Any) -> contextlib.AbstractContextManager:
    """OUTPUT.lock, held for the whole command: two runs on one output (or one resume file) never
    write at once. Under torchrun only rank 0 writes, so only it locks."""
    from labor_cli import artifacts

    output = next((getattr(options, name) for name in OUTPUT_FIELDS if getattr(options, name, None)), None)
    if output is None or os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return artifacts.output_lock(output)


@contextlib.contextmanager
def out_of_memory_hint(options: Any):
    """A GPU out of memory is one line that says what to lower (the resume file, if any, is kept);
    so is the machine's (a show --scale or plot --size too large for it)."""
    try:
        yield
    except MemoryError as exc:
        raise LaborError("out of memory") from exc
    except Exception as exc:
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(exc, torch.OutOfMemoryError):
            raise
        smaller = "--source-batch/--target-batch" if hasattr(options, "train") else "--batch-size"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "CUDA out of memory"
        raise LaborError(
            f"out of GPU memory ({first.rstrip('.')}); try a smaller {smaller} or --precision bf16"
        ) from exc


def version_callback(value: bool) -> None:
    if value:
        print(f"labor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """LabOR as composable stages; every stage writes one HDF5 artifact that says how it was made."""


# --- the commands -----------------------------------------------------------------------------


@command("toy", ToyOptions, parent=data_app)
def data_toy(options: ToyOptions) -> None:
    """Draw the embedded toy domain pair: a rendered-looking source and a photographed (or night-time) target."""
    from labor_cli.data.toy import make_toy_pair
    from labor_cli.data.toy.writer import print_toy_summary

    print_toy_summary(options.directory, make_toy_pair(options))


@command("check", DataCheckOptions, parent=data_app)
def data_check(options: DataCheckOptions) -> None:
    """Check a dataset on disk per split: counts, unpaired files, image sizes, label ids outside the class table.

    Exit code 1 when the stages would fail on it (errors); warnings alone exit 0."""
    from labor_cli.data.check import exit_code, print_data_check, run_data_check

    check = run_data_check(options)
    if options.as_json:
        print(json.dumps(check.as_dict(), indent=2))
    else:
        print_data_check(check)
    if exit_code(check):
        raise typer.Exit(exit_code(check))


@command("convert", ConvertOptions)
def convert(options: ConvertOptions) -> None:
    """A DeepLab-v2 from AdaptSegNet, ADVENT or RIPU (or the field's DeepLab-v2 init) as a labor checkpoint."""
    from labor_cli.stages.convert import print_convert, run_convert

    print_convert(run_convert(options))


@command("warmup", WarmupOptions)
def warmup(options: WarmupOptions) -> None:
    """Train A on source labels with output-space adversarial alignment, and B's two heads."""
    _train(options)


@command("extract", ExtractOptions)
def extract(options: ExtractOptions) -> None:
    """Inconsistency masks of B's two heads, A's predictions and PPL's candidates, for select."""
    from labor_cli import distributed
    from labor_cli.stages.extract import print_extract, run_extract

    with distributed.start(options.device) as rank:
        result = run_extract(options, rank=rank)
    if rank.is_main:
        print_extract(result)


@command("select", SelectOptions)
def select(options: SelectOptions) -> None:
    """Choose the pixels to label from a masks artifact; needs no model and no GPU."""
    from labor_cli.stages.select import print_select_summary, run_select

    print_select_summary(run_select(options))


@command("label", LabelOptions)
def label(options: LabelOptions) -> None:
    """Answer a selection from the ground truth, as an annotator who never errs (ignored pixels stay ignored)."""
    from labor_cli.stages.label import print_label, run_label

    print_label(run_label(options))


@command("export", ExportOptions)
def export_(options: ExportOptions) -> None:
    """Write a selection for annotators: image_id, x, y per point (CSV or JSON), and PNG overlays."""
    from labor_cli.stages.exchange import print_export, run_export

    print_export(run_export(options))


@command("import", ImportOptions)
def import_(options: ImportOptions) -> None:
    """Turn annotators' answers into a labels artifact, of the same form as a simulated one."""
    from labor_cli.stages.exchange import print_import, run_import

    print_import(run_import(options))


@command("annotate", AnnotateOptions)
def annotate(options: AnnotateOptions) -> None:
    """A person labels the selected pixels in a browser; answers are kept as given, and the same command continues."""
    from labor_cli.stages.annotate import print_annotate, run_annotate

    result = run_annotate(options)
    print_annotate(result)
    if result.how == "stopped":  # Ctrl-C or SIGTERM: the answers are saved (and said so), exit 130
        raise Interrupted


@command("show", ShowOptions)
def show(options: ShowOptions) -> None:
    """PNGs in the Cityscapes palette, side-by-side panels: image | prediction | mask, image | points, image | labels."""
    from labor_cli.stages.show import print_show, run_show

    print_show(run_show(options))


@command("adapt", AdaptOptions)
def adapt(options: AdaptOptions) -> None:
    """Train A with source labels, the annotated target pixels and adversarial alignment; B with pseudo labels."""
    _train(options)


def _train(options: WarmupOptions | AdaptOptions) -> None:
    from labor_cli import distributed
    from labor_cli.stages.train import print_training, run_training_stage

    with distributed.start(options.device) as rank:
        result = run_training_stage(options, rank=rank)
    if rank.is_main:
        print_training(result)


@command("evaluate", EvaluateOptions)
def evaluate(options: EvaluateOptions) -> None:
    """mIoU of model A on a labeled split: one confusion matrix, logits upsampled to the full label."""
    from labor_cli import distributed
    from labor_cli.stages.evaluate import print_evaluation, run_evaluate

    with distributed.start(options.device) as rank:
        result = run_evaluate(options, rank=rank)
    if rank.is_main:
        print_evaluation(result, options.output)


@command("predict", PredictOptions)
def predict(options: PredictOptions) -> None:
    """Model A's predictions of a split (labels or not) as label-id PNGs the Cityscapes evaluator and server take."""
    from labor_cli.stages.predict import print_predict, run_predict

    print_predict(run_predict(options))


@command("plot", PlotOptions)
def plot(options: PlotOptions) -> None:
    """PNG figures: training curves, mIoU against the labeled share (one line per method), IoU per class."""
    from labor_cli.stages.plot import print_plot, run_plot

    print_plot(run_plot(options))


@command("inspect", InspectOptions)
def inspect_(options: InspectOptions) -> None:
    """Print an artifact's kind, provenance, lineage and a summary of its contents."""
    from labor_cli.stages.inspect import describe, print_description

    info = describe(options.artifact)
    if options.as_json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print_description(info)


@command("demo", DemoOptions)
def demo(options: DemoOptions) -> None:
    """The whole chain on the embedded toy pair: warmup, then LabOR-PPL, random and ours at 40 points per image, and a results table."""
    from labor_cli.stages.demo import print_demo, run_demo

    print_demo(run_demo(options))


@command("bench", BenchOptions)
def bench(options: BenchOptions) -> None:
    """Time the reference path (fp32, eager, channels-first) against the default path, side by side; with --pipeline, what extract does per image outside the networks (decode, resize, hand-off, post-processing, writing) instead."""
    from labor_cli.stages.bench import print_bench_report, run_bench

    print_bench_report(run_bench(options), options.as_json)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: bad input becomes one line on stderr and an exit code, never a traceback."""
    try:
        with interrupts_exit(not _rank_note()):
            app(args=argv, prog_name="labor")  # typer's standalone mode: usage errors exit 2, --help exits 0
    except LaborError as exc:
        print(f"labor: error{_rank_note()}: {original_message(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)


def original_message(text: str) -> str:
    """A DataLoader worker's error comes back as "Caught LaborError in DataLoader worker process 0."
    and the worker's whole traceback, whose last line is "labor_cli.errors.LaborError: MESSAGE":
    the message alone, as the same error raised in the main process would print."""
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    lines = re.findall(r"^labor_cli\.errors\.\w+: (.*)$", text, flags=re.MULTILINE)
    return lines[-1] if lines else text.splitlines()[0]


def _rank_note() -> str:
    """' (rank N)' in a process other than torchrun's rank 0, else ''."""
    rank = os.environ.get("RANK", "0")
    return f" (rank {rank})" if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and rank != "0" else ""


if __name__ == "__main__":
    main()
