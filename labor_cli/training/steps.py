"""One training iteration of A, B and D, and the optimisers it steps.

The losses are docs/method.md's, numbered as in the paper's figure:
  A: 1 (source cross-entropy) + 2 (annotated target pixels, adapt only) + 3 (fool D on target)
  D: tell A's source outputs (0) from its target outputs (1)
  B: both heads on source labels + 5 (pseudo labels from A on the target: adapt, and warmup
     from --pseudo-from) - 6 (push the heads apart on target pixels; heads only, on detached
     backbone features), weighted by lambda_dis, which --mask-share steers (loop.MaskShareSteering)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from labor_cli import distributed, inconsistency, losses
from labor_cli.artifacts import TrainingState
from labor_cli.distributed import Rank
from labor_cli.options import TrainConfig
from labor_cli.runtime import autocast

LOSS_NAMES = ("seg_src", "seg_tgt", "adv", "disc", "sel_src", "sel_pseudo", "dis")
# Recorded per iteration beside the losses, on the feature grid of the target images: the share
# of pixels where B's heads disagree, the share the mask keeps within --mask-share of each image
# (labor_cli.inconsistency), and the discrepancy weight used.
HISTORY_NAMES = LOSS_NAMES + ("mask_share", "mask_kept", "lambda_dis")


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


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], iteration: int, config: TrainConfig) -> None:
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(group["base_lr"], iteration, config.iterations, config.power)


def poly_lr(base: float, iteration: int, iterations: int, power: float) -> float:
    return base * (1 - iteration / iterations) ** power


def restore_optimizers(
    optimizers: dict[str, torch.optim.Optimizer], resume_state: TrainingState | None
) -> tuple[int, dict[str, list[float]]]:
    """The iteration to start from and the loss history so far: the resume state's, or none."""
    if resume_state is None:
        return 0, {name: [] for name in HISTORY_NAMES}
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(_optimizer_state(resume_state.optimizers[name]))
    return resume_state.iteration, {name: list(resume_state.history.get(name, [])) for name in HISTORY_NAMES}


def _optimizer_state(tree: dict) -> dict:
    """An optimiser state read from HDF5: integer keys back, arrays back to tensors."""

    def to_tensors(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, dict):
            return {k: to_tensors(v) for k, v in value.items()}
        return value

    return {"state": {int(k): to_tensors(v) for k, v in tree["state"].items()}, "param_groups": tree["param_groups"]}


@dataclass(frozen=True)
class TrainingBatch:
    """One iteration's inputs on the device.

    ``source``: images and labels; ``target``: images; ``points``: adapt's annotated target
    pixels per target image (labor_cli.training.data.TargetPoints.batch), empty in warmup.
    """

    source: dict[str, torch.Tensor]
    target: dict[str, torch.Tensor]
    points: list[dict]


@dataclass(frozen=True)
class StepSettings:
    """How one iteration trains.

    ``precision``: fp32 or bf16 (runtime.autocast); ``adapt``: whether A learns the annotated
    target pixels (loss 2); ``pseudo``: whether B learns A's pseudo labels (None: as ``adapt``);
    ``lambda_dis``: the discrepancy weight as a tensor (None: config.lambda_dis), so that
    steering it does not make torch.compile build a new graph.
    """

    precision: str
    adapt: bool
    pseudo: bool | None = None
    lambda_dis: torch.Tensor | None = None

    def resolved(self, config: TrainConfig, device: torch.device) -> StepSettings:
        """These settings with the defaults filled in."""
        pseudo = self.adapt if self.pseudo is None else self.pseudo
        lambda_dis = torch.tensor(config.lambda_dis, device=device) if self.lambda_dis is None else self.lambda_dis
        return replace(self, pseudo=pseudo, lambda_dis=lambda_dis)


def training_step(
    networks,
    optimizers,
    config: TrainConfig,
    batch: TrainingBatch,
    settings: StepSettings,
    rank: Rank = Rank(),
) -> dict[str, torch.Tensor]:
    """One LabOR iteration; returns the detached losses (no host synchronisation).

    With several processes, the gradients that the three backward passes accumulate are
    averaged over the processes just before the optimisers step (one all-reduce per iteration:
    what DistributedDataParallel would do, which cannot follow features()/classify() calls, D
    called three times and frozen in between, and three backward passes).
    """
    for optimizer in optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    settings = settings.resolved(config, batch.source["image"].device)
    segmenter = _segmenter_step(networks, config, batch, settings)
    loss_disc = _discriminator_step(networks.discriminator, config, segmenter, settings.precision)
    loss_sel_src, loss_sel_pseudo, loss_dis, mask_share, mask_kept = _selector_step(
        networks.selector, config, batch, segmenter, settings
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
        settings.lambda_dis,
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


def _segmenter_step(networks, config: TrainConfig, batch: TrainingBatch, settings: StepSettings) -> _SegmenterPass:
    """A: losses 1 (source labels), 2 (annotated target pixels, adapt) and 3 (fool D), one backward pass."""
    segmenter, discriminator = networks.segmenter, networks.discriminator
    xs, ys, xt = batch.source["image"], batch.source["label"], batch.target["image"]
    precision = settings.precision
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
    loss_seg_tgt = losses.sparse_target_loss(logits_t, batch.points) if settings.adapt else zero
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
    selector, config: TrainConfig, batch: TrainingBatch, a: _SegmenterPass, settings: StepSettings
) -> tuple[torch.Tensor, ...]:
    """B: both heads on source labels, 5 (pseudo labels from A), minus 6 (heads' discrepancy).

    Loss 5 counts when ``settings.pseudo``; loss 6 is on target pixels, heads only, on detached
    backbone features, weighted by the resolved ``settings.lambda_dis``. Also returns the share
    of target pixels where the heads' classes differ, and the share of them the mask keeps
    within --mask-share of each image (on the feature grid)."""
    xs, ys, xt = batch.source["image"], batch.source["label"], batch.target["image"]
    label_size, target_size = tuple(ys.shape[-2:]), tuple(xt.shape[-2:])
    use_pseudo = settings.pseudo and config.lambda_pseudo > 0
    with autocast(xs.device, settings.precision):
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
                losses.class_balanced_pseudo_labels(a.probabilities_t.detach(), config.pseudo_alpha), batch.points
            )
        loss_sel_pseudo = losses.segmentation_loss(
            losses.upsample(head1_t, target_size), pseudo
        ) + losses.segmentation_loss(losses.upsample(head2_t, target_size), pseudo)
    loss_dis = losses.discrepancy(head1_d, head2_d)
    (loss_sel_src + config.lambda_pseudo * loss_sel_pseudo - settings.lambda_dis * loss_dis).backward()
    differ = head1_d.argmax(1) != head2_d.argmax(1)
    mask_kept = inconsistency.budget_share(differ, config.mask_share)
    return loss_sel_src, loss_sel_pseudo, loss_dis, differ.float().mean(), mask_kept


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
