"""The detector and detect stages: the proposal scorer fitted on the training folds' whole
photos; then the trained pipeline on the validation fold's photos, scored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES
from springtail.common.config import to_dict
from springtail.common.policy import DataError, SkipLog
from springtail.detect.candidates import DetectConfig, min_box_area
from springtail.detect.evaluate import detection_metrics
from springtail.detect.photos import counts_table, detect_photo
from springtail.detect.scorer import BoxScorer, fit_scorer, pixel_boxes, summary
from springtail.identify.trained import TrainedPipeline


def annotated_boxes(labels: pd.DataFrame, photo: str, size: tuple[int, int]) -> pd.DataFrame:
    """The experts' boxes of one photo in pixels, with the consensus species ("" for none)."""
    rows = labels[labels["image_id"] == photo]
    table = pixel_boxes(rows, size)
    table.insert(0, "photo", f"{photo}.jpg")
    table["species"] = [CODES[k] if k >= 0 else "" for k in rows["label"]]
    return table


def fold_photos(crops: Path, val_fold: int) -> tuple[list[str], list[str]]:
    """Image ids of the validation fold and of the training folds, from a crop store's index."""
    index = pd.read_csv(Path(crops) / "train_index.csv", dtype={"image_id": str})
    val = index["fold"] == val_fold
    return sorted(set(index.loc[val, "image_id"])), sorted(set(index.loc[~val, "image_id"]))


def training_box_areas(labels: pd.DataFrame, photos: list[str]) -> np.ndarray:
    """w * h (fractions of the photo) of the annotated boxes of ``photos``."""
    rows = labels[labels["image_id"].isin(photos)]
    return (rows["w"] * rows["h"]).to_numpy(dtype=float)


def train_detector(train_dir: Path, labels_path: Path, crops: Path, val_fold: int, config: DetectConfig,
                   log: SkipLog) -> tuple[BoxScorer, dict]:
    """Fit the proposal scorer on the training folds' photos (the smallest springtail
    learned from their boxes); an unreadable photo goes to ``log``. Returns the scorer and
    a summary of what it was fitted on (proposals, their recall per setting, seconds)."""
    labels = pd.read_csv(labels_path, dtype={"image_id": str})
    _, training = fold_photos(crops, val_fold)
    min_area = min_box_area(training_box_areas(labels, training), config)
    started = time.perf_counter()
    rows = labels[labels["image_id"].isin(training)].groupby("image_id")
    photos = [(str(train_dir / f"{photo}.jpg"), rows.get_group(photo) if photo in rows.groups else labels.iloc[:0])
              for photo in training]
    scorer, table = fit_scorer(photos, config, min_area, log)
    fitted = summary(table, int(labels["image_id"].isin(training).sum()), config)
    return scorer, fitted | {"min_area": round(min_area, 6), "min_score_out_of_fold": scorer.chosen_score,
                             "min_score": scorer.min_score, "skipped": log.to_dict(),
                             "seconds": round(time.perf_counter() - started, 2)}


@dataclass
class Detections:
    candidates: pd.DataFrame  # every candidate box of every photo (accepted or not)
    counts: pd.DataFrame  # photo x species counts of the accepted boxes
    plot: pd.DataFrame  # photo, species, annotated, predicted
    metrics: dict
    timing: dict  # wall-clock seconds (kept apart: they change on every run)


def detect_validation(train_dir: Path, labels_path: Path, crops: Path, val_fold: int,
                      pipeline: TrainedPipeline, scorer: BoxScorer, log: SkipLog) -> Detections:
    """Detect on the validation fold's photos and score against the boxes of labels.csv.
    An unreadable photo goes to ``log`` (the ``data.on_error`` policy)."""
    labels = pd.read_csv(labels_path, dtype={"image_id": str})
    photos, _ = fold_photos(crops, val_fold)
    candidates, truth, names = [], [], []
    started = time.perf_counter()
    for photo in photos:
        path = train_dir / f"{photo}.jpg"
        try:
            found, size = detect_photo(path, pipeline, scorer)
        except DataError as err:
            log.handle(err)
            continue
        candidates.append(found)
        truth.append(annotated_boxes(labels, photo, size))
        names.append(path.name)
    seconds = time.perf_counter() - started
    if not names:
        raise ValueError(f"{train_dir}: no photo of validation fold {val_fold} could be detected on "
                         f"(skipped: {log.to_dict()['by_reason']})")
    boxes = pd.concat(candidates, ignore_index=True)
    metrics, plot = detection_metrics(boxes, pd.concat(truth, ignore_index=True), scorer.config.iou)
    metrics |= {"skipped": log.to_dict(), "config": to_dict(scorer.config),
                "note": "validation photos: their crops also chose the ensemble's members and weights"}
    timing = {"seconds": round(seconds, 2), "seconds_per_photo": round(seconds / max(1, len(names)), 3)}
    return Detections(boxes, counts_table(boxes, names), plot, metrics, timing)
