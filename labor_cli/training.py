"""The training loop shared by warmup and adapt: A, B and D, one iteration at a time.

One iteration (docs/method.md's losses, numbered as in the paper's figure):
  A: 1 (source cross-entropy) + 2 (annotated target pixels, adapt only) + 3 (fool D on target)
  D: tell A's source outputs (0) from its target outputs (1)
  B: both heads on source labels + 5 (pseudo labels from A on the target: adapt, and warmup
     from --pseudo-from) - 6 (push the heads apart on target pixels; heads only, on detached
     backbone features), weighted by lambda_dis, which --mask-share steers (MaskShareSteering)
Data order is a function of (seed, iteration) alone and every other state is saved, so a
resumed run equals an uninterrupted one (bit for bit on the CPU).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from labor_cli import distributed, inconsistency, losses
from labor_cli.artifacts import TrainingState
from labor_cli.console import progress_bar, stderr
from labor_cli.data.transforms import ImageNormalizer
from labor_cli.distributed import Rank
from labor_cli.errors import Interrupted, LaborError
from labor_cli.history import LossHistoryCSV
from labor_cli.options import TrainConfig
from labor_cli.runtime import CompileFallback, autocast, memory_format, seed_worker

LOSS_NAMES = ("seg_src", "seg_tgt", "adv", "disc", "sel_src", "sel_pseudo", "dis")
# Recorded per iteration beside the losses, on the feature grid of the target images: the share
# of pixels where B's heads disagree, the share the mask keeps within --mask-share of each image
# (labor_cli.inconsistency), and the discrepancy weight used.
HISTORY_NAMES = LOSS_NAMES + ("mask_share", "mask_kept", "lambda_dis")


class StreamSampler(torch.utils.data.Sampler):
    """Batches of an endless shuffled stream; batch b depends only on (seed, stream, b).

    With several processes, global batch b is ``world_size * batch_size`` consecutive items of
    the stream and process ``rank`` takes its ``rank``-th slice of ``batch_size``: the processes
    together see what one process with the global batch would (and rank/world_size 0/1 is the
    single-process stream).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        stream: int,
        start_batch: int,
        stop_batch: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.size, self.batch_size = size, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.stream = seed, stream
        self.start_batch, self.stop_batch = start_batch, stop_batch
        self._epoch, self._permutation = -1, None

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stream * 7_919 + epoch)
            self._epoch, self._permutation = epoch, torch.randperm(self.size, generator=generator).tolist()
        return self._permutation[offset]

    def __iter__(self):
        for batch in range(self.start_batch, self.stop_batch):
            first = (batch * self.world_size + self.rank) * self.batch_size
            yield [self._index(first + j) for j in range(self.batch_size)]

    def __len__(self) -> int:
        return self.stop_batch - self.start_batch


def make_loader(
    view, batch_size: int, seed: int, stream: int, start: int, stop: int, workers: int, device, rank: Rank = Rank()
) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed * 31 + stream)
    return torch.utils.data.DataLoader(
        view,
        batch_sampler=StreamSampler(len(view), batch_size, seed, stream, start, stop, rank.rank, rank.world_size),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


def poly_lr(base: float, iteration: int, iterations: int, power: float) -> float:
    return base * (1 - iteration / iterations) ** power


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop stops between iterations, so what it saves is whole."""

    def __init__(self, escalate: bool = True):
        # escalate: a second signal stops at once. Not under torchrun, whose agent passes a Ctrl-C
        # on to processes that already got it from the terminal (and kills them 30 s later).
        self.signal_name: str | None = None
        self.escalate = escalate
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and self.escalate:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass
class TargetPoints:
    """Annotated target pixels per dataset index, in each image's native grid (255s dropped)."""

    by_index: dict[int, dict] = field(default_factory=dict)

    def batch(self, indices: list[int], device: torch.device) -> list[dict]:
        empty = {"yx": torch.zeros(0, 2, dtype=torch.long), "label": torch.zeros(0, dtype=torch.long), "size": (1, 1)}
        # To CUDA through pinned memory: a copy from pageable memory waits for the GPU to finish
        # everything queued before it, which would stall every iteration.
        staged = (lambda tensor: tensor.pin_memory()) if device.type == "cuda" else (lambda tensor: tensor)
        out = []
        for i in indices:
            points = self.by_index.get(i, empty)
            out.append(
                {
                    "yx": staged(points["yx"]).to(device, non_blocking=True),
                    "label": staged(points["label"]).to(device, non_blocking=True),
                    "size": points["size"],
                }
            )
        return out


def paint_points(pseudo: torch.Tensor, points: list[dict]) -> torch.Tensor:
    """Annotations override pseudo labels, at the nearest pixel of the training grid."""
    height, width = pseudo.shape[-2:]
    for image_labels, image_points in zip(pseudo, points):
        if len(image_points["label"]) == 0:
            continue
        native_h, native_w = image_points["size"]
        y = ((image_points["yx"][:, 0].float() + 0.5) * height / native_h).long().clamp(0, height - 1)
        x = ((image_points["yx"][:, 1].float() + 0.5) * width / native_w).long().clamp(0, width - 1)
        image_labels[y, x] = image_points["label"]
    return pseudo


def flip_source(
    source: dict[str, torch.Tensor], seed: int, iteration: int, rank: Rank = Rank()
) -> dict[str, torch.Tensor]:
    """Flip a random half of a source batch left-right, images and labels alike; which ones
    depends only on (seed, iteration), so a resumed run flips the same images. Target images
    are never flipped: their annotated pixels are positions in the unflipped image. With several
    processes each takes its slice of the global batch's draw."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + iteration + 1)
    batch = source["image"].shape[0]
    draw = torch.rand(batch * rank.world_size, generator=generator)[rank.rank * batch : (rank.rank + 1) * batch]
    flips = (draw < 0.5).tolist()  # decided on the host: nothing is copied to the device for it

    def flipped(tensors: torch.Tensor) -> torch.Tensor:
        return torch.stack([tensor.flip(-1) if flip else tensor for tensor, flip in zip(tensors, flips)])

    return {**source, "image": flipped(source["image"]), "label": flipped(source["label"])}


def build_optimizers(networks, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    if config.optimizer == "sgd":

        def make(groups):
            return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:  # AdamW: heads at 10x too would be unstable; one rate for all, decoupled weight decay

        def make(groups):
            return torch.optim.AdamW(
                [{"params": g["params"], "lr": config.lr} for g in groups],
                lr=config.lr,
                betas=tuple(config.betas),
                weight_decay=config.weight_decay,
            )

    optimizers = {
        "segmenter": make(networks.segmenter.param_groups(config.lr)),
        "selector": make(networks.selector.param_groups(config.lr)),
        "discriminator": torch.optim.Adam(
            networks.discriminator.parameters(), lr=config.lr_discriminator, betas=tuple(config.betas)
        ),
    }
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def training_step(
    networks,
    optimizers,
    config: TrainConfig,
    source,
    target,
    points,
    precision: str,
    adapt: bool,
    rank: Rank = Rank(),
    pseudo: bool | None = None,
    lambda_dis: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One LabOR iteration; returns the detached losses (no host synchronisation).

    ``pseudo``: whether B learns A's pseudo labels (default: in adapt); ``lambda_dis``: the
    discrepancy weight as a tensor (default: config.lambda_dis), so that steering it does not
    make torch.compile build a new graph.

    With several processes, the gradients that the three backward passes accumulate are
    averaged over the processes just before the optimisers step (one all-reduce per iteration:
    what DistributedDataParallel would do, which cannot follow features()/classify() calls, D
    called three times and frozen in between, and three backward passes).
    """
    for optimizer in optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    pseudo = adapt if pseudo is None else pseudo
    if lambda_dis is None:
        lambda_dis = torch.tensor(config.lambda_dis, device=source["image"].device)
    segmenter = _segmenter_step(networks, config, source, target, points, precision, adapt)
    loss_disc = _discriminator_step(networks.discriminator, config, segmenter, precision)
    loss_sel_src, loss_sel_pseudo, loss_dis, mask_share, mask_kept = _selector_step(
        networks.selector, config, source, target, points, segmenter, precision, pseudo, lambda_dis
    )
    if rank.distributed:
        distributed.average_gradients(
            [p for optimizer in optimizers.values() for group in optimizer.param_groups for p in group["params"]], rank
        )
    for optimizer in optimizers.values():
        optimizer.step()
    values = (
        segmenter.loss_seg_src,
        segmenter.loss_seg_tgt,
        segmenter.loss_adv,
        loss_disc,
        loss_sel_src,
        loss_sel_pseudo,
        loss_dis,
        mask_share,
        mask_kept,
        lambda_dis,
    )
    return {name: value.detach().float() for name, value in zip(HISTORY_NAMES, values)}


@dataclass
class _SegmenterPass:
    """What A's step leaves for D's and B's: A's features and outputs, and its losses."""

    features_s: torch.Tensor
    features_t: torch.Tensor
    full_s: torch.Tensor  # A's source logits at the label's size
    probabilities_t: torch.Tensor  # A's target class probabilities at the image's size
    loss_seg_src: torch.Tensor
    loss_seg_tgt: torch.Tensor
    loss_adv: torch.Tensor


def _segmenter_step(
    networks, config: TrainConfig, source, target, points, precision: str, adapt: bool
) -> _SegmenterPass:
    """A: losses 1 (source labels), 2 (annotated target pixels, adapt) and 3 (fool D), one backward pass."""
    segmenter, discriminator = networks.segmenter, networks.discriminator
    xs, ys, xt = source["image"], source["label"], target["image"]
    device = xs.device
    zero = torch.zeros((), device=device)
    with autocast(device, precision):
        features_s = segmenter.features(xs)
        logits_s = segmenter.classify(features_s)
        features_t = segmenter.features(xt)
        logits_t = segmenter.classify(features_t)
    full_s = losses.upsample(logits_s, tuple(ys.shape[-2:]))
    full_t = losses.upsample(logits_t, tuple(xt.shape[-2:]))
    loss_seg_src = losses.segmentation_loss(full_s, ys)
    loss_seg_tgt = losses.sparse_target_loss(logits_t, points) if adapt else zero
    probabilities_t = full_t.softmax(1)
    loss_adv = zero
    if config.lambda_adv > 0:
        discriminator.requires_grad_(False)
        with autocast(device, precision):
            loss_adv = losses.adversarial_loss(discriminator(probabilities_t), is_source=True)
        discriminator.requires_grad_(True)
    (loss_seg_src + config.lambda_target * loss_seg_tgt + config.lambda_adv * loss_adv).backward()
    return _SegmenterPass(features_s, features_t, full_s, probabilities_t, loss_seg_src, loss_seg_tgt, loss_adv)


def _discriminator_step(discriminator, config: TrainConfig, a: _SegmenterPass, precision: str) -> torch.Tensor:
    """D: A's source outputs are 0, its target outputs 1."""
    device = a.full_s.device
    if config.lambda_adv <= 0:
        return torch.zeros((), device=device)
    with autocast(device, precision):
        loss_disc = 0.5 * (
            losses.adversarial_loss(discriminator(a.full_s.detach().softmax(1)), is_source=True)
            + losses.adversarial_loss(discriminator(a.probabilities_t.detach()), is_source=False)
        )
    loss_disc.backward()
    return loss_disc


def _selector_step(
    selector,
    config: TrainConfig,
    source,
    target,
    points,
    a: _SegmenterPass,
    precision: str,
    pseudo: bool,
    lambda_dis: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """B: both heads on source labels, 5 (pseudo labels from A, when ``pseudo``), minus 6 (the
    heads' discrepancy on target pixels, heads only, on detached backbone features). Also returns
    the share of target pixels where the heads' classes differ, and the share of them the mask
    keeps within --mask-share of each image (on the feature grid)."""
    xs, ys, xt = source["image"], source["label"], target["image"]
    label_size, target_size = tuple(ys.shape[-2:]), tuple(xt.shape[-2:])
    use_pseudo = pseudo and config.lambda_pseudo > 0
    with autocast(xs.device, precision):
        if selector.shared:  # B's heads on A's features; B never trains A's backbone
            selector_s, selector_t = a.features_s.detach(), a.features_t.detach()
        else:
            selector_s = selector.features(xs)
            with torch.set_grad_enabled(use_pseudo):
                selector_t = selector.features(xt)
        head1_s, head2_s = selector(features=selector_s)
        head1_d, head2_d = selector(features=selector_t.detach())
        if use_pseudo:
            head1_t, head2_t = (head1_d, head2_d) if selector.shared else selector(features=selector_t)
    loss_sel_src = losses.segmentation_loss(losses.upsample(head1_s, label_size), ys) + losses.segmentation_loss(
        losses.upsample(head2_s, label_size), ys
    )
    loss_sel_pseudo = torch.zeros((), device=xs.device)
    if use_pseudo:
        with torch.no_grad():
            pseudo = paint_points(
                losses.class_balanced_pseudo_labels(a.probabilities_t.detach(), config.pseudo_alpha), points
            )
        loss_sel_pseudo = losses.segmentation_loss(
            losses.upsample(head1_t, target_size), pseudo
        ) + losses.segmentation_loss(losses.upsample(head2_t, target_size), pseudo)
    loss_dis = losses.discrepancy(head1_d, head2_d)
    (loss_sel_src + config.lambda_pseudo * loss_sel_pseudo - lambda_dis * loss_dis).backward()
    differ = head1_d.argmax(1) != head2_d.argmax(1)
    mask_kept = inconsistency.budget_share(differ, config.mask_share)
    return loss_sel_src, loss_sel_pseudo, loss_dis, differ.float().mean(), mask_kept


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


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], iteration: int, config: TrainConfig) -> None:
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(group["base_lr"], iteration, config.iterations, config.power)


def device_batch(
    source: dict,
    target: dict,
    device: torch.device,
    normalize: ImageNormalizer,
    config: TrainConfig,
    iteration: int,
    rank: Rank,
) -> tuple[dict, dict, list[int]]:
    """The loaders' batches on the device (uint8 images and labels widened there), the source
    flipped as --hflip asks; and the target images' dataset indices."""
    source = {
        "image": normalize(source["image"].to(device, non_blocking=True)),
        "label": source["label"].to(device, non_blocking=True).long(),
    }
    if config.hflip:
        source = flip_source(source, config.seed, iteration, rank)
        source["image"] = source["image"].contiguous(memory_format=normalize.memory_format)  # torch.stack drops it
    indices = target["index"].tolist()
    target = {"image": normalize(target["image"].to(device, non_blocking=True))}
    return source, target, indices


def train(
    networks,
    config: TrainConfig,
    stage: str,
    source_view,
    target_view,
    target_points: TargetPoints | None,
    device: torch.device,
    precision: str,
    workers: int,
    save: Callable[[TrainingState, Path], None],
    resume_path: Path,
    resume_state: TrainingState | None = None,
    quiet: bool = False,
    rank: Rank = Rank(),
    compile_networks: bool = False,
    history_csv: Path | None = None,
) -> TrainingState:
    """Train from iteration 0 (or ``resume_state``) to ``config.iterations``; return the final state.

    Every ``save_every`` iterations, and on SIGINT/SIGTERM, a complete checkpoint is written
    to ``resume_path`` (atomically); a non-finite loss stops the run, keeping that file.

    With several processes (``rank``), each draws its own slice of every global batch, the
    gradients are averaged (training_step), only rank 0 saves and shows progress, and the
    processes agree at every log and save point whether one of them was asked to stop, so
    they all stop after the same iteration.

    ``history_csv``: rank 0 appends every flushed iteration's losses there (labor_cli.history),
    the file rewound to the resumed iteration first.
    """
    adapt = target_points is not None
    fmt = memory_format(device)
    normalize = ImageNormalizer(device, fmt)
    networks.to(device, memory_format=fmt).train()
    distributed.broadcast_parameters(networks, rank)
    # After the move: compiled code is tied to the device.
    compiled = CompileFallback(networks.called_modules(), compile_networks)
    optimizers = build_optimizers(networks, config)
    start, history = restore_optimizers(optimizers, resume_state)
    csv = LossHistoryCSV(history_csv, start, history) if history_csv is not None and rank.is_main else None
    log = LossLog(history, rank, resume_path, csv)
    steering = MaskShareSteering(config, history, start, device)
    pseudo_from = 0 if adapt else config.warmup_pseudo_from()

    def state_at(iteration: int) -> TrainingState:
        return TrainingState(
            stage,
            iteration,
            config.iterations,
            {name: opt.state_dict() for name, opt in optimizers.items()},
            log.arrays(),
        )

    def loader(view, batch: int, stream: int):
        return make_loader(view, batch, config.seed, stream, start, config.iterations, workers, device, rank)

    batches = zip(loader(source_view, config.source_batch, 0), loader(target_view, config.target_batch, 1))
    speed = ImageRate(start, (config.source_batch + config.target_batch) * rank.world_size)
    with StopRequest(escalate=not rank.distributed) as stop, progress_bar(disable=quiet or not rank.is_main) as bar:
        task = bar.add_task(stage, total=config.iterations, completed=start, status="")
        iteration = start
        for source, target in batches:
            set_learning_rates(optimizers, iteration, config)
            source, target, indices = device_batch(source, target, device, normalize, config, iteration, rank)
            points = target_points.batch(indices, device) if adapt else []
            log.add(
                compiled(
                    training_step,
                    networks,
                    optimizers,
                    config,
                    source,
                    target,
                    points,
                    precision,
                    adapt,
                    rank=rank,
                    pseudo=iteration >= pseudo_from,
                    lambda_dis=steering.tensor,
                ),
                optimizers["segmenter"].param_groups[0]["lr"],
            )
            iteration += 1
            log_now = iteration % config.log_every == 0 or iteration == config.iterations
            save_now = iteration % config.save_every == 0 and iteration < config.iterations
            if log_now:
                status = _status(log.flush(iteration), optimizers["segmenter"].param_groups[0]["lr"], speed(iteration))
                steering.update(log.history, iteration)
                bar.update(task, completed=iteration, status=status)
            if save_now:
                log.flush(iteration)
                distributed.check_in_sync(networks, rank, f"iteration {iteration}")
                if rank.is_main:
                    save(state_at(iteration), resume_path)
            if stop_requested(stop, log_now or save_now, rank):
                log.flush(iteration)
                save_and_stop(state_at(iteration), save, resume_path, stop, bar, rank)
    log.flush(iteration)
    if csv is not None:
        csv.close()
    distributed.check_in_sync(networks, rank, "the end of training")
    return state_at(iteration)


def restore_optimizers(
    optimizers: dict[str, torch.optim.Optimizer], resume_state: TrainingState | None
) -> tuple[int, dict[str, list[float]]]:
    """The iteration to start from and the loss history so far: the resume state's, or none."""
    if resume_state is None:
        return 0, {name: [] for name in HISTORY_NAMES}
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(_optimizer_state(resume_state.optimizers[name]))
    return resume_state.iteration, {name: list(resume_state.history.get(name, [])) for name in HISTORY_NAMES}


class ImageRate:
    """Training images per second since the run (or its resumption) started."""

    def __init__(self, start: int, images_per_iteration: int):
        self.start, self.images_per_iteration, self.started = start, images_per_iteration, time.perf_counter()

    def __call__(self, iteration: int) -> float:
        return (iteration - self.start) * self.images_per_iteration / (time.perf_counter() - self.started)


def stop_requested(stop: StopRequest, at_sync_point: bool, rank: Rank) -> bool:
    """Whether to stop after this iteration. With several processes they agree, at the log and
    save points only: asking the others is a host synchronisation."""
    stopping = stop.signal_name is not None
    if rank.distributed:
        stopping = at_sync_point and distributed.any_rank(stopping, rank)
    return stopping


def save_and_stop(state: TrainingState, save, resume_path: Path, stop: StopRequest, bar, rank: Rank) -> None:
    """Write the resume file (rank 0), say how to continue, and stop (Interrupted, a KeyboardInterrupt)."""
    if rank.is_main:
        save(state, resume_path)
    distributed.barrier(rank)  # no process leaves (and has torchrun end the others) before the save
    bar.stop()
    if rank.is_main:
        stderr.print(
            f"{stop.signal_name or 'another process was signalled'}: stopped after iteration "
            f"{state.iteration}; saved {resume_path}. Run the same command with --resume to continue."
        )
    raise Interrupted


def _status(means: dict[str, float], lr: float, rate: float) -> str:
    shown = " ".join(f"{name} {means[name]:.3f}" for name in LOSS_NAMES if name in means and means[name] != 0)
    mask = (
        f" mask {100 * means['mask_share']:.1f}% (kept {100 * means['mask_kept']:.1f}%) lambda_dis {means['lambda_dis']:.3g}"
        if "mask_share" in means
        else ""
    )
    return f"{shown}{mask} lr {lr:.2e} {rate:.1f} img/s"


def _optimizer_state(tree: dict) -> dict:
    """An optimiser state read from HDF5: integer keys back, arrays back to tensors."""

    def to_tensors(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, dict):
            return {k: to_tensors(v) for k, v in value.items()}
        return value

    return {"state": {int(k): to_tensors(v) for k, v in tree["state"].items()}, "param_groups": tree["param_groups"]}
