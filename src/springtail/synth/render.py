"""Render one training image or one test crop from its plan item.

Scenes are composed on a render canvas at most ``MAX_RENDER_WIDTH`` pixels
wide and upsampled once to the output size: microscope pictures are soft at
full resolution anyway, and this keeps a 3072 x 2048 image well under a
quarter of a second.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from springtail.common.classes import BACKGROUND
from springtail.synth import scene
from springtail.synth.draw import Drawn, draw_specimen
from springtail.synth.layout import TEST_STREAM, TRAIN_STREAM, TestItem, TrainItem, stream
from springtail.synth.morphology import sample_habitus

MAX_RENDER_WIDTH = 1536
BODY_LENGTH = 0.46      # typical body length, fraction of the frame height
BORDER_CUT = 0.02       # chance that a specimen is placed across the frame border
TOUCHING = 0.2          # chance that a further specimen is placed against the previous one

Box = tuple[float, float, float, float]  # normalised (xc, yc, w, h)


def render_size(width: int, height: int) -> tuple[int, int]:
    """The render canvas for an output of ``width`` x ``height``."""
    scale = min(1.0, MAX_RENDER_WIDTH / width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _debris_clump(rng: np.random.Generator, unit: float, size: float) -> Drawn:
    """A cluster of debris that an expert boxed as if it were a specimen (true class FOND)."""
    side = int(size)
    patch = Image.new("RGB", (side, side), (255, 255, 255))
    kinds = ["particle"] * int(rng.integers(4, 10)) + ["fibre"] * int(rng.integers(0, 3))
    for kind in kinds:
        piece, mode = scene.debris_patch(kind, rng, unit)
        x, y = rng.normal(side / 2, side / 8, 2) - np.array(piece.size) / 2
        scene.stamp(patch, piece, int(x), int(y), mode)
    ink = Image.eval(patch.convert("L"), lambda v: 255 if v < 245 else 0).getbbox()
    return Drawn(patch, (side / 2, side / 2), ink or (0, 0, side, side))


def _specimen(cls: int, rng: np.random.Generator, length: float, look: scene.Look,
              unit: float) -> Drawn:
    """One drawn specimen of class ``cls`` (or a debris clump for FOND)."""
    if cls == BACKGROUND:
        return _debris_clump(rng, unit, 0.6 * length)
    blur = look.focus * unit * rng.uniform(0.6, 1.4)
    return draw_specimen(sample_habitus(cls, rng), length, rng.uniform(0, 2 * math.pi), blur, rng)


def _place(drawn: Drawn, canvas: tuple[int, int], placed: list[tuple[int, int, int, int]],
           rng: np.random.Generator, centre: bool = False) -> tuple[int, int]:
    """Top-left position of a patch: near the centre, beside or against earlier ones."""
    w, h = canvas
    x0, y0, x1, y1 = drawn.bbox
    bw, bh = x1 - x0, y1 - y0
    if not placed or centre:
        if rng.random() < BORDER_CUT and not centre:
            cx, cy = rng.choice([0.0, 1.0]) * w + rng.normal(0, 0.1) * bw, rng.uniform(0.2, 0.8) * h
        else:
            cx = np.clip(rng.normal(0.47, 0.16), 0.15, 0.85) * w
            cy = np.clip(rng.normal(0.43, 0.11), 0.2, 0.8) * h
        return int(cx - bw / 2 - x0), int(cy - bh / 2 - y0)
    if rng.random() < TOUCHING:
        px0, py0, px1, py1 = placed[-1]
        side = rng.integers(4)
        cx = [px0 - bw / 2, px1 + bw / 2, (px0 + px1) / 2, (px0 + px1) / 2][side] + rng.normal(0, 0.05 * bw)
        cy = [(py0 + py1) / 2, (py0 + py1) / 2, py0 - bh / 2, py1 + bh / 2][side] + rng.normal(0, 0.05 * bh)
        return int(cx - bw / 2 - x0), int(cy - bh / 2 - y0)
    best, best_overlap = (0, 0), math.inf
    for _ in range(25):  # the emptiest of a few random spots
        cx = rng.uniform(bw / 2, max(bw / 2 + 1, w - bw / 2))
        cy = rng.uniform(bh / 2, max(bh / 2 + 1, h - bh / 2))
        box = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
        overlap = sum(_intersection(box, other) for other in placed)
        if overlap < best_overlap:
            best, best_overlap = (int(cx - bw / 2 - x0), int(cy - bh / 2 - y0)), overlap
    return best


def _intersection(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _annotate(bbox: tuple[int, int, int, int], canvas: tuple[int, int], out: tuple[int, int],
              rng: np.random.Generator) -> Box | None:
    """The expert's box around a specimen's ink: a little loose, clipped to the frame.

    The box is drawn in whole pixels of the output image, as annotation tools do.
    """
    sx, sy = out[0] / canvas[0], out[1] / canvas[1]
    x0, y0, x1, y1 = bbox
    mx, my = (x1 - x0) * rng.uniform(0.0, 0.06), (y1 - y0) * rng.uniform(0.0, 0.06)
    x0, x1 = max(0, round((x0 - mx) * sx)), min(out[0], round((x1 + mx) * sx))
    y0, y1 = max(0, round((y0 - my) * sy)), min(out[1], round((y1 + my) * sy))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return ((x0 + x1) / 2 / out[0], (y0 + y1) / 2 / out[1], (x1 - x0) / out[0], (y1 - y0) / out[1])


def render_train(item: TrainItem, seed: int, width: int, height: int) -> tuple[Image.Image, list[Box]]:
    """One training picture and the box of each of ``item.truth``, in the same order.

    Returns:
        the RGB image (``width`` x ``height``) and one normalised YOLO box per specimen.
    """
    rng = stream(seed, TRAIN_STREAM, item.index)
    size = render_size(width, height)
    unit = size[1] / 1024
    look = scene.sample_look(rng, item.family)
    canvas = scene.background(look, size, rng)
    scene.add_debris(canvas, rng, look.debris, 1.0, unit)
    crowd = 1.0 / math.sqrt(1.0 + 0.2 * (len(item.truth) - 1))
    length = BODY_LENGTH * size[1] * rng.lognormal(0, 0.12) * crowd
    boxes: list[Box] = []
    placed: list[tuple[int, int, int, int]] = []
    for cls in item.truth:
        for _attempt in range(5):
            drawn = _specimen(cls, rng, length, look, unit)
            x, y = _place(drawn, size, placed, rng, centre=_attempt == 4)
            ink = (drawn.bbox[0] + x, drawn.bbox[1] + y, drawn.bbox[2] + x, drawn.bbox[3] + y)
            box = _annotate(ink, size, (width, height), rng)
            inside = _intersection(ink, (0, 0, *size)) / max(1, (ink[2] - ink[0]) * (ink[3] - ink[1]))
            if box is not None and (inside > 0.4 or _attempt == 4):  # enough of it in the frame
                break
        scene.stamp(canvas, drawn.patch, x, y)
        placed.append(ink)
        boxes.append(box)  # type: ignore[arg-type]
    canvas = scene.add_grain(canvas, look.grain, rng)
    return _to_output(canvas, (width, height)), boxes


def _to_output(canvas: Image.Image, size: tuple[int, int]) -> Image.Image:
    return canvas if canvas.size == size else canvas.resize(size, Image.BILINEAR)


def render_test(item: TestItem, seed: int, width: int, height: int) -> Image.Image:
    """One test crop ("imagette"): a specimen with some margin, or background only.

    ``width`` and ``height`` are the training frame size; crops are cut from
    frames of that size, so their pixel scale matches the training images.
    """
    rng = stream(seed, TEST_STREAM, item.index)
    size = render_size(width, height)
    scale, unit = size[0] / width, size[1] / 1024
    look = scene.sample_look(rng, item.family)
    length = BODY_LENGTH * size[1] * rng.lognormal(0, 0.12)
    if item.truth == BACKGROUND:
        side = length * rng.lognormal(-0.15, 0.35)
        lo, hi = 0.12 * size[1], 0.9 * size[1]  # like the crops around specimens
        crop = tuple(int(np.clip(side * rng.lognormal(0, 0.3), lo, hi)) for _ in range(2))
        drawn = None
    else:
        drawn = _specimen(item.truth, rng, length, look, unit)
        x0, y0, x1, y1 = drawn.bbox
        margin = rng.uniform(0.03, 0.2, 4) * np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
        crop = (max(8, int(x1 - x0 + margin[0] + margin[2])), max(8, int(y1 - y0 + margin[1] + margin[3])))
    crop = (min(crop[0], size[0]), min(crop[1], size[1]))
    fx, fy = rng.uniform(0, 1 - crop[0] / size[0]), rng.uniform(0, 1 - crop[1] / size[1])
    window = (fx, fy, fx + crop[0] / size[0], fy + crop[1] / size[1])
    canvas = scene.background(look, crop, rng, window)
    scene.add_debris(canvas, rng, look.debris, crop[0] * crop[1] / (size[0] * size[1]), unit)
    if drawn is not None:
        scene.stamp(canvas, drawn.patch, int(margin[0] - drawn.bbox[0]), int(margin[1] - drawn.bbox[1]))
    canvas = scene.add_grain(canvas, look.grain, rng)
    out = (max(1, round(crop[0] / scale)), max(1, round(crop[1] / scale)))
    return _to_output(canvas, out)
