"""The training loop shared by warmup and adapt: A, B and D, one iteration at a time.

One iteration (PAPER.md's losses, numbered as in the paper's figure):
  A: 1 (source cross-entropy) + 2 (annotated target pixels, adapt only) + 3 (fool D on target)
  D: tell A's source outputs (0) from its target outputs (1)
  B: both heads on source labels + 5 (pseudo labels from A on the target, adapt only)
     - 6 (push the heads apart on target pixels; heads only, on detached backbone features)
Data order is a function of (seed, iteration) alone and every other state is saved, so a
resumed run equals an uninterrupted one (bit for bit on the CPU).
"""

from __future__ import annotations

import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from labor_cli import losses
from labor_cli.artifacts import TrainingState
from labor_cli import distributed
from labor_cli.console import progress_bar, stderr
from labor_cli.data.transforms import ImageNormalizer
from labor_cli.distributed import Rank
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.runtime import CompileFallback, autocast, memory_format, seed_worker

LOSS_NAMES = ("seg_src", "seg_tgt", "adv", "disc", "sel_src", "sel_pseudo", "dis")


@dataclass
class TrainConfig:
    """Every value of the optimisation protocol (PAPER.md), with the paper-scale default."""

    iterations: int = 40000
    optimizer: str = "sgd"  # for A and B: sgd (the paper's protocol) or adamw (small networks from scratch)
    lr: float = 2.5e-4  # for A and B; their heads at 10x
    momentum: float = 0.9
    weight_decay: float = 5e-4
    power: float = 0.9  # poly decay
    lr_discriminator: float = 1e-4  # Adam for D
    betas: tuple[float, float] = (0.9, 0.99)
    lambda_adv: float = 0.001
    lambda_target: float = 1.0
    lambda_pseudo: float = 1.0
    lambda_dis: float = 0.01  # keeps the toy mask at a few percent (0.1 gave 18%); unknown for the paper
    pseudo_alpha: float = 0.2
    source_batch: int = 2
    target_batch: int = 2
    hflip: bool = False  # flip half the source images left-right (not in the paper's protocol)
    source_size: Optional[tuple[int, int]] = None  # (W, H); None: the dataset's training size
    target_size: Optional[tuple[int, int]] = None
    seed: int = 0
    save_every: int = 1000
    log_every: int = 10

    def check(self) -> None:
        positive = {"iterations": self.iterations, "source_batch": self.source_batch, "target_batch": self.target_batch,
                    "save_every": self.save_every, "log_every": self.log_every, "lr": self.lr}
        for name, value in positive.items():
            if value <= 0:
                raise LaborUsageError(f"--{name.replace('_', '-')} {value}: must be positive")
        for name in ("lambda_adv", "lambda_target", "lambda_pseudo", "lambda_dis", "weight_decay"):
            if getattr(self, name) < 0:
                raise LaborUsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if self.optimizer not in ("sgd", "adamw"):
            raise LaborUsageError(f"--optimizer {self.optimizer!r}: use sgd or adamw")
        if not 0 < self.pseudo_alpha <= 1:
            raise LaborUsageError(f"--pseudo-alpha {self.pseudo_alpha}: must be in (0, 1]")

    def as_dict(self) -> dict:
        return asdict(self)


class StreamSampler(torch.utils.data.Sampler):
    """Batches of an endless shuffled stream; batch b depends only on (seed, stream, b).

    With several processes, global batch b is ``world_size * batch_size`` consecutive items of
    the stream and process ``rank`` takes its ``rank``-th slice of ``batch_size``: the processes
    together see what one process with the global batch would (and rank/world_size 0/1 is the
    single-process stream).
    """

    def __init__(self, size: int, batch_size: int, seed: int, stream: int, start_batch: int, stop_batch: int,
                 rank: int = 0, world_size: int = 1):
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


def make_loader(view, batch_size: int, seed: int, stream: int, start: int, stop: int, workers: int, device,
                rank: Rank = Rank()) -> torch.utils.data.DataLoader:
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
        self.signal_name: Optional[str] = None
        self.escalate = escalate
        self._previous = {}

    def __enter__(self) -> "StopRequest":
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
            out.append({
                "yx": staged(points["yx"]).to(device, non_blocking=True),
                "label": staged(points["label"]).to(device, non_blocking=True),
                "size": points["size"],
            })
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


def flip_source(source: dict[str, torch.Tensor], seed: int, iteration: int, rank: Rank = Rank()) -> dict[str, torch.Tensor]:
    """Flip a random half of a source batch left-right, images and labels alike; which ones
    depends only on (seed, iteration), so a resumed run flips the same images. Target images
    are never flipped: their annotated pixels are positions in the unflipped image. With several
    processes each takes its slice of the global batch's draw."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + iteration + 1)
    batch = source["image"].shape[0]
    draw = torch.rand(batch * rank.world_size, generator=generator)[rank.rank * batch:(rank.rank + 1) * batch]
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
            return torch.optim.AdamW([{"params": g["params"], "lr": config.lr} for g in groups], lr=config.lr,
                                     betas=tuple(config.betas), weight_decay=config.weight_decay)
    optimizers = {
        "segmenter": make(networks.segmenter.param_groups(config.lr)),
        "selector": make(networks.selector.param_groups(config.lr)),
        "discriminator": torch.optim.Adam(networks.discriminator.parameters(), lr=config.lr_discriminator, betas=tuple(config.betas)),
    }
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def training_step(networks, optimizers, config: TrainConfig, source, target, points, precision: str, adapt: bool,
                  rank: Rank = Rank()) -> dict[str, torch.Tensor]:
    """One LabOR iteration; returns the detached losses (no host synchronisation).

    With several processes, the gradients that the three backward passes accumulate are
    averaged over the processes just before the optimisers step (one all-reduce per iteration:
    what DistributedDataParallel would do, which cannot follow features()/classify() calls, D
    called three times and frozen in between, and three backward passes).
    """
    segmenter, selector, discriminator = networks.segmenter, networks.selector, networks.discriminator
    device = source["image"].device
    xs, ys, xt = source["image"], source["label"], target["image"]
    label_size = tuple(ys.shape[-2:])
    target_size = tuple(xt.shape[-2:])
    zero = torch.zeros((), device=device)
    for optimizer in optimizers.values():
        optimizer.zero_grad(set_to_none=True)

    # --- A: losses 1, 2, 3 ---
    with autocast(device, precision):
        features_s = segmenter.features(xs)
        logits_s = segmenter.classify(features_s)
        features_t = segmenter.features(xt)
        logits_t = segmenter.classify(features_t)
    full_s = losses.upsample(logits_s, label_size)
    full_t = losses.upsample(logits_t, target_size)
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

    # --- D: source outputs are 0, target outputs 1 ---
    loss_disc = zero
    if config.lambda_adv > 0:
        with autocast(device, precision):
            loss_disc = 0.5 * (
                losses.adversarial_loss(discriminator(full_s.detach().softmax(1)), is_source=True)
                + losses.adversarial_loss(discriminator(probabilities_t.detach()), is_source=False)
            )
        loss_disc.backward()

    # --- B: heads on source labels, 5 (pseudo labels, adapt), 6 (discrepancy, heads only) ---
    use_pseudo = adapt and config.lambda_pseudo > 0
    with autocast(device, precision):
        if selector.shared:  # B's heads on A's features; B never trains A's backbone
            selector_s, selector_t = features_s.detach(), features_t.detach()
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
    loss_sel_pseudo = zero
    if use_pseudo:
        with torch.no_grad():
            pseudo = paint_points(losses.class_balanced_pseudo_labels(probabilities_t.detach(), config.pseudo_alpha), points)
        loss_sel_pseudo = losses.segmentation_loss(losses.upsample(head1_t, target_size), pseudo) + losses.segmentation_loss(
            losses.upsample(head2_t, target_size), pseudo
        )
    loss_dis = losses.discrepancy(head1_d, head2_d)
    (loss_sel_src + config.lambda_pseudo * loss_sel_pseudo - config.lambda_dis * loss_dis).backward()

    if rank.distributed:
        distributed.average_gradients([p for optimizer in optimizers.values() for group in optimizer.param_groups
                                       for p in group["params"]], rank)
    for optimizer in optimizers.values():
        optimizer.step()
    values = (loss_seg_src, loss_seg_tgt, loss_adv, loss_disc, loss_sel_src, loss_sel_pseudo, loss_dis)
    return {name: value.detach() for name, value in zip(LOSS_NAMES, values)}


def train(
    networks,
    config: TrainConfig,
    stage: str,
    source_view,
    target_view,
    target_points: Optional[TargetPoints],
    device: torch.device,
    precision: str,
    workers: int,
    save: Callable[[TrainingState, Path], None],
    resume_path: Path,
    resume_state: Optional[TrainingState] = None,
    quiet: bool = False,
    rank: Rank = Rank(),
    compile_networks: bool = False,
) -> TrainingState:
    """Train from iteration 0 (or ``resume_state``) to ``config.iterations``; return the final state.

    Every ``save_every`` iterations, and on SIGINT/SIGTERM, a complete checkpoint is written
    to ``resume_path`` (atomically); a non-finite loss stops the run, keeping that file.

    With several processes (``rank``), each draws its own slice of every global batch, the
    gradients are averaged (training_step), only rank 0 saves and shows progress, and the
    processes agree at every log and save point whether one of them was asked to stop, so
    they all stop after the same iteration.
    """
    adapt = target_points is not None
    fmt = memory_format(device)
    normalize = ImageNormalizer(device, fmt)
    networks.to(device, memory_format=fmt).train()
    distributed.broadcast_parameters(networks, rank)
    compiled = CompileFallback(networks.called_modules(), compile_networks)  # after the move: compiled code is tied to the device
    optimizers = build_optimizers(networks, config)
    start = 0
    history = {name: [] for name in LOSS_NAMES}
    if resume_state is not None:
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(_optimizer_state(resume_state.optimizers[name]))
        start = resume_state.iteration
        history = {name: list(resume_state.history.get(name, [])) for name in LOSS_NAMES}

    def state_at(iteration: int) -> TrainingState:
        return TrainingState(stage, iteration, config.iterations,
                             {name: opt.state_dict() for name, opt in optimizers.items()},
                             {name: np.asarray(values, dtype=np.float32) for name, values in history.items()})

    source_loader = make_loader(source_view, config.source_batch, config.seed, 0, start, config.iterations, workers, device, rank)
    target_loader = make_loader(target_view, config.target_batch, config.seed, 1, start, config.iterations, workers, device, rank)
    pending: list[dict[str, torch.Tensor]] = []
    images_per_iteration = (config.source_batch + config.target_batch) * rank.world_size
    started = time.perf_counter()

    def flush(iteration: int) -> dict[str, float]:
        """Move the pending losses to the host (one synchronisation) and check they are finite."""
        if not pending:
            return {}
        stacked = {name: torch.stack([p[name] for p in pending]).float().cpu().numpy() for name in LOSS_NAMES}
        pending.clear()
        if rank.distributed:  # the mean over the processes: the same history, and the same verdict, everywhere
            summed = distributed.all_reduce_sum(torch.from_numpy(np.stack([stacked[n] for n in LOSS_NAMES])), rank)
            stacked = {name: (summed[i] / rank.world_size).numpy() for i, name in enumerate(LOSS_NAMES)}
        for name, values in stacked.items():
            if not np.all(np.isfinite(values)):
                raise LaborError(
                    f"loss {name} became {values[~np.isfinite(values)][0]} by iteration {iteration}; stopped. "
                    f"The last good checkpoint is {resume_path if resume_path.exists() else 'none (no save yet)'}; "
                    "try a lower --lr"
                )
            history[name].extend(values.tolist())
        return {name: float(values.mean()) for name, values in stacked.items()}

    with StopRequest(escalate=not rank.distributed) as stop, progress_bar(disable=quiet or not rank.is_main) as bar:
        task = bar.add_task(stage, total=config.iterations, completed=start, status="")
        iteration = start
        for source, target in zip(source_loader, target_loader):
            for optimizer in optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = poly_lr(group["base_lr"], iteration, config.iterations, config.power)
            # The loaders hand out uint8 images and labels; they are widened here, on the device.
            source = {"image": normalize(source["image"].to(device, non_blocking=True)),
                      "label": source["label"].to(device, non_blocking=True).long()}
            if config.hflip:
                source = flip_source(source, config.seed, iteration, rank)
                source["image"] = source["image"].contiguous(memory_format=fmt)  # torch.stack does not keep it
            indices = target["index"].tolist()
            target = {"image": normalize(target["image"].to(device, non_blocking=True))}
            points = target_points.batch(indices, device) if adapt else []
            pending.append(compiled(training_step, networks, optimizers, config, source, target, points, precision, adapt, rank=rank))
            iteration += 1
            log_now = iteration % config.log_every == 0 or iteration == config.iterations
            save_now = iteration % config.save_every == 0 and iteration < config.iterations
            if log_now:
                means = flush(iteration)
                rate = (iteration - start) * images_per_iteration / (time.perf_counter() - started)
                lr = optimizers["segmenter"].param_groups[0]["lr"]
                bar.update(task, completed=iteration, status=_status(means, lr, rate))
            if save_now:
                flush(iteration)
                distributed.check_in_sync(networks, rank, f"iteration {iteration}")
                if rank.is_main:
                    save(state_at(iteration), resume_path)
            stopping = stop.signal_name is not None
            if rank.distributed:  # a host synchronisation: only where the losses are read anyway
                stopping = (log_now or save_now) and distributed.any_rank(stopping, rank)
            if stopping:
                flush(iteration)
                if rank.is_main:
                    save(state_at(iteration), resume_path)
                distributed.barrier(rank)  # no process leaves (and has torchrun end the others) before the save
                bar.stop()
                if rank.is_main:
                    stderr.print(f"{stop.signal_name or 'another process was signalled'}: stopped after iteration "
                                 f"{iteration}; saved {resume_path}. Run the same command with --resume to continue.")
                raise KeyboardInterrupt
    flush(iteration)
    distributed.check_in_sync(networks, rank, "the end of training")
    return state_at(iteration)


def _status(means: dict[str, float], lr: float, rate: float) -> str:
    shown = " ".join(f"{name} {means[name]:.3f}" for name in LOSS_NAMES if name in means and means[name] != 0)
    return f"{shown} lr {lr:.2e} {rate:.1f} img/s"


def _optimizer_state(tree: dict) -> dict:
    """An optimiser state read from HDF5: integer keys back, arrays back to tensors."""
    def to_tensors(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, dict):
            return {k: to_tensors(v) for k, v in value.items()}
        return value

    return {"state": {int(k): to_tensors(v) for k, v in tree["state"].items()}, "param_groups": tree["param_groups"]}
