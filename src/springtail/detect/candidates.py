"""Where the springtails are in a whole microscope photo: dark objects on a bright, even field.

The photo is decoded at 1/8 scale (JPEG DCT scaling: a 3072 x 2048 photo costs a
384 x 256 decode), turned grey, and compared with its own smoothed version (the
slowly varying illumination); pixels darker than it by more than ``threshold`` robust
standard deviations (MAD) are foreground. Closing and hole filling join a body and
its appendages; each connected component large enough is a candidate box. The
ensemble then names each candidate or rejects it as background (FOND), which is how
debris, bubbles and stains are told from animals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from springtail.common.decode import load_rgb

PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in full-resolution pixels, x1/y1 exclusive


@dataclass(frozen=True)
class DetectConfig:
    """The ``detect`` section of ``params.yaml``."""

    decode_factor: int  # JPEG decode reduction for finding candidates: 1, 2, 4 or 8
    smoothing: float  # sigma of the illumination estimate, pixels of the reduced decode
    threshold: float  # darker than the illumination by this many robust standard deviations
    closing: int  # binary closing iterations (joins legs and antennae to the body)
    min_area_quantile: float  # drop candidates smaller than all but this fraction of the annotated boxes
    max_candidates: int  # the largest ones are kept when more are found
    min_probability: float  # a springtail: the ensemble's class is not FOND and has this probability
    iou: float  # a detection matches an annotated box at this intersection over union

    def __post_init__(self) -> None:
        if self.decode_factor not in (1, 2, 4, 8):
            raise ValueError(f"detect.decode_factor must be 1, 2, 4 or 8, got {self.decode_factor}")
        if self.smoothing <= 0 or self.threshold <= 0 or self.closing < 0 or self.max_candidates < 1:
            raise ValueError("detect needs smoothing > 0, threshold > 0, closing >= 0, max_candidates >= 1")
        if not 0 <= self.min_area_quantile < 1 or not 0 <= self.min_probability <= 1 or not 0 < self.iou <= 1:
            raise ValueError("detect needs min_area_quantile in [0, 1), min_probability in [0, 1], iou in (0, 1]")


def foreground(grey: np.ndarray, config: DetectConfig) -> np.ndarray:
    """(h, w) bool mask of what is darker than the smoothed field, closed and hole-filled."""
    darker = ndimage.gaussian_filter(grey, config.smoothing) - grey
    spread = 1.4826 * np.median(np.abs(darker - np.median(darker))) + 1e-6  # robust std
    mask = darker > config.threshold * spread
    if config.closing:
        mask = ndimage.binary_closing(mask, iterations=config.closing)
    return ndimage.binary_fill_holes(mask)


def min_box_area(areas: np.ndarray, config: DetectConfig) -> float:
    """The smallest candidate kept, as a fraction of the photo: the ``min_area_quantile``
    quantile of the annotated training boxes' areas (``areas``: w * h of YOLO boxes)."""
    if not len(areas):
        raise ValueError("no annotated box to learn the smallest springtail from")
    return float(np.quantile(np.asarray(areas, dtype=float), config.min_area_quantile))


def candidate_boxes(path: str | Path, config: DetectConfig, min_area: float) -> tuple[list[PixelBox], tuple[int, int]]:
    """Candidate boxes of one photo (each at least ``min_area`` of it), largest first, and
    its (width, height).

    Raises:
        DataError: the file is missing, not an image or truncated (names the file).
    """
    image, scale, (width, height) = load_rgb(path, config.decode_factor)
    if scale < config.decode_factor:  # not a JPEG (no DCT scaling): reduce it to the same scale
        image = image.reduce(config.decode_factor // scale)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    labels, _ = ndimage.label(foreground(grey, config))
    sx, sy = width / grey.shape[1], height / grey.shape[0]
    boxes = []
    for rows, cols in ndimage.find_objects(labels):
        if (cols.stop - cols.start) * (rows.stop - rows.start) < min_area * grey.size:
            continue
        boxes.append((int(cols.start * sx), int(rows.start * sy),
                      min(width, int(np.ceil(cols.stop * sx))), min(height, int(np.ceil(rows.stop * sy)))))
    boxes.sort(key=lambda b: ((b[2] - b[0]) * (b[3] - b[1]), b), reverse=True)
    return boxes[:config.max_candidates], (width, height)
