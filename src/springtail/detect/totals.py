"""Species totals of a sample (a folder of photos): the accepted boxes' class probabilities
through ``springtail.quantify``, corrected with the calibration fitted on the validation
photos (the ensemble's out-of-fold confusion and the detector's misses and false boxes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from springtail.common.classes import PROB_COLUMNS
from springtail.detect.evaluate import accepted_matches
from springtail.detect.photos import PROB_CODES
from springtail.quantify import Calibration, species_totals

CHECK_BELOW = 0.5  # a box whose top probability is lower is one to check by hand


def fit_calibration(val: pd.DataFrame, candidates: pd.DataFrame, truth: pd.DataFrame, threshold: float,
                    seed: int) -> Calibration:
    """From the ensemble's out-of-fold validation table (label, p0..p8) and the detect
    stage's candidates and annotated boxes on the validation photos (matched at IoU
    ``threshold``, as the detection metrics match them)."""
    hits = accepted_matches(candidates, truth, threshold)
    probs = candidates.loc[hits.index, list(PROB_CODES)].to_numpy(dtype=float)
    boxes = pd.DataFrame(probs, columns=list(PROB_COLUMNS)).assign(matched=hits.to_numpy(dtype=bool))
    return Calibration.fit(val, boxes=boxes, n_annotated=len(truth), seed=seed)


def sample_totals(boxes: pd.DataFrame, calibration: Calibration, check_below: float = CHECK_BELOW) -> pd.DataFrame:
    """species, estimate, low, high (the 90 % interval), cc (the plain count),
    boxes_to_check: over the accepted boxes of ``boxes`` (every photo of the sample)."""
    accepted = boxes[boxes["accepted"].astype(bool)] if "accepted" in boxes else boxes
    probs = accepted[list(PROB_CODES)].to_numpy(dtype=float).reshape(-1, len(PROB_CODES))
    table = species_totals(probs, accepted["photo"].to_numpy(), calibration, check_below=check_below)
    return table.assign(estimate=np.round(table["estimate"], 2))
