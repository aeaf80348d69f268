"""Running a network over uint8 crops: device, precision, batching, test-time augmentation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from springtail.common.runtime import device_name
from springtail.models import precision as precision_table
from springtail.models.augment import N_DIHEDRAL, dihedral, prepare_batch, to_chw

__all__ = ["PredictConfig", "Runtime", "forward_views", "softmax_head", "feature_head"]


@dataclass(frozen=True)
class PredictConfig:
    """The ``predict`` section of params.yaml."""

    tta: bool  # average over the 8 flips/rotations of each crop
    batch_size: int  # crops per forward pass


def native_bf16_cpu() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX).

    Without it PyTorch emulates bf16 and autocast is many times slower than fp32
    (measured 10-40x on an AVX2-only EPYC), so bf16 is then never used.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@dataclass(frozen=True)
class Runtime:
    """Where and how a network runs, resolved from the train settings and the hardware."""

    device: str = "cpu"
    amp_dtype: torch.dtype | None = None  # autocast dtype; None = fp32
    channels_last: bool = False
    rule: str = "forced"  # the row of springtail.models.precision's table behind an auto choice

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "auto", channels_last: bool | str = "auto",
                arch: str = "") -> Runtime:
        """Pick the device ('auto' -> cuda when present), then the precision and memory format
        of network ``arch`` there: ``auto`` reads the table of ``springtail.models.precision``.

        bf16 (asked for or chosen) runs only where the hardware computes it: fp16 with a
        gradient scaler on GPUs without bf16, fp32 on CPUs without AVX512-BF16/AMX."""
        dev = device_name(device)
        if dev.startswith("cuda"):
            machine = "cuda"
        else:
            machine = "cpu_bf16" if native_bf16_cpu() else "cpu"
        choice = precision_table.choose(machine, arch, precision, channels_last)
        amp: torch.dtype | None = None
        if choice.precision == "bf16" and machine == "cuda":
            amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif choice.precision == "bf16" and machine == "cpu_bf16":
            amp = torch.bfloat16
        return cls(dev, amp, choice.channels_last, choice.rule)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.amp_dtype)

    def place(self, net: torch.nn.Module) -> torch.nn.Module:
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.inference_mode()
def forward_views(
    net: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    head: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    *,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    runtime: Runtime,
    tta: bool = False,
    batch_size: int = 128,
) -> np.ndarray:
    """Outputs of ``head(net, x)`` for every crop under each test-time view.

    Args:
        images: (N, S, S, 3) uint8 numpy or (N, 3, S, S) uint8 tensor.
        head: e.g. softmax probabilities or penultimate features of ``net``.
        norm: (mean, std) per channel, as used in training.
    Returns:
        (V, N, D) float32: V = 8 dihedral views with ``tta``, else 1.
    """
    x_all = to_chw(images) if isinstance(images, np.ndarray) else images
    was_training = net.training
    net.eval()
    views = range(N_DIHEDRAL) if tta else range(1)
    out = []
    for k in views:
        parts = []
        for sl in batches(len(x_all), batch_size):
            x = prepare_batch(dihedral(x_all[sl], k), *norm, device=runtime.device,
                              channels_last=runtime.channels_last)
            with runtime.autocast():
                parts.append(head(net, x).float().cpu())
        out.append(torch.cat(parts) if parts else torch.empty(0, 0))
    net.train(was_training)
    return torch.stack(out).numpy()


def softmax_head(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> (B, K) class probabilities."""
    return net(x).float().softmax(dim=1)


def feature_head(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> (B, D) pooled penultimate features (timm's pre-logits)."""
    return net.forward_head(net.forward_features(x), pre_logits=True)
