"""The combiners' estimator contract and their save/load as data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from springtail.common.classes import N_CLASSES
from springtail.scoring.combiners import METHODS, load_combiner


def stacked(n_members=3, n=60, seed=0):
    """(M, N, 9) probabilities that know something of y, and y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    logits = rng.normal(size=(n_members, n, N_CLASSES))
    logits[:, np.arange(n), y] += 1.5
    P = np.exp(logits)
    return P / P.sum(axis=2, keepdims=True), y


@pytest.mark.parametrize("method", list(METHODS))
def test_contract_and_exact_round_trip(method, tmp_path):
    P, y = stacked()
    combiner = METHODS[method]()
    assert not hasattr(combiner, "classes_")  # nothing happens in __init__
    assert combiner.fit(P, y) is combiner
    assert combiner.classes_.tolist() == list(range(N_CLASSES))
    probs = combiner.predict_proba(P)
    assert probs.shape == (P.shape[1], N_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    combiner.save(tmp_path / "combiner.json", ["a", "b", "c"])
    loaded, members = load_combiner(tmp_path / "combiner.json")
    assert members == ["a", "b", "c"] and type(loaded) is type(combiner)
    other, _ = stacked(seed=1)
    np.testing.assert_array_equal(loaded.predict_proba(other), combiner.predict_proba(other))  # bit-exact


def test_stacking_with_one_class_seen_round_trips(tmp_path):
    P, _ = stacked(n_members=2)
    combiner = METHODS["stacking"]().fit(P, np.full(P.shape[1], 4))
    combiner.save(tmp_path / "c.json", ["a", "b"])
    loaded, _ = load_combiner(tmp_path / "c.json")
    assert (loaded.predict_proba(P).argmax(axis=1) == 4).all()


def test_wrong_member_count_is_refused():
    P, y = stacked(n_members=3)
    combiner = METHODS["mean"]().fit(P, y)
    with pytest.raises(ValueError, match="fitted on 3 members"):
        combiner.predict_proba(P[:2])
    with pytest.raises(ValueError, match="not fitted"):
        METHODS["stacking"]().predict_proba(P)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d | {"format": 99}, "format 99"),
    (lambda d: d | {"method": "median"}, "unknown method 'median'"),
    (lambda d: d | {"members": ["a"]}, "1 members named"),
    (lambda d: {k: v for k, v in d.items() if k != "weights"}, "weights"),
    (lambda d: [1, 2], "not a saved combiner"),
])
def test_a_bad_file_is_named(edit, message, tmp_path):
    P, y = stacked(n_members=2)
    path = tmp_path / "combiner.json"
    METHODS["per_class_f1"]().fit(P, y).save(path, ["a", "b"])
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(ValueError, match=message) as err:
        load_combiner(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_combiner(tmp_path / "nowhere.json")
