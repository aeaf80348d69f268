"""Files in, a table of species out (the body of ``springtail-identify``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, N_CLASSES
from springtail.crops.cutting import crop_test_image
from springtail.identify.trained import TrainedPipeline


def identify_files(pipeline: TrainedPipeline, files: list[Path], unsure_below: float) -> pd.DataFrame:
    """One row per file: predicted class, its probability, unsure flag, p_<CODE> per class,
    and an error message (empty when the file was identified).

    A file that cannot be read (not an image, truncated) gets its error, naming the file,
    and no prediction; the other files are identified all the same.
    """
    crops, errors = [], []
    for path in files:
        crop, error = crop_test_image(str(path), pipeline.crops)
        errors.append("" if error is None else str(error))
        if error is None:
            crops.append(crop)
    ok = np.array([e == "" for e in errors], dtype=bool)
    size = pipeline.crops.crop_px
    probs = pipeline.predict_proba(np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8))
    full = np.full((len(files), N_CLASSES), np.nan)
    full[ok] = probs
    best = np.nanargmax(np.where(ok[:, None], full, 0), axis=1)
    probability = full[np.arange(len(files)), best]
    table = pd.DataFrame({
        "file": [p.name for p in files],
        "predicted": np.where(ok, np.asarray(CODES)[best], ""),
        "probability": probability,
        "unsure": ok & (probability < unsure_below),
        **{f"p_{code}": full[:, k] for k, code in enumerate(CODES)},
        "error": errors,
    })
    return table
