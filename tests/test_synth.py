"""The synthetic data set: layout and formats, determinism, and calibration to the real data.

Statistical checks draw many boxes from the plan and the vote model directly
(no rendering), so their tolerances can be tight: a synthetic statistic must
lie within two standard errors *of the real estimate* (1,396 real boxes), i.e.
be statistically indistinguishable from the real data set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from springtail.common.config import load_section
from springtail.common.votes import PATTERNS, agreement_patterns, strict_majority
from springtail.common.yolo import read_annotations
from springtail.synth import SynthConfig, generate
from springtail.synth.layout import box_counts, plan_test, plan_train
from springtail.synth.reference import (
    AGREEMENT_COUNTS,
    BOX_MEDIAN_H,
    BOX_MEDIAN_W,
    BOXES_PER_IMAGE,
    EXPERT_AGREEMENT,
    MAJORITY_COUNTS,
    POOLED_CONFUSION,
    agreement_fractions,
)
from springtail.synth.render import render_train
from springtail.synth.votes import VoteModel, simulate_votes, truth_prior, vote_statistics

from conftest import params_config

REAL_BOXES = sum(AGREEMENT_COUNTS.values())  # 1,396
TINY = params_config(SynthConfig, "synthesize", seed=3, n_train=10, n_test=14, width=384, height=256)
FLOAT = r"(?:0\.\d+|\d\.\d+e-\d+)"  # str() of a float in [0, 1)


def two_se(p: float, n: int = REAL_BOXES) -> float:
    """Two standard errors of a proportion ``p`` estimated on ``n`` real boxes."""
    return 2 * math.sqrt(p * (1 - p) / n)


def digest(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``directory``."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(TINY, tmp_path_factory.mktemp("synth") / "synthetic", workers=1)


# --- layout and formats ----------------------------------------------------------------

def test_layout_matches_the_competition(tiny):
    assert sorted(p.name for p in tiny.iterdir()) == [
        "sample_submission.csv", "solution.csv", "synthesize.yaml", "test", "train", "train_truth.csv",
    ]
    stems = {p.stem for p in (tiny / "train").iterdir()}
    assert len(stems) == TINY.n_train
    assert sorted(p.name for p in (tiny / "train").iterdir()) == sorted(
        f"{s}{ext}" for s in stems for ext in (".jpg", ".txt"))
    assert not list(tiny.parent.glob(".synthetic.*")), "temporary directories left behind"
    assert tiny.stat().st_mode & 0o755 == 0o755, "the data set must be readable by others"


def test_training_images_and_annotations(tiny):
    truth = pd.read_csv(tiny / "train_truth.csv", dtype={"image_id": str})
    assert list(truth.columns) == ["image_id", "line", "truth"]
    for txt in (tiny / "train").glob("*.txt"):
        assert re.fullmatch(f"{FLOAT}{{3}}", txt.stem), txt.stem
        boxes = read_annotations(txt)  # the strict parser reads every file
        rows = truth[truth["image_id"] == txt.stem].sort_values("line")
        assert rows["line"].tolist() == [b.line_no for b in boxes] == list(range(1, len(boxes) + 1))
        assert rows["truth"].between(0, 8).all()
        assert all(b.project and b.w > 0 and b.h > 0 for b in boxes)
        with Image.open(txt.with_suffix(".jpg")) as image:
            assert image.format == "JPEG" and image.size == (TINY.width, TINY.height)
    assert len(truth) == sum(len(read_annotations(t)) for t in (tiny / "train").glob("*.txt"))


def test_test_crops_and_answer_files(tiny):
    sample = pd.read_csv(tiny / "sample_submission.csv", dtype={"idx": str})
    solution = pd.read_csv(tiny / "solution.csv", dtype={"idx": str})
    assert list(sample.columns) == ["idx", "gt"] and list(solution.columns) == ["idx", "gt", "Usage"]
    assert sample["idx"].tolist() == solution["idx"].tolist()
    assert sample["idx"].is_unique and len(sample) == TINY.n_test
    assert {p.stem for p in (tiny / "test").glob("*.jpg")} == set(sample["idx"])
    assert solution["gt"].between(0, 8).all()
    assert (solution["gt"] == 8).sum() == round(TINY.test_background * TINY.n_test)
    assert (solution["Usage"] == "Public").sum() == TINY.n_test // 2
    assert set(solution["Usage"]) == {"Public", "Private"}
    sizes = set()
    for idx in sample["idx"]:
        with Image.open(tiny / "test" / f"{idx}.jpg") as crop:
            assert crop.format == "JPEG"
            sizes.add(crop.size)
    assert len(sizes) > TINY.n_test // 2, "test crops should have variable sizes"


def test_resolved_config_is_written(tiny):
    written = yaml.safe_load((tiny / "synthesize.yaml").read_text(encoding="utf-8"))
    assert SynthConfig(**written) == TINY


def test_unknown_params_key_is_an_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("synthesize:\n  seed: 1\n  n_trian: 5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="n_trian"):
        load_section(SynthConfig, "synthesize", params)


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="test_background"):
        params_config(SynthConfig, "synthesize", test_background=1.5)


# --- determinism -----------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_with_any_worker_count(tiny, tmp_path):
    again = generate(TINY, tmp_path / "again", workers=2)
    first, second = digest(tiny), digest(again)
    first.pop("synthesize.yaml"), second.pop("synthesize.yaml")  # records the worker count
    assert first == second


def test_different_seed_gives_a_different_set():
    a, b = plan_train(1, 50), plan_train(2, 50)
    assert [i.image_id for i in a] != [i.image_id for i in b]
    image_a, _ = render_train(a[0], 1, 192, 128)
    image_b, _ = render_train(a[0], 2, 192, 128)
    assert np.asarray(image_a).tobytes() != np.asarray(image_b).tobytes()


# --- calibration to the real data --------------------------------------------------------

def test_boxes_per_image_follow_the_real_counts():
    counts = Counter(box_counts(1117, np.random.default_rng(0)).tolist())
    assert dict(counts) == BOXES_PER_IMAGE  # the real set's exact histogram at its size
    plan = Counter(len(item.truth) for item in plan_train(0, 5000))
    real = np.array(list(BOXES_PER_IMAGE.values())) / sum(BOXES_PER_IMAGE.values())
    got = np.array([plan[k] for k in BOXES_PER_IMAGE]) / 5000
    assert np.abs(got - real).max() < 0.001


@pytest.fixture(scope="module")
def many_votes() -> tuple[np.ndarray, np.ndarray]:
    """(truth, votes) for 300,000 boxes drawn from the generator's prior and vote model."""
    rng = np.random.default_rng(123)
    truth = rng.choice(9, size=300_000, p=truth_prior())
    return truth, simulate_votes(truth, rng)


def test_agreement_pattern_matches_the_real_votes(many_votes):
    stats = vote_statistics(many_votes[1])
    for pattern, real in agreement_fractions().items():
        assert abs(stats["patterns"][pattern] - real) < two_se(real), pattern


def test_majority_class_frequencies_match(many_votes):
    stats = vote_statistics(many_votes[1])
    for cls, count in enumerate(MAJORITY_COUNTS):
        real = count / REAL_BOXES
        assert abs(stats["majority"][cls] - real) < two_se(real), f"class {cls}"


def test_experts_differ_in_reliability(many_votes):
    agreement = vote_statistics(many_votes[1])["expert_agreement"]
    assert np.all((agreement > min(EXPERT_AGREEMENT) - 0.01) & (agreement < max(EXPERT_AGREEMENT) + 0.01))
    worst = int(np.argmin(agreement))
    assert worst == int(np.argmin(EXPERT_AGREEMENT))
    assert np.sort(agreement)[1] - agreement[worst] > 0.004, "one expert must be noticeably worse"


def test_expert_errors_spread_like_the_real_confusions(many_votes):
    truth, votes = many_votes
    majority = strict_majority(votes[:60_000])
    ok = majority >= 0
    pooled = np.zeros((9, 9))
    np.add.at(pooled, (np.repeat(majority[ok], 4), votes[:60_000][ok].ravel()), 1)
    real = POOLED_CONFUSION.astype(float)
    off_rate = 1 - np.trace(pooled) / pooled.sum()
    real_rate = 1 - np.trace(real) / real.sum()
    assert abs(off_rate - real_rate) < 0.006
    np.fill_diagonal(pooled, 0), np.fill_diagonal(real, 0)
    assert (pooled[:8] > 0).sum(axis=1).min() == 8, "every class is confused with every other"
    cosine = (pooled * real).sum() / np.linalg.norm(pooled) / np.linalg.norm(real)
    assert cosine > 0.9


def test_truth_is_often_but_not_always_the_majority(many_votes):
    truth, votes = many_votes
    majority = strict_majority(votes[:30_000])
    assert 0.9 < (majority == truth[:30_000]).mean() < 0.99


def test_agreement_helpers_on_known_votes():
    examples = ((1, 1, 1, 1), (1, 1, 1, 3), (1, 3, 1, 3), (0, 1, 0, 2), (0, 1, 2, 3))
    assert agreement_patterns(np.array(examples)) == list(PATTERNS)
    assert strict_majority(np.array([(1, 1, 1, 3), (1, 3, 1, 3), (0, 1, 0, 2)])).tolist() == [1, -1, 0]
    stats = vote_statistics(np.array([[1, 1, 1, 1], [2, 2, 2, 3], [2, 3, 2, 3]]))
    assert stats["patterns"]["2-2"] == pytest.approx(1 / 3)
    assert stats["no_majority"] == pytest.approx(1 / 3)


def test_vote_model_is_deterministic_and_uses_only_its_generator():
    import random

    truth = np.arange(9).repeat(50)
    np.random.seed(1)
    random.seed(1)
    legacy, stdlib = np.random.get_state()[1].copy(), random.getstate()
    a = simulate_votes(truth, np.random.default_rng(5), VoteModel())
    b = simulate_votes(truth, np.random.default_rng(5), VoteModel())
    assert a.shape == (450, 4) and np.array_equal(a, b)
    assert not np.array_equal(a, simulate_votes(truth, np.random.default_rng(6), VoteModel()))
    assert np.array_equal(np.random.get_state()[1], legacy) and random.getstate() == stdlib


def test_box_geometry_is_like_the_real_boxes():
    boxes = [b for item in plan_train(9, 50) for b in render_train(item, 9, 384, 256)[1]]
    xc, yc, w, h = np.array(boxes).T
    assert abs(np.median(w) - BOX_MEDIAN_W) < 0.07 and abs(np.median(h) - BOX_MEDIAN_H) < 0.08
    assert 0.35 < np.median(xc) < 0.65 and 0.3 < np.median(yc) < 0.6
    assert np.all((xc - w / 2 >= -1e-9) & (xc + w / 2 <= 1 + 1e-9))
    assert np.all(np.maximum(w, h) > 0.08), "even the palest specimen is boxed whole"


def test_test_crops_follow_the_training_classes():
    crops = plan_test(4, 20_000, 0.3)
    counts = np.bincount([c.truth for c in crops], minlength=9)
    assert counts[8] == 6000
    species = counts[:8] / counts[:8].sum()
    expected = truth_prior()[:8] / truth_prior()[:8].sum()
    assert np.abs(species - expected).max() < 0.01
