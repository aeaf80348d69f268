"""Crops: exact coordinates (full and draft decoding), robust decoding, background, folds, store."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from springtail.common.config import from_section, to_dict
from springtail.common.decode import draft_factor, image_size, load_rgb, render_square
from springtail.common.io import atomic_directory
from springtail.common.policy import DataError, ErrorPolicy, SkipLog, TooManySkipped
from springtail.common.store import load_crops
from springtail.crops.build import build_crops
from springtail.crops.cutting import CropsConfig
from springtail.crops.folds import assign_folds
from springtail.crops.regions import iou, sample_background

from conftest import params_config

GREY, RED = (128, 128, 128), (220, 30, 30)
RECT = (512, 256, 768, 512)  # x0, y0, x1, y1: a 256 px red square, on the 8 px JPEG grid


def picture(size=(1024, 768), rect=RECT, colour=RED) -> Image.Image:
    """A grey image with one coloured rectangle."""
    arr = np.full((size[1], size[0], 3), GREY, dtype=np.uint8)
    x0, y0, x1, y1 = rect
    arr[y0:y1, x0:x1] = colour
    return Image.fromarray(arr)


def save_jpeg(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, "JPEG", quality=95, subsampling=0, **kwargs)
    return path


def red_extent(crop: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the clearly red pixels of a crop."""
    mask = (crop[..., 0] > 175) & (crop[..., 1] < 75)
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_crop_coordinates_are_exact_under_full_and_draft_decoding(tmp_path, factor):
    path = save_jpeg(picture(), tmp_path / "a.jpg")
    image, scale, full = load_rgb(path, factor)
    assert scale == factor and full == (1024, 768) and image.size == (1024 // factor, 768 // factor)
    margin = 0.25  # the square region is 1.5 x the box: the box spans [1/6, 5/6] of the crop
    x0, y0, x1, y1 = RECT
    pad = margin * 256
    crop = render_square(image, (x0 - pad, y0 - pad, x1 + pad, y1 + pad), scale, full, 96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    for got, want in zip(red_extent(crop), (16, 16, 80, 80)):
        assert abs(got - want) <= 1
    assert np.abs(crop[20:76, 20:76].astype(int) - RED).max() <= 12
    assert np.abs(crop[:12, :12].astype(int) - GREY).max() <= 12


def test_non_square_region_is_centred_and_padded_with_its_mean_colour(tmp_path):
    path = save_jpeg(picture(rect=(512, 256, 768, 384)), tmp_path / "a.jpg")
    image, scale, full = load_rgb(path, 1)
    # A 384 x 128 region: grey, red, grey columns; the square spans rows 128..512 of the image.
    crop = render_square(image, (448, 256, 832, 384), scale, full, 64).astype(int)
    mean = (np.array(RED) * 256 + np.array(GREY) * 128) / 384
    for pad in (crop[:20], crop[45:]):  # content rows: 21.3..42.7 of 64
        assert (pad == pad[0, 0]).all() and np.abs(pad[0, 0] - mean).max() <= 6
    assert np.abs(crop[23:41, 24:40] - RED).max() <= 12
    assert np.abs(crop[23:41, :8] - GREY).max() <= 12


def test_draft_factor_keeps_crops_at_least_size():
    assert draft_factor(800, 96) == 8 and draft_factor(767, 96) == 4
    assert draft_factor(200, 96) == 2 and draft_factor(150, 96) == 1 and draft_factor(20, 96) == 1


def test_decoding_converts_odd_modes_to_rgb(tmp_path):
    gray = tmp_path / "gray.jpg"
    save_jpeg(picture().convert("L"), gray)
    png_named_jpg = tmp_path / "png.jpg"
    picture().save(png_named_jpg, "PNG")
    sixteen = tmp_path / "sixteen.jpg"
    Image.fromarray(np.full((64, 80), 65535, dtype=np.uint16)).save(sixteen, "PNG")
    cmyk = tmp_path / "cmyk.jpg"
    picture().convert("CMYK").save(cmyk, "JPEG", quality=95)
    for path in (gray, png_named_jpg, cmyk):
        image, _, full = load_rgb(path, 2)
        assert image.mode == "RGB" and full == (1024, 768)
    image, scale, full = load_rgb(sixteen, 2)
    assert image.mode == "RGB" and scale == 1 and np.asarray(image).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    stored = picture(size=(768, 1024), rect=(0, 0, 256, 256))  # red at the stored top-left
    path = save_jpeg(stored, tmp_path / "rot.jpg", exif=exif)
    assert image_size(path) == (1024, 768)
    image, scale, full = load_rgb(path, 2)
    assert full == (1024, 768) and image.size == (512, 384)
    crop = render_square(image, (768, 0, 1024, 256), scale, full, 32)  # displayed top-right
    assert np.abs(crop[4:28, 4:28].astype(int) - RED).max() <= 12


def test_bad_images_raise_a_clear_error(tmp_path):
    data = io.BytesIO()
    save_jpeg(picture(), data)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    cases = [(truncated, "truncated_image"), (garbage, "unreadable_image"),
             (tmp_path / "none.jpg", "missing_image")]
    for path, reason in cases:
        with pytest.raises(DataError, match=path.name) as err:
            load_rgb(path, 1)
        assert err.value.reason == reason


def test_background_squares_never_overlap_boxes():
    rng = np.random.default_rng(0)
    boxes = [(100, 100, 300, 260), (400, 50, 520, 400), (600, 500, 900, 700)]
    squares = sample_background(boxes, [150, 200], (1000, 800), 8, 0.0, rng)
    assert len(squares) >= 4
    for sq in squares:
        assert sq[0] >= 0 and sq[1] >= 0 and sq[2] <= 1000 and sq[3] <= 800
        assert sq[2] - sq[0] == sq[3] - sq[1] <= 200
        assert all(iou(sq, b) == 0.0 for b in boxes)
    assert all(iou(a, b) == 0.0 for i, a in enumerate(squares) for b in squares[i + 1:])
    crowded = [(0, 0, 1000, 500)]  # a box-sized square no longer fits: smaller ones are drawn
    small = sample_background(crowded, [400], (1000, 800), 2, 0.0, np.random.default_rng(0))
    assert len(small) == 2 and all(sq[3] - sq[1] < 400 and sq[1] >= 500 for sq in small)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching is not overlapping
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_folds_are_grouped_by_image_and_stratified():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"img{i:03d}" for i in range(200)], rng.integers(1, 4, size=200))
    labels = rng.integers(0, 9, size=len(groups))
    folds = assign_folds(labels, groups, 5, seed=0)
    frame = pd.DataFrame({"g": groups, "y": labels, "f": folds})
    assert (frame.groupby("g")["f"].nunique() == 1).all()
    assert set(folds) == set(range(5))
    share = pd.crosstab(frame["y"], frame["f"], normalize="index")
    assert (share.sub(0.2).abs() < 0.1).all().all()
    assert np.array_equal(folds, assign_folds(labels, groups, 5, seed=0))
    with pytest.raises(ValueError, match="n_folds=5"):
        assign_folds(labels[:3], groups[:3], 5, seed=0)


def test_atomic_directory_keeps_the_old_output_on_failure(tmp_path):
    out = tmp_path / "crops"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["crops"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_directory(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["crops"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def small_raw(root: Path, n: int = 6) -> pd.DataFrame:
    """n training images with one red box each, 3 test crops; returns their labels table."""
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for i in range(n):
        save_jpeg(picture(), root / "train" / f"im{i}.jpg")
        proba = {f"p{k}": float(k == i % 3) for k in range(9)}
        rows.append({"image_id": f"im{i}", "line": 1, "xc": 0.625, "yc": 0.5, "w": 0.25,
                     "h": 1 / 3, "label": i % 3, "keep": True, **proba})
    for idx in ("10", "2", "7"):
        save_jpeg(picture(size=(120, 60), rect=(0, 0, 60, 60)), root / "test" / f"{idx}.jpg")
    return pd.DataFrame(rows)


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_build_crops_end_to_end_is_deterministic(tmp_path):
    labels = small_raw(tmp_path / "raw")
    config = params_config(CropsConfig, "crops", crop_px=32, background_per_image=1.5, n_folds=3)
    out1, out2 = tmp_path / "c1", tmp_path / "c2"
    metrics, timing = build_crops(tmp_path / "raw", labels, out1, config, SkipLog(ErrorPolicy("fail", 0)), workers=1)
    metrics2, timing2 = build_crops(tmp_path / "raw", labels, out2, config, SkipLog(ErrorPolicy("fail", 0)), workers=2)
    assert metrics == metrics2 and (timing["workers"], timing2["workers"]) == (1, 2)  # the machine's readings apart
    assert sorted(timing) == ["peak_rss_mb", "seconds", "workers"]
    images, index = load_crops(out1, "train")
    again, index2 = load_crops(out2, "train")
    assert np.array_equal(images, again) and index.equals(index2)
    assert images.shape[1:] == (32, 32, 3) and metrics["train"]["boxes"] == 6
    assert metrics["train"]["background"] == len(index) - 6 >= 6
    assert (index["crop_id"] == np.arange(len(index))).all()
    assert np.allclose(index[[f"p{k}" for k in range(9)]].sum(axis=1), 1.0)
    boxes = index[index["source"] == "box"]
    assert boxes[["x0", "y0", "x1", "y1"]].drop_duplicates().values.tolist() == [list(RECT)]
    background = index[index["source"] == "background"]
    assert (background["label"] == 8).all() and (background["line"] == 0).all()
    assert all(iou(tuple(r), RECT) == 0.0 for r in background[["x0", "y0", "x1", "y1"]].values)
    assert (index.groupby("image_id")["fold"].nunique() == 1).all()
    test_images, test_index = load_crops(out1, "test")
    assert test_index["idx"].tolist() == ["10", "2", "7"] and test_images.shape[0] == 3
    assert yaml.safe_load((out1 / "crops.yaml").read_text()) == to_dict(config)
    assert sum(metrics["decode_scale"].values()) == 6
    sides = (index["x1"] - index["x0"]).groupby(index["image_id"]).min()  # box squares: 307 px
    scales = [8 if side >= 256 else 4 if side >= 128 else 2 for side in sides]
    assert metrics["decode_scale"] == {str(k): scales.count(k) for k in sorted(set(scales))}


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_build_crops_skip_policy_counts_bad_images(tmp_path):
    labels = small_raw(tmp_path / "raw")
    (tmp_path / "raw" / "train" / "im0.jpg").write_bytes(b"broken")
    (tmp_path / "raw" / "train" / "im1.jpg").unlink()
    config = params_config(CropsConfig, "crops", crop_px=32, background_per_image=0.0, n_folds=2)
    with pytest.raises(DataError, match="im0.jpg"):
        build_crops(tmp_path / "raw", labels, tmp_path / "c", config, SkipLog(ErrorPolicy("fail", 0)))
    assert not (tmp_path / "c").exists()
    metrics, _ = build_crops(tmp_path / "raw", labels, tmp_path / "c", config,
                             SkipLog(ErrorPolicy("skip", 2)), workers=1)
    assert metrics["skipped"]["by_reason"] == {"missing_image": 1, "unreadable_image": 1}
    assert metrics["train"]["crops"] == 4
    with pytest.raises(TooManySkipped):
        build_crops(tmp_path / "raw", labels, tmp_path / "c", config,
                    SkipLog(ErrorPolicy("skip", 1)))
    assert load_crops(tmp_path / "c", "train")[0].shape[0] == 4  # the old output survives


def test_crops_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="sise"):
        from_section(CropsConfig, {"sise": 64}, "crops")
