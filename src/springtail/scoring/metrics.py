"""Scores: macro F1 over the nine classes, per-class F1, confusion and the Kaggle leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from springtail.common.classes import CODES, PROB_COLUMNS
from springtail.common.f1 import LABELS, macro_f1, per_class_f1
from springtail.scoring.bootstrap import f1_interval

USAGES = ("Public", "Private")  # Kaggle's leaderboard split, column Usage of solution.csv
LEVEL = 0.9  # coverage of the bootstrap interval beside every macro F1: key suffix _ci90


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


def interval(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """{"low", "high"}: the 90 % bootstrap interval of macro F1, resampling ``groups`` (N,)."""
    low, high = f1_interval(y_true, y_pred, groups, level=LEVEL)
    return {"low": low, "high": high}


def score_summary(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """val_macro_f1 and its interval val_macro_f1_ci90 (resampling ``groups``, (N,) source
    image per crop; None: each crop its own group), per_class_f1 and the crop count."""
    groups = np.arange(len(y_true)) if groups is None else groups
    return {"val_macro_f1": macro_f1(y_true, y_pred),
            "val_macro_f1_ci90": interval(y_true, y_pred, groups),
            "per_class_f1": per_class_dict(y_true, y_pred), "n_val": int(len(y_true))}


def usage_rows(solution: pd.DataFrame, usage: str) -> pd.DataFrame:
    """The rows of one leaderboard half (Usage ``usage``, case-insensitive) of solution.csv."""
    return solution[solution["Usage"].str.lower() == usage.lower()]


def leaderboard(solution: pd.DataFrame, predicted: pd.Series, class_column: str = "gt",
                name: str = "solution.csv") -> dict:
    """Public and private macro F1 of ``predicted`` (class per idx) against Kaggle's solution,
    each with its 90 % interval (``public_macro_f1_ci90``, ...): test crops are independent
    photos, so each is its own group.

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
        part = usage_rows(solution, usage)
        y, pred = part[class_column].to_numpy(int), predicted.loc[part["idx"]].to_numpy()
        scores[f"{usage.lower()}_macro_f1"] = macro_f1(y, pred)
        if len(part):
            scores[f"{usage.lower()}_macro_f1_ci90"] = interval(y, pred, np.arange(len(y)))
    return scores


def evaluate_predictions(val: pd.DataFrame, test: pd.DataFrame | None = None,
                         solution: pd.DataFrame | None = None, class_column: str = "gt",
                         solution_name: str = "solution.csv") -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Score a validation table (label, p0..p8) and, given Kaggle's solution, the test table.

    Returns:
        metrics (val_macro_f1, val_macro_f1_ci90, per_class_f1, n_val [, public_macro_f1,
        public_macro_f1_ci90, private_macro_f1, private_macro_f1_ci90]; the validation
        interval resamples source images, column image_id, or crops without it), the confusion
        rows (actual, predicted) and the per-class F1 table (class, f1).
    """
    y = val["label"].to_numpy(dtype=int)
    pred = val[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    groups = val["image_id"].astype(str).to_numpy() if "image_id" in val.columns else None
    metrics = score_summary(y, pred, groups)
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
