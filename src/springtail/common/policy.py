"""What a bad input record does: stop the stage, or count it and go on.

``data.on_error`` picks the policy: ``fail`` re-raises the first error as is
(it already names the file, the line and what was expected); ``skip`` drops the
bad record, counts it by reason for ``metrics/``, and still stops once more
than ``data.max_skipped`` records have been dropped, so a broken data set can
never pass for a slightly noisy one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POLICIES = ("fail", "skip")
POLICY_KEYS = ("on_error", "max_skipped")  # the data.* keys a stage declares in dvc.yaml


class DataError(ValueError):
    """A bad input file or record; the message names the file and what was expected.

    ``reason`` is a short machine-readable kind, counted in metrics (the same
    attribute as :class:`springtail.common.yolo.AnnotationError`).
    """

    def __init__(self, path: str | Path, message: str, reason: str):
        self.path = str(path)
        self.reason = reason
        self.detail = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self):  # survive pickling between worker processes
        return (type(self), (self.path, self.detail, self.reason))


class TooManySkipped(ValueError):
    """More records were skipped than ``data.max_skipped`` allows."""


@dataclass(frozen=True)
class ErrorPolicy:
    """The ``data.on_error`` / ``data.max_skipped`` pair of ``params.yaml``."""

    on_error: str  # fail | skip
    max_skipped: int  # with skip: stop once more records than this are dropped

    def __post_init__(self) -> None:
        if self.on_error not in POLICIES:
            raise ValueError(f"data.on_error must be one of {POLICIES}, "
                             f"got {self.on_error!r}")
        if self.max_skipped < 0:
            raise ValueError(f"data.max_skipped must be >= 0, got {self.max_skipped}")


@dataclass
class SkipLog:
    """Applies an :class:`ErrorPolicy` to errors and counts what was skipped.

    Usage: ``except (AnnotationError, DataError) as err: log.handle(err)``.
    """

    policy: ErrorPolicy
    counts: Counter = field(default_factory=Counter)  # reason -> records skipped
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first message

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def handle(self, err: Exception, weight: int = 1) -> None:
        """Re-raise ``err`` under ``fail``; else count it (``weight`` records) by its reason.

        Raises:
            the error itself under ``on_error=fail``;
            TooManySkipped once more than ``max_skipped`` records were skipped.
        """
        if self.policy.on_error == "fail":
            raise err
        reason = getattr(err, "reason", type(err).__name__)
        self.counts[reason] += weight
        self.examples.setdefault(reason, str(err))
        if self.total > self.policy.max_skipped:
            raise TooManySkipped(
                f"{self.total} record(s) skipped, more than data.max_skipped="
                f"{self.policy.max_skipped} allows ({dict(sorted(self.counts.items()))}); "
                f"last: {err}"
            ) from err

    def to_dict(self) -> dict[str, Any]:
        """Counts and one example message per reason, for ``metrics/``."""
        return {
            "total": self.total,
            "by_reason": dict(sorted(self.counts.items())),
            "examples": dict(sorted(self.examples.items())),
        }
