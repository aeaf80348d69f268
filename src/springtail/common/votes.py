"""Counting four experts' votes: per-class counts, agreement patterns, the strict majority.

Shared by the consensus stage and by the synthetic data's vote statistics.
"""

from __future__ import annotations

import numpy as np

from springtail.common.classes import N_CLASSES

PATTERNS = ("4", "3-1", "2-2", "2-1-1", "1-1-1-1")  # agreement patterns of four votes


def vote_counts(votes: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """(N, E) votes -> (N, K) number of experts voting each class."""
    votes = np.asarray(votes, dtype=np.int64)
    counts = np.zeros((len(votes), n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(votes)), votes.shape[1]), votes.ravel()), 1)
    return counts


def agreement_patterns(votes: np.ndarray) -> list[str]:
    """Per box, the sorted vote multiplicities joined by '-': "4", "3-1", "2-2", ..."""
    counts = -np.sort(-vote_counts(votes), axis=1)
    return ["-".join(str(c) for c in row if c) for row in counts]


def strict_majority(votes: np.ndarray) -> np.ndarray:
    """(N,) the unique most-voted class of each box, -1 when the top count is tied."""
    counts = vote_counts(votes)
    top = counts.max(axis=1)
    unique = (counts == top[:, None]).sum(axis=1) == 1
    return np.where(unique, counts.argmax(axis=1), -1)
