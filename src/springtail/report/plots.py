"""Long tables for ``dvc plots``: per-class F1 of every model beside the ensemble, and the
class distribution at each step from the experts' votes to the predicted test crops.

Both are "long" (one row per class x series) so that one vega-lite template draws them
as grouped horizontal bars, coloured by the series column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, N_CLASSES, PROB_COLUMNS
from springtail.common.f1 import per_class_f1
from springtail.common.votes import strict_majority
from springtail.labels.annotations import VOTE_COLUMNS

ENSEMBLE = "ensemble"
# Series of the class distribution, in the order of the pipeline.
STAGES = ("votes plurality", "consensus kept", "training crops", "test predicted")


def _predicted(table: pd.DataFrame) -> np.ndarray:
    return table[list(PROB_COLUMNS)].to_numpy(dtype=float).argmax(axis=1)


def per_class_f1_long(vals: dict[str, pd.DataFrame], ensemble_val: pd.DataFrame) -> pd.DataFrame:
    """Columns class, model, f1: one row per class x (each model, then the ensemble).

    Args:
        vals: model name -> its val.csv (label, p0..p8).
        ensemble_val: the ensemble's out-of-fold val.csv (label, p0..p8).
    """
    rows = []
    for name, table in {**vals, ENSEMBLE: ensemble_val}.items():
        f1 = per_class_f1(table["label"].to_numpy(dtype=int), _predicted(table))
        rows += [{"class": code, "model": name, "f1": round(float(v), 6)} for code, v in zip(CODES, f1)]
    return pd.DataFrame(rows, columns=["class", "model", "f1"])


def _counts(labels: np.ndarray, stage: str) -> list[dict]:
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels[labels >= 0], minlength=N_CLASSES)
    return [{"class": code, "stage": stage, "count": int(n)} for code, n in zip(CODES, counts)]


def class_distribution(labels: pd.DataFrame, train_index: pd.DataFrame,
                       ensemble_test: pd.DataFrame) -> pd.DataFrame:
    """Columns class, stage, count: how many boxes or crops of each class at each step.

    Stages (see ``STAGES``): the plurality of the four votes per box (boxes with a tied
    top count are left out), the consensus label of the boxes kept for training, the
    training crops (boxes and FOND background squares) and the test crops by the
    ensemble's predicted class.

    Args:
        labels: labels.csv (v1..v4, label, keep). train_index: the crops' train_index.csv
        (label). ensemble_test: the ensemble's test.csv (p0..p8).
    """
    kept = labels["keep"].astype(str).str.lower().isin(("true", "1")).to_numpy()
    rows = (_counts(strict_majority(labels[list(VOTE_COLUMNS)].to_numpy(dtype=int)), STAGES[0])
            + _counts(labels["label"].to_numpy(dtype=int)[kept], STAGES[1])
            + _counts(train_index["label"].to_numpy(dtype=int), STAGES[2])
            + _counts(_predicted(ensemble_test), STAGES[3]))
    return pd.DataFrame(rows, columns=["class", "stage", "count"])
