"""Detections against the annotations: recall, precision and AP at an IoU, and count errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from springtail.common.classes import BACKGROUND, CODES
from springtail.detect.scorer import pairwise_iou

SPECIES = [c for c in CODES if c != CODES[BACKGROUND]]


def matched_truth(detected: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> np.ndarray:
    """(n,) the row of ``truth`` each detection (rows of one photo, any order) takes, -1 for
    none, VOC style: in decreasing score, a detection takes the annotated box it overlaps
    most if that IoU >= ``threshold`` and no better-scored detection took it."""
    taken_by = np.full(len(detected), -1)
    if not len(detected) or not len(truth):
        return taken_by
    overlaps = pairwise_iou(detected, truth)
    taken = np.zeros(len(truth), dtype=bool)
    for i in np.argsort(-detected["score"].to_numpy(), kind="stable"):
        best = int(np.argmax(overlaps[i]))
        if overlaps[i, best] >= threshold and not taken[best]:
            taken[best], taken_by[i] = True, best
    return taken_by


def match(detected: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> np.ndarray:
    """(n,) bool: which detections are true positives (:func:`matched_truth`; the others are
    false positives). Species are not compared here: the counts per species score the naming."""
    return matched_truth(detected, truth, threshold) >= 0


def accepted_matches(candidates: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> pd.Series:
    """bool per accepted candidate (indexed as ``candidates``): it found an annotated box of
    its photo (:func:`match` among the accepted boxes only)."""
    accepted = candidates[candidates["accepted"].astype(bool)]
    parts = [pd.Series(match(rows, truth[truth["photo"] == photo], threshold), index=rows.index)
             for photo, rows in accepted.groupby("photo", sort=False)]
    return pd.concat(parts) if parts else pd.Series(dtype=bool)


def average_precision(scores: np.ndarray, hits: np.ndarray, n_truth: int) -> float | None:
    """Area under the precision-recall curve (all points, precision made monotone), VOC style."""
    if n_truth == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / n_truth
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * precision).sum())


def detection_metrics(candidates: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> tuple[dict, pd.DataFrame]:
    """Scores of the detections of every photo.

    Args:
        candidates: every candidate box (photo, x0..y1, score, predicted, accepted).
        truth: every annotated box (photo, x0..y1, species code or "" when the experts
            reached no consensus).
    Returns:
        metrics (recall, precision, AP at ``threshold``, count errors) and a table
        photo, species, annotated, predicted for a plot of the counts.
    """
    photos = sorted(set(truth["photo"]) | set(candidates["photo"]))
    if not photos:
        raise ValueError("no photo to score: every one was skipped, or the validation fold is empty")
    hits_all = [pd.Series(match(cand, truth[truth["photo"] == photo], threshold), index=cand.index)
                for photo, cand in ((p, candidates[candidates["photo"] == p]) for p in photos)]
    hit_all = pd.concat(hits_all).reindex(candidates.index).to_numpy(dtype=bool)
    hit_acc = accepted_matches(candidates, truth, threshold).to_numpy(dtype=bool)
    n_truth, n_accepted = len(truth), int(candidates["accepted"].sum())
    counts = _counts(candidates[candidates["accepted"]], truth, photos)
    per_photo = pd.DataFrame({  # every annotated box counts, with or without a consensus species
        "annotated": truth.groupby("photo").size().reindex(photos, fill_value=0),
        "predicted": candidates[candidates["accepted"]].groupby("photo").size().reindex(photos, fill_value=0)})
    totals = counts.groupby("species")[["annotated", "predicted"]].sum()
    metrics = {
        "photos": len(photos), "annotated_boxes": n_truth, "candidates": int(len(candidates)),
        "detections": n_accepted, "iou": threshold,
        "recall": round(float(hit_acc.sum() / n_truth), 5) if n_truth else None,
        "precision": round(float(hit_acc.sum() / n_accepted), 5) if n_accepted else None,
        "candidate_recall": round(float(hit_all.sum() / n_truth), 5) if n_truth else None,
        "average_precision": _rounded(average_precision(candidates["score"].to_numpy(), hit_all, n_truth)),
        "count_mae_per_photo": round(float((per_photo["predicted"] - per_photo["annotated"]).abs().mean()), 5),
        "species_totals": {s: {"annotated": int(totals.loc[s, "annotated"]), "predicted": int(totals.loc[s, "predicted"]),
                               "relative_error": round(float((totals.loc[s, "predicted"] - totals.loc[s, "annotated"])
                                                             / totals.loc[s, "annotated"]), 5)
                               if totals.loc[s, "annotated"] else None}
                           for s in SPECIES},
    }
    return metrics, counts


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def _counts(accepted: pd.DataFrame, truth: pd.DataFrame, photos: list[str]) -> pd.DataFrame:
    """photo, species, annotated, predicted: one row per photo and species (zeros included)."""
    grid = pd.MultiIndex.from_product([photos, SPECIES], names=["photo", "species"])
    annotated = truth[truth["species"].isin(SPECIES)].groupby(["photo", "species"]).size()
    predicted = accepted.groupby(["photo", "predicted"]).size().rename_axis(["photo", "species"])
    return pd.DataFrame({"annotated": annotated.reindex(grid, fill_value=0),
                         "predicted": predicted.reindex(grid, fill_value=0)}).astype(np.int64).reset_index()
