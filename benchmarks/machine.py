"""The machine: CPU, threads, torch build, and the measured matrix-product peak."""

from __future__ import annotations

import os
import platform
import time

import torch

from springtail.common.runtime import cpu_count
from springtail.models.inference import native_bf16_cpu


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's name elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def machine_info() -> dict:
    """What the figures were measured on."""
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return {
        "cpu": cpu_model(),
        "cores_affinity": cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "simd": simd,
        "bf16_native": native_bf16_cpu(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "python": platform.python_version(),
    }


def _mm_seconds(n: int, dtype: torch.dtype, reps: int) -> list[float]:
    """Seconds of each of ``reps`` (n x n) @ (n x n) products after one warmup."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(reps):
        tick = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - tick)
    return times


def matmul_peak(dtype: torch.dtype, max_n: int = 4096, min_seconds: float = 0.15,
                reps: int = 8, budget_s: float = 25.0) -> dict:
    """Best GFLOP/s of a square ``torch.mm`` in ``dtype``.

    The size doubles from 256 until one product takes ``min_seconds`` or ``max_n``
    is reached, so a dtype the CPU only emulates (bf16 without AVX512-BF16/AMX:
    ~100x slower) is measured at a size that fits ``budget_s`` instead of for minutes.
    The peak is the best of ``reps`` products (the least disturbed by other load).
    """
    n, started = 256, time.perf_counter()
    while True:
        one = min(_mm_seconds(n, dtype, 1))
        spent = time.perf_counter() - started
        if n >= max_n or one >= min_seconds or spent + 8 * one * (reps + 2) > budget_s:
            break
        n *= 2
    reps = max(2, min(reps, int((budget_s - (time.perf_counter() - started)) / max(one, 1e-6)) - 1))
    best = min(_mm_seconds(n, dtype, reps))
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "reps": reps}
