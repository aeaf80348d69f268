"""Whole photos in, boxes with species and counts out: proposals scored, suppressed, and
the likely springtails named by the ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import BACKGROUND, CODES, N_CLASSES
from springtail.common.decode import draft_factor, load_rgb, render_square
from springtail.crops.regions import context_region
from springtail.detect.candidates import BOX, propose
from springtail.detect.scorer import BoxScorer, suppress
from springtail.identify.trained import TrainedPipeline

BOX_COLUMNS = ("photo", "x0", "y0", "x1", "y1", "score", "predicted", "probability", "accepted")


def candidate_crops(path: Path, boxes: list[tuple[int, int, int, int]], pipeline: TrainedPipeline) -> np.ndarray:
    """(n, S, S, 3) uint8 crops of the candidate boxes, cut as the crops stage cuts a box
    (context margin, square, mean-colour padding, ``crops.crop_px``)."""
    size = pipeline.crops.crop_px
    if not boxes:
        return np.zeros((0, size, size, 3), np.uint8)
    regions = [context_region(box, pipeline.crops.margin) for box in boxes]
    smallest = min(max(r[2] - r[0], r[3] - r[1]) for r in regions)
    factor = draft_factor(smallest, size) if pipeline.crops.draft else 1
    image, scale, full = load_rgb(path, factor)
    return np.stack([render_square(image, region, scale, full, size) for region in regions])


def detect_photo(path: Path, pipeline: TrainedPipeline, scorer: BoxScorer) -> tuple[pd.DataFrame, tuple[int, int]]:
    """The candidates of one photo left by the suppression, with their score (predicted IoU
    with a springtail), the ensemble's class and probability for those scored at least
    the scorer's ``min_score`` ("" and 0 for the others), and whether each is accepted as a springtail
    (scored so, and not named FOND); and the photo's (width, height).

    Raises:
        DataError: the photo cannot be read (names the file).
    """
    config = scorer.config
    proposals, size = propose(path, config, scorer.min_area)
    scores = scorer.score(proposals)
    kept = suppress(proposals, scores, config)
    table = proposals.iloc[kept][BOX].reset_index(drop=True)
    table.insert(0, "photo", path.name)
    table["score"] = np.round(scores[kept], 6)
    named = (table["score"] >= scorer.min_score).to_numpy()
    boxes = [tuple(b) for b in table.loc[named, BOX].to_numpy().tolist()]
    probs = pipeline.predict_proba(candidate_crops(path, boxes, pipeline)) if boxes else np.zeros((0, N_CLASSES))
    best = probs.argmax(axis=1)
    table["predicted"], table["probability"] = "", 0.0
    table.loc[named, "predicted"] = np.asarray(CODES)[best]
    table.loc[named, "probability"] = np.round(probs[np.arange(len(probs)), best], 6)
    table["accepted"] = False
    table.loc[named, "accepted"] = best != BACKGROUND
    return table[list(BOX_COLUMNS)], size


def counts_table(boxes: pd.DataFrame, photos: list[str]) -> pd.DataFrame:
    """Photo x species counts of the accepted boxes (every photo a row, every species a
    column, FOND left out), plus a ``total`` column."""
    accepted = boxes[boxes["accepted"]]
    species = [c for c in CODES if c != CODES[BACKGROUND]]
    counts = pd.crosstab(accepted["photo"], accepted["predicted"]).reindex(index=photos, columns=species,
                                                                          fill_value=0)
    counts = counts.fillna(0).astype(np.int64)
    counts["total"] = counts.sum(axis=1)
    return counts.rename_axis("photo").reset_index()
