"""The detect stage: the trained pipeline on the validation fold's whole photos, scored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from springtail.common.config import to_dict
from springtail.common.policy import DataError, SkipLog
from springtail.common.runtime import cpu_count
from springtail.detect.annotated import annotated_boxes, fold_photos
from springtail.detect.evaluate import detection_metrics
from springtail.detect.photos import counts_table, detect_photos
from springtail.detect.scorer import BoxScorer
from springtail.detect.totals import fit_calibration, sample_totals
from springtail.identify.trained import TrainedPipeline
from springtail.quantify import Calibration


@dataclass
class Detections:
    candidates: pd.DataFrame  # every candidate box of every photo (accepted or not)
    counts: pd.DataFrame  # photo x species counts of the accepted boxes
    plot: pd.DataFrame  # photo, species, annotated, predicted
    metrics: dict
    calibration: Calibration  # what species totals are corrected with (it goes into the model bundle)
    totals: pd.DataFrame  # the validation photos' species totals (calibrated on these very photos)
    timing: dict  # wall-clock seconds (kept apart: they change on every run)


def detect_validation(train_dir: Path, labels_path: Path, crops: Path, val_fold: int, val: pd.DataFrame,
                      pipeline: TrainedPipeline, scorer: BoxScorer, log: SkipLog, workers: int = 0) -> Detections:
    """Detect on the validation fold's photos and score against the boxes of labels.csv;
    fit the species totals' calibration there (with ``val``: the ensemble's out-of-fold
    validation table). An unreadable photo goes to ``log`` (the ``data.on_error`` policy)."""
    labels = pd.read_csv(labels_path, dtype={"image_id": str})
    photos, _ = fold_photos(crops, val_fold)
    candidates, truth, names = [], [], []
    started = time.perf_counter()
    paths = [train_dir / f"{photo}.jpg" for photo in photos]
    for (path, result), photo in zip(detect_photos(paths, pipeline, scorer, workers or cpu_count()),
                                     photos):
        if isinstance(result, DataError):
            log.handle(result)
            continue
        found, size = result
        candidates.append(found)
        truth.append(annotated_boxes(labels, photo, size))
        names.append(path.name)
    seconds = time.perf_counter() - started
    if not names:
        raise ValueError(f"{train_dir}: no photo of validation fold {val_fold} could be detected on "
                         f"(skipped: {log.to_dict()['by_reason']})")
    boxes, truth = pd.concat(candidates, ignore_index=True), pd.concat(truth, ignore_index=True)
    metrics, plot = detection_metrics(boxes, truth, scorer.config.iou)
    calibration = fit_calibration(val, boxes, truth, scorer.config.iou, scorer.config.seed)
    totals = sample_totals(boxes, calibration)
    annotated = plot.groupby("species")["annotated"].sum()
    metrics |= {"species_estimates": {row.species: {"annotated": int(annotated.get(row.species, 0)),
                                                    "estimate": float(row.estimate), "low": int(row.low),
                                                    "high": int(row.high), "boxes_to_check": int(row.boxes_to_check)}
                                      for row in totals.itertuples()},
                "skipped": log.to_dict(), "config": to_dict(scorer.config),
                "note": "validation photos: their crops also chose the ensemble's members and weights, "
                        "and calibrated the species estimates"}
    timing = {"seconds": round(seconds, 2), "seconds_per_photo": round(seconds / max(1, len(names)), 3)}
    return Detections(boxes, counts_table(boxes, names), plot, metrics, calibration, totals, timing)
