"""Species totals: CC, PACC and EMQ on synthetic probabilities with a planted prior shift,
the interval, the calibration's JSON round trip, bad input, and the rendered benchmark table."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from benchmarks import quantify as bench
from benchmarks import quantify_intervals
from benchmarks.seeds import update_doc
from springtail.common.classes import N_CLASSES, PROB_COLUMNS
from springtail.common.io import read_json
from springtail.quantify import COLUMNS, SPECIES, Calibration, species_totals
from springtail.quantify.calibration import species_probs
from springtail.quantify.methods import cc, pacc, shrinkage_weight
from springtail.quantify.totals import estimate

K = len(SPECIES)
SHIFTED = np.array([0.40, 0.25, 0.15, 0.08, 0.05, 0.04, 0.02, 0.01])


def simulate(prior: np.ndarray, n: int, seed: int, separation: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 9) probabilities and (n,) species of boxes drawn with species shares ``prior``:
    logits = separation * one-hot(species) + N(0, 1), as a classifier that is right about
    65 % of the time and whose boxes of one species look alike whatever the mix."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(K, n, p=prior)
    logits = np.full((n, N_CLASSES), -4.0)  # FOND: unlikely for every box
    logits[:, :K] = separation * np.eye(K)[labels] + rng.normal(size=(n, K))
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True), labels


def calibration(n: int = 4000, seed: int = 0, detector: bool = False) -> Calibration:
    probs, labels = simulate(np.full(K, 1 / K), n, seed)
    val = pd.DataFrame(probs, columns=list(PROB_COLUMNS)).assign(label=labels)
    if not detector:
        return Calibration.fit(val)
    boxes = pd.DataFrame(probs[:100], columns=list(PROB_COLUMNS)).assign(matched=np.arange(100) >= 10)
    return Calibration.fit(val, boxes, n_annotated=100)


@pytest.fixture(scope="module")
def fitted() -> Calibration:
    return calibration()


def test_pacc_and_emq_recover_a_shifted_prior_that_cc_misses(fitted):
    probs, labels = simulate(SHIFTED, 4000, seed=1)
    species = species_probs(probs)
    true = np.bincount(labels, minlength=K) / len(labels)
    errors = {name: np.abs(shares - true).sum() for name, shares in (
        ("cc", cc(species)), ("pacc", pacc(species, fitted.replicate().mean_by_class)))}
    assert errors["cc"] > 0.15  # CC flattens the mix towards the calibration's uniform one
    assert errors["pacc"] < errors["cc"] / 3 and errors["pacc"] < 0.06
    recalibrated = estimate(species, "emq", fitted.replicate()) / len(species)
    assert np.abs(recalibrated - true).sum() < errors["cc"] / 3
    totals = species_totals(probs, np.zeros(len(probs)), fitted, method="pacc", n_boot=50)
    assert np.abs(totals["estimate"].to_numpy() - np.bincount(labels, minlength=K)).sum() < 0.06 * len(labels)


def test_without_shift_every_method_is_close(fitted):
    probs, labels = simulate(np.full(K, 1 / K), 4000, seed=2)
    true = np.bincount(labels, minlength=K) / len(labels)
    for method in ("cc", "pacc", "emq"):
        shares = estimate(species_probs(probs), method, fitted.replicate()) / len(probs)
        assert np.abs(shares - true).sum() < 0.08, method


def test_interval_covers_the_total_and_widens_relatively_with_fewer_boxes(fitted):
    probs, labels = simulate(SHIFTED, 800, seed=3)
    photos = np.arange(len(probs)) // 2
    many = species_totals(probs, photos, fitted, n_boot=100, random_state=0)
    few = species_totals(probs[:100], photos[:100], fitted, n_boot=100, random_state=0)
    assert list(many.columns) == list(COLUMNS) and list(many["species"]) == SPECIES
    true = np.bincount(labels, minlength=K)
    assert ((many["low"] <= true) & (true <= many["high"])).sum() >= K - 1
    assert (many["low"] <= many["estimate"]).all() and (many["estimate"] <= many["high"]).all()
    common = [0, 1, 2]  # species with enough boxes in both samples
    width = lambda t: ((t["high"] - t["low"]) / t["estimate"]).to_numpy()[common]  # noqa: E731
    assert (width(few) > 1.5 * width(many)).all()


def test_shrinkage_weight_goes_to_cc_when_it_is_unbiased_and_to_pacc_when_it_is_not():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(400, 2))
    pacc_errors = 3.0 * noise  # unbiased, noisy
    unbiased_cc = 0.5 * rng.normal(size=(400, 2))  # CC: little noise of its own ...
    biased_cc = unbiased_cc + np.array([0.0, 10.0])  # ... and for the second class a large bias
    weight = shrinkage_weight(biased_cc, pacc_errors)
    assert weight[0] > 0.9 and weight[1] < 0.2
    assert ((weight >= 0) & (weight <= 1)).all()
    assert shrinkage_weight(pacc_errors, pacc_errors).tolist() == [1.0, 1.0]  # the same errors: CC


def test_composite_lies_between_cc_and_pacc(fitted):
    probs, _ = simulate(SHIFTED, 150, seed=6)
    species, replicate = species_probs(probs), fitted.replicate()
    plain, corrected = estimate(species, "cc", replicate), estimate(species, "pacc", replicate)
    table = species_totals(probs, np.zeros(len(probs)), fitted, method="composite", n_boot=60)
    point = table["estimate"].to_numpy()
    assert (np.minimum(plain, corrected) - 1e-9 <= point).all() and (point <= np.maximum(plain, corrected) + 1e-9).all()
    assert not np.allclose(point, plain) and not np.allclose(point, corrected)  # neither end everywhere
    assert (table["low"] <= table["estimate"]).all() and (table["estimate"] <= table["high"]).all()


def test_composite_interval_holds_the_correction_where_the_count_leans_away(fitted):
    """The hull of the composite's, CC's and PACC's intervals. This sample (found by search)
    is one where the composite's own interval and CC's together exclude PACC's estimate of
    species 3 (their hull is [9, 20] for PACC's 7.0): the weight, fitted at the CC totals,
    leans on CC here."""
    probs, _ = simulate(SHIFTED, 150, seed=11)
    corrected = estimate(species_probs(probs), "pacc", fitted.replicate())
    table = species_totals(probs, np.zeros(len(probs)), fitted, method="composite", n_boot=60)
    assert ((table["low"] <= np.floor(corrected)) & (np.ceil(corrected) <= table["high"])).all()
    assert table["low"][3] <= 7 < 9 <= table["high"][3]


def test_no_empty_interval_for_a_species_whose_boxes_were_seen(fitted):
    absent = np.append(SHIFTED[:-1], 0.0) / SHIFTED[:-1].sum()
    probs, _ = simulate(absent, 200, seed=9)
    rare = K - 1  # none in the sample, but boxes misnamed as it: PACC puts it at 0 here
    species, replicate = species_probs(probs), fitted.replicate()
    seen = np.flatnonzero(species.argmax(axis=1) == rare)
    assert len(seen) and estimate(species, "pacc", replicate)[rare] == 0  # the case to guard against
    photos = np.arange(len(probs)) // 4
    table = species_totals(probs, photos, fitted, method="composite", n_boot=60)
    plain = species_totals(probs, photos, fitted, method="cc", n_boot=60)  # the same simulated samples
    assert table["cc"][rare] == len(seen) and table["high"][rare] > 0
    assert (table["low"] <= plain["low"]).all() and (plain["high"] <= table["high"]).all()  # contains CC's
    assert species_totals(probs, photos, fitted, method="composite", n_boot=60, interval="photos")["high"][rare] > 0


def test_composite_cannot_be_estimated_without_its_replicates(fitted):
    with pytest.raises(ValueError, match="composite needs species_totals"):
        estimate(np.full((2, K), 1 / K), "composite", fitted.replicate())


def test_detector_correction_scales_the_totals():
    cal = calibration(detector=True)  # 100 annotated, 100 accepted, 90 matched: factor 1
    assert cal.recall == pytest.approx(0.9) and cal.precision == pytest.approx(0.9)
    probs, _ = simulate(SHIFTED, 300, seed=4)
    table = species_totals(probs, np.zeros(300), cal, method="pacc", n_boot=50)
    assert table["estimate"].sum() == pytest.approx(300.0)  # the composite's weights differ by species
    assert len(cal.false_probs) == 10


def test_cc_column_and_boxes_to_check_count_the_top_class(fitted):
    probs = np.zeros((4, N_CLASSES))
    probs[0, 0], probs[0, 1] = 0.9, 0.1
    probs[1, 0], probs[1, 2] = 0.4, 0.35  # unsure
    probs[1, 8] = 0.25
    probs[2, 3] = 1.0
    probs[3, 8], probs[3, 3] = 0.7, 0.3  # FOND on top: counted for no species
    table = species_totals(probs, ["a", "a", "b", "b"], fitted, n_boot=20, check_below=0.5)
    assert table["cc"].tolist() == [2, 0, 0, 1, 0, 0, 0, 0]
    assert table["boxes_to_check"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]


def test_zero_boxes_give_zero_totals(fitted):
    for method in ("cc", "pacc", "emq"):
        for interval in ("measurement", "photos"):
            table = species_totals(np.zeros((0, N_CLASSES)), [], fitted, method=method, n_boot=20, interval=interval)
            assert len(table) == K and (table[["estimate", "low", "high", "cc", "boxes_to_check"]] == 0).all().all()


def test_save_load_round_trip_is_exact(tmp_path):
    cal = calibration(n=200, detector=True)
    path = tmp_path / "calibration.json"
    cal.save(path)
    back = Calibration.load(path)
    assert back == cal
    assert np.array_equal(back.probs, cal.probs) and np.array_equal(back.false_probs, cal.false_probs)
    probs, _ = simulate(SHIFTED, 60, seed=5)
    for method in ("pacc", "emq"):
        pd.testing.assert_frame_equal(species_totals(probs, np.arange(60), back, method=method, n_boot=20),
                                      species_totals(probs, np.arange(60), cal, method=method, n_boot=20))
    assert "pickle" not in path.read_text() and path.read_text().lstrip().startswith("{")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"box_probs": np.ones((3, 8))}, r"box_probs: expected an \(N, 9\)"),
    ({"box_probs": -np.ones((3, 9))}, r"box_probs: row 0 holds a negative"),
    ({"box_probs": np.eye(9)[[8, 8]]}, r"box_probs: row 0 gives no species"),
    ({"photo_ids": ["a"]}, r"photo_ids: one per box expected, got 1 for 3 boxes"),
    ({"method": "acc"}, r"method: expected one of cc, pacc, emq, composite, got 'acc'"),
    ({"interval": "wald"}, r"interval: expected one of measurement, photos"),
    ({"level": 90}, r"level: expected a coverage in \(0, 1\), got 90"),
    ({"n_boot": 5}, r"n_boot: expected at least 20"),
])
def test_bad_input_names_what_is_wrong(fitted, kwargs, message):
    args = {"box_probs": np.full((3, 9), 1 / 9), "photo_ids": ["a", "b", "c"], "calibration": fitted} | kwargs
    with pytest.raises(ValueError, match=message):
        species_totals(**args)


def test_bad_calibration_input_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="validation table: missing column"):
        Calibration.fit(pd.DataFrame({"label": [0]}))
    val = pd.DataFrame(np.eye(9)[[0, 1]], columns=list(PROB_COLUMNS)).assign(label=[0, 1])
    with pytest.raises(ValueError, match="n_annotated"):
        Calibration.fit(val, val.assign(matched=True))
    with pytest.raises(ValueError, match="labels must be -1..8"):
        Calibration.fit(val.assign(label=[0, 12]))
    path = tmp_path / "other.json"
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match=f"{path}: not a springtail-quantify-calibration/1"):
        Calibration.load(path)


def test_benchmark_shift_draws_drop_one_species_and_favour_another():
    counts = pd.DataFrame(0, index=[f"p{i}" for i in range(40)], columns=range(K))
    counts.iloc[:10, 0] = 1
    counts.iloc[10:20, 1] = 1
    counts.iloc[20:, 2] = 1
    rng = np.random.default_rng(0)
    for _ in range(10):
        photos, shift = bench.draw(rng, list(counts.index), "shift", counts, [0, 1, 2], 15, 5.0)
        dropped = SPECIES.index(shift["drop"])
        assert len(photos) == len(set(photos)) == 15 and shift["more"] != shift["drop"]
        assert counts.loc[photos, dropped].sum() == 0


@pytest.mark.parametrize("name", ["default", "seed7", "seed11"])
def test_species_totals_default_is_the_benchmarks_choice_and_docs_are_rendered(name):
    """Each demo's table (the default and two generated with other seeds) is the render of
    its committed result; the default run's choice is the library's default method, which the
    other demos hold (they check it, they do not choose)."""
    result = read_json(bench.RESULTS / f"{name}.json")
    assert inspect.signature(species_totals).parameters["method"].default == result["chosen"]
    assert bool(result.get("held")) == (name != "default")
    text = (bench.REPO / "docs" / "counting.md").read_text(encoding="utf-8")
    begin, end = bench.markers(name)
    start, stop = text.index(begin) + len(begin), text.index(end)
    assert text[start:stop].strip("\n") == bench.render_table(result), (
        f"docs/counting.md is stale: python -m benchmarks.quantify --name {name} --render --update docs/counting.md")


def test_interval_choice_table_is_rendered():
    text = (bench.REPO / "docs" / "decisions.md").read_text(encoding="utf-8")
    begin, end = quantify_intervals.BLOCK
    assert text[text.index(begin) + len(begin):text.index(end)].strip("\n") == quantify_intervals.render(), (
        "docs/decisions.md is stale: python -m benchmarks.quantify_intervals --update docs/decisions.md")


def test_update_rewrites_between_the_quantify_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{bench.BEGIN}\nold\n{bench.END}\nafter\n")
    assert update_doc(page, "| new |", bench.BEGIN, bench.END)
    assert page.read_text() == f"before\n{bench.BEGIN}\n| new |\n{bench.END}\nafter\n"
