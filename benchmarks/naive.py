"""The naive reference training loop the pipeline is compared with.

What a first version of such a project typically does: one JPEG file per crop,
decoded by PIL and augmented per sample with torchvision transforms (flips,
rotation by a multiple of 90 degrees, ToTensor, Normalize), batched by a
default ``DataLoader`` (``num_workers=0``), fp32 NCHW, hard-label
cross-entropy. Same network, batch size and optimiser (AdamW with the
pipeline's parameter groups) as the pipeline.
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

from springtail.training import make_optimizer

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


def naive_train_img_s(net: torch.nn.Module, paths: list[Path], labels: np.ndarray, norm,
                      batch_size: int, steps: int, lr: float, weight_decay: float,
                      label_smoothing: float, warmup: int = 2) -> float:
    """Training images/s of the naive loop over ``steps`` batches after ``warmup`` batches.

    ``net``: a fresh fp32 network in the default (NCHW) memory format.
    """
    torch.manual_seed(0)  # the DataLoader's shuffling and the transforms' random draws
    loader = DataLoader(JpegCrops(paths, labels, naive_transform(*norm)), batch_size=batch_size,
                        shuffle=True, num_workers=0, drop_last=True)
    optimizer = make_optimizer(net, lr, weight_decay)
    net.train()
    batches = iter(loader)
    tick = None
    for step in range(warmup + steps):
        if step == warmup:
            tick = time.perf_counter()
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        loss = F.cross_entropy(net(x), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    return steps * batch_size / (time.perf_counter() - tick)
