"""Macro and per-class F1 over the nine classes: the competition's score, used by training
(early stopping), the ensemble (weights) and the scoring stages alike."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from springtail.common.classes import N_CLASSES

LABELS = list(range(N_CLASSES))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over all nine classes (absent classes count as 0, as on Kaggle)."""
    return float(f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(9,) F1 per class, in label order."""
    return f1_score(y_true, y_pred, labels=LABELS, average=None, zero_division=0)
