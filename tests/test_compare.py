"""Bootstrap intervals of macro F1 and springtail-compare: two revisions, paired, against the noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import BIN, run
from springtail.common.f1 import macro_f1
from springtail.compare.cli import format_text, main
from springtail.compare.paired import MEASURE, aligned_public, aligned_val, compare, judge, read_spread
from springtail.compare.revision import Revision
from springtail.scoring.bootstrap import (
    _group_counts,
    f1_interval,
    macro_f1_from_counts,
    paired_difference,
)

PROBS = [f"p{c}" for c in range(9)]


def noisy(n_images: int, per_image: int = 5, right: float = 0.7, seed: int = 0):
    """(y, pred, groups): predictions right on about ``right`` of the crops."""
    rng = np.random.default_rng(seed)
    n = n_images * per_image
    y = rng.integers(0, 9, n)
    pred = np.where(rng.random(n) < right, y, rng.integers(0, 9, n))
    return y, pred, np.repeat(np.arange(n_images), per_image)


def test_macro_f1_from_counts_is_exactly_scikit_learns():
    rng = np.random.default_rng(1)
    for _ in range(500):
        n, k = rng.integers(1, 40), rng.integers(1, 10)  # few classes: most are absent from both
        y = rng.integers(0, k, n)
        pred = np.where(rng.random(n) < 0.5, y, rng.integers(0, 9, n))
        counts = _group_counts(y, pred, rng.integers(0, 4, n)).sum(axis=0)
        assert float(macro_f1_from_counts(counts)) == macro_f1(y, pred)


def test_interval_contains_the_estimate_and_narrows_with_more_images():
    widths = []
    for n_images in (40, 640):
        y, pred, groups = noisy(n_images)
        low, high = f1_interval(y, pred, groups)
        assert low < macro_f1(y, pred) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # 16x the images: about a quarter of the width


def test_crops_of_one_image_are_drawn_together():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 9, 1000)
    groups = np.repeat(np.arange(100), 10)
    pred = np.where(np.repeat(rng.random(100) < 0.7, 10), y, (y + 1) % 9)  # whole images right or wrong
    by_image = np.subtract(*f1_interval(y, pred, groups)[::-1])
    by_crop = np.subtract(*f1_interval(y, pred, np.arange(1000))[::-1])
    assert by_image > 2 * by_crop  # correlated errors: 10 crops of a photo are worth far fewer


def test_identical_predictions_differ_by_exactly_zero():
    y, pred, groups = noisy(50)
    result = paired_difference(y, pred, pred, groups)
    assert result["difference"] == 0.0 and (result["low"], result["high"]) == (0.0, 0.0)
    assert result["a"] == result["b"] == macro_f1(y, pred)
    assert (result["n"], result["n_groups"]) == (250, 50)


def test_a_better_model_has_an_interval_above_zero():
    y, pred_a, groups = noisy(80, right=0.6)
    pred_b = np.where(np.arange(len(y)) % 2 == 0, y, pred_a)  # B fixes half of A's crops
    result = paired_difference(y, pred_a, pred_b, groups)
    assert result["difference"] == pytest.approx(macro_f1(y, pred_b) - macro_f1(y, pred_a))
    assert 0 < result["low"] < result["difference"] < result["high"]


def test_seeded_and_deterministic():
    y, pred, groups = noisy(60)
    assert f1_interval(y, pred, groups, seed=3) == f1_interval(y, pred, groups, seed=3)
    assert f1_interval(y, pred, groups, seed=3) != f1_interval(y, pred, groups, seed=4)
    wide = f1_interval(y, pred, groups, level=0.99)
    narrow = f1_interval(y, pred, groups, level=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bad_input_is_named():
    y, pred, groups = noisy(5)
    with pytest.raises(ValueError, match="25 labels, 24 predictions and 25 groups"):
        f1_interval(y, pred[:-1], groups)
    with pytest.raises(ValueError, match=r"prediction outside 0..8: 0..9"):
        f1_interval(y, np.r_[pred[:-1], 9], groups)
    with pytest.raises(ValueError, match="no crops"):
        f1_interval([], [], [])
    with pytest.raises(ValueError, match="n_boot must be >= 1"):
        f1_interval(y, pred, groups, n_boot=0)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        f1_interval(y, pred, groups, level=1.0)


# springtail-compare on tables made here --------------------------------------------------

def revision(name: str, pred: np.ndarray, labels: np.ndarray | None = None, solution: bool = True,
             crop_ids: np.ndarray | None = None) -> Revision:
    """A revision with 40 validation crops of 10 images and 20 test crops, half of them public."""
    y = np.arange(40) % 9 if labels is None else labels
    crop_ids = np.arange(40) if crop_ids is None else crop_ids
    val = pd.DataFrame({"crop_id": crop_ids, "image_id": [f"img{k // 4}" for k in range(40)],
                        "label": y, **dict(zip(PROBS, np.eye(9)[pred[:40]].T))})
    idx = [str(k) for k in range(20)]
    test = pd.DataFrame({"idx": idx, **dict(zip(PROBS, np.eye(9)[pred[:20]].T))})
    answers = pd.DataFrame({"idx": idx, "gt": np.arange(20) % 9, "Usage": ["Public", "Private"] * 10})
    return Revision(name, name.ljust(40, "0"), val, test, answers if solution else None, "gt")


def test_compare_pairs_the_same_crops(tmp_path):
    right = np.arange(40) % 9
    a = revision("aaa", np.where(np.arange(40) % 3 == 0, 0, right))
    b = revision("bbb", right)
    result = compare(a, b, tmp_path / "seeds.json", "ensemble")
    assert result["val"]["b"] == 1.0 and result["val"]["difference"] > 0
    assert result["val"]["n_groups"] == 10 and result["val"]["groups"] == "image_id"
    assert result["public"]["n"] == 10 and result["public"]["groups"] == "idx"
    assert MEASURE in result["seeds_note"] and result["val"]["exceeds_seed_spread"] is None
    text = format_text(result)
    assert "validation (40 crops, 10 images)" in text and "public test half (10 crops" in text
    assert "private half is never compared" in text and "seed-to-seed spread unknown" in text
    seeds = tmp_path / "one_split.json"  # a study that measured validation only
    seeds.write_text(json.dumps({"ensemble": {"val_macro_f1": {"std": 0.5, "values": [0.1, 0.9]}}}))
    text = format_text(compare(a, b, seeds, "ensemble"))
    assert "is inside the seed-to-seed spread ±1.414" in text and "no std of public_macro_f1" in text
    no_answers = compare(a, revision("ccc", right, solution=False), tmp_path / "seeds.json", "ensemble")
    assert no_answers["public"] is None and "no solution.csv" in no_answers["public_note"]


def test_different_crops_or_labels_are_refused():
    pred = np.arange(40) % 9
    a = revision("main", pred)
    with pytest.raises(ValueError, match=r"main \(main000\) and other \(other00\) score different "
                                         r"validation crops \(crop_id\): 1 only in main \(e.g. 0\)"):
        aligned_val(a, revision("other", pred, crop_ids=np.arange(1, 41)))
    relabelled = np.r_[8, pred[1:]]
    with pytest.raises(ValueError, match=r"label the validation crops differently: 1 crops, "
                                         r"e.g. crop_id 0: 0 in main, 8 in other"):
        aligned_val(a, revision("other", pred, labels=relabelled))
    b = revision("other", pred)
    b.solution.loc[0, "gt"] = 5
    with pytest.raises(ValueError, match="different public answers"):
        aligned_public(a, b)


def test_seed_spread_decides(tmp_path):
    seeds = tmp_path / "seeds.json"
    assert read_spread(seeds, "ensemble")[0] == {}
    seeds.write_text(json.dumps({"models": {"ensemble": {
        "val_macro_f1": {"mean": 0.8, "std": 0.01, "values": [0.79, 0.8, 0.81]},
        "public_macro_f1": {"mean": 0.8, "std": 0.02, "values": [0.78, 0.8, 0.82]}}}}))
    spread, _ = read_spread(seeds, "ensemble")
    assert spread == {"val": (0.01, 3), "public": (0.02, 3)}
    assert read_spread(seeds, "cnn_xgb") == ({}, f"seed-to-seed spread unknown: {seeds} has no "
                                                 f"'cnn_xgb'; measure it with `{MEASURE}`")
    base = {"difference": 0.02, "low": -0.01, "high": 0.05}
    inside = judge(base, spread["val"], "")  # 2 x sqrt(2) x 0.01 = 0.028
    assert not inside["exceeds_seed_spread"] and inside["seed_verdict"].endswith("decides nothing")
    assert not inside["excludes_zero"] and inside["seed_spread"] == pytest.approx(0.0283, abs=1e-4)
    beyond = judge(base | {"difference": -0.03, "high": -0.001}, spread["val"], "")
    assert beyond["exceeds_seed_spread"] and beyond["excludes_zero"]
    assert "exceeds the seed-to-seed spread ±0.028" in beyond["seed_verdict"]
    seeds.write_text(json.dumps({"models": {}, "ensemble": {  # as benchmarks.seeds writes it
        "val_macro_f1": {"mean": 0.8, "std": 0.005, "values": [0.8, 0.79, 0.8, 0.81]},
        "public_macro_f1": {"mean": 0.8, "std": None, "values": [0.8]}}}))
    assert read_spread(seeds, "ensemble")[0] == {"val": (0.005, 4)}
    seeds.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a seeds file"):
        read_spread(seeds, "ensemble")


# springtail-compare through the real dvc --------------------------------------------------

@pytest.fixture(scope="module")
def variants(tiny_repo, tmp_path_factory) -> Path:
    """A clone of the tiny run with an experiment `all-mean` (every model averaged: other
    predictions, only ensemble and submission re-run) and a branch `docs` (README only)."""
    repo = tmp_path_factory.mktemp("compare") / "clone"
    run(["git", "clone", "-q", str(tiny_repo), str(repo)], repo.parent)
    run(["dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc" / "cache")], repo)
    run(["dvc", "checkout"], repo)
    run(["git", "checkout", "-q", "-b", "docs"], repo)
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA line.\n")
    run(["git", "commit", "-qam", "README only"], repo)
    run(["git", "checkout", "-q", "main"], repo)
    run(["dvc", "exp", "run", "submission", "-S", "ensemble.select=false", "-S", "ensemble.method=mean",
         "-n", "all-mean"], repo)
    return repo


def _compare(repo: Path, *args: str, capsys) -> tuple[int, dict | str]:
    status = main([*args, "--repo", str(repo), "--json"])
    out = capsys.readouterr()
    return status, (json.loads(out.out) if status == 0 else out.err)


@pytest.mark.slow
def test_compare_an_experiment_with_main(variants, capsys, tmp_path):
    status, result = _compare(variants, "main", "all-mean", capsys=capsys)
    assert status == 0, result
    on_main = json.loads(run(["git", "show", "main:metrics/ensemble.json"], variants).stdout)
    in_exp = json.loads((variants / "metrics" / "ensemble.json").read_text())  # exp run's workspace
    assert in_exp["method"] == "mean" and on_main["method"] != "mean"
    for split in ("val", "public"):
        r = result[split]
        assert r["a"] == pytest.approx(on_main[f"{split}_macro_f1"], abs=1e-12)
        assert r["b"] == pytest.approx(in_exp[f"{split}_macro_f1"], abs=1e-12)
        assert r["low"] <= r["high"] and r["excludes_zero"] == (r["low"] > 0 or r["high"] < 0)
    assert result["val"]["n"] == on_main["n_val"] and result["val"]["groups"] == "image_id"
    assert result["val"]["difference"] != 0 or result["public"]["difference"] != 0
    assert len(result["b"]["commit"]) == 40 and result["b"]["commit"] != result["a"]["commit"]
    assert "private" not in json.dumps(result)
    seeds = tmp_path / "seeds.json"  # a spread far wider than any difference: decides nothing
    seeds.write_text(json.dumps({"models": {"ensemble": {"val_macro_f1": {"std": 1.0, "values": [0, 1]},
                                                         "public_macro_f1": {"std": 1.0}}}}))
    text = run([str(BIN / "springtail-compare"), "main", "all-mean", "--seeds", str(seeds)], variants).stdout
    assert "ensemble: A = main (" in text and "B = all-mean (" in text
    assert text.count("decides nothing") == 2 and "90 % interval of B - A" in text


@pytest.mark.slow
def test_compare_variants_with_the_same_predictions(variants, capsys):
    head = run(["git", "rev-parse", "main"], variants).stdout.strip()
    for rev_b in ("docs", head):
        status, result = _compare(variants, "main", rev_b, capsys=capsys)
        assert status == 0, result
        for split in ("val", "public"):
            r = result[split]
            assert r["difference"] == 0 and (r["low"], r["high"]) == (0, 0) and not r["excludes_zero"]
    status, result = _compare(variants, "main", "docs", "--model", "cnn_xgb", capsys=capsys)
    assert status == 0 and result["val"]["difference"] == 0


@pytest.mark.slow
def test_compare_names_what_is_missing(variants, capsys):
    status, err = _compare(variants, "main", "no-such-idea", capsys=capsys)
    assert status == 2 and "no branch, tag, commit or DVC experiment named 'no-such-idea'" in err
    status, err = _compare(variants, "main", "docs", "--model", "resnet", capsys=capsys)
    assert status == 2 and "main (" in err and "data/processed/predictions/resnet/val.csv" in err
