"""The detector stage: the proposal scorer fitted on the training folds' whole photos."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from springtail.common.policy import SkipLog
from springtail.detect.annotated import fold_photos, training_box_areas
from springtail.detect.candidates import DetectConfig, min_box_area
from springtail.detect.scorer import BoxScorer, annotated_count, fit_scorer, summary


def train_detector(train_dir: Path, labels_path: Path, crops: Path, val_fold: int, config: DetectConfig,
                   log: SkipLog, workers: int = 0) -> tuple[BoxScorer, dict, dict]:
    """Fit the proposal scorer on the training folds' photos (the smallest springtail
    learned from their boxes); an unreadable photo goes to ``log``. Returns the scorer, a
    summary of what it was fitted on (proposals, their recall per setting, the threshold)
    and the wall-clock seconds (``workers``: proposal processes, 0 = one per CPU) (kept apart: they change on every run)."""
    labels = pd.read_csv(labels_path, dtype={"image_id": str})
    _, training = fold_photos(crops, val_fold)
    min_area = min_box_area(training_box_areas(labels, training), config)
    started = time.perf_counter()
    rows = labels[labels["image_id"].isin(training)].groupby("image_id")
    photos = [(str(train_dir / f"{photo}.jpg"), rows.get_group(photo) if photo in rows.groups else labels.iloc[:0])
              for photo in training]
    scorer, table = fit_scorer(photos, config, min_area, log, workers)
    fitted = summary(table, annotated_count(photos), config)
    fitted |= {"min_area": round(min_area, 6), "min_score_out_of_fold": scorer.chosen_score,
               "min_score": scorer.min_score, "skipped": log.to_dict()}
    return scorer, fitted, {"seconds": round(time.perf_counter() - started, 2)}
