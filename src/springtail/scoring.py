"""Scores: macro F1 over the nine classes, per-class F1, confusion, the Kaggle leaderboard,
and the submission file's check against Kaggle's sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score

from springtail.classes import CODES, N_CLASSES, PROB_COLUMNS

LABELS = list(range(N_CLASSES))
USAGES = ("Public", "Private")  # Kaggle's leaderboard split, column Usage of solution.csv


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over all nine classes (absent classes count as 0, as on Kaggle)."""
    return float(f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(9,) F1 per class, in label order."""
    return f1_score(y_true, y_pred, labels=LABELS, average=None, zero_division=0)


def per_class_dict(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Per-class F1 keyed by class code, for metrics JSON."""
    return {code: float(f) for code, f in zip(CODES, per_class_f1(y_true, y_pred))}


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(9, 9) counts, rows = actual class, columns = predicted class."""
    return confusion_matrix(y_true, y_pred, labels=LABELS)


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """One row per crop with columns actual, predicted (class codes): DVC's confusion plot."""
    codes = np.asarray(CODES)
    return pd.DataFrame({"actual": codes[np.asarray(y_true, int)], "predicted": codes[np.asarray(y_pred, int)]})


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Columns class, f1: DVC's bar plot of per-class F1."""
    return pd.DataFrame({"class": list(CODES), "f1": per_class_f1(y_true, y_pred)})


def score_summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """val_macro_f1, per_class_f1 and the crop count, for a metrics file."""
    return {"val_macro_f1": macro_f1(y_true, y_pred), "per_class_f1": per_class_dict(y_true, y_pred),
            "n_val": int(len(y_true))}


def leaderboard(solution: pd.DataFrame, predicted: pd.Series, class_column: str = "gt",
                name: str = "solution.csv") -> dict[str, float]:
    """Public and private macro F1 of ``predicted`` (class per idx) against Kaggle's solution.

    Args:
        solution: columns idx, ``class_column`` and Usage (Public | Private | Ignored).
        predicted: predicted class indexed by idx; must cover every scored idx.
    Raises:
        ValueError: a missing column, or a scored idx without a prediction (names one).
    """
    for column in ("idx", class_column, "Usage"):
        if column not in solution.columns:
            raise ValueError(f"{name}: missing column '{column}' (has {', '.join(solution.columns)})")
    missing = solution.loc[~solution["idx"].isin(predicted.index), "idx"]
    if len(missing):
        raise ValueError(f"{name}: {len(missing)} idx without a prediction, e.g. {missing.iloc[0]!r}")
    scores = {}
    for usage in USAGES:
        part = solution[solution["Usage"].str.lower() == usage.lower()]
        pred = predicted.loc[part["idx"]].to_numpy()
        scores[f"{usage.lower()}_macro_f1"] = macro_f1(part[class_column].to_numpy(int), pred)
    return scores


def evaluate_predictions(val: pd.DataFrame, test: pd.DataFrame | None = None,
                         solution: pd.DataFrame | None = None, class_column: str = "gt",
                         solution_name: str = "solution.csv") -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Score a validation table (label, p0..p8) and, given Kaggle's solution, the test table.

    Returns:
        metrics (val_macro_f1, per_class_f1, n_val [, public_macro_f1, private_macro_f1]),
        the confusion rows (actual, predicted) and the per-class F1 table (class, f1).
    """
    y = val["label"].to_numpy(dtype=int)
    pred = val[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    metrics = score_summary(y, pred)
    if solution is not None and test is not None:
        predicted = pd.Series(test[list(PROB_COLUMNS)].to_numpy().argmax(axis=1),
                              index=test["idx"].astype(str))
        solution = solution.assign(idx=solution["idx"].astype(str))
        metrics |= leaderboard(solution, predicted, class_column, solution_name)
    return metrics, confusion_rows(y, pred), per_class_table(y, pred)


def ensemble_metrics(metrics: dict, weights: dict) -> dict:
    """Add the comparison with the best single model (from weights.json) to the ensemble's
    out-of-fold scores."""
    singles = weights.get("model_val_macro_f1") or {}
    if not singles:
        raise ValueError("weights.json: no model_val_macro_f1 to compare the ensemble with")
    best = max(singles, key=singles.get)
    return {"method": weights.get("method"), **metrics, "best_single_model": best,
            "best_single_val_macro_f1": singles[best],
            "gain_over_best_single": metrics["val_macro_f1"] - singles[best],
            "selected": weights.get("selected", list(singles)),
            "leave_one_out": weights.get("leave_one_out", {})}


@dataclass(frozen=True)
class SubmissionConfig:
    """The ``submission`` section of params.yaml."""

    class_column: str = "gt"  # Kaggle's label column


def _first(values: pd.Series, limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values.iloc[:limit])
    return shown + (f" ... ({len(values)} in all)" if len(values) > limit else "")


def _check_ids(ids: pd.Series, expected: pd.Series, name: str, sample_name: str) -> None:
    """Every expected idx exactly once in ``ids``, nothing else."""
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(f"{name}: duplicate idx {_first(dup)}")
    missing = expected[~expected.isin(ids)]
    if len(missing):
        raise ValueError(f"{name}: idx of {sample_name} missing: {_first(missing)}")
    extra = ids[~ids.isin(expected)]
    if len(extra):
        raise ValueError(f"{name}: idx not in {sample_name}: {_first(extra)}")


def check_submission(submission: pd.DataFrame, sample: pd.DataFrame, class_column: str = "gt",
                     name: str = "submission.csv", sample_name: str = "sample_submission.csv") -> None:
    """Check a submission exactly as Kaggle would: columns idx and ``class_column``, every idx
    of the sample once and in the sample's order, integer classes 0..8.

    Raises:
        ValueError: naming the file and the offending idx.
    """
    if list(submission.columns) != ["idx", class_column]:
        raise ValueError(f"{name}: columns must be idx,{class_column}; got {','.join(map(str, submission.columns))}")
    ids = submission["idx"].astype(str).reset_index(drop=True)
    expected = sample["idx"].astype(str).reset_index(drop=True)
    _check_ids(ids, expected, name, sample_name)
    if not ids.equals(expected):
        raise ValueError(f"{name}: rows are not in the order of {sample_name}")
    gt = pd.to_numeric(submission[class_column], errors="coerce").reset_index(drop=True)
    bad = ~(gt.notna() & (gt == gt.round()) & gt.between(0, N_CLASSES - 1))
    if bad.any():
        raise ValueError(f"{name}: {class_column} must be an integer 0..{N_CLASSES - 1}; bad at idx "
                         f"{_first(ids[bad])}")


def build_submission(test: pd.DataFrame, sample: pd.DataFrame, class_column: str = "gt",
                     name: str = "test.csv", sample_name: str = "sample_submission.csv") -> pd.DataFrame:
    """Argmax class per test crop, in the sample's order, checked against the sample.

    Args:
        test: columns idx, p0..p8 (one row per test crop).
    Raises:
        ValueError: duplicate, missing or extra idx (named), or a failed final check.
    """
    ids = test["idx"].astype(str).reset_index(drop=True)
    order = sample["idx"].astype(str).reset_index(drop=True)
    _check_ids(ids, order, name, sample_name)
    predicted = pd.Series(test[list(PROB_COLUMNS)].to_numpy().argmax(axis=1), index=ids)
    submission = pd.DataFrame({"idx": order.to_numpy(), class_column: predicted.loc[order].to_numpy(int)})
    check_submission(submission, sample, class_column, "submission", sample_name)
    return submission
