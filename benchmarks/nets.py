"""The pipeline's own training and inference paths for each model of params.yaml.

Networks come from the model registry exactly as the train stage builds them
(``cnn_xgb``: the CNN it fine-tunes); training goes through
``springtail.training.fit_network`` (uint8 crops in memory, batch-level
augmentation, the configured channels_last / bf16 autocast), inference through
``springtail.models.inference.forward_views`` as the predict stage does.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from springtail.config import from_section
from springtail.models.augment import prepare_batch, to_chw
from springtail.models.inference import PredictConfig, Runtime, forward_views, softmax_head
from springtail.models.registry import create_model
from springtail.models.timm_net import norm_of
from springtail.training import TrainConfig, fit_network, make_targets, soft_cross_entropy


@dataclass
class NetSpec:
    """One model of params.yaml, resolved to the network its train stage fits."""

    name: str  # the model's name in params.yaml
    arch: str
    train: TrainConfig  # the train section (progress bar off)
    lr: float
    build: Any  # () -> a fresh, seeded network (no pretrained weights involved in timing)

    def runtime(self, **overrides) -> Runtime:
        """The runtime the train stage resolves (device, bf16 if native, channels_last)."""
        cfg = dataclasses.replace(self.train, **overrides) if overrides else self.train
        return Runtime.resolve(cfg.device, cfg.bf16, cfg.channels_last)


def net_spec(name: str, params: dict, img_size: int) -> NetSpec:
    """The network model ``name`` trains: a timm net, or cnn_xgb's fine-tuned CNN."""
    train = from_section(TrainConfig, params.get("train"), "train")
    if "progress" in {f.name for f in dataclasses.fields(TrainConfig)}:
        train = dataclasses.replace(train, progress=False)
    model = create_model(name, params[name], train, img_size)
    net_model = model._cnn() if hasattr(model, "_cnn") else model  # cnn_xgb wraps a TimmClassifier
    lr = net_model.config.lr if getattr(net_model.config, "lr", None) is not None else train.lr

    def build() -> torch.nn.Module:
        return net_model._build(pretrained=False)[0]

    return NetSpec(name, net_model.config.arch, net_model.train, lr, build)


def predict_batch_size(params: dict) -> int:
    return from_section(PredictConfig, params.get("predict"), "predict").batch_size


def soft_targets(labels: np.ndarray, train: TrainConfig) -> torch.Tensor:
    """(N, 9) float32 targets from hard labels, smoothed as in training."""
    return make_targets(labels, None, train.label_smoothing)


def pipeline_train_img_s(spec: NetSpec, net: torch.nn.Module, images: torch.Tensor,
                         targets: torch.Tensor, steps: int, warmup: int = 2,
                         train: TrainConfig | None = None, runtime: Runtime | None = None,
                         norm=None) -> float:
    """Training images/s of ``fit_network`` on ``steps`` batches (one epoch, no validation).

    A first short ``fit_network`` call of ``warmup`` batches warms the allocator and
    the oneDNN primitive cache; ``FitResult.train_img_per_s`` counts training steps only.
    ``images``: (N, 3, S, S) uint8 with N >= steps * batch_size.
    """
    train = train or spec.train
    runtime = runtime or spec.runtime()
    kwargs = dict(cfg=train, epochs=1, lr=spec.lr, runtime=runtime, norm=norm or norm_of(net))
    n_warm, n = warmup * train.batch_size, steps * train.batch_size
    if warmup:
        fit_network(net, images[:n_warm], targets[:n_warm], None,
                    generator=torch.Generator().manual_seed(1), **kwargs)
    result = fit_network(net, images[:n], targets[:n], None,
                         generator=torch.Generator().manual_seed(2), **kwargs)
    return result.train_img_per_s


def pipeline_infer_img_s(spec: NetSpec, net: torch.nn.Module, images: torch.Tensor,
                         batch_size: int, batches: int = 2, runtime: Runtime | None = None) -> float:
    """Inference images/s of ``forward_views`` (one view: the predict stage's TTA runs 8)."""
    runtime = runtime or spec.runtime()
    net = runtime.place(net)
    norm = norm_of(net)
    forward_views(net, images[:batch_size], softmax_head, norm=norm, runtime=runtime, batch_size=batch_size)
    n = batches * batch_size
    tick = time.perf_counter()
    forward_views(net, images[:n], softmax_head, norm=norm, runtime=runtime, batch_size=batch_size)
    return n / (time.perf_counter() - tick)


def flops_per_image(spec: NetSpec, net: torch.nn.Module, images: torch.Tensor,
                    targets: torch.Tensor, batch: int = 4) -> dict[str, float]:
    """FLOPs per image counted by ``FlopCounterMode`` on one real training step
    (forward + loss + backward, train mode, the configured runtime) and on one forward.

    The counter counts matrix products and convolutions (2 FLOPs per multiply-add),
    not elementwise ops, norms or the optimiser: the usual MFU convention.
    """
    runtime = spec.runtime()
    net = runtime.place(net)
    norm = norm_of(net)
    x = prepare_batch(images[:batch], *norm, device=runtime.device, channels_last=runtime.channels_last,
                      generator=torch.Generator().manual_seed(0))
    net.train()
    with FlopCounterMode(display=False) as counter:
        with runtime.autocast():
            logits = net(x)
        soft_cross_entropy(logits, targets[:batch]).backward()
    train = counter.get_total_flops()
    net.zero_grad(set_to_none=True)
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad(), runtime.autocast():
        net(x)
    forward = counter.get_total_flops()
    return {"train_flops_per_img": train / batch, "fwd_flops_per_img": forward / batch}


def as_chw(crops: np.ndarray) -> torch.Tensor:
    return to_chw(crops)
