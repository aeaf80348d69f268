"""The submission file: argmax class per test crop, checked as Kaggle checks it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from springtail.common.classes import N_CLASSES, PROB_COLUMNS


@dataclass(frozen=True)
class SubmissionConfig:
    """The ``submission`` section of params.yaml."""

    class_column: str  # Kaggle's label column


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
