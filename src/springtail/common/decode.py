"""Fast, robust image decoding and square crop rendering.

Training images are 3072 x 2048 JPEGs of which only a few small regions are
needed, so they are decoded with libjpeg's DCT scaling (``Image.draft``) at
1/2, 1/4 or 1/8 of full size: the largest reduction that still leaves every
region of the image at least ``size`` pixels wide. Region coordinates stay in
full-resolution pixels of the image as displayed (after its EXIF orientation)
and are divided by the scale actually obtained.

Every image ends as 8-bit RGB: grayscale, palette, CMYK, alpha and 16-bit
images are converted, and a PNG saved under a ``.jpg`` name is read by content.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from springtail.common.policy import DataError

Region = tuple[float, float, float, float]  # (x0, y0, x1, y1), full-resolution pixels
DRAFT_FACTORS = (8, 4, 2, 1)  # JPEG DCT scaling: 1/8, 1/4, 1/2, full
ORIENTATION = 0x0112  # EXIF tag
TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _open(path: Path) -> Image.Image:
    """Open lazily (header only), mapping failures to a :class:`DataError` naming the file."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise DataError(path, "image file is missing (expected a JPEG of this name)",
                        "missing_image") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        reason = "truncated_image" if "truncat" in str(err).lower() else "unreadable_image"
        raise DataError(path, f"not a readable image: {_plain(err, path)} (expected a complete "
                        f"JPEG or PNG file)", reason) from None


def _plain(err: Exception, path: Path) -> str:
    """The error's message without the file name, which the DataError already gives."""
    return str(err).replace(f" {str(path)!r}", "").replace(str(path), "<file>")


def _display_size(img: Image.Image) -> tuple[int, int]:
    width, height = img.size
    if img.getexif().get(ORIENTATION, 1) in TRANSPOSING:
        return height, width
    return width, height


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image as displayed, read from its header only.

    Raises:
        DataError: reason ``missing_image`` or ``unreadable_image``.
    """
    with _open(Path(path)) as img:
        return _display_size(img)


def draft_factor(min_side: float, size: int) -> int:
    """Largest reduction in 8, 4, 2, 1 that keeps a ``min_side`` px region >= ``size`` px."""
    return next((k for k in DRAFT_FACTORS if min_side / k >= size), 1)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode; 16-bit and 32-bit gray are scaled, not clipped."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0  # 0..65535 -> 0..255
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def load_rgb(path: str | Path, factor: int = 1) -> tuple[Image.Image, int, tuple[int, int]]:
    """Decode an image, at 1/``factor`` scale when it is a JPEG.

    Returns:
        image: RGB, EXIF orientation applied, about 1/scale of full size.
        scale: the reduction actually obtained (1 for non-JPEG files).
        full_size: (width, height) at full resolution as displayed.

    Raises:
        DataError: reason ``missing_image``, ``unreadable_image`` or ``truncated_image``.
    """
    path = Path(path)
    with _open(path) as img:
        full_size = _display_size(img)
        scale = 1
        if factor > 1 and img.format == "JPEG":
            width, height = img.size
            drafted = img.draft("RGB", (max(1, width // factor), max(1, height // factor)))
            if drafted is not None:
                scale = int(round(width / drafted[1][2]))
        try:
            img.load()
        except OSError as err:
            reason = "truncated_image" if "truncat" in str(err).lower() else "unreadable_image"
            raise DataError(path, f"cannot decode image: {_plain(err, path)} (expected a "
                            f"complete JPEG or PNG file)", reason) from None
        except (SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(path, f"cannot decode image: {_plain(err, path)} (expected a "
                            f"complete JPEG or PNG file)", "unreadable_image") from None
        return to_rgb(ImageOps.exif_transpose(img)), scale, full_size


def render_square(image: Image.Image, region: Region, scale: int, full_size: tuple[int, int],
                  size: int) -> np.ndarray:
    """A ``region`` of the image, centred in a square, padded, resized to ``size``.

    The square has the region's longer side and the region's centre; what of it
    lies outside the region or outside the image is filled with the mean colour
    of the visible pixels (flat padding invents no texture or anatomy, and a test
    crop, seen without its image, gets exactly the same treatment).

    Args:
        image: RGB image decoded at 1/``scale`` (see :func:`load_rgb`).
        region: (x0, y0, x1, y1) in full-resolution pixels, may reach outside the image.
        full_size: the image's (width, height) at full resolution.
        size: side of the output.

    Returns:
        (size, size, 3) uint8 RGB.
    """
    x0, y0, x1, y1 = region
    side = max(x1 - x0, y1 - y0)
    qx, qy = (x0 + x1 - side) / 2, (y0 + y1 - side) / 2  # top-left of the square
    vx0, vy0 = max(x0, 0.0), max(y0, 0.0)
    vx1, vy1 = min(x1, float(full_size[0])), min(y1, float(full_size[1]))
    if vx1 <= vx0 or vy1 <= vy0:
        raise ValueError(f"region {region} lies outside the {full_size} image")
    to_canvas = size / side
    cx0 = min(size - 1, round((vx0 - qx) * to_canvas))
    cy0 = min(size - 1, round((vy0 - qy) * to_canvas))
    cx1 = min(size, max(cx0 + 1, round((vx1 - qx) * to_canvas)))
    cy1 = min(size, max(cy0 + 1, round((vy1 - qy) * to_canvas)))
    box = (vx0 / scale, vy0 / scale, vx1 / scale, vy1 / scale)  # in decoded pixels
    patch = np.asarray(image.resize((cx1 - cx0, cy1 - cy0), Image.Resampling.BILINEAR, box=box))
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = np.rint(patch.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    canvas[cy0:cy1, cx0:cx1] = patch
    return canvas
