"""Process-level runtime: CPUs, torch threads and seeds (applied by stage scripts, never on
import), and the one process pool the data stages share."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import random
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt options (malloc.h)


@dataclass(frozen=True)
class RuntimeConfig:
    """The ``runtime`` section of params.yaml: how to run, never what comes out. No stage
    lists it under ``params:`` in dvc.yaml, so changing it re-runs nothing; every key here
    leaves the outputs byte-identical (tests/test_runtime_knobs.py shows it)."""

    workers: int  # processes of synthesize, crops and the detector's proposals; 0 = one per CPU
    progress: bool  # tqdm bars of the training epochs on stderr

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"runtime.workers must be >= 0, got {self.workers}")

    @property
    def processes(self) -> int:
        """Worker processes to start: ``workers``, or one per CPU this process may use."""
        return self.workers or cpu_count()


def cpu_count() -> int:
    """CPUs this process may run on (CPU affinity, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process instead of returning it to the OS.

    By default every block over 32 MB is a fresh ``mmap`` and goes back to the OS when
    freed, so a network on CPU that allocates its large activations anew every batch pays
    the kernel to zero new pages each time (5.5 M page faults, 12-18 s of system time to
    predict 1,691 crops). With ``mmap`` off and trimming only above 2 GB, those buffers are
    reused from the heap; results are unchanged. Returns whether the setting took (False
    where the C library is not glibc, e.g. macOS or musl).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def setup_torch(num_threads: int = 0, seed: int | None = None):
    """Set torch's thread pools from the CPU affinity before any torch work, keep freed memory
    in the process (:func:`keep_freed_memory`); return torch.

    Args:
        num_threads: threads for intra-op parallelism; 0 means one per allowed CPU.
        seed: when given, seeds torch, numpy and random for this process.
    """
    import torch

    keep_freed_memory()
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


def _worker_setup() -> None:
    """Pool workers ignore SIGINT and SIGTERM and die with their parent.

    Ctrl-C or a SIGTERM sent to the whole process group must stop the stage
    through the parent alone: it unwinds (removing its temporary output) and
    shuts the pool down. A worker killed by the signal itself could die holding
    a queue lock and hang the parent's shutdown. If the parent is killed
    outright (SIGKILL, the OOM killer), Linux kills the workers too.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def ordered_map(fn: Callable, jobs: Iterable, workers: int) -> Iterator:
    """``map(fn, jobs)`` in order, over ``workers`` processes when > 1.

    When the consumer stops early (an error, a signal) pending jobs are cancelled
    and the running ones finish before the pool closes. The output does not
    depend on ``workers``: results come back in job order.
    """
    if workers <= 1:
        yield from map(fn, jobs)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_setup)
    try:
        yield from pool.map(fn, jobs, chunksize=2)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
