"""Simulated expert votes: four noisy experts around the generator's true class.

Independent expert slips cannot explain the real agreement pattern: 2-2 splits
(3.5 % of real boxes) would then be about a hundred times rarer than 3-1
splits, not half as frequent. So boxes differ in difficulty. Most boxes are
easy (experts only slip now and then); an *ambiguous* box makes every expert
hesitate between the truth and one look-alike class, and a rare *tangled* box
between the truth and two look-alikes. Look-alikes and slips follow the real
pooled confusion matrix, so errors are spread over many classes as in the
real votes. Experts differ in reliability: the last one is noticeably worse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from springtail.common.classes import BACKGROUND, N_CLASSES, N_EXPERTS
from springtail.common.votes import PATTERNS, agreement_patterns, strict_majority
from springtail.synth.reference import MAJORITY_COUNTS, POOLED_CONFUSION


@dataclass(frozen=True)
class VoteModel:
    """Parameters of the vote simulation (fitted to the real agreement statistics)."""

    slip: tuple[float, ...] = (0.008, 0.0012, 0.005, 0.013)  # per-expert chance of a random slip
    ambiguous_rate: float = 0.056        # share of boxes where experts hesitate between 2 classes
    pull: tuple[float, ...] = (0.52, 0.40, 0.47, 0.58)  # per-expert chance to pick the look-alike
    tangled_rate: float = 0.077          # share of boxes where experts hesitate between 3 classes
    tangled_pull: float = 0.60           # chance to pick one of the two look-alikes there
    tangled_slip: float = 0.05           # chance of a random slip on a tangled box, every expert
    fond_pull: float = 0.5               # experts rarely agree that a specimen is background:
                                         # the pull towards a FOND look-alike is scaled by this


def truth_prior() -> np.ndarray:
    """(9,) float: the generator's class frequencies for training boxes.

    The real strict-majority frequencies, except FOND: expert errors alone
    already give FOND a majority on a few boxes, so few true FOND boxes are drawn.
    """
    counts = np.asarray(MAJORITY_COUNTS, dtype=float)
    counts[BACKGROUND] = 2.0
    return counts / counts.sum()


def confusion_rows() -> np.ndarray:
    """(9, 9) float: per true class, the probability of each wrong class (diagonal 0).

    The real pooled matrix's off-diagonal counts, lightly smoothed so that every
    confusion is possible.
    """
    rows = POOLED_CONFUSION.astype(float) + 0.5
    np.fill_diagonal(rows, 0.0)
    return rows / rows.sum(axis=1, keepdims=True)


def _wrong_class(truth: np.ndarray, rows: np.ndarray, rng: np.random.Generator,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """(N,) a class drawn from each truth's confusion row, never ``exclude`` if given."""
    p = rows[truth].copy()  # (N, 9)
    if exclude is not None:
        p[np.arange(len(truth)), exclude] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)
    u = rng.random((len(truth), 1)) * cdf[:, -1:]
    return np.minimum((u > cdf).sum(axis=1), N_CLASSES - 1)


def simulate_votes(truth: np.ndarray, rng: np.random.Generator,
                   model: VoteModel = VoteModel()) -> np.ndarray:
    """Four experts' votes for boxes of known true class.

    Args:
        truth: (N,) int true classes 0..8.
        rng: the random generator (the only source of randomness).
        model: the vote model's parameters.

    Returns:
        (N, 4) int64 votes, column e = expert e, in the fixed expert order.
    """
    truth = np.asarray(truth, dtype=np.int64)
    n = len(truth)
    rows = confusion_rows()
    alt1 = _wrong_class(truth, rows, rng)
    alt2 = _wrong_class(truth, rows, rng, exclude=alt1)
    kind = rng.random(n)  # < tangled_rate: tangled, next ambiguous_rate: ambiguous
    tangled = kind < model.tangled_rate
    ambiguous = ~tangled & (kind < model.tangled_rate + model.ambiguous_rate)
    votes = np.repeat(truth[:, None], N_EXPERTS, axis=1)
    weak = np.where(alt1 == BACKGROUND, model.fond_pull, 1.0)  # (N,) pull factor
    for e in range(N_EXPERTS):
        u = rng.random(n)
        pulled = ambiguous & (u < model.pull[e] * weak)
        votes[pulled, e] = alt1[pulled]
        pick = tangled & (u < model.tangled_pull * weak)
        second = rng.random(n) < 0.5
        votes[pick & ~second, e] = alt1[pick & ~second]
        votes[pick & second, e] = alt2[pick & second]
        slips = rng.random(n) < np.where(tangled, model.tangled_slip, model.slip[e])
        votes[slips, e] = _wrong_class(truth[slips], rows, rng)
    return votes


def vote_statistics(votes: np.ndarray) -> dict[str, object]:
    """Summary of (N, 4) votes, in the terms of the real reference statistics.

    Returns a dict with ``patterns`` (pattern -> fraction of boxes),
    ``majority`` ((9,) fraction of all boxes per strict-majority class),
    ``no_majority`` (fraction of boxes without one) and ``expert_agreement``
    ((4,) fraction of each expert's votes equal to the strict majority, over
    the boxes that have one).
    """
    votes = np.asarray(votes, dtype=np.int64).reshape(-1, N_EXPERTS)
    majority = strict_majority(votes)
    has = majority >= 0
    counts = Counter(agreement_patterns(votes))
    return {
        "patterns": {p: counts.get(p, 0) / max(1, len(votes)) for p in PATTERNS},
        "majority": np.bincount(majority[has], minlength=N_CLASSES) / max(1, len(votes)),
        "no_majority": float((~has).mean()),
        "expert_agreement": (votes[has] == majority[has, None]).mean(axis=0),
    }
