"""The `labor` command: one thin function per subcommand, parsing and nothing else."""

from __future__ import annotations

import json
from inspect import Parameter, signature
import sys
from pathlib import Path
from typing import Optional

import typer

from labor_cli import __version__
from labor_cli.errors import LaborError, LaborUsageError

app = typer.Typer(
    name="labor",
    help="LabOR (Labeling Only if Required) for domain adaptive semantic segmentation: "
    "warmup -> extract -> select -> label -> adapt -> evaluate, each stage file to file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Datasets: draw the embedded toy domain pair.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Options shared by many stages, named once.
OUTPUT = typer.Option(..., "--output", "-o", help="Artifact to write (.h5).")
FORCE = typer.Option(False, "--force", help="Replace an existing output.")
DEVICE = typer.Option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N.")
PRECISION = typer.Option("auto", help="auto (bf16 on CUDA, fp32 on the CPU), fp32 or bf16.")
WORKERS = typer.Option(None, help="Data-loader worker processes (default: min(8, CPUs - 1)).")
COMPILE = typer.Option("auto", "--compile", help="torch.compile the networks: auto (on CUDA for warmup and adapt, off for extract and evaluate), on or off. If compiling fails: one warning, and the stage goes on uncompiled.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress display.")
SKIP_BAD = typer.Option(False, "--skip-bad", help="Leave out images whose files are unreadable (checked up front), count them, and list them in the artifact's config.")


def parse_size(text: Optional[str], option: str) -> Optional[tuple[int, int]]:
    """'1024x512' -> (1024, 512) as (width, height)."""
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LaborUsageError(f"{option} {text!r}: expected WIDTHxHEIGHT, e.g. 1024x512") from None
    if width <= 0 or height <= 0:
        raise LaborUsageError(f"{option} {text!r}: width and height must be positive")
    return width, height


def workers_or_default(workers: Optional[int]) -> int:
    from labor_cli.runtime import default_workers

    return default_workers() if workers is None else workers


# --- training options, shared by warmup and adapt (one definition, spliced into both signatures) ---
TRAIN_OPTIONS: dict[str, tuple[type, typer.models.OptionInfo]] = {
    "iterations": (int, typer.Option(40000, "--iters", "--iterations", help="Training iterations.")),
    "optimizer": (str, typer.Option("sgd", help="Optimiser of A and B: sgd (the paper's protocol, heads at 10x) or adamw (small networks from scratch).")),
    "lr": (float, typer.Option(2.5e-4, help="Learning rate of A and B.")),
    "momentum": (float, typer.Option(0.9, help="SGD momentum.")),
    "weight_decay": (float, typer.Option(5e-4, help="SGD weight decay.")),
    "power": (float, typer.Option(0.9, help="Poly learning-rate decay power.")),
    "lr_discriminator": (float, typer.Option(1e-4, "--lr-d", help="Adam learning rate of D.")),
    "lambda_adv": (float, typer.Option(0.001, help="Weight of the adversarial loss (0: source-only training).")),
    "lambda_target": (float, typer.Option(1.0, help="Weight of the annotated target pixels' loss (adapt).")),
    "lambda_pseudo": (float, typer.Option(1.0, help="Weight of B's pseudo-label loss (adapt).")),
    "lambda_dis": (float, typer.Option(0.01, help="Weight of B's classifier-discrepancy maximisation (sets the mask share: higher, larger mask).")),
    "pseudo_alpha": (float, typer.Option(0.2, help="Per class, the most confident fraction of A's pixels kept as pseudo labels.")),
    "source_batch": (int, typer.Option(2, help="Source images per iteration.")),
    "target_batch": (int, typer.Option(2, help="Target images per iteration.")),
    "hflip": (bool, typer.Option(False, "--hflip/--no-hflip", help="Flip half of the source images left-right (seeded; not in the paper's protocol).")),
    "source_size": (Optional[str], typer.Option(None, help="Source training size WIDTHxHEIGHT (default: the dataset's).")),
    "target_size": (Optional[str], typer.Option(None, help="Target training size WIDTHxHEIGHT (default: the dataset's).")),
    "seed": (int, typer.Option(0, help="Random seed: the same command twice gives the same weights on the CPU.")),
    "save_every": (int, typer.Option(1000, help="Save a resumable checkpoint every N iterations.")),
    "log_every": (int, typer.Option(10, help="Update the progress display (and check losses) every N iterations.")),
    "config_file": (Optional[Path], typer.Option(None, "--config", help="TOML file of option values (option names as keys), or a preset name (toy-warmup, toy-adapt); the command line wins.")),
}


def with_train_options(function):
    """Append TRAIN_OPTIONS to a command's signature; the command receives them as **options."""
    original = signature(function)
    kept = [p for p in original.parameters.values() if p.kind is not Parameter.VAR_KEYWORD]
    extra = [Parameter(name, Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
             for name, (annotation, option) in TRAIN_OPTIONS.items()]
    function.__signature__ = original.replace(parameters=kept + extra)
    return function


def resolve_options(ctx: typer.Context, values: dict) -> dict:
    """Command-line values win over the --config file, which wins over the defaults."""
    config_file = values.get("config_file")
    if not config_file:
        return values
    from labor_cli.presets import read_config_file

    from_file = read_config_file(config_file)
    unknown = sorted(set(from_file) - set(values) - {"config_file"})
    if unknown:
        raise LaborUsageError(f"{config_file}: unknown option(s) {', '.join(unknown)}")
    resolved = dict(values)
    for name, value in from_file.items():
        if ctx.get_parameter_source(name).name == "DEFAULT":
            resolved[name] = value
    return resolved


def train_config(options: dict):
    from labor_cli.training import TrainConfig

    fields = {name: options[name] for name in TRAIN_OPTIONS if name != "config_file"}
    fields["source_size"] = parse_size(fields["source_size"], "--source-size")
    fields["target_size"] = parse_size(fields["target_size"], "--target-size")
    return TrainConfig(**fields)


def version_callback(value: bool) -> None:
    if value:
        print(f"labor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Print the version."),
) -> None:
    """LabOR as composable stages; every stage writes one HDF5 artifact that says how it was made."""


@data_app.command("toy")
def data_toy(
    directory: Path = typer.Argument(..., help="Folder to create: DIR/source (GTA5 layout) and DIR/target (Cityscapes layout)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same bytes."),
    size: str = typer.Option("default", help="Preset: default (the demo's) or tiny (tests)."),
    force: bool = FORCE,
) -> None:
    """Draw the embedded toy domain pair: a rendered-looking source and a photographed-looking target."""
    from labor_cli.data.toy import make_toy_pair
    from labor_cli.stages.report import print_toy_summary

    summary = make_toy_pair(directory, seed=seed, size=size, force=force)
    print_toy_summary(directory, summary)


@app.command()
@with_train_options
def warmup(
    ctx: typer.Context,
    source: str = typer.Option(..., help="Labeled source dataset KIND:PATH, e.g. gta5:/data/GTA5."),
    target: str = typer.Option(..., help="Target dataset KIND:PATH (images only are used), e.g. cityscapes:/data/cityscapes."),
    output: Path = OUTPUT,
    arch: str = typer.Option("deeplabv2-r101", help="deeplabv2-r101, deeplabv2-r50 or small (CPU-sized)."),
    init: str = typer.Option("none", help="Backbone initialisation: none, imagenet (torchvision download), or PATH to a local torchvision state dict."),
    selector_backbone: str = typer.Option("separate", help="B's backbone: separate (a second copy) or shared (A's; one backbone pass)."),
    classes: Optional[str] = typer.Option(None, help="Class set: cityscapes19 or synthia16 (default: from the source kind)."),
    source_split: str = typer.Option("train", help="Source split."),
    target_split: str = typer.Option("train", help="Target split."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT's resume file (saved every --save-every)."),
    device: str = DEVICE,
    precision: str = PRECISION,
    compile_networks: str = COMPILE,
    workers: Optional[int] = WORKERS,
    force: bool = FORCE,
    quiet: bool = QUIET,
    skip_bad: bool = SKIP_BAD,
    **train_options,
) -> None:
    """Train A on source labels with output-space adversarial alignment, and B's two heads."""
    from labor_cli import distributed
    from labor_cli.stages.report import print_training
    from labor_cli.stages.train import run_training_stage

    options = resolve_options(ctx, {**locals(), **train_options})
    with distributed.start(options["device"]) as rank:
        result = run_training_stage(
            "warmup", options["source"], options["target"], output, train_config(options), arch=options["arch"],
            init=options["init"], selector_backbone=options["selector_backbone"], class_set=options["classes"],
            source_split=options["source_split"], target_split=options["target_split"], device=options["device"],
            precision=options["precision"], workers=workers_or_default(options["workers"]), resume=resume,
            force=force, quiet=quiet, rank=rank, skip_bad=options["skip_bad"], compile=options["compile_networks"],
        )
    if rank.is_main:
        print_training(result)


@app.command()
def extract(
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint (warmup or adapt) holding A and B."),
    target: str = typer.Option(..., help="Target dataset KIND:PATH (images only are used)."),
    output: Path = OUTPUT,
    split: str = typer.Option("train", help="Target split to extract."),
    exclude: Optional[Path] = typer.Option(None, help="Labels artifact of earlier rounds: those pixels are never selected again."),
    candidates_per_class: int = typer.Option(256, help="PPL candidates kept per class and image (an upper bound on --points)."),
    uncertain_per_image: int = typer.Option(4096, help="Most uncertain pixels kept per image (for --mode entropy)."),
    input_size: Optional[str] = typer.Option(None, help="Network input WIDTHxHEIGHT (default: the dataset's training size)."),
    batch_size: int = typer.Option(1, min=1, help="Images per forward pass."),
    device: str = DEVICE,
    precision: str = PRECISION,
    compile_networks: str = COMPILE,
    workers: Optional[int] = WORKERS,
    force: bool = FORCE,
    quiet: bool = QUIET,
    skip_bad: bool = SKIP_BAD,
    resume: bool = typer.Option(False, "--resume", help="Continue a stopped extraction from OUTPUT's resume file (kept on Ctrl-C or SIGTERM)."),
) -> None:
    """Inconsistency masks of B's two heads, A's predictions and PPL's candidates, for select."""
    from labor_cli import distributed
    from labor_cli.stages.extract import run_extract
    from labor_cli.stages.report import print_extract

    with distributed.start(device) as rank:
        result = run_extract(
            model, target, output, split=split, exclude=exclude, candidates_per_class=candidates_per_class,
            uncertain_per_image=uncertain_per_image, input_size=parse_size(input_size, "--input-size"),
            batch_size=batch_size, device=device, precision=precision, workers=workers_or_default(workers),
            force=force, quiet=quiet, rank=rank, skip_bad=skip_bad, resume=resume, compile=compile_networks,
        )
    if rank.is_main:
        print_extract(result)


@app.command()
def select(
    masks: Path = typer.Option(..., help="Masks artifact (labor extract)."),
    mode: str = typer.Option(..., help="ppl (prototype points), spl (whole mask), random or entropy (baselines)."),
    output: Path = OUTPUT,
    points: Optional[int] = typer.Option(None, help="Points per image (ppl, random, entropy)."),
    ratio: Optional[float] = typer.Option(None, help="Share of each image's pixels, 0 < R <= 1 (random, entropy)."),
    min_spacing: float = typer.Option(0.0, help="Preferred minimum distance between chosen points, in pixels."),
    seed: int = typer.Option(0, help="Seed (random mode and ties); the same seed gives the same selection."),
    force: bool = FORCE,
    quiet: bool = QUIET,
) -> None:
    """Choose the pixels to label from a masks artifact; needs no model and no GPU."""
    from labor_cli.stages.select import print_select_summary, run_select

    print_select_summary(run_select(masks, mode, output, points=points, ratio=ratio, min_spacing=min_spacing,
                                    seed=seed, force=force, quiet=quiet))


@app.command()
def label(
    selection: Path = typer.Option(..., help="Selection artifact (labor select)."),
    target: str = typer.Option(..., help="Target dataset KIND:PATH with ground truth: the simulated annotator reads it."),
    output: Path = OUTPUT,
    split: str = typer.Option("train", help="Target split the selection was made on."),
    merge: Optional[Path] = typer.Option(None, help="Labels of earlier rounds to accumulate with."),
    masks: Optional[Path] = typer.Option(None, help="The masks artifact of the selection: also report A's error over all pixels."),
    force: bool = FORCE,
    quiet: bool = QUIET,
    skip_bad: bool = SKIP_BAD,
) -> None:
    """Answer a selection from the ground truth, as an annotator who never errs (ignored pixels stay ignored)."""
    from labor_cli.stages.label import print_label, run_label

    print_label(run_label(selection, target, output, split=split, merge=merge, masks=masks, force=force, quiet=quiet,
                          skip_bad=skip_bad))


@app.command("export")
def export_(
    artifact: Path = typer.Argument(..., help="Selection (or labels) artifact."),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder to write points.csv / points.json (and overlays) into."),
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    overlays: bool = typer.Option(False, "--overlays", help="Also write a PNG per image with each point marked (needs --target)."),
    target: Optional[str] = typer.Option(None, help="Target dataset KIND:PATH, for the overlays."),
    split: str = typer.Option("train", help="Target split."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder, whole."),
    quiet: bool = QUIET,
) -> None:
    """Write a selection for annotators: image_id, x, y per point (CSV or JSON), and PNG overlays."""
    from labor_cli.stages.label import print_export, run_export

    print_export(run_export(artifact, output_dir, target=target, fmt=fmt, overlays=overlays, force=force, split=split, quiet=quiet))


@app.command("import")
def import_(
    answers: Path = typer.Argument(..., help="Annotators' answers: CSV (image_id,x,y,class) or JSON [{image_id, x, y, class}]."),
    selection: Path = typer.Option(..., help="The selection the answers are for."),
    output: Path = OUTPUT,
    force: bool = FORCE,
) -> None:
    """Turn annotators' answers into a labels artifact, of the same form as a simulated one."""
    from labor_cli.stages.label import print_import, run_import

    print_import(run_import(answers, selection, output, force=force))


@app.command()
def annotate(
    selection: Path = typer.Option(..., help="Selection artifact (labor select): the pixels a person answers."),
    target: str = typer.Option(..., help="Target dataset KIND:PATH (its images are shown)."),
    output: Path = OUTPUT,
    split: str = typer.Option("train", help="Target split the selection was made on."),
    merge: Optional[Path] = typer.Option(None, help="Labels of earlier rounds to accumulate with."),
    host: str = typer.Option("127.0.0.1", help="Address to serve the page on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8765, min=0, max=65535, help="Port to serve the page on (0: any free one)."),
    force: bool = FORCE,
) -> None:
    """A person labels the selected pixels in a browser; answers are kept as given, and the same command continues."""
    from labor_cli.stages.annotate import print_annotate, run_annotate

    print_annotate(run_annotate(selection, target, output, split=split, merge=merge, host=host, port=port, force=force))


@app.command()
def show(
    artifact: Path = typer.Argument(..., help="A masks, selection or labels artifact."),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the PNG overlays."),
    target: Optional[str] = typer.Option(None, help="Target dataset KIND:PATH (the images to draw on)."),
    split: str = typer.Option("train", help="Target split."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many images."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder, whole."),
    quiet: bool = QUIET,
) -> None:
    """PNG overlays in the Cityscapes palette: masks and predictions, chosen points, labels."""
    from labor_cli.stages.show import print_show, run_show

    print_show(run_show(artifact, target, output_dir, split=split, limit=limit, force=force, quiet=quiet))


@app.command()
@with_train_options
def adapt(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint to start from (warmup or an earlier round)."),
    labels: Path = typer.Option(..., help="Labels artifact: the annotated target pixels (labor label / labor import)."),
    source: str = typer.Option(..., help="Labeled source dataset KIND:PATH."),
    target: str = typer.Option(..., help="Target dataset KIND:PATH (the one the labels were made on)."),
    output: Path = OUTPUT,
    source_split: str = typer.Option("train", help="Source split."),
    target_split: str = typer.Option("train", help="Target split (the labels' images)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT's resume file (saved every --save-every)."),
    device: str = DEVICE,
    precision: str = PRECISION,
    compile_networks: str = COMPILE,
    workers: Optional[int] = WORKERS,
    force: bool = FORCE,
    quiet: bool = QUIET,
    skip_bad: bool = SKIP_BAD,
    **train_options,
) -> None:
    """Train A with source labels, the annotated target pixels and adversarial alignment; B with pseudo labels."""
    from labor_cli import distributed
    from labor_cli.stages.report import print_training
    from labor_cli.stages.train import run_training_stage

    options = resolve_options(ctx, {**locals(), **train_options})
    with distributed.start(options["device"]) as rank:
        result = run_training_stage(
            "adapt", options["source"], options["target"], output, train_config(options), start_from=model,
            labels=labels, source_split=options["source_split"], target_split=options["target_split"],
            device=options["device"], precision=options["precision"], workers=workers_or_default(options["workers"]),
            resume=resume, force=force, quiet=quiet, rank=rank, skip_bad=options["skip_bad"], compile=options["compile_networks"],
        )
    if rank.is_main:
        print_training(result)


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint artifact (from warmup or adapt)."),
    target: str = typer.Option(..., help="Labeled dataset as KIND:PATH, e.g. cityscapes:/data/cityscapes."),
    split: str = typer.Option("val", help="Split to evaluate."),
    output: Path = OUTPUT,
    input_size: Optional[str] = typer.Option(None, help="Network input WIDTHxHEIGHT (default: the dataset's training size)."),
    batch_size: int = typer.Option(1, min=1, help="Images per forward pass (same-sized images only)."),
    predictions: Optional[Path] = typer.Option(None, help="Write prediction PNGs in Cityscapes label ids to this folder."),
    colour: Optional[Path] = typer.Option(None, help="Write colourised prediction PNGs to this folder."),
    device: str = DEVICE,
    precision: str = PRECISION,
    compile_networks: str = COMPILE,
    workers: Optional[int] = WORKERS,
    force: bool = FORCE,
    quiet: bool = QUIET,
    skip_bad: bool = SKIP_BAD,
) -> None:
    """mIoU of model A on a labeled split: one confusion matrix, logits upsampled to the full label."""
    from labor_cli import distributed
    from labor_cli.stages.evaluate import run_evaluate
    from labor_cli.stages.report import print_evaluation

    with distributed.start(device) as rank:
        result = run_evaluate(
            model, target, split, output, force=force, device=device, precision=precision,
            input_size=parse_size(input_size, "--input-size"), batch_size=batch_size,
            workers=workers_or_default(workers), predictions_dir=predictions, colour_dir=colour, quiet=quiet,
            rank=rank, skip_bad=skip_bad, compile=compile_networks,
        )
    if rank.is_main:
        print_evaluation(result, output)


@app.command()
def inspect(
    artifact: Path = typer.Argument(..., help="Any labor artifact (.h5)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts."),
) -> None:
    """Print an artifact's kind, provenance, lineage and a summary of its contents."""
    from labor_cli.stages.inspect import describe, print_description

    info = describe(artifact)
    if as_json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print_description(info)


@app.command()
def demo(
    workdir: Path = typer.Option(Path("runs/demo"), help="Folder for the toy pair and every artifact of the demo."),
    seed: int = typer.Option(0, help="Seed of the toy pair and of training."),
    points: int = typer.Option(40, help="PPL budget: points per target image."),
    warmup_iters: Optional[int] = typer.Option(None, help="Override the toy-warmup preset's iterations."),
    adapt_iters: Optional[int] = typer.Option(None, help="Override the toy-adapt preset's iterations."),
    workers: int = typer.Option(0, help="Data-loader workers (0: load in the training process; best on 2 cores)."),
    force: bool = typer.Option(False, "--force", help="Redo every step (deletes WORKDIR first)."),
    quiet: bool = QUIET,
) -> None:
    """The whole chain on the embedded toy pair: warmup, LabOR-PPL and LabOR-SPL, and a results table."""
    from labor_cli.stages.demo import print_demo, run_demo

    print_demo(run_demo(workdir, seed=seed, points=points, force=force, quiet=quiet, warmup_iterations=warmup_iters,
                        adapt_iterations=adapt_iters, workers=workers))


@app.command()
def bench(
    arch: Optional[str] = typer.Option(None, help="Architecture (default: deeplabv2-r101 on CUDA at the paper's shapes, small on the CPU)."),
    device: str = DEVICE,
    repeats: int = typer.Option(5, min=1, help="Timed repetitions of each workload (the median is reported)."),
    warmup: int = typer.Option(2, min=0, help="Untimed repetitions first."),
    compile_networks: str = typer.Option("auto", "--compile", help="torch.compile the default path's networks: auto (on CUDA, as the stages do), on or off."),
    selector_backbone: str = typer.Option("separate", help="B's backbone: separate or shared."),
    e2e_images: int = typer.Option(0, help="Also time `labor extract` end to end on this many synthetic PNGs (decoding and writing included)."),
    workers: Optional[int] = WORKERS,
    batch_size: int = typer.Option(4, min=1, help="Extraction batch size for the end-to-end run."),
    profile: Optional[Path] = typer.Option(None, help="Also write where each workload's time goes (torch.profiler tables) to this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Time the reference path (fp32, eager, channels-first) against the default path, side by side."""
    from labor_cli.runtime import resolve_device
    from labor_cli.stages.bench import as_json as bench_json
    from labor_cli.stages.bench import print_bench, run_bench, speedups

    from labor_cli.stages.bench import bench_extract_end_to_end

    results = run_bench(arch, device, repeats, warmup, compile_networks, selector_backbone, profile_dir=profile)
    end_to_end = None
    if e2e_images:
        end_to_end = bench_extract_end_to_end(arch, device, e2e_images, workers_or_default(workers), batch_size, selector_backbone,
                                              compile=compile_networks)
    name = str(resolve_device(device))
    if name.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(resolve_device(device))
    if as_json:
        print(json.dumps({"device": name, "results": bench_json(results), "speedup": speedups(results), "extract_end_to_end": end_to_end}, indent=2))
    else:
        print_bench(results, name)
        if end_to_end:
            print(f"labor extract end to end: {end_to_end['images']} PNGs of {end_to_end['native_size'][1]}x{end_to_end['native_size'][0]}: "
                  f"{end_to_end['images_per_s']:.1f} images/s, {end_to_end['bytes_per_image'] / 1024:.0f} KiB per image in the artifact")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: bad input becomes one line on stderr and an exit code, never a traceback."""
    try:
        app(args=argv, prog_name="labor")  # typer's standalone mode: usage errors exit 2, --help exits 0
    except LaborError as exc:
        print(f"labor: error{_rank_note()}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if not _rank_note():
            print("labor: interrupted", file=sys.stderr)
        sys.exit(130)


def _rank_note() -> str:
    """' (rank N)' in a process other than torchrun's rank 0, else ''."""
    import os

    rank = os.environ.get("RANK", "0")
    return f" (rank {rank})" if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and rank != "0" else ""


if __name__ == "__main__":
    main()
