"""Process-level runtime settings, applied by stage scripts (never on import)."""

from __future__ import annotations

import os
import random

import numpy as np


def cpu_count() -> int:
    """CPUs this process may run on (CPU affinity, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def setup_torch(num_threads: int = 0, seed: int | None = None):
    """Set torch's thread pools from the CPU affinity before any torch work; return torch.

    Args:
        num_threads: threads for intra-op parallelism; 0 means one per allowed CPU.
        seed: when given, seeds torch, numpy and random for this process.
    """
    import torch

    threads = num_threads or cpu_count()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(max(1, min(2, threads)))
    except RuntimeError:  # already set once in this process
        pass
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
    return torch


def device_name(requested: str = "auto") -> str:
    """'cuda' when a GPU is present (or asked for), else 'cpu'."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{requested}' was asked for but no CUDA GPU is available")
    return requested
