"""Cutting one image: plan its regions, decode it once, render every crop.

These functions run in worker processes; they return data (crops and index
rows) or the :class:`~springtail.common.policy.DataError` that the parent process
hands to the error policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from springtail.common.classes import BACKGROUND, PROB_COLUMNS
from springtail.common.decode import draft_factor, image_size, load_rgb, render_square
from springtail.common.policy import DataError
from springtail.crops.regions import (
    background_count,
    context_region,
    image_rng,
    pixel_box,
    sample_background,
)


@dataclass(frozen=True)
class CropsConfig:
    """The ``crops`` section of ``params.yaml``."""

    crop_px: int  # side of the square crop, pixels (not `size`: DVC's run-cache ignores that key)
    margin: float  # context around each box, fraction of its longer side
    background_per_image: float  # background crops per training image, on average
    background_iou_max: float  # largest IoU of a background square with any box
    n_folds: int  # validation folds, grouped by source image
    seed: int  # background sampling and fold assignment
    shard_size: int  # crops per .npy shard
    draft: bool  # decode JPEGs at 1/2..1/8 scale when every crop stays >= crop_px

    def __post_init__(self) -> None:
        if self.crop_px < 8 or self.shard_size < 1:
            raise ValueError("crops needs crop_px >= 8, shard_size >= 1")
        if self.margin < 0 or self.background_per_image < 0:
            raise ValueError("crops.margin and background_per_image must be >= 0")
        if not 0.0 <= self.background_iou_max < 1.0:
            raise ValueError("crops.background_iou_max must be in [0, 1)")


@dataclass
class ImageCrops:
    """What one training image gave: crops and their index rows, or an error."""

    image_id: str
    crops: np.ndarray  # (n, S, S, 3) uint8
    rows: list[dict] = field(default_factory=list)
    error: DataError | None = None
    scale: int = 0  # decoding reduction obtained; 0 = not decoded
    background_missing: int = 0  # background squares wanted but not placed


def _box_row(image_id: str, box: dict, px: tuple) -> dict:
    proba = {c: float(box[c]) for c in PROB_COLUMNS}
    return {"image_id": image_id, "line": int(box["line"]), "source": "box",
            "label": int(box["label"]), **proba, "x0": px[0], "y0": px[1], "x1": px[2], "y1": px[3]}


def _background_row(image_id: str, square: tuple) -> dict:
    proba = {c: float(k == BACKGROUND) for k, c in enumerate(PROB_COLUMNS)}
    return {"image_id": image_id, "line": 0, "source": "background", "label": BACKGROUND,
            **proba, "x0": square[0], "y0": square[1], "x1": square[2], "y1": square[3]}


def plan_image(image_id: str, boxes: list[dict], size: tuple[int, int], config: CropsConfig):
    """Regions to cut from one image and their index rows (no pixels read).

    Args:
        boxes: all of the image's rows of labels.csv (``keep`` marks training boxes).
        size: the image's (width, height) as displayed.

    Returns:
        (regions, rows, missing): full-resolution regions, one index row each, and
        how many background squares could not be placed.
    """
    pixels = [pixel_box(b["xc"], b["yc"], b["w"], b["h"], *size) for b in boxes]
    regions, rows = [], []
    for box, px in zip(boxes, pixels):
        if box["keep"]:
            regions.append(context_region(px, config.margin))
            rows.append(_box_row(image_id, box, px))
    rng = image_rng(config.seed, image_id)
    wanted = background_count(config.background_per_image, rng)
    sides = [round(max(r[2] - r[0], r[3] - r[1])) for r in
             (context_region(px, config.margin) for px in pixels)]
    squares = sample_background(pixels, sides, size, wanted, config.background_iou_max, rng)
    for square in squares:
        regions.append(tuple(float(v) for v in square))
        rows.append(_background_row(image_id, square))
    return regions, rows, wanted - len(squares)


def _scale_for(regions: list[tuple], config: CropsConfig) -> int:
    """The draft reduction: every region's square keeps >= size pixels."""
    if not config.draft:
        return 1
    return draft_factor(min(max(r[2] - r[0], r[3] - r[1]) for r in regions), config.crop_px)


def crop_image(job: tuple[str, str, list[dict]], config: CropsConfig) -> ImageCrops:
    """Worker: plan, decode once and cut every crop of one training image."""
    image_id, path, boxes = job
    empty = np.empty((0, config.crop_px, config.crop_px, 3), dtype=np.uint8)
    try:
        size = image_size(path)
        regions, rows, missing = plan_image(image_id, boxes, size, config)
        if not regions:
            return ImageCrops(image_id, empty, background_missing=missing)
        image, scale, _ = load_rgb(path, _scale_for(regions, config))
        crops = np.stack([render_square(image, r, scale, size, config.crop_px) for r in regions])
    except DataError as err:
        return ImageCrops(image_id, empty, error=err)
    return ImageCrops(image_id, crops, rows, scale=scale, background_missing=missing)


def crop_test_image(path: str, config: CropsConfig) -> tuple[np.ndarray | None, DataError | None]:
    """Worker: one whole test crop, padded to a square and resized."""
    try:
        width, height = image_size(path)
        factor = draft_factor(max(width, height), config.crop_px) if config.draft else 1
        image, scale, size = load_rgb(path, factor)
        return render_square(image, (0.0, 0.0, float(width), float(height)), scale, size,
                             config.crop_px), None
    except DataError as err:
        return None, err
