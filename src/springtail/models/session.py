"""What one training process sets up around ``fit``: threads, seeds, the process group,
and the dvclive run that records each epoch (or boosting round)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from springtail.common.runtime import cpu_count, device_name, setup_torch
from springtail.models import distributed
from springtail.models.training import TrainConfig


def start_process(train: TrainConfig):
    """Threads (the CPUs shared among this machine's torchrun workers), seeds, deterministic
    cuDNN (cheap on these networks) and, under torchrun, the process group. Returns torch."""
    workers = train.nproc if distributed.is_worker() else 1
    torch = setup_torch(max(1, (train.num_threads or cpu_count()) // workers), seed=train.seed)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    if distributed.is_worker():
        distributed.init(device_name(train.device))
    return torch


@contextlib.contextmanager
def epoch_log(directory: Path, enabled: bool = True) -> Iterator[Callable[[dict], None] | None]:
    """A dvclive run in ``directory`` that never touches the repository's dvc.yaml; yields
    the per-epoch callback ``fit`` takes (None when not ``enabled``, e.g. on ranks > 0).

    The run's summary is written when the block ends without an error."""
    if not enabled:
        yield None
        return
    from dvclive import Live

    live = Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None)

    def log(metrics: dict) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()

    yield log
    live.end()
