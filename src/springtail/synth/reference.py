"""Statistics of the real challenge data that the synthetic set is calibrated to.

Every number here was measured on the real training annotations (1,396 boxes
on 1,117 images, see the project's reference notes); tests compare the
generator's output against them.
"""

from __future__ import annotations

import numpy as np

# Boxes per training image -> number of real images with that many boxes.
BOXES_PER_IMAGE: dict[int, int] = {1: 948, 2: 99, 3: 46, 4: 15, 5: 6, 6: 1, 8: 2}

# Strict-majority class counts over the real boxes, classes 0..8 (53 boxes have none).
MAJORITY_COUNTS: tuple[int, ...] = (453, 205, 124, 111, 86, 143, 109, 107, 5)
NO_MAJORITY = 53

# Agreement pattern of the four votes -> number of real boxes.
AGREEMENT_COUNTS: dict[str, int] = {
    "4": 1197,        # unanimous
    "3-1": 98,
    "2-2": 49,
    "2-1-1": 48,
    "1-1-1-1": 4,
}

# Fraction of a real expert's votes equal to the strict majority, per expert.
EXPERT_AGREEMENT: tuple[float, ...] = (0.9605, 0.9739, 0.9672, 0.9538)

# Individual votes against the strict majority, four experts pooled
# (rows: majority class, columns: the vote given), classes 0..8.
POOLED_CONFUSION = np.array([
    [1763, 6, 10, 7, 7, 4, 3, 6, 6],
    [2, 805, 2, 1, 1, 0, 3, 2, 4],
    [5, 3, 475, 1, 1, 2, 4, 3, 2],
    [8, 2, 2, 421, 2, 2, 2, 1, 4],
    [3, 4, 2, 2, 325, 1, 3, 2, 2],
    [3, 2, 2, 2, 4, 553, 2, 2, 2],
    [6, 3, 2, 4, 2, 5, 410, 2, 2],
    [1, 1, 3, 1, 3, 2, 3, 413, 1],
    [1, 2, 1, 1, 0, 1, 0, 1, 13],
], dtype=np.int64)

# Share of multi-box real images whose boxes all have the same majority class.
MULTI_BOX_SAME_CLASS = 89 / 169

# Real box geometry (normalised YOLO units, measured on the published files):
# centre x median 0.48 (10-90 %: 0.27-0.79), centre y median 0.42 (0.27-0.62),
# width median 0.25 (0.15-0.34), height median 0.40 (0.22-0.57).
BOX_MEDIAN_W = 0.246
BOX_MEDIAN_H = 0.402

# Sampling campaigns: the real project strings, plus one in the same style
# (1 to 5 tokens, underscores, slashes, non-ASCII letters).
PROJECTS: tuple[tuple[str, float], ...] = (
    ("TIDM_URBA/DIJON2021_2/3", 0.24),
    ("Bioindicateur 2 2009/2010", 0.24),
    ("Pompey_1 2007", 0.14),
    ("TIDM_URBA/DIJON2021_1/3", 0.07),
    ("Ecopic 2018", 0.05),
    ("RMQS Biodiv Printemps 2007", 0.05),
    ("PEY Benjamin 10_2007", 0.04),
    ("Parcelles Lysimétriques Sept 2007/2008-3", 0.05),
    ("VADEBIO 2010", 0.04),
    ("NARBONS", 0.03),
    ("Forêt de Haye 4/B 2012", 0.05),
)


def class_prior() -> np.ndarray:
    """(9,) float: the real strict-majority class frequencies, used as the truth prior."""
    counts = np.asarray(MAJORITY_COUNTS, dtype=float)
    return counts / counts.sum()


def boxes_per_image_prior() -> tuple[np.ndarray, np.ndarray]:
    """(counts, probabilities) of the number of boxes on one training image."""
    counts = np.array(sorted(BOXES_PER_IMAGE), dtype=np.int64)
    freq = np.array([BOXES_PER_IMAGE[k] for k in counts], dtype=float)
    return counts, freq / freq.sum()


def agreement_fractions() -> dict[str, float]:
    """Agreement pattern -> fraction of real boxes."""
    total = sum(AGREEMENT_COUNTS.values())
    return {key: n / total for key, n in AGREEMENT_COUNTS.items()}
