"""Springtails in whole photos: candidates, scores against the annotations, springtail-count."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from springtail.detect.candidates import DetectConfig, candidate_boxes, min_box_area
from springtail.detect.evaluate import average_precision, detection_metrics, match

from conftest import params_config


def photo(path, boxes, size=(768, 512)):
    """A bright, unevenly lit field with dark ellipses (animals) in ``boxes`` and a few
    specks of dust too small to count."""
    x = np.linspace(0, 1, size[0])[None, :]
    field = (200 + 30 * x + np.zeros((size[1], 1))).astype(np.uint8)  # a brightness gradient
    image = Image.fromarray(np.stack([field] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.ellipse(box, fill=(70, 60, 80))
    for x0, y0 in ((40, 40), (700, 460), (400, 20)):
        draw.ellipse((x0, y0, x0 + 4, y0 + 4), fill=(90, 90, 90))
    image.save(path, quality=92)
    return path


def test_candidates_find_the_animals_not_the_dust(tmp_path):
    animals = [(100, 100, 260, 180), (420, 250, 520, 450)]
    config = params_config(DetectConfig, "detect", params="params.tiny.yaml")
    boxes, size = candidate_boxes(photo(tmp_path / "p.jpg", animals), config, min_area=0.005)
    assert size == (768, 512) and len(boxes) == 2
    for found, truth in zip(sorted(boxes), sorted(animals)):
        assert np.abs(np.subtract(found, truth)).max() <= 12  # within a few decoded pixels


def test_min_box_area_is_a_quantile_of_the_annotated_boxes():
    config = params_config(DetectConfig, "detect", min_area_quantile=0.5)
    assert min_box_area(np.array([0.01, 0.02, 0.03]), config) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no annotated box"):
        min_box_area(np.array([]), config)


def boxes(rows, photo="a.jpg", **columns):
    table = pd.DataFrame(rows, columns=["x0", "y0", "x1", "y1"])
    table.insert(0, "photo", photo)
    return table.assign(**columns)


def test_matching_is_one_to_one_and_by_score():
    truth = boxes([(0, 0, 10, 10)])
    found = boxes([(0, 0, 10, 11), (0, 0, 10, 10)], score=[0.5, 0.9])
    assert match(found, truth, 0.5).tolist() == [False, True]  # the better-scored one takes it
    assert average_precision(np.array([0.9, 0.5]), np.array([True, False]), 1) == 1.0
    assert average_precision(np.array([0.9, 0.5]), np.array([False, True]), 1) == 0.5


def test_detection_metrics_recall_precision_and_counts():
    truth = pd.concat([boxes([(0, 0, 10, 10), (20, 20, 30, 30)], species=["LEP", "Cer"]),
                       boxes([(0, 0, 10, 10)], photo="b.jpg", species=["LEP"])], ignore_index=True)
    found = pd.concat([
        boxes([(0, 0, 10, 10), (50, 50, 60, 60), (20, 20, 30, 30)], score=[0.9, 0.8, 0.3],
              predicted=["LEP", "LEP", "FOND"], accepted=[True, True, False]),
        boxes([(1, 0, 10, 10)], photo="b.jpg", score=[0.7], predicted=["Cer"], accepted=[True]),
    ], ignore_index=True)
    metrics, counts = detection_metrics(found, truth, 0.5)
    assert metrics["recall"] == pytest.approx(2 / 3, abs=1e-5) and metrics["precision"] == pytest.approx(2 / 3, abs=1e-5)
    assert metrics["candidate_recall"] == 1.0
    assert metrics["species_totals"]["LEP"] == {"annotated": 2, "predicted": 2, "relative_error": 0.0}
    assert metrics["species_totals"]["Cer"]["predicted"] == 1
    assert metrics["count_mae_per_photo"] == 0.0  # 2 and 1 springtails per photo, found 2 and 1
    row = counts.set_index(["photo", "species"]).loc[("a.jpg", "Cer")]
    assert (row["annotated"], row["predicted"]) == (1, 0)


@pytest.mark.slow
def test_springtail_count_on_photos_of_the_trained_pipeline(tiny_repo, tmp_path, capsys):
    from springtail.detect.cli import main

    folder = tmp_path / "week"
    folder.mkdir()
    for path in sorted((tiny_repo / "data/synthetic/train").glob("*.jpg"))[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "out"
    assert main(["--photos", str(folder), "--out", str(out), "--pipeline", str(tiny_repo)]) == 1
    counts = pd.read_csv(out / "counts.csv", keep_default_na=False).set_index("photo")
    assert len(counts) == 4 and "broken.jpg" in counts.loc["broken.jpg", "error"]
    good = counts[counts["error"] == ""]
    species = [c for c in counts.columns if c not in ("total", "error")]
    assert (good[species].astype(int).sum(axis=1) == good["total"].astype(int)).all()
    found = pd.read_csv(out / "boxes.csv")
    assert len(found) == good["total"].astype(int).sum()
    assert sorted(p.name for p in (out / "annotated").iterdir()) == sorted(
        f"{name}.jpg" for name in good.index)
    assert "broken.jpg" in capsys.readouterr().err


@pytest.mark.slow
def test_detect_stage_metrics_in_the_tiny_run(tiny_repo):
    import json

    metrics = json.loads((tiny_repo / "metrics/detect.json").read_text())
    assert metrics["photos"] > 0 and metrics["annotated_boxes"] > 0
    assert 0 <= metrics["recall"] <= metrics["candidate_recall"] <= 1
    counts = pd.read_csv(tiny_repo / "plots/detect/counts.csv")
    assert list(counts.columns) == ["photo", "species", "annotated", "predicted"]
    assert counts["annotated"].sum() <= metrics["annotated_boxes"]
