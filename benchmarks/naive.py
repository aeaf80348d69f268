"""The naive reference training loop the pipeline is compared with.

What a first version of such a project typically does: one JPEG file per crop,
decoded by PIL and augmented per sample with torchvision transforms (flips,
rotation by a multiple of 90 degrees, ToTensor, Normalize), batched by a
default ``DataLoader`` (``num_workers=0``), fp32 NCHW, hard-label
cross-entropy. Same network, batch size and optimiser recipe (AdamW with the
pipeline's parameter groups, torch's default kernel) as the pipeline.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

JPEG_QUALITY = 95


def write_jpegs(crops: np.ndarray, directory: Path) -> list[Path]:
    """Save (N, S, S, 3) uint8 crops as ``directory/NNNNN.jpg``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, crop in enumerate(crops):
        path = directory / f"{i:05d}.jpg"
        Image.fromarray(crop).save(path, "JPEG", quality=JPEG_QUALITY)
        paths.append(path)
    return paths


def naive_optimizer(net: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The pipeline's AdamW recipe (no decay on 1-d parameters) with torch's default kernel,
    built here so that a faster kernel chosen by the library shows in the comparison."""
    decay = [p for p in net.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


class JpegCrops(Dataset):
    """(image tensor, label) per JPEG file, decoded and transformed per sample."""

    def __init__(self, paths: list[Path], labels: np.ndarray, transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as img:
            image = img.convert("RGB")
        return self.transform(image), int(self.labels[i])


def naive_transform(mean, std) -> T.Compose:
    rotations = [T.RandomRotation((angle, angle)) for angle in (0, 90, 180, 270)]
    return T.Compose([T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.RandomChoice(rotations),
                      T.ToTensor(), T.Normalize(mean, std)])


class NaiveSteps:
    """The naive loop, one batch per call: load + augment per sample, forward, backward, AdamW.

    ``net``: a fresh fp32 network in the default (NCHW) memory format.
    """

    def __init__(self, net: torch.nn.Module, paths: list[Path], labels: np.ndarray, norm,
                 batch_size: int, lr: float, weight_decay: float, label_smoothing: float):
        self.net, self.label_smoothing = net, label_smoothing
        self.loader = DataLoader(JpegCrops(paths, labels, naive_transform(*norm)), batch_size=batch_size,
                                 shuffle=True, num_workers=0, drop_last=True,
                                 generator=torch.Generator().manual_seed(0))
        self.optimizer = naive_optimizer(net, lr, weight_decay)
        self.batches = iter(self.loader)

    def __call__(self) -> float:
        """Seconds of one training step, loading its batch included."""
        tick = time.perf_counter()
        try:
            x, y = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            x, y = next(self.batches)
        self.net.train()
        loss = F.cross_entropy(self.net(x), y, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss.item()
        return time.perf_counter() - tick


def load_seconds(paths: list[Path], labels: np.ndarray, norm, batch_size: int, batches: int = 2) -> float:
    """Seconds per batch of the naive loop's data loading alone (decode, transforms, collate)."""
    loader = DataLoader(JpegCrops(paths, labels, naive_transform(*norm)), batch_size=batch_size,
                        shuffle=True, num_workers=0, drop_last=True)
    batch_iter = iter(loader)
    next(batch_iter)
    tick = time.perf_counter()
    for _ in range(batches):
        next(batch_iter)
    return (time.perf_counter() - tick) / batches
