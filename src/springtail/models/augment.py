"""The batch input pipeline: dihedral transforms, photometric jitter, normalisation.

Crops stay uint8 in memory as one (N, 3, S, S) tensor; every transform works on
a whole batch at once. Microscope crops have no "up", so the 8 symmetries of
the square (flips and 90-degree rotations) are label-preserving; they serve
both as training augmentation and as test-time augmentation.
"""

from __future__ import annotations

import numpy as np
import torch

N_DIHEDRAL = 8  # identity, 3 rotations, 4 reflections


def to_chw(images: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 numpy -> (N, 3, S, S) uint8 contiguous tensor (one copy)."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, S, S, 3) uint8 crops, got {images.shape} {images.dtype}")
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"crops must be square, got {images.shape[1]} x {images.shape[2]}")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply symmetry ``k`` (0..7) to a (B, C, S, S) batch: bit 0 flips W, bit 1 flips H,
    bit 2 transposes H and W. The 8 codes give the 8 distinct symmetries of the square."""
    if not 0 <= k < N_DIHEDRAL:
        raise ValueError(f"dihedral code must be in 0..7, got {k}")
    if k & 1:
        x = x.flip(3)
    if k & 2:
        x = x.flip(2)
    if k & 4:
        x = x.transpose(2, 3)
    return x


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """An independent random symmetry per sample of a (B, C, S, S) batch (any dtype)."""
    codes = torch.randint(0, N_DIHEDRAL, (x.shape[0],), generator=generator).view(-1, 1, 1, 1)
    codes = codes.to(x.device)
    x = torch.where((codes & 1).bool(), x.flip(3), x)
    x = torch.where((codes & 2).bool(), x.flip(2), x)
    return torch.where((codes & 4).bool(), x.transpose(2, 3), x)


def jitter(
    x: torch.Tensor, generator: torch.Generator, brightness: float = 0.1, contrast: float = 0.15
) -> torch.Tensor:
    """Mild per-sample brightness/contrast jitter of a float batch in [0, 1].

    Contrast scales each image about its own mean by U(1 - contrast, 1 + contrast);
    brightness then adds U(-brightness, brightness). Output is clamped to [0, 1].
    """
    b = x.shape[0]
    scale = 1 + contrast * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
    shift = brightness * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
    scale, shift = scale.to(x.device, x.dtype), shift.to(x.device, x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * scale + mean + shift).clamp_(0, 1)


def prepare_batch(
    batch: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> normalised float32 (B, 3, S, S) on ``device``.

    With a ``generator`` the batch is augmented (random symmetry, then jitter);
    without one it is only normalised (validation, inference).
    """
    if generator is not None:
        batch = random_dihedral(batch, generator)  # on uint8: 4x less memory traffic
    x = batch.to(device, non_blocking=True).float().div_(255)
    if generator is not None:
        x = jitter(x, generator)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    x = (x - m) / s
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
