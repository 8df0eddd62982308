"""Every option of every command, declared once; labor_cli/option_machinery.py reads the declarations.

A command's options are a dataclass (``ExtractOptions``, ...) whose fields are declared with
:func:`option`: the type (the annotation), the default, the help, the flags, the choices, and
where the value may come from and go. Everything else derives from these declarations:

- the command line: labor_cli/cli.py turns the fields into typer options (choices shown as
  ``[sgd|adamw]``), and each command hands its stage one filled-in dataclass;
- the checks: each options dataclass checks its values when it is made (the declared ``min``,
  and its ``check()`` for the rules that take more), so a stage never checks them again;
- ``--config`` files (warmup, adapt): the keys are the field names; a key that is no option of
  the command, or one that only the command line may set (output, force, quiet, resume...), is
  an error (``values_from_file``);
- the artifact's record of how it was made: ``stored_config`` keeps the fields marked stored.

The finite choices are declared here too, and the modules that act on them import them.
Training's optimisation protocol is the group ``TrainConfig``, nested in ``WarmupOptions`` and
``AdaptOptions`` as ``train``; a field that belongs to some commands only names them (the
pseudo-label weights: adapt). This module imports neither torch nor typer: ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from labor_cli.compile_policy import COMPILE_HELP
from labor_cli.errors import LaborUsageError
from labor_cli.option_machinery import OptionGroup, group, option, parse_size

# Finite choices, the one place each is spelt: the modules that act on them import them from here.
ARCHS = ("deeplabv2-r101", "deeplabv2-r50", "small")
SELECTOR_BACKBONES = ("separate", "shared")
CLASS_SETS = ("cityscapes19", "synthia16")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_CHOICES = ("auto", "on", "off")
OPTIMIZERS = ("sgd", "adamw")
SELECT_MODES = ("ppl", "spl", "balanced", "random", "entropy")
BALANCE_STRATA = ("class", "class-pair")
EXPORT_FORMATS = ("csv", "json")
TOY_SIZES = ("default", "tiny", "full")
PLOTS = ("curves", "budget", "classes")
TOY_SHIFTS = ("photo", "night")
EVALUATION_PROTOCOLS = ("labor", "adaptsegnet", "advent", "ripu")
TOY_SOURCE_LAYOUTS = ("gta5", "synthia")


# --- declarations shared by several commands -----------------------------------------------


def output_option() -> Any:
    return option("--output", "-o", help="Artifact to write (.h5).", stored=False)


def force_option(help: str = "Replace an existing output.") -> Any:
    return option("--force", default=False, help=help, in_file=False, stored=False)


def quiet_option() -> Any:
    return option("--quiet", "-q", default=False, help="No progress display.", in_file=False, stored=False)


def skip_bad_option() -> Any:
    return option(
        "--skip-bad",
        default=False,
        stored=False,
        help="Leave out images whose files are unreadable (checked up front), count them, and list them in "
        "the artifact's config.",
    )


def device_option() -> Any:
    return option(default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N.")


def precision_option() -> Any:
    return option(default="auto", choices=PRECISIONS, help="auto (bf16 on CUDA, fp32 on the CPU), fp32 or bf16.")


def compile_option() -> Any:
    return option("--compile", default="auto", choices=COMPILE_CHOICES, help=COMPILE_HELP)


def protocol_option() -> Any:
    return option(
        default="labor",
        choices=EVALUATION_PROTOCOLS,
        help="How images become class maps: labor (its training size, bilinear input, logits upsampled with "
        "align_corners False), or a published code's evaluation script: adaptsegnet and advent (1024x512 bicubic "
        "input, align_corners True, fp32), ripu (1280x640 bicubic, align_corners True, flip-averaged, fp32). "
        "--input-size and --precision given override it (docs/method.md).",
    )


def ensemble_option() -> Any:
    return option(
        default=None,
        metavar="CHECKPOINT",
        help="A second checkpoint of the same classes: each image's class scores are the mean of both models' "
        "(ADVENT's test.py with advent+minent_pretrained.yml: AdvEnt + MinEnt, half each).",
    )


def workers_option() -> Any:
    return option(default=None, min=0, stored=False, help="Data-loader worker processes (default: min(8, CPUs - 1)).")


def input_size_option() -> Any:
    return option(
        default=None,
        parse=parse_size,
        metavar="WIDTHxHEIGHT",
        help="Network input WIDTHxHEIGHT (default: the dataset's training size).",
    )


def resolve_workers(workers: Optional[int]) -> int:
    """--workers as given, or the default for this machine: a core left for the main process, at most 8."""
    return min(8, max(0, (os.cpu_count() or 1) - 1)) if workers is None else workers


# --- training -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class TrainConfig(OptionGroup):
    """Every value of the optimisation protocol (docs/method.md), with the paper-scale default."""

    iterations: int = option("--iters", "--iterations", default=40000, help="Training iterations.")
    optimizer: str = option(
        default="sgd",
        choices=OPTIMIZERS,
        help="Optimiser of A and B: sgd (the paper's protocol, heads at 10x) or adamw (small networks from scratch).",
    )
    lr: float = option(default=2.5e-4, help="Learning rate of A and B.")
    momentum: float = option(default=0.9, help="SGD momentum.")
    weight_decay: float = option(default=5e-4, help="SGD weight decay.")
    power: float = option(default=0.9, help="Poly learning-rate decay power.")
    lr_discriminator: float = option("--lr-d", default=1e-4, help="Adam learning rate of D.")
    betas: tuple[float, float] = (0.9, 0.99)  # Adam's (D) and AdamW's; no option
    lambda_adv: float = option(default=0.001, help="Weight of the adversarial loss (0: source-only training).")
    lambda_target: float = option(default=1.0, commands=("adapt",), help="Weight of the annotated target pixels' loss.")
    lambda_pseudo: float = option(
        default=1.0,
        help="Weight of B's pseudo-label loss (A's pseudo labels on the target; in warmup from --pseudo-from on).",
    )
    pseudo_from: Optional[int] = option(
        default=None,
        commands=("warmup",),
        help="Warmup iteration from which B's heads also learn A's pseudo labels on "
        "the target (default: half the iterations: A's early predictions are "
        "poor); --iters or more: never.",
    )
    # The paper's weight is unknown; the mask share it gives is known (about 2% of the pixels), so
    # by default a controller steers the weight to that share (docs/method.md).
    lambda_dis: float = option(
        default=0.01,
        help="Weight of B's classifier-discrepancy maximisation (higher: larger "
        "mask); the starting value when --mask-share steers it.",
    )
    mask_share: float = option(
        default=0.022,
        help="SPL's budget (the paper's: about 2.2%): the mask keeps at most this share of each target "
        "image's pixels, and --lambda-dis is steered so that it fills it; 0: every pixel where B's "
        "heads differ, and --lambda-dis fixed.",
    )
    pseudo_alpha: float = option(
        default=0.2, help="Per class, the most confident fraction of A's pixels kept as pseudo labels."
    )
    source_batch: int = option(default=2, help="Source images per iteration.")
    target_batch: int = option(default=2, help="Target images per iteration.")
    hflip: bool = option(
        "--hflip/--no-hflip",
        default=False,
        help="Flip half of the source images left-right (seeded; not in the paper's protocol).",
    )
    source_size: Optional[tuple[int, int]] = option(
        default=None,
        parse=parse_size,
        metavar="WIDTHxHEIGHT",
        help="Source training size WIDTHxHEIGHT (default: the dataset's).",
    )
    target_size: Optional[tuple[int, int]] = option(
        default=None,
        parse=parse_size,
        metavar="WIDTHxHEIGHT",
        help="Target training size WIDTHxHEIGHT (default: the dataset's).",
    )
    seed: int = option(default=0, min=0, help="Random seed: the same command twice gives the same weights on the CPU.")
    save_every: int = option(default=1000, help="Save a resumable checkpoint every N iterations.")
    log_every: int = option(default=10, help="Update the progress display (and check losses) every N iterations.")

    def check(self) -> None:
        positive = {
            "iterations": self.iterations,
            "source_batch": self.source_batch,
            "target_batch": self.target_batch,
            "save_every": self.save_every,
            "log_every": self.log_every,
            "lr": self.lr,
        }
        for name, value in positive.items():
            if value <= 0:
                raise LaborUsageError(f"--{name.replace('_', '-')} {value}: must be positive")
        for name in ("lambda_adv", "lambda_target", "lambda_pseudo", "lambda_dis", "weight_decay"):
            if getattr(self, name) < 0:
                raise LaborUsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise LaborUsageError(f"--optimizer {self.optimizer!r}: use sgd or adamw")
        if not 0 < self.pseudo_alpha <= 1:
            raise LaborUsageError(f"--pseudo-alpha {self.pseudo_alpha}: must be in (0, 1]")
        if not 0 <= self.mask_share < 1:
            raise LaborUsageError(f"--mask-share {self.mask_share}: must be in [0, 1) (0: a fixed --lambda-dis)")
        if self.pseudo_from is not None and self.pseudo_from < 0:
            raise LaborUsageError(f"--pseudo-from {self.pseudo_from}: must be >= 0")
        if not 0 <= self.momentum < 1:
            raise LaborUsageError(f"--momentum {self.momentum}: must be in [0, 1)")
        if self.power < 0:  # a negative power would raise the learning rate as the run goes on
            raise LaborUsageError(f"--power {self.power}: must be >= 0")
        if self.lr_discriminator < 0:
            raise LaborUsageError(f"--lr-d {self.lr_discriminator}: must be >= 0")

    def warmup_pseudo_from(self) -> int:
        """The warmup iteration from which B learns A's pseudo labels (--pseudo-from, or half the run)."""
        return self.iterations // 2 if self.pseudo_from is None else self.pseudo_from

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(kw_only=True)
class TrainingStageOptions(OptionGroup):
    """What warmup and adapt share; ``train`` holds the optimisation protocol."""

    source: str = option(help="Labeled source dataset KIND:PATH, e.g. gta5:/data/GTA5.")
    target: str = option(
        help="Target dataset KIND:PATH (images only are used; for adapt the one the labels were "
        "made on), e.g. cityscapes:/data/cityscapes."
    )
    output: Path = output_option()
    source_split: str = option(default="train", help="Source split.")
    target_split: str = option(default="train", help="Target split (for adapt: the labels' images).")
    resume: bool = option(
        "--resume",
        default=False,
        in_file=False,
        stored=False,
        help="Continue from OUTPUT's resume file (saved every --save-every).",
    )
    device: str = device_option()
    precision: str = precision_option()
    compile: str = compile_option()
    workers: Optional[int] = workers_option()
    force: bool = force_option()
    quiet: bool = quiet_option()
    skip_bad: bool = skip_bad_option()
    train: TrainConfig = group(TrainConfig)
    config_file: Optional[Path] = option(
        "--config",
        default=None,
        in_file=False,
        stored=False,
        help="TOML file of option values (option names as keys), or a preset name "
        "(toy-warmup, toy-adapt); the command line wins.",
    )


@dataclass(kw_only=True)
class WarmupOptions(TrainingStageOptions):
    COMMAND: ClassVar[str] = "warmup"

    arch: str = option(
        default="deeplabv2-r101", choices=ARCHS, help="deeplabv2-r101, deeplabv2-r50 or small (CPU-sized)."
    )
    # auto: what the field does (ImageNet ResNets; the small arch from scratch); tests pass none.
    init: str = option(
        default="auto",
        help="Backbone initialisation: auto (imagenet for the ResNet archs, none for small), none, "
        "imagenet (torchvision's cache, downloaded once), or [FORMAT:]PATH: a torchvision ResNet "
        "or a field DeepLab-v2 (adaptsegnet:, advent:, deeplab:, ripu:).",
    )
    selector_backbone: str = option(
        default="separate",
        choices=SELECTOR_BACKBONES,
        help="B's backbone: separate (a second copy) or shared (A's; one backbone pass).",
    )
    classes: Optional[str] = option(
        default=None, choices=CLASS_SETS, stored_as="class_set", help="Class set (default: from the source kind)."
    )


@dataclass(kw_only=True)
class AdaptOptions(TrainingStageOptions):
    COMMAND: ClassVar[str] = "adapt"

    model: Path = option(
        "--model", "-m", stored_as="start_from", help="Checkpoint to start from (warmup or an earlier round)."
    )
    labels: Path = option(help="Labels artifact: the annotated target pixels (labor label / labor import).")


# --- the stages between training runs ---------------------------------------------------------


@dataclass(kw_only=True)
class ExtractOptions(OptionGroup):
    COMMAND: ClassVar[str] = "extract"

    model: Path = option("--model", "-m", help="Checkpoint (warmup or adapt) holding A and B.")
    target: str = option(help="Target dataset KIND:PATH (images only are used).")
    output: Path = output_option()
    split: str = option(default="train", help="Target split to extract.")
    exclude: Optional[Path] = option(
        default=None, help="Labels artifact of earlier rounds: those pixels are never selected again."
    )
    candidates_per_class: int = option(
        default=256, help="PPL candidates kept per class and image (an upper bound on --points)."
    )
    uncertain_per_image: int = option(default=4096, help="Most uncertain pixels kept per image (for --mode entropy).")
    mask_share: Optional[float] = option(
        default=None,
        help="SPL's budget: the mask keeps at most this share of each image's pixels, those where B's "
        "heads differ most (default: the checkpoint's --mask-share; 0: every pixel where they differ).",
    )
    input_size: Optional[tuple[int, int]] = input_size_option()
    batch_size: int = option(default=1, min=1, help="Images per forward pass.")
    device: str = device_option()
    precision: str = precision_option()
    compile: str = compile_option()
    workers: Optional[int] = workers_option()
    force: bool = force_option()
    quiet: bool = quiet_option()
    skip_bad: bool = skip_bad_option()
    resume: bool = option(
        "--resume",
        default=False,
        in_file=False,
        stored=False,
        help="Continue a stopped extraction from OUTPUT's resume file (saved every --save-every "
        "images, and on Ctrl-C or SIGTERM).",
    )
    save_every: int = option(
        default=500,
        min=1,
        stored=False,
        help="Save the images done so far to OUTPUT's resume file every N images (a kill -9 or a "
        "power cut then loses at most N).",
    )

    def check(self) -> None:
        if self.candidates_per_class <= 0 or self.uncertain_per_image <= 0:
            raise LaborUsageError("--candidates-per-class and --uncertain-per-image must be positive")
        if self.mask_share is not None and not 0 <= self.mask_share < 1:
            raise LaborUsageError(f"--mask-share {self.mask_share}: must be in [0, 1) (0: no budget)")


@dataclass(kw_only=True)
class SelectOptions(OptionGroup):
    COMMAND: ClassVar[str] = "select"

    masks: Path = option(help="Masks artifact (labor extract).")
    mode: str = option(
        choices=SELECT_MODES,
        help="ppl (LabOR's prototype points), spl (LabOR's whole mask), balanced "
        "(ours: every predicted class's area, docs/method.md), random or "
        "entropy (baselines).",
    )
    output: Path = output_option()
    points: Optional[int] = option(default=None, help="Points per image (ppl, random, entropy).")
    ratio: Optional[float] = option(default=None, help="Share of each image's pixels, 0 < R <= 1 (random, entropy).")
    min_spacing: float = option(default=0.0, help="Preferred minimum distance between chosen points, in pixels.")
    balance_power: float = option(
        default=0.5,
        help="balanced: class budgets proportional to A's predicted area to "
        "this power (1: as random, 0: equal per class).",
    )
    strata: str = option(
        default="class-pair",
        choices=BALANCE_STRATA,
        help="balanced: what the budget is split over: class-pair (A's classes, then each class's "
        "budget over its runner-up classes) or class (A's classes alone), docs/method.md.",
    )
    seed: int = option(default=0, help="Seed (random mode and ties); the same seed gives the same selection.")
    force: bool = force_option()
    quiet: bool = quiet_option()

    def check(self) -> None:
        mode, points, ratio = self.mode, self.points, self.ratio
        if mode not in SELECT_MODES:
            raise LaborUsageError(f"--mode: unknown mode {mode!r}; choose one of {', '.join(SELECT_MODES)}")
        if mode == "spl":
            if points is not None or ratio is not None:
                raise LaborUsageError("--mode spl labels every pixel of the mask: --points and --ratio are not allowed")
            if self.min_spacing:
                raise LaborUsageError("--mode spl labels every pixel of the mask: --min-spacing is not allowed")
        elif mode == "ppl":
            if ratio is not None:
                raise LaborUsageError("--mode ppl takes --points N (points per image), not --ratio")
            if points is None:
                raise LaborUsageError("--mode ppl needs --points N (points per image, e.g. 40)")
        elif points is not None and ratio is not None:
            raise LaborUsageError(f"--mode {mode}: give --points or --ratio, not both")
        elif points is None and ratio is None:
            raise LaborUsageError(
                f"--mode {mode} needs --points N (per image) or --ratio R (fraction of each image's pixels)"
            )
        self.check_amounts()

    def check_amounts(self) -> None:
        """The budget, spacing, seed and balance power each in its range."""
        if self.points is not None and self.points <= 0:
            raise LaborUsageError(f"--points must be a positive number of points per image, got {self.points}")
        if self.ratio is not None and not (0.0 < self.ratio <= 1.0):
            raise LaborUsageError(f"--ratio must be in (0, 1] (a fraction of each image's pixels), got {self.ratio}")
        if not (self.min_spacing >= 0.0) or not math.isfinite(self.min_spacing):
            raise LaborUsageError(f"--min-spacing must be a finite distance in pixels >= 0, got {self.min_spacing}")
        if self.seed < 0:
            raise LaborUsageError(f"--seed must be >= 0, got {self.seed}")
        if not (math.isfinite(self.balance_power) and 0.0 <= self.balance_power <= 4.0):
            raise LaborUsageError(
                f"--balance-power must be in [0, 4] (1: as random, 0: equal per class), got {self.balance_power}"
            )


@dataclass(kw_only=True)
class LabelOptions(OptionGroup):
    COMMAND: ClassVar[str] = "label"

    selection: Path = option(help="Selection artifact (labor select).")
    target: str = option(help="Target dataset KIND:PATH with ground truth: the simulated annotator reads it.")
    output: Path = output_option()
    split: str = option(default="train", help="Target split the selection was made on.")
    merge: Optional[Path] = option(default=None, help="Labels of earlier rounds to accumulate with.")
    masks: Optional[Path] = option(
        default=None, help="The masks artifact of the selection: also report A's error over all pixels."
    )
    force: bool = force_option()
    quiet: bool = quiet_option()
    skip_bad: bool = skip_bad_option()


@dataclass(kw_only=True)
class ExportOptions(OptionGroup):
    COMMAND: ClassVar[str] = "export"

    artifact: Path = option(argument=True, help="Selection (or labels) artifact.")
    output_dir: Path = option("--output", "-o", help="Folder to write points.csv / points.json (and overlays) into.")
    fmt: str = option("--format", default="csv", choices=EXPORT_FORMATS, case_sensitive=False, help="csv or json.")
    overlays: bool = option(
        "--overlays", default=False, help="Also write a PNG per image with each point marked (needs --target)."
    )
    target: Optional[str] = option(default=None, help="Target dataset KIND:PATH, for the overlays.")
    split: str = option(default="train", help="Target split.")
    force: bool = force_option("Replace an existing output folder, whole.")
    quiet: bool = quiet_option()


@dataclass(kw_only=True)
class ImportOptions(OptionGroup):
    COMMAND: ClassVar[str] = "import"

    answers: Path = option(
        argument=True, help="Annotators' answers: CSV (image_id,x,y,class) or JSON [{image_id, x, y, class}]."
    )
    selection: Path = option(help="The selection the answers are for.")
    output: Path = output_option()
    force: bool = force_option()


# annotate's limits and defaults; the answer store (annotate/store.py) and the region grouping
# (regions.py) read the same ones.
DEFAULT_MIN_REGION = 4  # pixels: smaller fragments are merged into a neighbour or dropped
DEFAULT_IDLE_CAP = 30.0  # seconds of one answer that count as work; beyond it, the person was away
MAX_SECONDS = 24 * 3600.0  # a longer "time taken" is a broken client clock, not a person
MAX_ANNOTATOR = 100  # characters of an --annotator name


@dataclass(kw_only=True)
class AnnotateOptions(OptionGroup):
    COMMAND: ClassVar[str] = "annotate"

    selection: Path = option(help="Selection artifact (labor select): the pixels a person answers.")
    target: str = option(help="Target dataset KIND:PATH (its images are shown).")
    output: Path = output_option()
    split: str = option(default="train", help="Target split the selection was made on.")
    merge: Optional[Path] = option(default=None, help="Labels of earlier rounds to accumulate with.")
    host: str = option(
        default="127.0.0.1", stored=False, help="Address to serve the page on (127.0.0.1: this machine only)."
    )
    # 8765: a fixed port, so the URL stays the same when the command is run again to continue.
    port: int = option(default=8765, min=0, stored=False, help="Port to serve the page on (0: any free one).")
    min_region: int = option(
        default=DEFAULT_MIN_REGION,
        help="SPL: regions of fewer pixels are merged into a near region of A's same class, or left out "
        "(1: every mask pixel is asked, the faithful SPL).",
    )
    idle_cap: float = option(
        default=DEFAULT_IDLE_CAP, help="Seconds of one answer that count as the person's time (more is time away)."
    )
    annotator: Optional[str] = option(
        default=None, stored_as="annotator_name", help="Who answers: a name recorded with every answer."
    )
    force: bool = force_option()
    quiet: bool = quiet_option()

    def check(self) -> None:
        if self.port > 65535:
            raise LaborUsageError(f"--port {self.port}: must be from 0 to 65535")
        if self.min_region < 1:
            raise LaborUsageError(f"--min-region {self.min_region}: must be at least 1 (1: every mask pixel)")
        if not (math.isfinite(self.idle_cap) and 0 < self.idle_cap <= MAX_SECONDS):
            raise LaborUsageError(f"--idle-cap {self.idle_cap}: must be more than 0 and at most {MAX_SECONDS:.0f} s")
        name = self.annotator
        if name is not None and not (0 < len(name.strip()) and len(name) <= MAX_ANNOTATOR and name.isprintable()):
            raise LaborUsageError(f"--annotator {name!r}: expected a name of 1 to {MAX_ANNOTATOR} printable characters")


@dataclass(kw_only=True)
class ShowOptions(OptionGroup):
    COMMAND: ClassVar[str] = "show"

    artifact: Path = option(argument=True, help="A masks, selection or labels artifact.")
    output_dir: Path = option("--output", "-o", help="Folder for the PNGs.")
    target: Optional[str] = option(default=None, help="Target dataset KIND:PATH (the images to draw on).")
    split: str = option(default="train", help="Target split.")
    limit: Optional[int] = option(default=None, min=1, help="At most this many images.")
    overlay: bool = option(
        "--overlay",
        default=False,
        help="One drawing at the image's own size instead of side-by-side panels (image | "
        "prediction | mask, image | points, image | labels, scaled up).",
    )
    scale: Optional[int] = option(
        default=None,
        min=1,
        help="Enlarge the panels this many times (default: enough for 512 pixels of width per panel).",
    )
    force: bool = force_option("Replace an existing output folder, whole.")
    quiet: bool = quiet_option()


@dataclass(kw_only=True)
class EvaluateOptions(OptionGroup):
    COMMAND: ClassVar[str] = "evaluate"

    model: Path = option("--model", "-m", help="Checkpoint artifact (from warmup or adapt).")
    target: str = option(help="Labeled dataset as KIND:PATH, e.g. cityscapes:/data/cityscapes.")
    split: str = option(default="val", help="Split to evaluate.")
    output: Path = output_option()
    input_size: Optional[tuple[int, int]] = input_size_option()
    protocol: str = protocol_option()
    ensemble: Optional[Path] = ensemble_option()
    batch_size: int = option(default=1, min=1, help="Images per forward pass (same-sized images only).")
    predictions: Optional[Path] = option(
        default=None, stored=False, help="Write prediction PNGs in Cityscapes label ids to this folder."
    )
    colour: Optional[Path] = option(default=None, stored=False, help="Write colourised prediction PNGs to this folder.")
    device: str = device_option()
    precision: str = precision_option()
    compile: str = compile_option()
    workers: Optional[int] = workers_option()
    force: bool = force_option()
    quiet: bool = quiet_option()
    skip_bad: bool = skip_bad_option()


@dataclass(kw_only=True)
class ConvertOptions(OptionGroup):
    COMMAND: ClassVar[str] = "convert"

    weights: str = option(
        argument=True,
        metavar="[FORMAT:]PATH",
        help="A DeepLab-v2 from the field: adaptsegnet:, advent:, deeplab: (the COCO/ImageNet init) "
        "or ripu: PATH; without FORMAT: guessed from the keys.",
    )
    output: Path = output_option()
    classes: Optional[str] = option(
        default=None,
        choices=CLASS_SETS,
        stored_as="class_set",
        help="Class set (default: from the classifier's width, 19 or 16).",
    )
    selector_backbone: str = option(
        default="separate", choices=SELECTOR_BACKBONES, help="B's backbone: separate (a copy of A's) or shared (A's)."
    )
    discriminator: Optional[str] = option(
        default=None,
        metavar="[FORMAT:]PATH",
        help="The field's output-space discriminator to start D from (default: fresh).",
    )
    seed: int = option(default=0, min=0, help="Seed of B's head split and of D's fresh weights.")
    force: bool = force_option()


@dataclass(kw_only=True)
class PredictOptions(OptionGroup):
    COMMAND: ClassVar[str] = "predict"

    model: Path = option("--model", "-m", help="Checkpoint artifact (from warmup, adapt or convert).")
    target: str = option(
        help="Dataset KIND:PATH; labels are not needed (e.g. cityscapes:/data/cityscapes --split test)."
    )
    output_dir: Path = option(
        "--output",
        "-o",
        help="Folder for {city}_{seq}_{frame}_pred_labelIds.png, as the "
        "Cityscapes evaluator and benchmark server take them.",
    )
    split: str = option(default="val", help="Split to predict.")
    colour: Optional[Path] = option(default=None, help="Also write colour PNGs to this folder (not inside --output).")
    input_size: Optional[tuple[int, int]] = input_size_option()
    protocol: str = protocol_option()
    ensemble: Optional[Path] = ensemble_option()
    batch_size: int = option(default=1, min=1, help="Images per forward pass (same-sized images only).")
    device: str = device_option()
    precision: str = precision_option()
    compile: str = compile_option()
    workers: Optional[int] = workers_option()
    force: bool = force_option("Replace existing output folders, whole.")
    quiet: bool = quiet_option()
    skip_bad: bool = option(
        "--skip-bad",
        default=False,
        help="Leave out images whose files are unreadable (checked up front) and list them in predictions.json.",
    )


@dataclass(kw_only=True)
class PlotOptions(OptionGroup):
    COMMAND: ClassVar[str] = "plot"

    kind: str = option(
        argument=True,
        choices=PLOTS,
        help="curves (a checkpoint's or a running OUTPUT.losses.csv's losses), budget (mIoU against "
        "the share of labeled target pixels) or classes (IoU per class).",
    )
    inputs: Optional[list[str]] = option(
        argument=True,
        default=None,
        metavar="FILES...",
        help="Checkpoints or loss-history CSVs (curves); evaluation artifacts (budget, classes).",
    )
    output: Path = option("--output", "-o", help="PNG to write.")
    label: Optional[list[str]] = option(
        default=None,
        metavar="NAME=GLOB",
        help="Name the evaluation artifacts a glob matches as one method "
        "(repeatable); default: named from their lineage.",
    )
    size: Optional[tuple[int, int]] = option(
        default=None, parse=parse_size, metavar="WIDTHxHEIGHT", help="Figure size in pixels (default 1200x800)."
    )
    smooth: int = option(default=50, min=1, help="Moving-average window of the curves, in iterations.")
    force: bool = force_option()


# --- commands that write no artifact ----------------------------------------------------------


@dataclass(kw_only=True)
class ToyOptions(OptionGroup):
    COMMAND: ClassVar[str] = "data toy"

    directory: Path = option(
        argument=True, help="Folder to create: DIR/source (GTA5 layout) and DIR/target (Cityscapes layout)."
    )
    seed: int = option(default=0, min=0, help="Random seed; the same seed gives the same bytes.")
    size: str = option(
        default="default",
        choices=TOY_SIZES,
        help="Preset: default (the demo's), tiny (tests) or full (a few images at the real datasets' sizes: "
        "GTA5 1914x1052, SYNTHIA 1280x760, Cityscapes 2048x1024, trained at the protocol's sizes).",
    )
    shift: str = option(
        default="photo",
        choices=TOY_SHIFTS,
        help="The target's look: photo (a photographed street) or night (the same streets by night).",
    )
    source_layout: str = option(
        default="gta5",
        choices=TOY_SOURCE_LAYOUTS,
        help="The source's layout: gta5 (images/, labels/ in Cityscapes label ids) or synthia "
        "(RAND-CITYSCAPES: RGB/, GT/LABELS/ 16-bit with the class id in the first channel).",
    )
    force: bool = force_option()


@dataclass(kw_only=True)
class DataCheckOptions(OptionGroup):
    COMMAND: ClassVar[str] = "data check"

    dataset: str = option(
        argument=True, metavar="KIND:PATH", help="Dataset to check, e.g. cityscapes:/data/cityscapes, gta5:/data/GTA5."
    )
    workers: Optional[int] = option(default=None, min=1, help="Processes decoding labels (default: one per CPU).")
    as_json: bool = option("--json", default=False, help="Print the report as JSON for scripts.")


@dataclass(kw_only=True)
class InspectOptions(OptionGroup):
    COMMAND: ClassVar[str] = "inspect"

    artifact: Path = option(argument=True, help="Any labor artifact (.h5).")
    as_json: bool = option("--json", default=False, help="Print as JSON for scripts.")


@dataclass(kw_only=True)
class DemoOptions(OptionGroup):
    COMMAND: ClassVar[str] = "demo"

    workdir: Path = option(default=Path("runs/demo"), help="Folder for the toy pair and every artifact of the demo.")
    seed: int = option(default=0, min=0, help="Seed of the toy pair and of training.")
    points: int = option(default=40, help="PPL budget: points per target image.")
    warmup_iters: Optional[int] = option(default=None, help="Override the toy-warmup preset's iterations.")
    adapt_iters: Optional[int] = option(default=None, help="Override the toy-adapt preset's iterations.")
    workers: int = option(
        default=0, min=0, help="Data-loader workers (0: load in the training process; best on 2 cores)."
    )
    force: bool = force_option("Redo every step (deletes WORKDIR first).")
    quiet: bool = quiet_option()


@dataclass(kw_only=True)
class BenchOptions(OptionGroup):
    COMMAND: ClassVar[str] = "bench"

    arch: Optional[str] = option(
        default=None,
        choices=ARCHS,
        help="Architecture (default: deeplabv2-r101 on CUDA at the paper's shapes, small on the CPU).",
    )
    device: str = device_option()
    repeats: int = option(default=5, min=1, help="Timed repetitions of each workload (the median is reported).")
    warmup: int = option(default=2, min=0, help="Untimed repetitions first.")
    compile: str = option(
        "--compile",
        default="auto",
        choices=COMPILE_CHOICES,
        help="Also time the default path compiled: auto (warmup and adapt on CUDA, as a long run of "
        "the stages does), on (every workload) or off.",
    )
    selector_backbone: str = option(
        default="separate", choices=SELECTOR_BACKBONES, help="B's backbone: separate or shared."
    )
    e2e_images: int = option(
        default=0,
        min=0,
        help="Also time `labor extract` end to end on this many synthetic PNGs (decoding and writing included).",
    )
    workers: Optional[int] = workers_option()
    batch_size: int = option(default=4, min=1, help="Extraction batch size for the end-to-end run and --pipeline.")
    pipeline: bool = option(
        default=False,
        help="Instead of the networks' rows: time what `labor extract` does per image outside the networks "
        "(decode, resize, hand-off to the main process, post-processing, writing the masks) on synthetic "
        "street-scene PNGs, against a bare decode, and the loader workers 60 and 100 images/s need.",
    )
    pipeline_images: int = option(default=16, min=1, help="PNGs that --pipeline times.")
    pipeline_size: Optional[tuple[int, int]] = option(
        default=None,
        parse=parse_size,
        metavar="WIDTHxHEIGHT",
        help="Size of --pipeline's PNGs (default 2048x1024, Cityscapes'; the network input is half of it).",
    )
    profile: Optional[Path] = option(
        default=None,
        help="Also write where each workload's time goes (torch.profiler "
        "tables, after all timings) to this folder; with --e2e-images, "
        "a timeline and every thread's stacks of a profiled extraction "
        "too.",
    )
    as_json: bool = option("--json", default=False, help="Print JSON for scripts.")

    def check(self) -> None:
        if self.pipeline and (self.e2e_images or self.profile):
            raise LaborUsageError(
                "--pipeline times the loader and the writer alone: give --e2e-images and --profile in another run"
            )
