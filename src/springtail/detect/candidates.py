"""Where the springtails may be in a whole microscope photo: dark objects on a bright, even field.

The photo is decoded at 1/8 scale (JPEG DCT scaling: a 3072 x 2048 photo costs a
384 x 256 decode) and compared with its own smoothed version (the slowly varying
illumination): how much darker each pixel is, in robust standard deviations (MAD).
Several proposal settings threshold that map (a loose one with a strong closing that
joins legs and antennae to the body, a strict one that keeps touching animals and
fibres apart, one that opens the mask to cut fibres off); each connected component
large enough is a candidate box, described by its size, shape, darkness and colour
(``FEATURES``). A learned scorer (``detect.scorer``) then tells which of the
overlapping proposals frame a springtail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from springtail.common.decode import load_rgb

PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in full-resolution pixels, x1/y1 exclusive
BOX = ["x0", "y0", "x1", "y1"]
FEATURES = ("width", "height", "area", "fill", "aspect", "dark_mean", "dark_max", "dark_std", "dark_q90",
            "strong", "red", "green", "blue", "saturation", "red_share", "blue_share", "noise")
STRONG = 4.0  # robust std: the share of a region this much darker than the field is a feature
PROPOSAL_KEYS = ("decode_factor", "smoothing", "thresholds", "closings", "openings")  # what propose() reads


@dataclass(frozen=True)
class DetectConfig:
    """The ``detect`` section of ``params.yaml``."""

    decode_factor: int  # JPEG decode reduction for finding candidates: 1, 2, 4 or 8
    smoothing: float  # sigma of the illumination estimate, pixels of the reduced decode
    thresholds: tuple[float, ...]  # one proposal setting each: darker than the field by this many robust std
    closings: tuple[int, ...]  # binary closing iterations of each setting (joins appendages to the body)
    openings: tuple[int, ...]  # binary opening iterations of each setting, after hole filling (cuts fibres)
    min_area_quantile: float  # drop candidates smaller than all but this fraction of the annotated boxes
    nms_iou: float  # of two proposals overlapping by this IoU or more, the better scored is kept
    max_candidates: int  # per photo, best scored first, after the suppression
    min_score: float | None  # a springtail: predicted IoU >= this (None: the detector's out-of-fold choice)
    iou: float  # a detection matches an annotated box at this intersection over union
    scorer_trees: int  # boosting rounds of the scorer (XGBoost regression of the IoU)
    scorer_depth: int  # depth of its trees
    scorer_learning_rate: float
    seed: int

    def __post_init__(self) -> None:
        if self.decode_factor not in (1, 2, 4, 8):
            raise ValueError(f"detect.decode_factor must be 1, 2, 4 or 8, got {self.decode_factor}")
        settings = (self.thresholds, self.closings, self.openings)
        if not self.thresholds or len(set(map(len, settings))) != 1:
            raise ValueError(f"detect.thresholds, closings and openings must be lists of one length "
                             f"(one proposal setting each), got {[list(s) for s in settings]}")
        if self.smoothing <= 0 or min(self.thresholds) <= 0 or min(self.closings) < 0 or min(self.openings) < 0:
            raise ValueError("detect needs smoothing > 0, thresholds > 0, closings >= 0 and openings >= 0")
        if self.max_candidates < 1 or self.scorer_trees < 1 or self.scorer_depth < 1:
            raise ValueError("detect needs max_candidates, scorer_trees, scorer_depth >= 1")
        for key in ("min_area_quantile", "nms_iou", "min_score", "iou", "scorer_learning_rate"):
            if getattr(self, key) is not None and not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"detect.{key} must lie in [0, 1], got {getattr(self, key)}")
        if self.iou == 0 or self.scorer_learning_rate == 0:
            raise ValueError("detect.iou and detect.scorer_learning_rate must be > 0")


def darkness(grey: np.ndarray, smoothing: float) -> tuple[np.ndarray, float]:
    """(h, w) how much darker than the smoothed field each pixel is, in robust standard
    deviations, and that deviation (grey levels: the photo's noise)."""
    darker = ndimage.gaussian_filter(grey, smoothing) - grey
    spread = 1.4826 * float(np.median(np.abs(darker - np.median(darker)))) + 1e-6
    return darker / spread, spread


FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes(mask)``, the same pixels 2.5x faster: the background
    components (4-connected, as there) that touch no border are holes."""
    labels, _ = ndimage.label(~mask, FOUR_CONNECTED)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return ~np.isin(labels, border[border > 0])


def closed(dark: np.ndarray, threshold: float, closing: int) -> np.ndarray:
    """(h, w) bool: dark enough, closed, hole-filled (what settings that differ only in
    their opening share)."""
    mask = dark > threshold
    if closing:
        mask = ndimage.binary_closing(mask, iterations=closing)
    return fill_holes(mask)


def foreground(dark: np.ndarray, threshold: float, closing: int, opening: int,
               shared: dict | None = None) -> np.ndarray:
    """(h, w) bool mask of one proposal setting: dark enough, closed, hole-filled, opened.
    ``shared`` (a dict for one photo) keeps the closed masks for the settings that follow."""
    shared = {} if shared is None else shared
    if (threshold, closing) not in shared:
        shared[threshold, closing] = closed(dark, threshold, closing)
    mask = shared[threshold, closing]
    return ndimage.binary_opening(mask, iterations=opening) if opening else mask


def min_box_area(areas: np.ndarray, config: DetectConfig) -> float:
    """The smallest candidate kept, as a fraction of the photo: the ``min_area_quantile``
    quantile of the annotated training boxes' areas (``areas``: w * h of YOLO boxes)."""
    if not len(areas):
        raise ValueError("no annotated box to learn the smallest springtail from")
    return float(np.quantile(np.asarray(areas, dtype=float), config.min_area_quantile))


def _describe(rgb: np.ndarray, dark: np.ndarray, region: np.ndarray, spread: float) -> list[float]:
    """FEATURES of one component: ``region`` (h, w) bool inside its bounding box, whose
    pixels of ``rgb`` (h, w, 3) and ``dark`` (h, w) are given."""
    h, w = region.shape
    values, colour = dark[region], rgb[region]
    mean = colour.mean(axis=0)
    return [w, h, float(region.sum()), float(region.mean()), max(w, h) / min(w, h),
            float(values.mean()), float(values.max()), float(values.std()), float(np.quantile(values, 0.9)),
            float((values > STRONG).mean()), *map(float, mean),
            float((colour.max(axis=1) - colour.min(axis=1)).mean()),
            float(mean[0] / mean.sum()), float(mean[2] / mean.sum()), spread]


def propose(path: str | Path, config: DetectConfig, min_area: float) -> tuple[pd.DataFrame, tuple[int, int]]:
    """Every candidate of one photo under every proposal setting: a table of x0, y0, x1,
    y1 (full-resolution pixels), ``setting`` (its index) and the FEATURES; and the photo's
    (width, height). A candidate covers at least ``min_area`` of the photo.

    Raises:
        DataError: the file is missing, not an image or truncated (names the file).
    """
    image, scale, (width, height) = load_rgb(path, config.decode_factor)
    if scale < config.decode_factor:  # not a JPEG (no DCT scaling): reduce it to the same scale
        image = image.reduce(config.decode_factor // scale)
    rgb = np.asarray(image, dtype=np.float32)  # (h, w, 3)
    dark, spread = darkness(rgb.mean(axis=2), config.smoothing)
    sx, sy = width / rgb.shape[1], height / rgb.shape[0]
    rows, shared = [], {}
    for setting, options in enumerate(zip(config.thresholds, config.closings, config.openings)):
        labels, _ = ndimage.label(foreground(dark, *options, shared=shared))
        for k, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
            if ys is None or (xs.stop - xs.start) * (ys.stop - ys.start) < min_area * dark.size:
                continue
            box = (int(xs.start * sx), int(ys.start * sy),
                   min(width, int(np.ceil(xs.stop * sx))), min(height, int(np.ceil(ys.stop * sy))))
            rows.append([*box, setting, *_describe(rgb[ys, xs], dark[ys, xs], labels[ys, xs] == k, spread)])
    table = pd.DataFrame(rows, columns=[*BOX, "setting", *FEATURES])
    return table.astype({c: np.int64 for c in [*BOX, "setting"]}), (width, height)
