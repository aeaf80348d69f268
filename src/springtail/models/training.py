"""The training loop shared by every network: loss, schedule, epochs, early stopping.

``fit_network`` takes uint8 crops already in memory and returns the best
epoch's weights; it knows nothing about files. The epoch loop works the same
in one process or under DistributedDataParallel (see ``springtail.models.distributed``):
each rank draws the same seeded permutation and takes its own share of it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from tqdm import tqdm

from springtail.common.classes import N_CLASSES, PROB_COLUMNS
from springtail.common.f1 import macro_f1
from springtail.models import distributed
from springtail.models.augment import prepare_batch
from springtail.models.inference import Runtime, forward_views, softmax_head
from springtail.models.precision import check_channels_last, check_precision


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section of params.yaml, shared by every train@<model> stage."""

    val_fold: int  # the fold held out for validation and ensemble fitting
    seed: int
    epochs: int  # default for models whose section says epochs: null
    batch_size: int  # crops per optimiser step (over all processes)
    lr: float  # AdamW peak learning rate, after warmup
    weight_decay: float  # not applied to biases and norm weights
    warmup_epochs: float  # linear warmup before the cosine decay
    label_smoothing: float
    soft_labels: bool  # train on consensus posteriors p0..p8
    class_balanced: bool  # weight the loss by inverse class frequency
    patience: int  # epochs without a better val macro F1 before stopping; 0 = never (select_epoch: best)
    select_epoch: str  # best: the epoch of the best val macro F1 | last: the last epoch (val never chooses)
    ema_decay: float  # 0 = off; else keep an exponential moving average of the weights (decay per
    #                   optimiser step, warmed up from 0) and validate, keep and predict with it
    precision: str  # auto | fp32 | bf16: auto = the fastest for each network on this machine
    channels_last: bool | str  # auto | true | false (see springtail.models.precision)
    num_threads: int  # torch threads; 0 = one per CPU this process may use
    device: str  # auto | cpu | cuda
    nproc: int  # >1 launches torchrun with DistributedDataParallel

    def __post_init__(self) -> None:
        check_precision(self.precision, "train.precision")
        check_channels_last(self.channels_last, "train.channels_last")
        if self.select_epoch not in ("best", "last"):
            raise ValueError(f"train.select_epoch must be best or last, got '{self.select_epoch}'")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class FitResult:
    """What ``fit_network`` learned: the best weights and how training went."""

    state: dict[str, torch.Tensor]  # best epoch's weights, on CPU
    best_epoch: int  # 1-based; the last epoch when there is no validation set
    val_macro_f1: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    train_img_per_s: float = 0.0  # training steps only, all processes together
    world_size: int = 1  # processes that trained (DistributedDataParallel when > 1)


def make_targets(labels: np.ndarray, soft: np.ndarray | None, smoothing: float) -> torch.Tensor:
    """(N,) int labels or (N, 9) soft labels -> (N, 9) float32 targets with label smoothing."""
    if soft is None:
        targets = F.one_hot(torch.as_tensor(labels, dtype=torch.long), N_CLASSES).float()
    else:
        targets = torch.as_tensor(np.asarray(soft, dtype=np.float32))
        if targets.shape != (len(labels), N_CLASSES):
            raise ValueError(f"soft targets must be ({len(labels)}, {N_CLASSES}), got {tuple(targets.shape)}")
        targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return targets * (1 - smoothing) + smoothing / N_CLASSES


def inverse_frequency(mass):
    """(K,) weight per class from its (K,) training mass (a torch tensor or a numpy array),
    inverse to the mass and scaled so an average sample weighs 1.

    A class with no training mass gets weight 0 (nothing to balance). The networks' loss
    and the trees' sample weights both use this one rule."""
    present = mass > 1e-6
    weights = mass * 0
    weights[present] = mass.sum() / (present.sum() * mass[present])
    return weights


def class_weights(targets: torch.Tensor) -> torch.Tensor:
    """Inverse class frequency from (N, K) targets (see :func:`inverse_frequency`)."""
    return inverse_frequency(targets.sum(dim=0))  # (K,) soft counts


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted cross-entropy against (B, K) probability targets.

    Each term t_c * log p_c is weighted by w_c; the sum is divided by the total
    weight of the batch, so the loss stays on the same scale as plain CE."""
    logp = F.log_softmax(logits.float(), dim=1)
    wt = targets if weights is None else targets * weights
    return -(wt * logp).sum() / wt.sum().clamp_min(1e-12)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR multiplier per optimiser step: linear warmup to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(net: torch.nn.Module, lr: float, weight_decay: float,
                   slow: frozenset[str] = frozenset(), slow_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and normalisation weights (1-d parameters);
    the parameters named in ``slow`` (pretrained ones) train at ``lr * slow_lr_scale``.

    torch's fused kernel: one pass over all parameters instead of a loop over them
    (resnet18 on 2 CPU cores: 9 ms instead of 53 ms of a ~320 ms step)."""
    groups = []
    for is_slow in (False, True):
        params = [(n, p) for n, p in net.named_parameters() if p.requires_grad and (n in slow) == is_slow]
        group_lr = lr * slow_lr_scale if is_slow else lr
        for decay in (True, False):
            chosen = [p for _, p in params if (p.ndim > 1) == decay]
            if chosen:
                groups.append({"params": chosen, "lr": group_lr, "weight_decay": weight_decay if decay else 0.0})
    return torch.optim.AdamW(groups, lr=lr, fused=True)


@dataclass
class Loop:
    """Everything one epoch needs, so the epoch function stays small."""

    net: torch.nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    images: torch.Tensor  # (N, 3, S, S) uint8
    targets: torch.Tensor  # (N, K) float32
    weights: torch.Tensor | None  # (K,) class weights
    runtime: Runtime
    norm: tuple[tuple[float, ...], tuple[float, ...]]
    batch_size: int  # per process
    ema: ModelEmaV3 | None = None  # the averaged weights (ema.module), updated after every step
    steps: int = 0  # optimiser steps taken


def train_epoch(loop: Loop, order: torch.Tensor, aug: torch.Generator, bar: tqdm) -> tuple[float, int]:
    """One pass over ``order`` (this rank's crop indices); returns (summed loss, images seen)."""
    loop.net.train()
    total, seen = 0.0, 0
    weights = None if loop.weights is None else loop.weights.to(loop.runtime.device)
    for start in range(0, len(order), loop.batch_size):
        idx = order[start : start + loop.batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on one sample
            continue
        x = prepare_batch(loop.images[idx], *loop.norm, device=loop.runtime.device,
                          channels_last=loop.runtime.channels_last, generator=aug)
        t = loop.targets[idx].to(loop.runtime.device)
        with loop.runtime.autocast():
            logits = loop.net(x)
        loss = soft_cross_entropy(logits, t, weights)
        loop.optimizer.zero_grad(set_to_none=True)
        if loop.scaler is not None:
            loop.scaler.scale(loss).backward()
            loop.scaler.step(loop.optimizer)
            loop.scaler.update()
        else:
            loss.backward()
            loop.optimizer.step()
        loop.scheduler.step()
        loop.steps += 1
        if loop.ema is not None:
            loop.ema.update(distributed.unwrap(loop.net), step=loop.steps)
        total += loss.item() * len(idx)
        seen += len(idx)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return total, seen


def validate(net: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, loop: Loop) -> tuple[float, float]:
    """(val loss, val macro F1) of the unwrapped ``net`` on hard labels, no augmentation."""
    probs = forward_views(net, images, softmax_head, norm=loop.norm, runtime=loop.runtime,
                          batch_size=max(64, 2 * loop.batch_size))[0]
    picked = probs[np.arange(len(labels)), labels]
    loss = float(-np.log(np.clip(picked, 1e-7, 1)).mean())
    return loss, macro_f1(labels, probs.argmax(axis=1))


def make_loop(net, images, targets, cfg: TrainConfig, epochs: int, lr: float, runtime, norm,
               slow: frozenset[str], slow_lr_scale: float) -> Loop:
    """Place the network, wrap it for DDP when distributed, build optimiser and schedule."""
    world = distributed.world_size()
    per_rank = max(1, math.ceil(cfg.batch_size / world))
    steps_per_epoch = max(1, math.ceil(math.ceil(len(images) / world) / per_rank))
    net = runtime.place(net)
    model = distributed.wrap(net, runtime.device)
    optimizer = make_optimizer(net, lr, cfg.weight_decay, slow, slow_lr_scale)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), epochs * steps_per_epoch // 2)
    schedule = warmup_cosine(max(1, warmup), epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler("cuda") if runtime.amp_dtype == torch.float16 else None
    weights = class_weights(targets) if cfg.class_balanced else None
    ema = ModelEmaV3(net, decay=cfg.ema_decay, use_warmup=True) if cfg.ema_decay > 0 else None
    return Loop(model, optimizer, scheduler, scaler, images, targets, weights, runtime, norm, per_rank, ema)


def _snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _kept(loop: Loop, net: torch.nn.Module) -> torch.nn.Module:
    """The weights validated and kept: the moving average when there is one, else ``net``."""
    return net if loop.ema is None else loop.ema.module


def _epoch(loop: Loop, net: torch.nn.Module, order: torch.Tensor, aug: torch.Generator,
           val, bar: tqdm) -> tuple[dict[str, float], float, int]:
    """Train one epoch and validate; returns (metrics, training seconds, images this rank saw)."""
    tick = time.perf_counter()
    loss_sum, seen = train_epoch(loop, order, aug, bar)
    seconds = time.perf_counter() - tick
    metrics = {"train_loss": distributed.mean(loss_sum / max(seen, 1), loop.runtime.device),
               "lr": loop.scheduler.get_last_lr()[0]}
    if val is not None and len(val[1]):
        metrics["val_loss"], f1 = validate(_kept(loop, net), *val, loop)
        metrics["val_macro_f1"] = distributed.from_main(f1, loop.runtime.device)  # one decision for all
    return metrics, seconds, seen


def fit_network(
    net: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    val: tuple[torch.Tensor, np.ndarray] | None,
    *,
    cfg: TrainConfig,
    epochs: int,
    lr: float,
    runtime: Runtime,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    generator: torch.Generator,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    desc: str = "train",
    progress: bool = True,
    slow: frozenset[str] = frozenset(),
    slow_lr_scale: float = 1.0,
) -> FitResult:
    """Train ``net`` with AdamW + warmup/cosine, early stopping on validation macro F1.

    Args:
        images: (N, 3, S, S) uint8 training crops; targets: (N, 9) float targets.
        val: (uint8 crops (M, 3, S, S), int labels (M,)) or None (train all epochs).
        generator: seeds the crop order (same on every rank) and the augmentation.
        on_epoch: called on the main process with each epoch's metrics.
        progress: a tqdm bar per epoch on stderr (main process only).
        slow: names of parameters (pretrained ones) trained at ``lr * slow_lr_scale``.
    Returns:
        the best epoch's weights (by val macro F1; the last epoch's without ``val``)
        and the training history.
    """
    loop = make_loop(net, images, targets, cfg, epochs, lr, runtime, norm, slow, slow_lr_scale)
    rank, world = distributed.rank(), distributed.world_size()
    aug = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)) + rank)
    result = FitResult(_snapshot(net), epochs, None, world_size=world)
    stale, started, train_time, train_seen = 0, time.perf_counter(), 0.0, 0
    for epoch in range(1, epochs + 1):
        order = distributed.shard(torch.randperm(len(images), generator=generator), rank, world)
        with tqdm(total=math.ceil(len(order) / loop.batch_size), desc=f"{desc} {epoch}/{epochs}",
                  file=sys.stderr, leave=False, disable=not (progress and rank == 0)) as bar:
            metrics, seconds, seen = _epoch(loop, net, order, aug, val, bar)
        metrics = {"epoch": epoch, **metrics}
        train_time, train_seen = train_time + seconds, train_seen + seen * world
        result.history.append(metrics)
        if on_epoch is not None and rank == 0:
            on_epoch(metrics)
        f1 = metrics.get("val_macro_f1")
        if cfg.select_epoch == "last" or f1 is None or result.val_macro_f1 is None or f1 > result.val_macro_f1:
            result.state, result.best_epoch, result.val_macro_f1, stale = _snapshot(_kept(loop, net)), epoch, f1, 0
        else:
            stale += 1
            if cfg.patience > 0 and stale >= cfg.patience:
                break
    result.seconds = time.perf_counter() - started
    result.train_img_per_s = train_seen / max(train_time, 1e-9)
    return result


@dataclass(frozen=True)
class ValidationFold:
    """``train.val_fold`` alone, for the stages that keep the validation fold apart."""

    val_fold: int  # the fold held out for validation and ensemble fitting


def validation_mask(index, val_fold: int) -> np.ndarray:
    """(N,) bool: the crops of a store's training split whose fold is ``val_fold``.

    Raises ValueError when either the validation or the training side is empty."""
    folds = index["fold"].to_numpy()
    val = folds == val_fold
    if not val.any() or val.all():
        raise ValueError(f"train.val_fold = {val_fold}: the crops' folds are {sorted(set(folds.tolist()))}; "
                         f"both training and validation crops are needed")
    return val


def first_misaligned(found: np.ndarray, expected: np.ndarray) -> str:
    """Where a table's (N,) crop_id column first departs from the store's, in CSV lines
    (line 1 is the header): a one-row shift shows as one line off its crop_id."""
    n = min(len(found), len(expected))
    differ = np.flatnonzero(found[:n] != expected[:n])
    if len(differ):
        row = int(differ[0])
        return f"line {row + 2} has crop_id {found[row]}, expected {expected[row]}"
    return f"{len(found)} rows for {len(expected)} crops"


def fit_inputs(images: np.ndarray, index, val_fold: int, targets=None) -> dict:
    """Keyword arguments of a classifier's ``fit`` from a crop store's training split.

    Validation = crops whose fold is ``val_fold``, scored against the consensus labels of
    the index; training = the other folds, with the labels and p0..p8 of ``targets``
    (the review stage's table, one row per crop in crop_id order) when given.

    Raises:
        ValueError: either side is empty, or ``targets`` does not list the index's crops
            in order (the message names its file, ``targets.attrs["source"]``).
    """
    val = validation_mask(index, val_fold)
    consensus = index["label"].to_numpy(dtype=int)
    if targets is None:
        targets = index
    elif not np.array_equal(targets["crop_id"].to_numpy(), index["crop_id"].to_numpy()):
        raise ValueError(f"{targets.attrs.get('source', 'targets')}: its crop_id column is not the crop store's "
                         f"({first_misaligned(targets['crop_id'].to_numpy(), index['crop_id'].to_numpy())}): one row per "
                         f"crop is expected, crop_id 0..{len(index) - 1} in order; re-run the review stage")
    labels = targets["label"].to_numpy(dtype=int)
    soft = targets[list(PROB_COLUMNS)].to_numpy(dtype=np.float32)
    return {"X": images[~val], "y": labels[~val], "soft_targets": soft[~val],
            "eval_set": (images[val], consensus[val])}
