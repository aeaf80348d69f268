"""The pipeline's own training and inference paths for each model of params.yaml.

Networks come from the model registry exactly as the train stage builds them
(``cnn_xgb``: the CNN it fine-tunes); training goes through the train stage's own
step (``make_loop`` + ``train_epoch`` of ``springtail.models.training``: uint8 crops in
memory, batch-level augmentation, the resolved precision and memory format), inference through
``springtail.models.inference.forward_views`` as the predict stage does.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from springtail.common.config import from_section
from springtail.models.augment import prepare_batch, to_chw
from springtail.models.inference import PredictConfig, Runtime, forward_views, softmax_head
from springtail.models.registry import create_model
from springtail.models.timm_net import norm_of
from springtail.models.training import TrainConfig, make_loop, make_targets, soft_cross_entropy, train_epoch


@dataclass
class NetSpec:
    """One model of params.yaml, resolved to the network its train stage fits."""

    name: str  # the model's name in params.yaml
    arch: str
    train: TrainConfig  # the train section (progress bar off)
    lr: float
    build: Any  # () -> a fresh, seeded network (no pretrained weights involved in timing)

    precision: str  # the model's precision setting (auto | fp32 | bf16)

    def runtime(self, precision: str | None = None, channels_last: bool | None = None) -> Runtime:
        """The runtime the train stage resolves (``auto`` reads the precision table);
        ``precision`` / ``channels_last`` force one variant instead."""
        return Runtime.resolve(self.train.device, precision or self.precision,
                               self.train.channels_last if channels_last is None else channels_last, self.arch)


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

    precision = net_model.config.precision or train.precision
    return NetSpec(name, net_model.config.arch, net_model.train, lr, build, precision)


def predict_batch_size(params: dict) -> int:
    return from_section(PredictConfig, params.get("predict"), "predict").batch_size


def soft_targets(labels: np.ndarray, train: TrainConfig) -> torch.Tensor:
    """(N, 9) float32 targets from hard labels, smoothed as in training."""
    return make_targets(labels, None, train.label_smoothing)


class PipelineSteps:
    """The pipeline's training step, one batch per call, through the real loop
    (``make_loop`` + ``train_epoch``: batch augmentation, autocast, loss, fused AdamW,
    schedule, progress bar), built once as the train stage builds it."""

    def __init__(self, spec: NetSpec, net: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 train: TrainConfig | None = None, runtime: Runtime | None = None, norm=None):
        self.train = train or spec.train
        self.loop = make_loop(net, images, targets, self.train, 100, spec.lr, runtime or spec.runtime(),
                              norm or norm_of(net), frozenset(), 1.0)
        self.batches = len(images) // self.train.batch_size
        self.augment = torch.Generator().manual_seed(0)
        self.bar = tqdm(disable=True)
        self.calls = 0

    def __call__(self) -> float:
        """Seconds of one training step on the next batch of the crops."""
        bs = self.train.batch_size
        start = (self.calls % self.batches) * bs
        self.calls += 1
        tick = time.perf_counter()
        train_epoch(self.loop, torch.arange(start, start + bs), self.augment, self.bar)
        return time.perf_counter() - tick


def prepare_seconds(spec: NetSpec, images: torch.Tensor, norm, batches: int = 4) -> float:
    """Seconds per batch of the pipeline's input path alone (``prepare_batch`` with augmentation)."""
    runtime, bs = spec.runtime(), spec.train.batch_size
    gen = torch.Generator().manual_seed(0)
    prepare_batch(images[:bs], *norm, device=runtime.device, channels_last=runtime.channels_last, generator=gen)
    tick = time.perf_counter()
    for i in range(batches):
        prepare_batch(images[i * bs:(i + 1) * bs], *norm, device=runtime.device,
                      channels_last=runtime.channels_last, generator=gen)
    return (time.perf_counter() - tick) / batches


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


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                         transposed, _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """Each of grad_input and grad_weight costs one forward convolution.

    torch's own formula ignores ``groups`` for grad_weight, so it counts a
    depthwise convolution's weight gradient C times over (ConvNeXt's 7x7
    depthwise convolutions: ~8x the forward FLOPs for the whole step).
    """
    forward = flop_counter.conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                         **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def flop_formulas() -> dict:
    """Corrections to FlopCounterMode: grouped-conv backward, and the CPU attention kernels
    (``_scaled_dot_product_flash_attention_for_cpu``), which it does not count at all."""
    aten = torch.ops.aten
    formulas = {aten.convolution_backward: _conv_backward_flops}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_flops
        formulas[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _sdpa_backward_flops
    return formulas


def flops_per_image(spec: NetSpec, net: torch.nn.Module, images: torch.Tensor,
                    targets: torch.Tensor, batch: int = 4) -> dict[str, float]:
    """FLOPs per image counted by ``FlopCounterMode`` on one real training step
    (forward + loss + backward, train mode, the configured runtime) and on one forward.

    The counter counts matrix products, convolutions and attention (2 FLOPs per
    multiply-add), not elementwise ops, norms or the optimiser: the usual MFU
    convention. ``flop_formulas`` corrects two of its gaps.
    """
    runtime = spec.runtime()
    net = runtime.place(net)
    norm = norm_of(net)
    x = prepare_batch(images[:batch], *norm, device=runtime.device, channels_last=runtime.channels_last,
                      generator=torch.Generator().manual_seed(0))
    net.train()
    with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as counter:
        with runtime.autocast():
            logits = net(x)
        soft_cross_entropy(logits, targets[:batch].to(runtime.device)).backward()
    train = counter.get_total_flops()
    net.zero_grad(set_to_none=True)
    net.eval()
    with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as counter, torch.no_grad(), \
            runtime.autocast():
        net(x)
    forward = counter.get_total_flops()
    return {"train_flops_per_img": train / batch, "fwd_flops_per_img": forward / batch}


def as_chw(crops: np.ndarray) -> torch.Tensor:
    return to_chw(crops)
