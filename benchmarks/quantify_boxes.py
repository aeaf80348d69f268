"""The detector's accepted boxes on the validation photos, with all nine class probabilities.

    .venv/bin/python -m benchmarks.quantify_boxes [--run .] [--out benchmarks/results/quantify/boxes-default.csv]

``data/processed/detections/boxes.csv`` keeps only each box's top class and probability;
the species-totals benchmark (``benchmarks.quantify``) needs the ensemble's nine
probabilities of every accepted box and which annotated box it found. This runs the trained
pipeline of the run under ``--run`` (its params.yaml, models/, data/processed/) on its
validation photos exactly as the ``detect`` stage does (one worker process), cuts the
accepted boxes again and names them, and writes one row per accepted box: ``image_id``,
``line`` (the annotated box it matches at the detector's IoU, VOC style as
``detect.evaluate.match``; -1 for a false box), ``p0``..``p8``. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from springtail.common.classes import PROB_COLUMNS  # noqa: E402
from springtail.common.io import write_csv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def matched_lines(detected: pd.DataFrame, truth: pd.DataFrame, rows: pd.DataFrame, threshold: float) -> np.ndarray:
    """(n,) the annotation ``line`` each detection of one photo takes (decreasing score, the
    most overlapped box not yet taken, IoU >= ``threshold``), -1 for none."""
    from springtail.detect.scorer import pairwise_iou

    lines = np.full(len(detected), -1)
    if not len(detected) or not len(truth):
        return lines
    overlaps = pairwise_iou(detected, truth)
    taken = np.zeros(len(truth), dtype=bool)
    for i in np.argsort(-detected["score"].to_numpy(), kind="stable"):
        best = int(np.argmax(overlaps[i]))
        if overlaps[i, best] >= threshold and not taken[best]:
            taken[best] = True
            lines[i] = int(rows["line"].iloc[best])
    return lines


def collect(run: Path) -> pd.DataFrame:
    """image_id, line, p0..p8 of every accepted box on the validation photos of ``run``."""
    from springtail.common.config import load_section
    from springtail.common.runtime import setup_torch
    from springtail.detect.annotated import annotated_boxes, fold_photos
    from springtail.detect.candidates import BOX, DetectConfig
    from springtail.detect.photos import candidate_crops, detect_photos
    from springtail.detect.scorer import BoxScorer
    from springtail.identify.trained import TrainedPipeline
    from springtail.models.training import ValidationFold

    params = run / "params.yaml"
    config = load_section(DetectConfig, "detect", params)
    fold = load_section(ValidationFold, "train", params, keys=("val_fold",))
    raw = load_section_raw_dir(params, run)
    setup_torch()
    pipeline = TrainedPipeline.load(run, params)
    scorer = BoxScorer.load(run / "models/detector", config)
    labels = pd.read_csv(run / "data/interim/labels.csv", dtype={"image_id": str})
    photos, _ = fold_photos(run / "data/processed/crops", fold.val_fold)
    paths = [raw / "train" / f"{photo}.jpg" for photo in photos]
    tables = []
    for (path, result), photo in zip(detect_photos(paths, pipeline, scorer, workers=1), photos):
        if not isinstance(result, tuple):
            raise result
        found, size = result
        accepted = found[found["accepted"]].reset_index(drop=True)
        rows = labels[labels["image_id"] == photo]
        lines = matched_lines(accepted, annotated_boxes(labels, photo, size), rows, config.iou)
        boxes = [tuple(b) for b in accepted[BOX].to_numpy().tolist()]
        probs = pipeline.predict_proba(candidate_crops(path, boxes, pipeline)) if boxes else np.zeros((0, 9))
        table = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
        table.insert(0, "line", lines)
        table.insert(0, "image_id", photo)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def load_section_raw_dir(params: Path, run: Path) -> Path:
    """The run's raw data folder (``data.raw_dir``, relative to the run)."""
    from springtail.common.config import load_params

    return run / load_params(params)["data"]["raw_dir"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO, help="a checkout with the pipeline's outputs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/quantify/boxes-default.csv")
    args = parser.parse_args(argv)
    table = collect(args.run.resolve())
    write_csv(args.out, table)
    print(f"{len(table)} accepted boxes, {int((table['line'] >= 0).sum())} matched -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
