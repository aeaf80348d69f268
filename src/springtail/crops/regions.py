"""Pixel geometry of crops: boxes, context regions, overlaps, background squares.

All coordinates are (x0, y0, x1, y1) in full-resolution pixels of the image as
displayed; x1 and y1 are exclusive.
"""

from __future__ import annotations

import hashlib

import numpy as np

from springtail.common.yolo import Box

PixelBox = tuple[int, int, int, int]


def pixel_box(xc: float, yc: float, w: float, h: float, width: int, height: int) -> PixelBox:
    """A normalised YOLO box in integer pixels, clipped to the image (as Box.to_pixels).

    A box thinner than a pixel is widened to one pixel, so every box can be cut.
    """
    x0, y0, x1, y1 = Box((0, 0, 0, 0), "", xc, yc, w, h).to_pixels(width, height)
    x0, y0 = min(x0, width - 1), min(y0, height - 1)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def context_region(box: PixelBox, margin: float) -> tuple[float, float, float, float]:
    """``box`` grown by ``margin`` x its longer side on every side (may leave the image)."""
    x0, y0, x1, y1 = box
    pad = margin * max(x1 - x0, y1 - y0)
    return x0 - pad, y0 - pad, x1 + pad, y1 + pad


def iou(a: PixelBox, b: PixelBox) -> float:
    """Intersection over union of two boxes; 0 when they only touch."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the image id (not on run order)."""
    digest = hashlib.sha256(image_id.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def background_count(mean: float, rng: np.random.Generator) -> int:
    """floor(mean), plus one with probability frac(mean): ``mean`` on average, low variance."""
    whole = int(np.floor(mean))
    return whole + int(rng.random() < mean - whole)


def sample_background(boxes: list[PixelBox], sides: list[int], size: tuple[int, int], count: int,
                      iou_max: float, rng: np.random.Generator, tries: int = 100,
                      shrink: float = 0.8, patience: int = 20) -> list[PixelBox]:
    """Up to ``count`` background squares whose IoU with every box is <= ``iou_max``.

    Each square's side is drawn from ``sides``; after every ``patience`` failed
    placements it shrinks by ``shrink`` (specimen boxes are large, often a third
    of the image, so a box-sized free square does not always exist).

    Args:
        boxes: the image's annotated boxes (all of them, kept for training or not).
        sides: square sides to draw from, pixels (the image's crop regions' sides).
        size: the image's (width, height).
        count: squares wanted; fewer come back when no free place is found in ``tries``.
        iou_max: 0 means no overlap at all (touching is allowed).
        rng: the image's own generator (:func:`image_rng`).

    Returns:
        squares (x0, y0, x1, y1) inside the image, not overlapping each other either.
    """
    width, height = size
    chosen: list[PixelBox] = []
    for _ in range(count):
        for attempt in range(tries):
            drawn = sides[rng.integers(len(sides))] * shrink ** (attempt // patience)
            side = max(1, min(int(drawn), width, height))
            x0 = int(rng.integers(0, width - side + 1))
            y0 = int(rng.integers(0, height - side + 1))
            square = (x0, y0, x0 + side, y0 + side)
            if all(iou(square, b) <= iou_max for b in [*boxes, *chosen]):
                chosen.append(square)
                break
    return chosen
