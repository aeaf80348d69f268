"""Springtails in whole photos: candidates, scores against the annotations, springtail-count."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from benchmarks.count_noise import simulate, unbiased_rates
from springtail.common.config import to_dict
from springtail.common.policy import ErrorPolicy, SkipLog
from springtail.detect.candidates import (
    BOX,
    FEATURES,
    DetectConfig,
    fill_holes,
    foreground,
    min_box_area,
    propose,
)
from springtail.detect.evaluate import average_precision, detection_metrics, match
from springtail.detect.scorer import BoxScorer, best_iou, best_threshold, fit_scorer, suppress

from conftest import params_config


def photo(path, boxes, size=(768, 512), debris=()):
    """A bright, unevenly lit field with dark ellipses (animals) in ``boxes``, grey-green
    squares (debris) in ``debris`` and a few specks of dust too small to count."""
    x = np.linspace(0, 1, size[0])[None, :]
    field = (200 + 30 * x + np.zeros((size[1], 1))).astype(np.uint8)  # a brightness gradient
    image = Image.fromarray(np.stack([field] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.ellipse(box, fill=(70, 60, 80))
    for box in debris:
        draw.rectangle(box, fill=(150, 165, 140))
    for x0, y0 in ((40, 40), (700, 460), (400, 20)):
        draw.ellipse((x0, y0, x0 + 4, y0 + 4), fill=(90, 90, 90))
    image.save(path, quality=92)
    return path


def test_proposals_find_the_animals_not_the_dust(tmp_path):
    animals = [(100, 100, 260, 180), (420, 250, 520, 450)]
    config = params_config(DetectConfig, "detect", params="params.tiny.yaml")
    proposals, size = propose(photo(tmp_path / "p.jpg", animals), config, min_area=0.005)
    assert size == (768, 512) and list(proposals.columns) == [*BOX, "setting", *FEATURES]
    assert sorted(proposals["setting"].unique()) == list(range(len(config.thresholds)))
    for setting, found in proposals.groupby("setting"):  # every setting: each animal once, no dust
        assert len(found) == 2
        for box, truth in zip(sorted(map(tuple, found[BOX].to_numpy())), sorted(animals)):
            assert np.abs(np.subtract(box, truth)).max() <= 12  # within a few decoded pixels
    assert np.isfinite(proposals[list(FEATURES)].to_numpy()).all()


def test_hole_filling_and_shared_masks_match_scipy():
    """fill_holes equals ndimage.binary_fill_holes (holes touching the border stay open, 4-connected
    background); a setting that only adds an opening reuses the closed mask of the one before."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for density in (0.2, 0.45, 0.6, 0.8):
        mask = ndimage.binary_closing(rng.random((60, 90)) < density, iterations=2)
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask)), density
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7], ring[3:6, 3:6] = True, False
    assert fill_holes(ring)[4, 4] and not fill_holes(ring[:, 3:])[4, 1]  # a hole, then one cut open
    dark = ndimage.gaussian_filter(rng.normal(size=(80, 120)), 2) * 10
    shared = {}
    loose = foreground(dark, 2.0, 3, 0, shared=shared)
    opened = foreground(dark, 2.0, 3, 1, shared=shared)
    assert len(shared) == 1 and np.array_equal(loose, foreground(dark, 2.0, 3, 0))
    assert np.array_equal(opened, ndimage.binary_opening(ndimage.binary_fill_holes(
        ndimage.binary_closing(dark > 2.0, iterations=3)), iterations=1))


def test_proposal_settings_must_pair_up():
    with pytest.raises(ValueError, match="one length"):
        params_config(DetectConfig, "detect", thresholds=[2.0, 4.0], closings=[3], openings=[0])
    with pytest.raises(ValueError, match="detect.nms_iou"):
        params_config(DetectConfig, "detect", nms_iou=1.5)


def table(rows, **columns):
    return pd.DataFrame(rows, columns=BOX).assign(**columns)


def test_best_iou_and_suppression():
    truth = table([(0, 0, 10, 10), (100, 100, 120, 120)])
    found = table([(0, 0, 10, 20), (100, 100, 120, 120), (50, 50, 60, 60)])
    iou, nearest = best_iou(found, truth)
    assert iou == pytest.approx([0.5, 1.0, 0.0]) and nearest[:2].tolist() == [0, 1]
    assert best_iou(found, truth.iloc[:0])[1].tolist() == [-1, -1, -1]
    config = params_config(DetectConfig, "detect", nms_iou=0.3, max_candidates=2)
    overlapping = table([(0, 0, 10, 10), (0, 0, 10, 12), (30, 30, 40, 40), (60, 60, 70, 70)])
    kept = suppress(overlapping, np.array([0.5, 0.9, 0.1, 0.7]), config)
    assert kept.tolist() == [1, 3]  # 0 overlaps 1 (IoU 0.83), and only the best two are kept


def test_best_threshold_counts_without_bias_after_suppression():
    config = params_config(DetectConfig, "detect", nms_iou=0.3)
    # one photo, two animals scored 0.6 and 0.35, a debris box at 0.3, a worse box on animal 0 (suppressed)
    proposals = table([(0, 0, 10, 10), (0, 0, 10, 14), (50, 50, 60, 60), (90, 90, 95, 95)], photo="a.jpg",
                      out_of_fold=[0.6, 0.45, 0.35, 0.3], target=[1.0, 0.7, 0.9, 0.0], nearest=[0, 0, 1, -1])
    assert best_threshold(proposals, 2, config) == pytest.approx(0.35)  # two boxes kept for two animals
    assert best_threshold(proposals, 3, config) == pytest.approx(0.2)  # three: the debris too
    assert best_threshold(proposals, 1, config) == pytest.approx(0.4)  # one: the lowest that keeps one


def test_the_scorer_learns_animals_from_debris_and_comes_back_from_disk(tmp_path):
    config = params_config(DetectConfig, "detect", params="params.tiny.yaml", scorer_trees=30)
    rng = np.random.default_rng(0)
    photos = []
    for k in range(6):
        x, y = rng.integers(40, 300, 2)
        animals = [(x, y, x + 140, y + 70), (x + 300, y + 150, x + 380, y + 330)]
        path = photo(tmp_path / f"{k}.jpg", animals, debris=[(600, 40, 700, 140)])
        rows = pd.DataFrame([((a[0] + a[2]) / 2 / 768, (a[1] + a[3]) / 2 / 512, (a[2] - a[0]) / 768,
                              (a[3] - a[1]) / 512) for a in animals], columns=["xc", "yc", "w", "h"])
        photos.append((str(path), rows))
    log = SkipLog(ErrorPolicy(on_error="skip", max_skipped=5))
    (tmp_path / "bad.jpg").write_bytes(b"not a photo")
    scorer, fitted = fit_scorer(photos + [(str(tmp_path / "bad.jpg"), photos[0][1])], config, 0.005, log, workers=1)
    assert log.to_dict()["by_reason"] == {"unreadable_image": 1} and fitted["photo"].nunique() == 6
    assert 0.2 <= scorer.chosen_score <= 0.7 and scorer.min_score == scorer.chosen_score
    test, _ = propose(photo(tmp_path / "new.jpg", [(100, 300, 240, 370)], debris=[(500, 100, 600, 200)]),
                      config, 0.005)
    scores = scorer.score(test)
    on_animal = best_iou(test, table([(100, 300, 240, 370)]))[0] >= 0.5
    assert on_animal.any() and (~on_animal).any()
    assert scores[on_animal].min() > scores[~on_animal].max()
    scorer.save(tmp_path / "detector")
    again = BoxScorer.load(tmp_path / "detector", config)
    assert np.allclose(again.score(test), scores) and again.chosen_score == scorer.chosen_score
    other = params_config(DetectConfig, "detect", **(to_dict(config) | {"thresholds": [3.0, 4.0, 2.0]}))
    with pytest.raises(ValueError, match=r"settings\.json: fitted on proposals made with other detect\.thresholds"):
        BoxScorer.load(tmp_path / "detector", other)
    with pytest.raises(FileNotFoundError, match="dvc repro detector"):
        BoxScorer.load(tmp_path / "nowhere", config)


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
    from springtail.cli.count import main

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
    totals = pd.read_csv(out / "totals.csv")  # the readable photos as one sample, despite the broken one
    assert totals["species"].tolist() == species
    assert (totals["low"] >= 0).all() and (totals["low"] <= totals["high"]).all() and (totals["estimate"] >= 0).all()
    assert totals["cc"].sum() == len(found) - (found["predicted"] == "FOND").sum()
    assert (totals["boxes_to_check"] <= totals["cc"]).all()
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "estimated totals [90 % interval]" in err


@pytest.mark.slow
def test_photos_named_in_batches_equal_photos_named_one_by_one(tiny_repo, tmp_path):
    """detect_photos (proposals in worker processes, the ensemble on chunks of photos) gives
    each photo, in order, what detect_photo gives it alone; a broken photo keeps its place."""
    from springtail.bundle.load import load_bundle
    from springtail.common.policy import DataError
    from springtail.detect.photos import detect_photo, detect_photos

    model = load_bundle(tiny_repo / "models/springtail-model")
    pipeline, scorer = model.pipeline, model.scorer()
    paths = sorted((tiny_repo / "data/synthetic/train").glob("*.jpg"))[:5]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really")
    paths.insert(2, broken)
    found = list(detect_photos(paths, pipeline, scorer, workers=2, chunk=2))
    assert [path for path, _ in found] == paths
    assert isinstance(found[2][1], DataError) and "broken.jpg" in str(found[2][1])
    for path, result in found[:2] + found[3:]:
        alone, size = detect_photo(path, pipeline, scorer)
        assert result[1] == size
        pd.testing.assert_frame_equal(result[0], alone, atol=2e-6, check_exact=False)


@pytest.mark.slow
def test_detect_stage_metrics_in_the_tiny_run(tiny_repo):
    import json

    metrics = json.loads((tiny_repo / "metrics/detect.json").read_text())
    assert metrics["photos"] > 0 and metrics["annotated_boxes"] > 0
    assert 0 <= metrics["recall"] <= metrics["candidate_recall"] <= 1
    counts = pd.read_csv(tiny_repo / "plots/detect/counts.csv")
    assert list(counts.columns) == ["photo", "species", "annotated", "predicted"]
    assert counts["annotated"].sum() <= metrics["annotated_boxes"]


@pytest.mark.slow
def test_detect_benchmark_times_whole_photos_of_the_tiny_run(tiny_repo):
    from benchmarks.detect import bench_detect, load_detector

    out = bench_detect(*load_detector(tiny_repo, tiny_repo / "params.yaml", 2))
    assert out["detect_photos"] == 2 and out["detect_photo_px"] == "768x512"
    assert 0 < out["detect_s_per_photo"] <= out["detect_s_per_photo_max"]


def test_count_noise_unbiased_classifier_keeps_expected_totals_and_a_perfect_one_is_exact():
    totals = np.array([90, 45, 29, 20, 15, 34, 21, 25, 0], dtype=float)
    rates = unbiased_rates(totals, 0.8)
    assert np.allclose(rates[:8].sum(axis=1), 1) and not rates[8].any()
    assert np.allclose(totals @ rates, totals)  # no bias: expected predicted totals are exact
    assert simulate(totals, unbiased_rates(totals, 1.0), 0.10, 20, 200)["all_within"] == 1.0
    noisy = simulate(totals, rates, 0.10, 20, 2000)
    assert 0.0 < noisy["all_within"] < 0.2 and set(noisy["mean_abs_error"]) == {
        "AUTRE", "Cer", "CRY_THE", "HYP_MAN", "LEP", "MET_AFF", "PAR_NOT"}
