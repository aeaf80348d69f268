"""Which crops the report shows: tables in, chosen rows out (no pictures, no I/O).

Ties are broken by a seeded permutation, so the same inputs and seed always show
the same crops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from springtail.common.classes import PROB_COLUMNS
from springtail.labels.annotations import VOTE_COLUMNS


def _shuffled(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    order = np.random.default_rng(seed).permutation(len(table))
    return table.iloc[order].reset_index(drop=True)


def _probs(table: pd.DataFrame) -> np.ndarray:
    return table[list(PROB_COLUMNS)].to_numpy(dtype=float)  # (N, 9)


def entropy(probs: np.ndarray) -> np.ndarray:
    """(N,) entropy of each row of (N, K) probabilities, scaled to [0, 1] by log K."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(probs.shape[1])


def disputed_boxes(review: pd.DataFrame, train_index: pd.DataFrame, n: int) -> pd.DataFrame:
    """The top ``n`` of the review list (disputed boxes, the likeliest mislabelled first).

    Args:
        review: review.csv (image_id, line, v1..v4, agreement, consensus, confidence, model,
            model_probability, combined, gain, crop_id), already ranked.
        train_index: the crops' train_index.csv (crop_id, fold).
    Returns:
        The review columns plus the crop's fold, at most ``n`` rows with a crop, in the
        list's order.
    """
    folds = train_index[["crop_id", "fold"]]
    cut = review[review["crop_id"] >= 0]  # boxes the consensus did not keep have no crop to show
    return cut.head(n).merge(folds, on="crop_id", how="left", validate="1:1").reset_index(drop=True)


def confident_errors(val: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """The ``n`` validation crops the ensemble gets wrong with the highest probability.

    Args:
        val: the ensemble's val.csv (crop_id, label, p0..p8).
    Returns:
        crop_id, label, pred, p_pred (its probability), p_label (the consensus class's).
    """
    probs = _probs(val)
    label = val["label"].to_numpy(dtype=int)
    table = pd.DataFrame({"crop_id": val["crop_id"].to_numpy(dtype=int), "label": label,
                          "pred": probs.argmax(axis=1), "p_pred": probs.max(axis=1),
                          "p_label": probs[np.arange(len(val)), label]})
    wrong = _shuffled(table[table["pred"] != table["label"]], seed)
    return wrong.sort_values("p_pred", ascending=False, kind="stable").head(n).reset_index(drop=True)


def uncertain_test(test: pd.DataFrame, n_per_class: int, by: str = "entropy", seed: int = 0) -> pd.DataFrame:
    """Per predicted class, the ``n_per_class`` test crops the ensemble is least sure of.

    Args:
        test: the ensemble's test.csv (idx, p0..p8).
        by: "entropy" (highest first) or "max_prob" (lowest first).
    Returns:
        idx, pred, p_pred, second, p_second, uncertainty (the ranking value), sorted by
        predicted class then rank.

    Raises:
        ValueError: an unknown ``by``.
    """
    if by not in ("entropy", "max_prob"):
        raise ValueError(f"report.uncertainty must be entropy or max_prob, got {by!r}")
    probs = _probs(test)
    top2 = np.argsort(-probs, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(test))
    score = entropy(probs) if by == "entropy" else 1 - probs.max(axis=1)
    table = pd.DataFrame({"idx": test["idx"].astype(str).to_numpy(), "pred": top2[:, 0],
                          "p_pred": probs[rows, top2[:, 0]], "second": top2[:, 1],
                          "p_second": probs[rows, top2[:, 1]], "uncertainty": score})
    table = _shuffled(table, seed).sort_values(["pred", "uncertainty"], ascending=[True, False],
                                               kind="stable")
    return table.groupby("pred", sort=True).head(n_per_class).reset_index(drop=True)


def cam_picks(val: pd.DataFrame, n_per_class: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``n_per_class`` validation crops of each consensus class, chosen at random.

    Returns:
        crop_id, label, sorted by class.
    """
    table = _shuffled(val[["crop_id", "label"]].astype(int), seed)
    picked = table.sort_values("label", kind="stable").groupby("label").head(n_per_class)
    return picked.reset_index(drop=True)


def votes_by_crop(labels: pd.DataFrame, train_index: pd.DataFrame) -> pd.DataFrame:
    """Votes, consensus confidence and agreement of each box crop, indexed by crop_id
    (background crops have no row)."""
    boxes = train_index.loc[train_index["source"] == "box", ["crop_id", "image_id", "line"]]
    merged = boxes.merge(labels[["image_id", "line", *VOTE_COLUMNS, "confidence", "agreement"]],
                         on=["image_id", "line"], how="inner", validate="1:1")
    return merged.set_index("crop_id")

