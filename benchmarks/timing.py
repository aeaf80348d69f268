"""Side-by-side timing on a shared machine: variants interleaved step by step.

Other processes come and go; timing variant A for a minute, then B, compares
the machine's load more than A and B. Here every variant runs one step in
turn (the order rotates each round), so each sees the same load, and a
variant's speed is its batch size over its median step time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

Step = Callable[[], float]  # runs one training step, returns its seconds


def interleave(steps: dict[str, Step], rounds: int, warmup: int = 2,
               on_round: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """``warmup`` untimed rounds, then ``rounds`` timed rounds of one step per variant.

    Returns: variant -> its ``rounds`` step times in seconds.
    """
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(steps[name]())
        if on_round is not None:
            on_round(r)
    return times


def rate(batch_size: int, times: list[float]) -> float:
    """Images per second from one variant's step times (median step)."""
    return batch_size / statistics.median(times)


def spread(times: list[float]) -> float:
    """Relative spread of step times: (max - min) / median, a noise indicator."""
    return (max(times) - min(times)) / statistics.median(times)
