"""Draw one specimen as a brightfield transmittance patch (white = no absorption).

The body is built around a (possibly bent) axis running from the posterior
tip (s = 0) to the front of the head (s = 1): segment outlines with waists,
appendages (antennae, legs, furca, setae, anal spines) as polylines, and the
pigment as an absorbance field that is thicker in the middle of the body and
modulated by the taxon's pattern (mottling, granules, diffuse patches,
scales, bands). Geometry is rotated in place, never by resampling a bitmap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from springtail.synth.morphology import Habitus

N_AXIS = 160  # samples along the body axis
ROUND_PLANS = ("mite", "globular")


@dataclass(frozen=True)
class Drawn:
    """A rendered specimen: the patch and where the body and its ink lie in it."""

    patch: Image.Image                   # RGB transmittance, white outside the specimen
    centre: tuple[float, float]          # body centre in patch pixels
    bbox: tuple[int, int, int, int]      # (x0, y0, x1, y1) of the specimen in the patch


@dataclass(frozen=True)
class _Axis:
    s: np.ndarray       # (n,) position along the body, 0 = posterior tip, 1 = head front
    p: np.ndarray       # (n, 2) axis points, pixels, body frame
    normal: np.ndarray  # (n, 2) unit normals (left side)
    hw: np.ndarray      # (n,) half-width, pixels

    def at(self, s: float, side: float = 0.0) -> np.ndarray:
        """The point at axis position ``s``, ``side`` half-widths to the left (negative: right)."""
        i = int(np.clip(round(s * (len(self.s) - 1)), 0, len(self.s) - 1))
        return self.p[i] + side * self.hw[i] * self.normal[i]

    def direction(self, s: float) -> float:
        """Angle (radians) of the axis pointing forwards at ``s``."""
        i = int(np.clip(round(s * (len(self.s) - 1)), 1, len(self.s) - 1))
        d = self.p[i] - self.p[i - 1]
        return math.atan2(d[1], d[0])


def _axis(h: Habitus, length: float) -> _Axis:
    s = np.linspace(0.0, 1.0, N_AXIS)
    x = (s - 0.5) * length
    y = h.bend * length * ((s - 0.5) ** 2 - 1 / 12)
    p = np.stack([x, y], axis=1)
    d = np.gradient(p, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)
    bounds = np.concatenate([[0.0], np.cumsum(h.seg_len[::-1])])  # posterior first
    k = np.clip(np.searchsorted(bounds, s, side="right") - 1, 0, len(h.seg_len) - 1)
    u = (s - bounds[k]) / np.maximum(bounds[k + 1] - bounds[k], 1e-6)
    if h.plan in ROUND_PLANS:  # each part an ellipse: round mites, globular springtails
        profile = np.sqrt(np.clip(np.sin(math.pi * u), 0, 1)) * 0.9 + 0.1
    else:
        profile = 1 - h.constriction * (1 - np.sin(math.pi * u))
    widths = np.asarray(h.seg_width[::-1])[k] * profile
    cap = np.sqrt(np.clip(s / 0.05, 0, 1)) * np.sqrt(np.clip((1 - s) / 0.07, 0, 1))
    hw = 0.5 * h.elong * length * widths * np.maximum(cap, 0.05) * (0.8 if h.lateral else 1.0)
    return _Axis(s, p, normal, hw)


def _limb(base: np.ndarray, angle: float, lengths: list[float], rng: np.random.Generator,
          wobble: float = 0.3) -> np.ndarray:
    """A jointed appendage from ``base``: one segment per length, random bends at the joints."""
    pts = [base]
    for seg in lengths:
        angle += rng.normal(0, wobble)
        pts.append(pts[-1] + seg * np.array([math.cos(angle), math.sin(angle)]))
    return np.array(pts)


def _segment_bounds(h: Habitus) -> np.ndarray:
    """Axis positions of the segment boundaries, head first (descending s)."""
    return 1.0 - np.concatenate([[0.0], np.cumsum(h.seg_len)])


def _appendages(h: Habitus, ax: _Axis, length: float,
                rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Antennae, legs and an extended furca as (polyline, width in pixels) pairs."""
    out: list[tuple[np.ndarray, float]] = []
    width = max(1.0, (0.028 if h.plan == "mite" else 0.014) * length)
    bounds = _segment_bounds(h)
    head = ax.direction(0.97)
    if h.antenna > 0:
        for side in (-1, 1):
            angle = head + side * h.antenna_spread + rng.normal(0, 0.15)
            seg = h.antenna * length * np.array([0.18, 0.24, 0.26, 0.32])
            out.append((_limb(ax.at(0.985, 0.5 * side), angle, list(seg), rng, 0.2), width * 0.8))
    n_pairs = 4 if h.plan == "mite" else 3
    sites = np.linspace(0.78, 0.5, 4) if h.plan == "mite" else (bounds[1:4] + bounds[2:5]) / 2
    if h.plan == "globular":
        sites = np.array([0.74, 0.7, 0.66])
    for pair in range(n_pairs if h.legs > 0 else 0):
        s = float(sites[pair])
        sweep = (pair - (n_pairs - 1) / 2) * (0.55 if h.plan == "mite" else 0.35)
        for side in ((1,) if h.lateral else (-1, 1)):
            angle = ax.direction(s) + side * (math.pi / 2 + sweep) + rng.normal(0, 0.2)
            joints = [0.25, 0.3, 0.25, 0.2] if h.plan == "mite" else [0.4, 0.38, 0.22]
            seg = h.legs * length * np.array(joints)
            out.append((_limb(ax.at(s, 0.7 * side), angle, list(seg), rng, 0.3), width))
    if h.furca > 0 and h.furca_out:
        base = ax.at(float(bounds[-4]) if len(bounds) > 4 else 0.2)
        for side in (-1, 1):
            angle = ax.direction(0.05) + math.pi + side * rng.uniform(0.03, 0.2)
            seg = h.furca * length * np.array([0.35, 0.65])
            out.append((_limb(base, angle, list(seg), rng, 0.06), width * 0.9))
    return out


def _pattern(h: Habitus, shape: tuple[int, int], length: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float absorbance multiplier from the pigment pattern (1 = plain)."""
    f = np.ones(shape, dtype=np.float32)

    def noise(cell_px: float) -> np.ndarray:
        small = rng.normal(size=(max(2, int(shape[0] / cell_px) + 2), max(2, int(shape[1] / cell_px) + 2)))
        img = Image.fromarray(small.astype(np.float32), "F").resize(shape[::-1], Image.BILINEAR)
        return np.asarray(img, dtype=np.float32)

    if h.mottle:
        f *= 1 + h.mottle * 0.6 * np.clip(noise(0.08 * length), -1.5, 1.5)
    if h.diffuse:
        f *= 1 + h.diffuse * 1.2 * np.clip(noise(0.12 * length), 0, 2)
    if h.granules:
        f *= 1 + h.granules * 1.1 * (noise(max(1.5, 0.01 * length)) > 0.9)
    if h.scales:
        f *= 1 - h.scales * 0.5 * np.clip(noise(max(1.5, 0.012 * length)), 0, 1.6) / 1.6
    return f


def _body_pixels(h: Habitus, patch: Image.Image, outline: list[tuple[float, float]],
                 length: float, rng: np.random.Generator) -> np.ndarray:
    """Fill the body into ``patch``; return the (H, W) float body mask 0..1."""
    mask_img = Image.new("L", patch.size, 0)
    ImageDraw.Draw(mask_img).polygon(outline, fill=255)
    body_px = max(2.0, h.elong * length)
    thick = np.asarray(mask_img.filter(ImageFilter.BoxBlur(body_px * 0.25)), np.float32) / 255
    mask = np.asarray(mask_img, np.float32) / 255
    absorb = h.pigment * (0.45 + 0.55 * thick) * _pattern(h, mask.shape, length, rng)
    tone = np.asarray(h.tone, np.float32)
    if h.scales:  # iridescent scales: hue drifts between violet and gold
        drift = np.asarray(Image.fromarray(rng.normal(size=(4, 4)).astype(np.float32), "F")
                           .resize(patch.size, Image.BILINEAR))[..., None]
        tone = np.clip(tone + h.scales * 25 * drift * np.array([1.0, 0.2, -1.0]), 0, 255)
    body = 255 - (255 - tone) * np.clip(absorb, 0, 1)[..., None]  # (H, W, 3)
    arr = np.asarray(patch, np.float32)
    arr = arr * (1 - mask[..., None]) + body * mask[..., None]
    patch.paste(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB"))
    return mask


def _ink(h: Habitus, factor: float) -> tuple[int, int, int]:
    """A darker shade of the pigment for outlines and details."""
    base = 255 - (255 - np.asarray(h.tone)) * max(h.pigment, 0.3)
    return tuple(int(v) for v in np.clip(base * factor, 0, 255))  # type: ignore[return-value]


def _details(h: Habitus, ax: _Axis, length: float,
             rng: np.random.Generator) -> list[tuple[np.ndarray, float, float]]:
    """Setae, anal spines and a folded furca as (polyline, width, darkness) triples."""
    out: list[tuple[np.ndarray, float, float]] = []
    n_setae = int(h.setae * 60 * rng.uniform(0.7, 1.3))
    for _ in range(n_setae):
        s, side = float(rng.uniform(0.02, 0.98)), float(rng.choice([-1, 1]))
        base = ax.at(s, 0.97 * side)
        angle = ax.direction(s) + side * math.pi / 2 + rng.normal(-0.5 * side, 0.4)
        reach = h.seta_len * length * rng.uniform(0.5, 1.5)
        tip = base + reach * np.array([math.cos(angle), math.sin(angle)])
        out.append((np.array([base, tip]), 1.0, 0.75))
    if h.spines > 0:
        back = ax.direction(0.02) + math.pi
        for side in (-1, 1):
            base = ax.at(0.03, 0.35 * side)
            turn = back + 0.25 * side
            tip = base + h.spines * length * np.array([math.cos(turn), math.sin(turn)])
            out.append((np.array([base, tip]), max(1.0, 0.012 * length), 0.55))
    if h.furca > 0 and not h.furca_out:  # folded under the abdomen, seen through the body
        bounds = _segment_bounds(h)
        s0 = float(bounds[-4]) if len(bounds) > 4 else 0.2
        for side in (-1, 1):
            tip_s = min(0.95, s0 + h.furca * 0.9)
            out.append((np.array([ax.at(s0, 0.1 * side), ax.at(tip_s, 0.25 * side)]),
                        max(1.0, 0.015 * length), 0.88))
    return out


def _gut(h: Habitus, ax: _Axis, size: tuple[int, int], shift: np.ndarray,
         rng: np.random.Generator) -> Image.Image:
    """A soft absorbing layer: food in the gut, seen through the body (RGB, white = none)."""
    layer = Image.new("RGB", size, (255, 255, 255))
    s_vals = np.linspace(0.15, 0.72, 9)
    pts = [tuple(ax.at(float(s), rng.normal(0, 0.1)) + shift) for s in s_vals]
    colour = np.array(rng.choice([[90, 70, 40], [60, 70, 40], [50, 45, 45]])) + rng.normal(0, 10, 3)
    level = 255 - (255 - np.clip(colour, 0, 255)) * h.gut
    ImageDraw.Draw(layer).line(pts, fill=tuple(int(v) for v in level),
                               width=max(1, int(float(ax.hw.max()) * rng.uniform(0.35, 0.7))), joint="curve")
    return layer.filter(ImageFilter.GaussianBlur(max(1.0, float(ax.hw.max()) * 0.15)))


def _eyes(h: Habitus, ax: _Axis, draw: ImageDraw.ImageDraw, shift: np.ndarray,
          length: float, rng: np.random.Generator) -> None:
    """Clusters of dark ocelli on each side of the head."""
    r = max(0.7, 0.006 * length)
    for side in ((1,) if h.lateral else (-1, 1)):
        centre = ax.at(0.94, 0.5 * side) + shift
        for _ in range(int(rng.integers(3, 8))):
            x, y = centre + rng.normal(0, 1.0 * r, 2)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(38, 36, 40))


def draw_specimen(h: Habitus, length: float, angle: float, blur: float,
                  rng: np.random.Generator) -> Drawn:
    """Render one specimen of body length ``length`` pixels, turned by ``angle`` radians.

    Args:
        h: the specimen's habitus.
        length: body length in canvas pixels (appendages come on top).
        angle: rotation of the body axis, radians.
        blur: Gaussian blur radius in pixels (focus).
        rng: randomness for appendage poses and pattern noise.

    Returns:
        the :class:`Drawn` patch, its body centre and the bbox of the whole animal.
    """
    length = length * h.size
    ax = _axis(h, length)
    rot = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    ax = _Axis(ax.s, ax.p @ rot, ax.normal @ rot, ax.hw)
    outline = np.concatenate([ax.p + ax.hw[:, None] * ax.normal, (ax.p - ax.hw[:, None] * ax.normal)[::-1]])
    limbs = _appendages(h, ax, length, rng)
    details = _details(h, ax, length, rng)
    every = np.concatenate([outline] + [p for p, _ in limbs] + [p for p, _, _ in details])
    pad = 4 + 3 * blur
    shift = pad - every.min(axis=0)
    size = tuple(int(v) for v in np.ceil(every.max(axis=0) + shift + pad))
    patch = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(patch)
    for pts, width in limbs:  # a darker rim, then the lighter core: visible even when pale
        line = [tuple(p) for p in pts + shift]
        draw.line(line, fill=_ink(h, 0.85), width=max(1, int(width) + 2), joint="curve")
        if width >= 2:
            draw.line(line, fill=_ink(h, 1.05), width=int(width), joint="curve")
    poly = [tuple(p) for p in outline + shift]
    _body_pixels(h, patch, poly, length, rng)
    if h.gut > 0:
        patch = ImageChops.multiply(patch, _gut(h, ax, patch.size, shift, rng))
    draw = ImageDraw.Draw(patch)
    if h.eyes:
        _eyes(h, ax, draw, shift, length, rng)
    for s in _segment_bounds(h)[1:-1]:
        a, b = ax.at(float(s), 0.9) + shift, ax.at(float(s), -0.9) + shift
        draw.line([tuple(a), tuple(b)], fill=_ink(h, 0.92), width=max(1, int(0.006 * length)))
    draw.polygon(poly, outline=_ink(h, 0.72), width=max(1, int(0.008 * length)))
    for pts, width, dark in details:
        draw.line([tuple(p) for p in pts + shift], fill=_ink(h, dark), width=max(1, int(width)))
    if blur > 0.3:
        patch = patch.filter(ImageFilter.GaussianBlur(blur))
    # The extent of the drawn geometry, not of dark pixels: a pale specimen is
    # boxed whole even where it barely absorbs.
    lo, hi = np.floor(every.min(axis=0) + shift), np.ceil(every.max(axis=0) + shift)
    ink = (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    return Drawn(patch, (float(shift[0]), float(shift[1])), ink)
