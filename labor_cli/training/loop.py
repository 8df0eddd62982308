"""The training loop shared by warmup and adapt.

``config.iterations`` iterations of labor_cli.training.steps, saved for --resume every
--save-every iterations and when SIGINT/SIGTERM stop it (labor_cli.resume), the losses logged
and the discrepancy weight steered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from labor_cli import distributed
from labor_cli.artifacts import TrainingState
from labor_cli.console import progress_bar
from labor_cli.data.transforms import ImageNormalizer
from labor_cli.distributed import Rank
from labor_cli.errors import LaborError
from labor_cli.history import LossHistoryCSV
from labor_cli.options import TrainConfig
from labor_cli.resume import ResumableRun
from labor_cli.runtime import CompileFallback, memory_format
from labor_cli.training.data import TargetPoints, device_batch, make_loader
from labor_cli.training.steps import (
    HISTORY_NAMES,
    LOSS_NAMES,
    StepSettings,
    TrainingBatch,
    build_optimizers,
    restore_optimizers,
    set_learning_rates,
    training_step,
)


@dataclass
class TrainingData:
    """What a run trains on."""

    source: Any  # a SegmentationView with labels
    target: Any  # a SegmentationView of the images alone
    points: TargetPoints | None = None  # adapt's annotated target pixels; None: warmup


@dataclass
class Placement:
    """Where and how the networks run."""

    device: torch.device
    precision: str
    compiled: bool
    workers: int


@dataclass
class Checkpoints:
    """Where a run keeps its state, and the state it continues from."""

    save: Callable[[TrainingState, Path], None]  # a checkpoint of the networks and the state (rank 0 calls it)
    resume_path: Path
    resume_state: TrainingState | None = None  # --resume's starting point; None: iteration 0
    history_csv: Path | None = None  # rank 0 appends the flushed losses there (labor_cli.history)


def train(
    networks,
    config: TrainConfig,
    stage: str,
    *,
    data: TrainingData,
    placement: Placement,
    checkpoints: Checkpoints,
    rank: Rank = Rank(),
    quiet: bool = False,
) -> TrainingState:
    """Train from iteration 0 (or ``checkpoints.resume_state``) to ``config.iterations``; return
    the final state.

    Every ``save_every`` iterations, and on SIGINT/SIGTERM, a complete checkpoint is written to
    ``checkpoints.resume_path`` (atomically); a non-finite loss stops the run, keeping that file.

    With several processes (``rank``), each draws its own slice of every global batch, the
    gradients are averaged (steps.training_step), only rank 0 saves and shows progress, and the
    processes agree at every log and save point whether one of them was asked to stop, so they
    all stop after the same iteration. The loss history CSV is rewound to the resumed iteration
    first (labor_cli.history).
    """
    trainer = Trainer(networks, config, stage, data, placement, checkpoints, rank)
    run = ResumableRun(checkpoints.resume_path, config.save_every, config.iterations, escalate=not rank.distributed)
    speed = ImageRate(trainer.start, (config.source_batch + config.target_batch) * rank.world_size)
    with run, progress_bar(disable=quiet or not rank.is_main) as bar:
        task = bar.add_task(stage, total=config.iterations, completed=trainer.start, status="")
        iteration = trainer.start
        for source, target in trainer.batches():
            trainer.step(iteration, source, target)
            iteration += 1
            log_now = iteration % config.log_every == 0 or iteration == config.iterations
            save_now = run.save_due(iteration - 1, iteration)
            if log_now:
                status = _status(trainer.log.flush(iteration), trainer.learning_rate(), speed(iteration))
                trainer.steering.update(trainer.log.history, iteration)
                bar.update(task, completed=iteration, status=status)
            if save_now:
                trainer.save(iteration)
            if stop_agreed(run, log_now or save_now, rank):
                trainer.save_and_stop(iteration, run, bar)
    return trainer.finish(iteration)


class Trainer:
    """A run's networks on their device, its optimisers, loss log and discrepancy steering, from
    its start or its resumption."""

    def __init__(
        self,
        networks,
        config: TrainConfig,
        stage: str,
        data: TrainingData,
        placement: Placement,
        checkpoints: Checkpoints,
        rank: Rank,
    ):
        self.networks, self.config, self.stage, self.data = networks, config, stage, data
        self.placement, self.checkpoints, self.rank = placement, checkpoints, rank
        device = placement.device
        fmt = memory_format(device)
        self.normalize = ImageNormalizer(device, fmt)
        networks.to(device, memory_format=fmt).train()
        distributed.broadcast_parameters(networks, rank)
        # After the move: compiled code is tied to the device.
        self.compiled = CompileFallback(networks.called_modules(), placement.compiled)
        self.optimizers = build_optimizers(networks, config)
        self.start, history = restore_optimizers(self.optimizers, checkpoints.resume_state)
        csv_path = checkpoints.history_csv
        self.csv = LossHistoryCSV(csv_path, self.start, history) if csv_path is not None and rank.is_main else None
        self.log = LossLog(history, rank, checkpoints.resume_path, self.csv)
        self.steering = MaskShareSteering(config, history, self.start, device)
        self.pseudo_from = 0 if data.points is not None else config.warmup_pseudo_from()

    def batches(self):
        """The (source, target) batches from the start iteration to the last."""
        config, placement = self.config, self.placement

        def loader(view, batch: int, stream: int):
            return make_loader(
                view,
                batch,
                seed=config.seed,
                stream=stream,
                batches=range(self.start, config.iterations),
                workers=placement.workers,
                device=placement.device,
                rank=self.rank,
            )

        return zip(loader(self.data.source, config.source_batch, 0), loader(self.data.target, config.target_batch, 1))

    def learning_rate(self) -> float:
        """A's backbone learning rate at the current iteration."""
        return self.optimizers["segmenter"].param_groups[0]["lr"]

    def step(self, iteration: int, source: dict, target: dict) -> None:
        """One iteration on the loaders' batches; its losses go to the log (still on the device)."""
        config, device, adapt = self.config, self.placement.device, self.data.points is not None
        set_learning_rates(self.optimizers, iteration, config)
        source, target, indices = device_batch(source, target, device, self.normalize, config, iteration, self.rank)
        points = self.data.points.batch(indices, device) if adapt else []
        losses = self.compiled(
            training_step,
            self.networks,
            self.optimizers,
            config,
            batch=TrainingBatch(source=source, target=target, points=points),
            settings=StepSettings(
                precision=self.placement.precision,
                adapt=adapt,
                pseudo=iteration >= self.pseudo_from,
                lambda_dis=self.steering.tensor,
            ),
            rank=self.rank,
        )
        self.log.add(losses, self.learning_rate())

    def state_at(self, iteration: int) -> TrainingState:
        optimizers = {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}
        return TrainingState(self.stage, iteration, self.config.iterations, optimizers, self.log.arrays())

    def save(self, iteration: int) -> None:
        """The periodic save for --resume (rank 0), the processes checked to hold the same weights."""
        self.log.flush(iteration)
        distributed.check_in_sync(self.networks, self.rank, f"iteration {iteration}")
        if self.rank.is_main:
            self.checkpoints.save(self.state_at(iteration), self.checkpoints.resume_path)

    def save_and_stop(self, iteration: int, run: ResumableRun, bar) -> NoReturn:
        """Write the resume file (rank 0), say how to continue, and stop (Interrupted)."""
        self.log.flush(iteration)
        if self.rank.is_main:
            self.checkpoints.save(self.state_at(iteration), self.checkpoints.resume_path)
        distributed.barrier(self.rank)  # no process leaves (and has torchrun end the others) before the save
        bar.stop()
        run.stopped(f"iteration {iteration}", announce=self.rank.is_main)

    def finish(self, iteration: int) -> TrainingState:
        self.log.flush(iteration)
        if self.csv is not None:
            self.csv.close()
        distributed.check_in_sync(self.networks, self.rank, "the end of training")
        return self.state_at(iteration)


def stop_agreed(run: ResumableRun, at_sync_point: bool, rank: Rank) -> bool:
    """Whether to stop after this iteration. With several processes they agree, at the log and
    save points only: asking the others is a host synchronisation."""
    stopping = run.signal_name is not None
    if rank.distributed:
        stopping = at_sync_point and distributed.any_rank(stopping, rank)
    return stopping


class MaskShareSteering:
    """The discrepancy weight that keeps B's mask filling its budget, --mask-share of each
    image's pixels (0: --lambda-dis, fixed).

    The paper gives the mask's size (SPL labels about 2.2% of the pixels), not the weight that
    makes it. Every log_every iterations the weight is multiplied by sqrt(wanted / measured),
    clamped to [1e-3, 10]: measured is the share the mask keeps within the budget over those
    iterations (``mask_kept``), wanted FILL of the budget. A mask larger than its budget is cut
    to it (labor_cli.inconsistency), so the kept share never overshoots, and a weight too high
    for a while costs nothing; the share where the heads differ, which swings with the data and
    with B's pseudo labels, is recorded beside it. Its inputs are the recorded history, and the
    weight is rounded to float32 as the history stores it, so a resumed run steers as an
    uninterrupted one does.
    """

    LOWEST, HIGHEST = 1e-3, 10.0
    # The kept share cannot pass the budget, so the steering aims just below it: at the budget
    # itself it could only ever raise the weight.
    FILL = 0.95

    def __init__(self, config: TrainConfig, history: dict[str, list[float]], iteration: int, device: torch.device):
        self.config, self.device = config, device
        used = history.get("lambda_dis") or [config.lambda_dis]
        self.weight = float(np.float32(used[-1]))
        if iteration > 0 and history.get("lambda_dis"):
            self.update(history, iteration)
        self.tensor = torch.tensor(self.weight, dtype=torch.float32, device=device)

    def update(self, history: dict[str, list[float]], iteration: int) -> None:
        """At a multiple of log_every (the history flushed): steer from the last log_every shares."""
        wanted, every = self.FILL * self.config.mask_share, self.config.log_every
        if wanted <= 0 or iteration % every != 0 or len(history["mask_kept"]) < every:
            return
        measured = float(np.mean(np.asarray(history["mask_kept"][-every:], dtype=np.float32)))
        factor = (wanted / max(measured, wanted / 10)) ** 0.5
        self.weight = float(np.float32(min(self.HIGHEST, max(self.LOWEST, self.weight * factor))))
        self.tensor = torch.tensor(self.weight, dtype=torch.float32, device=self.device)


class LossLog:
    """The losses of the iterations since the last flush (still on the device) and the history
    before them (on the host)."""

    def __init__(
        self, history: dict[str, list[float]], rank: Rank, resume_path: Path, csv: LossHistoryCSV | None = None
    ):
        self.history, self.rank, self.resume_path, self.csv = history, rank, resume_path, csv
        self.pending: list[dict[str, torch.Tensor]] = []
        self.rates: list[float] = []  # A's backbone learning rate at each pending iteration (host floats)

    def add(self, step_losses: dict[str, torch.Tensor], lr: float | None = None) -> None:
        self.pending.append(step_losses)
        self.rates.append(lr)

    def flush(self, iteration: int) -> dict[str, float]:
        """Move the pending losses to the host (one synchronisation), check that they are finite,
        and return their means."""
        if not self.pending:
            return {}
        stacked = {name: torch.stack([p[name] for p in self.pending]).float().cpu().numpy() for name in HISTORY_NAMES}
        rates, self.rates = self.rates, []
        self.pending.clear()
        if self.rank.distributed:  # the mean over the processes: the same history, and the same verdict, everywhere
            summed = distributed.all_reduce_sum(
                torch.from_numpy(np.stack([stacked[n] for n in HISTORY_NAMES])), self.rank
            )
            stacked = {name: (summed[i] / self.rank.world_size).numpy() for i, name in enumerate(HISTORY_NAMES)}
        for name, values in stacked.items():
            if not np.all(np.isfinite(values)):
                last_good = self.resume_path if self.resume_path.exists() else "none (no save yet)"
                raise LaborError(
                    f"loss {name} became {values[~np.isfinite(values)][0]} by iteration {iteration}; "
                    f"stopped. The last good checkpoint is {last_good}; try a lower --lr"
                )
            self.history[name].extend(values.tolist())
        if self.csv is not None:  # checked first: a non-finite loss never reaches the CSV either
            self.csv.append(stacked, rates)
        return {name: float(values.mean()) for name, values in stacked.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(values, dtype=np.float32) for name, values in self.history.items()}


class ImageRate:
    """Training images per second since the run (or its resumption) started."""

    def __init__(self, start: int, images_per_iteration: int):
        self.start, self.images_per_iteration, self.started = start, images_per_iteration, time.perf_counter()

    def __call__(self, iteration: int) -> float:
        return (iteration - self.start) * self.images_per_iteration / (time.perf_counter() - self.started)


def _status(means: dict[str, float], lr: float, rate: float) -> str:
    shown = " ".join(f"{name} {means[name]:.3f}" for name in LOSS_NAMES if name in means and means[name] != 0)
    mask = (
        f" mask {100 * means['mask_share']:.1f}% (kept {100 * means['mask_kept']:.1f}%) lambda_dis {means['lambda_dis']:.3g}"
        if "mask_share" in means
        else ""
    )
    return f"{shown}{mask} lr {lr:.2e} {rate:.1f} img/s"
