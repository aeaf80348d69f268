"""Data-parallel training across processes (torchrun): launch, sharding, agreement.

In one process every helper is a no-op, so the training loop has one code path.
With ``train.nproc > 1`` the train stage re-launches itself through
``torch.distributed.run``; each worker joins a process group (gloo on CPU,
NCCL on GPU), trains on its share of every epoch's crop order, and only rank 0
writes checkpoints, logs and metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist


def is_worker() -> bool:
    """True inside a process started by torchrun (it sets LOCAL_RANK and WORLD_SIZE)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch(nproc: int, script: str, argv: list[str]) -> int:
    """Run ``script argv`` in ``nproc`` processes under torchrun; return its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", script, *argv]
    return subprocess.run(cmd, check=False).returncode


def init(device: str) -> None:
    """Join the process group set up by torchrun.

    On CUDA: NCCL, and this worker's GPU (its local rank) becomes the current
    device, so "cuda" means that GPU from here on. On CPU: gloo.
    """
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def wrap(net: torch.nn.Module, device: str) -> torch.nn.Module:
    """DistributedDataParallel around ``net`` when distributed, else ``net`` itself."""
    if world_size() == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.cuda.current_device()] if device.startswith("cuda") else None
    return DistributedDataParallel(net, device_ids=ids)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (``net`` itself when not wrapped)."""
    return net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of a crop order (same on all ranks); padded by wrapping so every
    rank takes the same number of steps (DDP needs matching collectives)."""
    if world == 1:
        return order
    per = -(-len(order) // world)
    padded = torch.cat([order, order[: per * world - len(order)]])
    return padded[rank::world]


def _tensor(value: float, device: str) -> torch.Tensor:
    dev = device if device.startswith("cuda") else "cpu"
    return torch.tensor([value], dtype=torch.float64, device=dev)


def mean(value: float, device: str) -> float:
    """Average of ``value`` over ranks (e.g. the epoch's training loss)."""
    if world_size() == 1:
        return value
    t = _tensor(value, device)
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def from_main(value: float, device: str) -> float:
    """Rank 0's ``value`` on every rank, so early stopping decides the same everywhere."""
    if world_size() == 1:
        return value
    t = _tensor(value, device)
    dist.broadcast(t, src=0)
    return float(t.item())
