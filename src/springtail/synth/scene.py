"""Brightfield microscope scenes: background, uneven illumination, debris and grain.

In brightfield the light passes through the specimen, so whatever lies on the
slide *absorbs*: every object is drawn as a transmittance patch (white = no
absorption) and multiplied onto the background. Smooth fields are computed at
a fraction of the resolution and upsampled; grain comes from one pre-computed
noise tile read at a random offset, so no full-size float noise is drawn.
All sizes are in pixels of the render canvas; ``unit`` is the canvas height
over 1024, so a scene looks the same at every image size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

# Background colour per campaign family: each microscope set-up has its own lamp.
TINTS = (
    (236.0, 229.0, 206.0),  # warm halogen
    (226.0, 227.0, 224.0),  # neutral
    (218.0, 226.0, 234.0),  # cool LED
    (232.0, 224.0, 214.0),  # pinkish beige
)
_TILE = (1100, 1650)  # (H, W) of the shared grain tiles, pixels


@dataclass(frozen=True)
class Look:
    """The photographic conditions of one microscope picture."""

    tint: tuple[float, float, float]  # background RGB at full illumination, 0..255
    vignette: float                   # darkening at the frame corners, fraction
    centre: tuple[float, float]       # illumination centre, frame fractions
    gradient: tuple[float, float]     # illumination slope along x and y, fraction per frame
    mottle: float                     # low-frequency background texture amplitude, fraction
    grain: float                      # sensor noise sigma, grey levels
    focus: float                      # specimen blur radius, render pixels per unit
    debris: float                     # debris density multiplier


def sample_look(rng: np.random.Generator, family: int) -> Look:
    """Draw the conditions of one picture taken with microscope set-up ``family``."""
    base = np.asarray(TINTS[family % len(TINTS)]) * rng.uniform(0.9, 1.04)
    tint = tuple(float(v) for v in np.clip(base + rng.normal(0, 4, 3), 120, 252))
    return Look(
        tint=tint,  # type: ignore[arg-type]
        vignette=float(rng.uniform(0.05, 0.4)),
        centre=(float(rng.normal(0.5, 0.12)), float(rng.normal(0.5, 0.12))),
        gradient=(float(rng.normal(0, 0.06)), float(rng.normal(0, 0.06))),
        mottle=float(rng.uniform(0.004, 0.025)),
        grain=float(rng.uniform(0.8, 2.5)),
        focus=float(rng.gamma(2.0, 0.6)),
        debris=float(rng.lognormal(0.0, 0.6)),
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """(H, W) float noise with about ``cells`` blobs across, unit variance, smooth."""
    h, w = shape
    coarse = rng.normal(size=(max(2, cells * h // max(h, w) + 2), max(2, cells * w // max(h, w) + 2)))
    img = Image.fromarray(coarse.astype(np.float32), mode="F").resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def background(look: Look, size: tuple[int, int], rng: np.random.Generator,
               window: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> Image.Image:
    """The empty slide under uneven illumination, as an RGB image of ``size`` (W, H).

    ``window`` (x0, y0, x1, y1, frame fractions) is the part of the microscope
    frame this canvas shows, so a crop gets the illumination of its position.
    """
    w, h = size
    lw, lh = max(8, w // 16), max(8, h // 16)  # the smooth field is computed at 1/16
    x0, y0, x1, y1 = window
    xx, yy = np.meshgrid(np.linspace(x0, x1, lw), np.linspace(y0, y1, lh))
    r2 = ((xx - look.centre[0]) ** 2 + (yy - look.centre[1]) ** 2) / 0.5
    illum = 1.0 - look.vignette * r2 + look.gradient[0] * (xx - 0.5) + look.gradient[1] * (yy - 0.5)
    cells = max(2, int(6 * max(x1 - x0, y1 - y0)))  # blobs per frame stay the same in a crop
    illum = illum * (1.0 + look.mottle * _smooth_noise(rng, (lh, lw), cells))
    field = np.asarray(look.tint)[None, None, :] * illum[..., None]  # (lh, lw, 3)
    field += rng.normal(0, 1.0, 3) * _smooth_noise(rng, (lh, lw), max(2, cells // 2))[..., None]
    small = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8), "RGB")
    mid = np.asarray(small.resize((max(8, w // 4), max(8, h // 4)), Image.BICUBIC), dtype=np.int16)
    texture = rng.normal(0, look.mottle * 60, mid.shape[:2])[..., None]  # mounting-medium grain
    mid = Image.fromarray(np.clip(mid + texture, 0, 255).astype(np.uint8), "RGB")
    return mid.resize((w, h), Image.BILINEAR)


@functools.lru_cache(maxsize=None)
def _grain_tile(level: int) -> Image.Image:
    """An RGB tile of grey Gaussian noise around 128, sigma ``level`` / 2 grey levels.

    Built from a fixed seed, so it is the same in every process.
    """
    noise = np.random.default_rng(20250611 + level).normal(128, level / 2, _TILE)
    grey = np.clip(np.round(noise), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")


def add_grain(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Add sensor noise of about ``sigma`` grey levels (rounded to a half level).

    The noise is cut from a shared tile at a random offset (tiled when the
    image is larger), so no per-image noise is drawn.
    """
    tile = _grain_tile(max(1, int(round(sigma * 2))))
    th, tw = _TILE
    noise = Image.new("RGB", img.size)
    ox, oy = int(rng.integers(tw)), int(rng.integers(th))
    for y in range(-oy, img.height, th):
        for x in range(-ox, img.width, tw):
            noise.paste(tile, (x, y))
    return ImageChops.add(img, noise, 1.0, -128)


def stamp(canvas: Image.Image, patch: Image.Image, x: int, y: int, mode: str = "multiply") -> None:
    """Composite ``patch`` onto ``canvas`` with its top-left corner at (x, y), clipped.

    ``multiply`` darkens (absorbing objects, white = transparent); ``screen``
    brightens (highlights, black = transparent).
    """
    cx0, cy0 = max(0, x), max(0, y)
    cx1, cy1 = min(canvas.width, x + patch.width), min(canvas.height, y + patch.height)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    box = (cx0, cy0, cx1, cy1)
    part = patch.crop((cx0 - x, cy0 - y, cx1 - x, cy1 - y))
    op = ImageChops.multiply if mode == "multiply" else ImageChops.screen
    canvas.paste(op(canvas.crop(box), part), box)


def _grey(rng: np.random.Generator, lo: float, hi: float, warm: float = 0.0) -> tuple[int, int, int]:
    """A transmittance colour: grey level in [lo, hi], optionally warmer (brown/amber)."""
    v = rng.uniform(lo, hi)
    return (int(v), int(v * (1 - 0.12 * warm)), int(v * (1 - 0.35 * warm)))


def _blob_points(rng: np.random.Generator, r: float, n: int, rough: float) -> list[tuple[float, float]]:
    """An irregular closed outline of mean radius ``r`` centred on (0, 0)."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = r * np.clip(1 + rough * rng.normal(size=n), 0.3, 2.0)
    stretch = rng.uniform(0.4, 1.0)
    return [(float(a * math.cos(t)), float(a * stretch * math.sin(t))) for a, t in zip(radii, angles)]


def debris_patch(kind: str, rng: np.random.Generator, unit: float) -> tuple[Image.Image, str]:
    """One piece of debris of ``kind`` (a key of DEBRIS_PER_FRAME) as a (patch, compositing mode) pair."""
    if kind == "fibre":
        length = rng.uniform(60, 700) * unit
        pts = np.cumsum(rng.normal(0, 1, (12, 2)) * 0.25 + [1, 0], axis=0) * length / 12
        pts = pts @ _rotation(rng.uniform(0, 2 * math.pi))
        pad = 8 * unit
        pts -= pts.min(axis=0) - pad
        size = (int(pts[:, 0].max() + pad), int(pts[:, 1].max() + pad))
        patch = Image.new("RGB", size, (255, 255, 255))
        draw, line = ImageDraw.Draw(patch), [tuple(p) for p in pts]
        fill, width = _grey(rng, 120, 225, rng.random()), max(1, int(rng.uniform(1, 5) * unit))
        # a soft edge without blurring the (mostly empty) patch: a lighter, wider stroke below
        draw.line(line, fill=tuple((c + 255) // 2 for c in fill), width=width + 2, joint="curve")
        draw.line(line, fill=fill, width=width, joint="curve")
        return patch, "multiply"
    if kind == "bubble":
        return _bubble_patch(rng, rng.uniform(6, 110) * unit), "multiply"
    if kind == "blob":  # large and out of focus: drawn small, then enlarged
        r = rng.uniform(10, 40)
        s = int(4.2 * r + 8)  # room for the blur, or its edge would show as a rectangle
        patch = Image.new("RGB", (s, s), (255, 255, 255))
        pts = _blob_points(rng, r, int(rng.integers(7, 16)), 0.18)
        fill = _grey(rng, 205, 240, rng.random())
        ImageDraw.Draw(patch).polygon([(x + s / 2, y + s / 2) for x, y in pts], fill=fill)
        patch = patch.filter(ImageFilter.GaussianBlur(r * 0.25))
        big = max(1, int(s * 4 * unit))
        return patch.resize((big, big), Image.BILINEAR), "multiply"
    r = {"speck": rng.uniform(0.8, 4.0), "particle": rng.uniform(4, 40)}[kind] * unit
    pts = _blob_points(rng, r, int(rng.integers(7, 16)), 0.18 if kind != "speck" else 0.1)
    s = int(2.6 * r + 8)
    patch = Image.new("RGB", (s, s), (255, 255, 255))
    fill = {"speck": _grey(rng, 50, 170, rng.random()), "particle": _grey(rng, 90, 235, rng.random())}[kind]
    draw = ImageDraw.Draw(patch)
    rim = rng.uniform(0.55, 0.9)
    for k, shrink in enumerate((1.0, 0.8, 0.55, 0.3)):  # denser rim, lighter core, like a grain
        level = rim + (1 - rim) * k / 3 if kind == "particle" else 1.0
        draw.polygon([(x * shrink + s / 2, y * shrink + s / 2) for x, y in pts],
                     fill=tuple(int(min(255, c * level)) for c in fill))
        if kind == "speck":
            break
    if kind == "speck":  # too small to need a blur: the final upsampling softens it
        return patch, "multiply"
    return patch.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3.0) * unit)), "multiply"


def _bubble_patch(rng: np.random.Generator, radius: float) -> Image.Image:
    """An air bubble: a dark refracting ring that lightens inwards, a bright centre."""
    shrink = max(1.0, radius / 60)  # large bubbles are drawn smaller, then enlarged
    r = radius / shrink
    s = int(2 * r + 6)
    patch = Image.new("RGB", (s, s), (255, 255, 255))
    draw = ImageDraw.Draw(patch)
    ring = rng.uniform(0.12, 0.35) * r
    dark, steps = rng.uniform(60, 150), 5
    for k in range(steps):  # concentric discs, darkest outside
        inset = 3 + ring * k / steps
        level = int(dark + (250 - dark) * (k / steps) ** 1.5)
        draw.ellipse((inset, inset, s - inset, s - inset), fill=(level, level, level))
    inset = 3 + ring
    draw.ellipse((inset, inset, s - inset, s - inset), fill=(252, 252, 252))
    patch = patch.filter(ImageFilter.GaussianBlur(max(0.6, r * 0.03)))
    return patch if shrink == 1.0 else patch.resize((int(s * shrink),) * 2, Image.BILINEAR)


# Mean count of each kind of debris on a whole frame, at density 1.
DEBRIS_PER_FRAME = {"speck": 45.0, "particle": 14.0, "fibre": 2.2, "bubble": 1.3, "blob": 1.5}


def add_debris(canvas: Image.Image, rng: np.random.Generator, density: float,
               area: float = 1.0, unit: float = 1.0) -> None:
    """Scatter debris (specks, particles, fibres, bubbles, soft blobs) over ``canvas`` in place.

    ``area`` is the canvas's share of a whole microscope frame (counts scale with it).
    """
    for kind, mean in DEBRIS_PER_FRAME.items():
        for _ in range(rng.poisson(mean * density * area)):
            patch, mode = debris_patch(kind, rng, unit)
            x = int(rng.uniform(-patch.width / 2, canvas.width - patch.width / 2))
            y = int(rng.uniform(-patch.height / 2, canvas.height - patch.height / 2))
            stamp(canvas, patch, x, y, mode)


def _rotation(theta: float) -> np.ndarray:
    """(2, 2) matrix rotating row vectors by ``theta`` radians."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, s], [-s, c]])
