"""The annotated boxes of the training photos, and which photos the folds hold out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES
from springtail.detect.scorer import pixel_boxes


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
