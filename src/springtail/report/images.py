"""Pictures for the report: uint8 crops and heatmaps as self-contained data URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

HEATMAP = "jet"  # blue (low) -> red (high): reads at a glance over grey-green microscope crops


def data_uri(image: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> str:
    """A ``data:`` URI holding ``image`` (H, W, 3) uint8 RGB as JPEG or PNG.

    Raises:
        ValueError: an image that is not (H, W, 3) uint8, or an unknown format.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    mime = {"JPEG": "image/jpeg", "PNG": "image/png"}.get(fmt)
    if mime is None:
        raise ValueError(f"image format must be JPEG or PNG, got {fmt!r}")
    buffer = io.BytesIO()
    options = {"quality": quality, "subsampling": 0} if fmt == "JPEG" else {"optimize": True}
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=fmt, **options)
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def upsample(cam: np.ndarray, size: int) -> np.ndarray:
    """(h, w) map -> (size, size) by bilinear interpolation (pixel centres aligned)."""
    t = torch.as_tensor(np.asarray(cam, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                           align_corners=False)[0, 0].numpy()


def is_flat(cam: np.ndarray, rel_tol: float = 0.05) -> bool:
    """True when a map barely varies (max - min <= ``rel_tol`` * max |value|), e.g. a
    single-cell stage: it shows no place, and stretching it would invent one."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float64))
    top = np.abs(cam).max() if cam.size else 0.0
    return bool(cam.size <= 1 or top == 0 or cam.max() - cam.min() <= rel_tol * top)


def normalise(cam: np.ndarray) -> np.ndarray:
    """Stretch a map to [0, 1] (min to max); a flat map (see :func:`is_flat`) becomes 0."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float64))
    if is_flat(cam):
        return np.zeros_like(cam)
    return (cam - cam.min()) / (cam.max() - cam.min())


def overlay(crop: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap over a crop.

    Args:
        crop: (S, S, 3) uint8 RGB.
        cam: (h, w) relevance, any scale; upsampled to S x S and stretched to [0, 1].
        alpha: heatmap opacity where relevance is highest; it fades with relevance, so
            what the model ignores stays visible as it is.
    Returns:
        (S, S, 3) uint8 RGB.
    """
    import matplotlib  # deferred: only the report draws heatmaps

    heat = normalise(upsample(cam, crop.shape[0]))  # (S, S) in [0, 1]
    colours = matplotlib.colormaps[HEATMAP](heat)[..., :3]  # (S, S, 3) floats in [0, 1]
    weight = alpha * (0.35 + 0.65 * heat)[..., None]  # never fully hide the crop
    blended = (1 - weight) * crop.astype(np.float64) / 255 + weight * colours
    return np.clip(np.rint(blended * 255), 0, 255).astype(np.uint8)
