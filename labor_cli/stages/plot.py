"""labor plot: PNG figures of training curves, mIoU against the share of labeled pixels, and IoU per class.

- ``curves``: the losses of a checkpoint (its stored history) or of a run in progress (its
  OUTPUT.losses.csv, labor_cli.history) against the iteration, raw and smoothed.
- ``budget``: for a set of evaluation artifacts, mIoU against the share of target pixels the
  evaluated model was trained with (from its labels artifact, found through the lineage). One
  series per method, a point per budget (the number of adapt rounds, and the labeled share),
  mean and standard deviation over the artifacts of that method and budget (seeds); methods
  without target labels are drawn as horizontal lines. Methods are named by ``--label
  NAME=GLOB`` (the artifacts a glob matches), or else from the lineage: the selection mode and
  budget of the labels (``ppl, 40 points``), ``source only`` / ``adversarial warmup`` for warmups.
- ``classes``: IoU per class, one bar per method (mean over its artifacts, standard deviation as
  error bar).

matplotlib is an optional extra (``pip install 'labor[plot]'``), run with the Agg backend.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labor_cli import artifacts
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.history import LOSS_COLUMNS, read_loss_history_csv
from labor_cli.options import PLOTS, PlotOptions

DEFAULT_SIZE = (1200, 800)  # pixels, at DPI
MAX_SIDE = 16384  # pixels; a figure of 16384x16384 is 1 GiB of RGBA
DPI = 100


def require_matplotlib():
    """pyplot on the Agg backend, or a one-line error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise LaborError("labor plot needs matplotlib, which is not installed: pip install 'labor[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------------
# Training curves


def curve_data(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (iterations, values) of each loss that is not zero throughout, and of the learning
    rate where the file has it; from a checkpoint (.h5) or a loss-history CSV."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        columns = read_loss_history_csv(path)
        iterations = columns["iteration"].astype(np.int64)
        series = {name: (iterations, columns[name]) for name in LOSS_COLUMNS + ("lr",) if name in columns}
    else:
        with artifacts.open_artifact(path, "checkpoint") as artifact:
            try:
                stored = artifact.file["training/history"]
                history = {name: np.asarray(ds[()], dtype=np.float64) for name, ds in stored.items()}
            except KeyError as exc:
                raise LaborError(f"{path}: damaged checkpoint: no training/history") from exc
        order = [name for name in LOSS_COLUMNS if name in history] + sorted(set(history) - set(LOSS_COLUMNS))
        series = {name: (np.arange(1, len(history[name]) + 1), history[name]) for name in order}
    kept = {name: data for name, data in series.items() if len(data[1]) and np.nanmax(np.abs(data[1])) > 0}
    if not kept:
        raise LaborError(f"{path}: no loss history to plot (a checkpoint written by labor convert has none)")
    return kept


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start); NaNs skipped."""
    if window <= 1:
        return values.astype(np.float64)
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)

    def lagged(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros(window), a[:-window]])[: len(a)]

    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums - lagged(sums)) / (counts - lagged(counts))


def plot_curves(plt, paths: list[Path], size: tuple[int, int], smooth: int):
    data = [(Path(p), curve_data(p)) for p in paths]
    names = list(dict.fromkeys(name for _, series in data for name in series))
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    # constrained layout: the panels' titles and axis labels do not overlap
    figure, axes = plt.subplots(
        rows, columns, figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, squeeze=False, layout="constrained"
    )
    for axis, name in zip(axes.flat, names):
        for path, series in data:
            if name not in series:
                continue
            iterations, values = series[name]
            label = path.name if len(data) > 1 else None
            (line,) = axis.plot(iterations, values, alpha=0.25, linewidth=0.8)
            axis.plot(iterations, moving_average(values, smooth), color=line.get_color(), linewidth=1.5, label=label)
        axis.set_title(name)
        axis.set_xlabel("iteration")
        if name == "lr":
            axis.set_yscale("log")
        if len(data) > 1:
            axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.suptitle(f"losses ({smooth}-iteration moving average over the raw values)")
    return figure


# --------------------------------------------------------------------------------------------
# Evaluation artifacts and their lineage


@dataclass
class EvalPoint:
    path: Path
    miou: float
    share: float  # percent of the target pixels labeled for the evaluated model
    method: str  # from the lineage
    rounds: int  # labels rounds behind the model (0: no target labels)
    class_names: list[str] = field(default_factory=list)
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _attrs(path: Path) -> dict:
    with artifacts.read_any(path) as f:
        return {
            "kind": str(f.attrs["labor_kind"]),
            "uuid": str(f.attrs["uuid"]),
            "config": json.loads(f.attrs["config"]),
            "lineage": json.loads(f.attrs["lineage"]),
            "summary": json.loads(f.attrs["summary"]) if "summary" in f.attrs else {},
        }


def _parent(child: Path, lineage: list[dict], kind: str) -> tuple[Path, dict] | None:
    """The parent of ``kind`` in a lineage, found where it was written (relative to the current
    folder) or beside the child; its uuid must be the recorded one."""
    record = next((p for p in lineage if p["kind"] == kind), None)
    if record is None:
        return None
    recorded = Path(record["path"])
    for candidate in (recorded, child.parent / recorded, child.parent / recorded.name):
        if candidate.is_file():
            attrs = _attrs(candidate)
            if attrs["uuid"] == record["uuid"]:
                return candidate, attrs
    raise LaborError(
        f"{child}: its {kind} {recorded} (uuid {record['uuid'][:8]}) is not there, nor beside it; "
        f"run labor plot where the paths of the chain resolve, or name the methods with --label"
    )


def _selection_name(config: dict) -> str:
    mode = config.get("mode", "?")
    if config.get("points"):
        name = f"{mode}, {config['points']} points"
    elif config.get("ratio") is not None:
        name = f"{mode}, ratio {config['ratio']:g}"
    else:
        name = str(mode)
    return name + (f", {config['min_spacing']:g} px apart" if config.get("min_spacing") else "")


def describe_model(path: Path, attrs: dict) -> tuple[str, float, int]:
    """(method, labeled share in percent, labels rounds) of a checkpoint, from its lineage."""
    labels = _parent(path, attrs["lineage"], "labels")
    if labels is None:
        config = attrs["config"]
        if config.get("stage") == "convert":
            return f"converted {config.get('format', '')}".strip(), 0.0, 0
        start = _parent(path, attrs["lineage"], "checkpoint")
        if start is not None:  # adapt without labels does not exist; follow what it started from
            return describe_model(*start)
        adversarial = float(config.get("train", {}).get("lambda_adv", 1.0)) > 0
        return ("adversarial warmup" if adversarial else "source only"), 0.0, 0
    labels_path, labels_attrs = labels
    share = float(labels_attrs["summary"].get("labeled_share_percent", math.nan))
    rounds, earlier = 1, labels
    while (earlier := _parent(earlier[0], earlier[1]["lineage"], "labels")) is not None:
        rounds += 1
    selection = _parent(labels_path, labels_attrs["lineage"], "selection")
    if labels_attrs["config"].get("annotator") == "import":
        return "imported labels", share, rounds
    return (_selection_name(selection[1]["config"]) if selection else "labels"), share, rounds


def gather_eval_points(paths: list[Path], lineage: bool = True) -> list[EvalPoint]:
    """The scores of evaluation artifacts and, with ``lineage``, what their models were trained
    with (method, share, rounds); without it each artifact is its own method, named by its file."""
    points = []
    for path in map(Path, paths):
        with artifacts.open_artifact(path, "evaluation") as artifact:
            scores = json.loads(artifact.file.attrs["scores"])
            class_names = json.loads(artifact.file.attrs["class_names"])
            iou = artifact.read("iou")
            parents = json.loads(artifact.file.attrs["lineage"])
        miou = next(value for key, value in scores.items() if key.startswith("mIoU"))
        model = _parent(path, parents, "checkpoint") if lineage else None
        method, share, rounds = describe_model(*model) if model else (path.stem, math.nan, 0)
        iou = np.asarray(iou, dtype=np.float64)
        points.append(EvalPoint(path, float(miou), share, method, rounds, class_names, iou))
    return points


def parse_labels(labels: list[str]) -> list[tuple[str, str]]:
    """``NAME=GLOB`` options -> [(name, glob)], in the order given."""
    parsed = []
    for text in labels:
        name, sep, pattern = text.partition("=")
        if not sep or not name.strip() or not pattern.strip():
            raise LaborUsageError(f"--label {text!r}: expected NAME=GLOB, e.g. 'LabOR-PPL=runs/*/eval-ppl40.h5'")
        parsed.append((name.strip(), pattern.strip()))
    return parsed


def group_points(points: list[EvalPoint], labels: list[tuple[str, str]] | None = None) -> dict[str, list[EvalPoint]]:
    """Methods -> their points: each artifact under the first ``--label`` whose glob matches its
    path (artifacts no label matches are left out), or under its lineage's method name."""
    groups: dict[str, list[EvalPoint]] = {}
    for point in points:
        if labels:
            name = next(
                (
                    n
                    for n, pattern in labels
                    if fnmatch.fnmatch(str(point.path), pattern)
                    or fnmatch.fnmatch(os.path.normpath(point.path), os.path.normpath(pattern))
                ),
                None,
            )
            if name is None:
                continue
        else:
            name = point.method
        groups.setdefault(name, []).append(point)
    if labels:  # in the order of the options
        groups = {name: groups[name] for name, _ in labels if name in groups}
    return groups


@dataclass
class BudgetPoint:
    share: float
    share_sd: float
    miou: float
    miou_sd: float
    count: int


# Evaluations of a method with the same number of rounds whose labeled shares are within this
# factor of each other are one budget (seeds vary the share a little; 40 points against a 2% mask
# are two budgets).
SAME_BUDGET_FACTOR = 1.25


def budget_series(groups: dict[str, list[EvalPoint]]) -> dict[str, list[BudgetPoint]]:
    """Per method, one point per budget (number of labels rounds, and labeled share within
    SAME_BUDGET_FACTOR): mean and sd (over seeds) of share and mIoU, by increasing share."""
    series = {}
    for name, points in groups.items():
        budgets: list[list[EvalPoint]] = []
        for point in sorted(points, key=lambda p: (p.rounds, p.share)):
            first = budgets[-1][0] if budgets else None
            same = first is not None and point.rounds == first.rounds
            if same and not point.share <= first.share * SAME_BUDGET_FACTOR:  # nan shares stay together
                same = math.isnan(point.share) and math.isnan(first.share)
            if same:
                budgets[-1].append(point)
            else:
                budgets.append([point])
        series[name] = sorted((_mean_sd(b) for b in budgets), key=lambda b: (b.share, b.count))
    return series


def _mean_sd(points: list[EvalPoint]) -> BudgetPoint:
    shares, mious = np.array([p.share for p in points]), np.array([p.miou for p in points])

    def spread(values: np.ndarray) -> float:
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    return BudgetPoint(float(shares.mean()), spread(shares), float(mious.mean()), spread(mious), len(points))


def class_iou_table(groups: dict[str, list[EvalPoint]]) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Class names and, per method, the mean and sd over its artifacts of each class's IoU (percent)."""
    names = None
    table = {}
    for method, points in groups.items():
        for point in points:
            if names is None:
                names = point.class_names
            elif point.class_names != names:
                raise LaborError(
                    f"{point.path}: classes {', '.join(point.class_names[:3])}... differ from the other "
                    f"artifacts' {', '.join(names[:3])}..."
                )
        values = np.stack([p.iou * 100 for p in points])
        spread = np.nanstd(values, 0, ddof=1) if len(points) > 1 else np.zeros(len(names))
        table[method] = (np.nanmean(values, 0), spread)
    return names or [], table


def plot_budget(plt, groups: dict[str, list[EvalPoint]], size: tuple[int, int]):
    figure, axis = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    labeled = False
    for name, points in budget_series(groups).items():
        if all(p.share == 0 for p in points):  # no target labels: a reference level
            line = axis.axhline(points[0].miou, linestyle="--", linewidth=1, label=f"{name} ({points[0].miou:.1f})")
            if points[0].miou_sd:
                axis.axhspan(
                    points[0].miou - points[0].miou_sd,
                    points[0].miou + points[0].miou_sd,
                    color=line.get_color(),
                    alpha=0.1,
                )
            continue
        labeled = True
        axis.errorbar(
            [p.share for p in points],
            [p.miou for p in points],
            xerr=[p.share_sd for p in points],
            yerr=[p.miou_sd for p in points],
            marker="o",
            capsize=3,
            label=name,
        )
    if labeled:
        axis.set_xscale("log")
    axis.set_xlabel("labeled target pixels (%)")
    axis.set_ylabel("mIoU (%)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize="small")
    axis.set_title("mIoU against the share of labeled pixels (mean ± sd over the artifacts of each point)")
    return figure


def plot_classes(plt, groups: dict[str, list[EvalPoint]], size: tuple[int, int]):
    names, table = class_iou_table(groups)
    figure, axis = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    width = 0.8 / max(1, len(table))
    positions = np.arange(len(names))
    for k, (method, (mean, sd)) in enumerate(table.items()):
        axis.bar(
            positions + (k - (len(table) - 1) / 2) * width,
            np.nan_to_num(mean),
            width,
            yerr=sd,
            capsize=2,
            label=f"{method} ({np.nanmean(mean):.1f})",
        )
    axis.set_xticks(positions, names, rotation=45, ha="right")
    axis.set_ylabel("IoU (%)")
    axis.set_ylim(0, 100)
    axis.legend(fontsize="small")
    axis.set_title("IoU per class (mean mIoU in the legend)")
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------------------------
# The stage


@dataclass
class PlotResult:
    output: Path
    kind: str
    size: tuple[int, int]
    series: list[str]


def _expand(inputs: list[str], labels: list[tuple[str, str]]) -> list[Path]:
    """The input files, and whatever the --label globs match."""
    import glob

    paths = [Path(p) for p in inputs]
    for _, pattern in labels:
        paths += [Path(p) for p in sorted(glob.glob(pattern))]
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise LaborUsageError("no input files: give artifacts, or --label NAME=GLOB patterns that match some")
    return unique


def run_plot(options: PlotOptions) -> PlotResult:
    kind, inputs, labels, smooth = options.kind, options.inputs or [], options.label or [], options.smooth
    size = options.size or DEFAULT_SIZE
    if max(size) > MAX_SIDE:
        raise LaborUsageError(f"--size {size[0]}x{size[1]}: at most {MAX_SIDE} pixels a side")
    if kind not in PLOTS:
        raise LaborUsageError(f"unknown plot {kind!r}: choose one of {', '.join(PLOTS)}")
    output = Path(options.output)
    artifacts.check_output_path(output, options.force, inputs=tuple(inputs))
    plt = require_matplotlib()
    parsed = parse_labels(list(labels))
    paths = _expand(list(inputs), parsed)
    if kind == "curves":
        figure = plot_curves(plt, paths, size, smooth)
        series = [p.name for p in paths]
    else:
        points = gather_eval_points(paths, lineage=kind == "budget" or not parsed)
        groups = group_points(points, parsed)
        if not groups:
            raise LaborError("no evaluation artifact matched a --label glob")
        figure = (plot_budget if kind == "budget" else plot_classes)(plt, groups, size)
        series = list(groups)
    temporary = output.with_name(f".{output.name}.partial.png")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(temporary, dpi=DPI, format="png")
        os.replace(temporary, output)
    except OSError as exc:
        raise LaborError(f"{output}: cannot write ({exc.strerror or exc})") from exc
    finally:
        temporary.unlink(missing_ok=True)
        plt.close(figure)
    return PlotResult(output, kind, size, series)


def print_plot(result: PlotResult) -> None:
    from labor_cli.console import stdout

    stdout.print(
        f"{result.output}: {result.kind}, {result.size[0]}x{result.size[1]} px, {len(result.series)} series "
        f"({', '.join(result.series)})",
        soft_wrap=True,
    )
