"""Validation folds: stratified by class, grouped by source image."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


def assign_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold 0..n_folds-1 of every crop; all crops of one image share a fold.

    Args:
        labels: (N,) int class of each crop (stratification target).
        groups: (N,) source image id of each crop.
        n_folds: number of folds (>= 2).
        seed: ``random_state`` of the shuffled StratifiedGroupKFold.

    Returns:
        (N,) int fold ids.

    Raises:
        ValueError: when there are fewer images than folds.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_groups < n_folds:
        raise ValueError(f"crops.n_folds={n_folds} needs >= 2 folds and at least as many "
                         f"images; got {n_groups} image(s) with crops")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[held_out] = fold
    return folds
