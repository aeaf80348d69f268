"""Ensemble combiners, their out-of-fold validation score and the ensemble stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from springtail.scoring.combiners import MeanEnsemble, PerClassF1Ensemble, StackingEnsemble
from springtail.scoring.ensemble import EnsembleConfig, build_ensemble, inner_splits, out_of_fold

from conftest import params_config

PROBS = [f"p{c}" for c in range(9)]


def onehotish(pred, strength=0.6):
    """(N, 9) probabilities whose argmax is ``pred``."""
    p = np.full((len(pred), 9), (1 - strength) / 8)
    p[np.arange(len(pred)), pred] = strength
    return p


def test_per_class_f1_weights_by_hand():
    y = np.array([0, 0, 1, 1])
    P = np.stack([onehotish([0, 0, 1, 0]), onehotish([0, 1, 1, 1])])
    # model 0: F1(class 0) = 2*2/(2*2+1) = 4/5, F1(class 1) = 2/3; model 1 the other way round
    combiner = PerClassF1Ensemble().fit(P, y)
    np.testing.assert_allclose(combiner.f1_[:, :2], [[4 / 5, 2 / 3], [2 / 3, 4 / 5]])
    np.testing.assert_allclose(combiner.weights_[:, 0], [6 / 11, 5 / 11])
    np.testing.assert_allclose(combiner.weights_[:, 1], [5 / 11, 6 / 11])
    np.testing.assert_allclose(combiner.weights_[:, 2:], 0.5)  # no model scores on 2..8: uniform
    row = P[:, 3]  # crop 3: model 0 says class 0, model 1 says class 1
    raw = np.array([6 / 11 * row[0, 0] + 5 / 11 * row[1, 0], 5 / 11 * row[0, 1] + 6 / 11 * row[1, 1],
                    *(0.5 * row[0, 2:] + 0.5 * row[1, 2:])])
    np.testing.assert_allclose(combiner.predict_proba(P)[3], raw / raw.sum())


def test_mean_is_the_average():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(9), size=(3, 5))
    np.testing.assert_allclose(MeanEnsemble().fit(P, np.zeros(5, int)).predict_proba(P), P.mean(axis=0))


def test_inner_splits_are_grouped_by_image_and_cover_everything():
    y = np.arange(40) % 4
    groups = np.repeat(np.arange(10), 4).astype(str)
    splits = inner_splits(y, groups, n_splits=3, seed=0)
    held = np.concatenate([te for _, te in splits])
    assert sorted(held) == list(range(40))
    for fit_rows, held_out in splits:
        assert not set(groups[fit_rows]) & set(groups[held_out])
    with pytest.raises(ValueError, match="from 10 images"):
        inner_splits(y, groups, n_splits=11, seed=0)


class Spy:
    """A combiner that records which crops it was fitted on (crop i carries value i)."""

    fitted: list[set[int]] = []

    def fit(self, P, y):
        Spy.fitted.append(set(P[0, :, 0].astype(int).tolist()))
        return self

    def predict_proba(self, P):
        self.predicted = set(P[0, :, 0].astype(int).tolist())
        out = np.zeros((P.shape[1], 9))
        out[:, 0] = [len(Spy.fitted[-1] & self.predicted)] * P.shape[1]  # overlap, must be 0
        return out + 1e-3


def test_out_of_fold_never_fits_on_the_held_out_fold():
    n = 30
    P = np.zeros((1, n, 9))
    P[0, :, 0] = np.arange(n)
    y, groups = np.arange(n) % 3, np.repeat(np.arange(10), 3)
    Spy.fitted = []
    oof = out_of_fold(Spy, P, y, inner_splits(y, groups, 5, 0))
    assert len(Spy.fitted) == 5
    np.testing.assert_allclose(oof[:, 0], 1e-3)  # zero overlap for every fold


def test_stacking_out_of_fold_equals_a_fit_on_the_other_folds():
    rng = np.random.default_rng(1)
    n = 60
    y = np.arange(n) % 3
    P = np.stack([rng.dirichlet(np.ones(9), n) * 0.5 + 0.5 * np.eye(9)[y] for _ in range(2)])
    splits = inner_splits(y, np.repeat(np.arange(20), 3), 4, 0)
    oof = out_of_fold(lambda: StackingEnsemble(random_state=0), P, y, splits)
    fit_rows, held_out = splits[2]
    alone = StackingEnsemble(random_state=0).fit(P[:, fit_rows], y[fit_rows]).predict_proba(P[:, held_out])
    np.testing.assert_allclose(oof[held_out], alone)
    assert np.all(oof[:, 3:] == 0)  # classes never seen by the regression get no probability
    np.testing.assert_allclose(oof.sum(axis=1), 1)


def tables(models, n=36, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 9
    vals, tests = {}, {}
    for i, m in enumerate(models):
        noisy = np.where(rng.random(n) < 0.3 + 0.2 * i, rng.integers(0, 9, n), y)
        vals[m] = pd.DataFrame({"crop_id": np.arange(n), "image_id": [f"im{k // 2}" for k in range(n)],
                                "label": y, **dict(zip(PROBS, onehotish(noisy).T))})
        tests[m] = pd.DataFrame({"idx": [f"0.{k}" for k in range(n_test)],
                                 **dict(zip(PROBS, rng.dirichlet(np.ones(9), n_test).T))})
    return vals, tests


@pytest.mark.parametrize("method", ["per_class_f1", "mean", "stacking"])
def test_build_ensemble_tables_and_report(method):
    vals, tests = tables(["a", "b"])
    vals["b"] = vals["b"].iloc[::-1]  # row order may differ between models
    result = build_ensemble(vals, tests, params_config(EnsembleConfig, "ensemble", method=method, inner_folds=3))
    assert list(result.val.columns) == ["crop_id", "image_id", "label", *PROBS]
    assert result.val["crop_id"].tolist() == list(range(36))
    assert result.test["idx"].tolist() == [f"0.{k}" for k in range(10)]
    np.testing.assert_allclose(result.test[PROBS].sum(axis=1), 1)
    report = result.report
    assert report["method"] == method and set(report["model_val_macro_f1"]) == {"a", "b"}
    if method == "stacking":
        assert len(report["features"]) == 18 and len(report["coef"]) == 9
    else:
        w = pd.DataFrame(report["weights"])  # rows: class codes, columns: models
        np.testing.assert_allclose(w.sum(axis=1), 1)


def test_models_with_different_crops_are_refused():
    vals, tests = tables(["a", "b"])
    vals["b"] = vals["b"].iloc[1:]
    with pytest.raises(ValueError, match="b/val.csv"):
        build_ensemble(vals, tests, params_config(EnsembleConfig, "ensemble", inner_folds=3))


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'median' unknown"):
        params_config(EnsembleConfig, "ensemble", method="median")


def test_forward_selection_leaves_out_a_member_that_hurts():
    vals, tests = tables(["good", "fair", "noise"], n=90)
    rng = np.random.default_rng(5)
    vals["noise"] = vals["noise"].assign(**dict(zip(PROBS, rng.dirichlet(np.ones(9) * 0.2, 90).T)))
    result = build_ensemble(vals, tests, params_config(EnsembleConfig, "ensemble", method="mean", inner_folds=3))
    report = result.report
    assert "noise" not in report["selected"] and "good" in report["selected"]
    assert report["leave_one_out"]["noise"] < 0 < report["leave_one_out"]["good"]
    everyone = build_ensemble(vals, tests, params_config(EnsembleConfig, "ensemble", method="mean", inner_folds=3, select=False))
    assert everyone.report["selected"] == ["good", "fair", "noise"]
    assert report["oof_val_macro_f1"] > everyone.report["oof_val_macro_f1"]
    assert report["oof_val_macro_f1"] >= report["model_val_macro_f1"]["good"]


@pytest.mark.parametrize("method", ["per_class_f1", "mean", "stacking"])
def test_combiners_give_the_same_bits_whatever_the_memory_layout(method):
    """The stage stacks pandas columns (Fortran order); springtail-identify stacks model
    outputs (C order): the ensemble's probabilities must be identical to the last bit."""
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.ones(9), size=(3, 200))
    y = rng.integers(0, 9, 200)
    combiner = params_config(EnsembleConfig, "ensemble", method=method).combiner().fit(P, y)
    fortran = np.stack([np.asfortranarray(p) for p in P])
    assert not fortran.flags["C_CONTIGUOUS"]
    assert np.array_equal(combiner.predict_proba(fortran), combiner.predict_proba(np.ascontiguousarray(P)))


def test_nested_score_never_lets_the_selection_see_the_crops_it_scores(monkeypatch):
    """Each inner fold is predicted by members chosen on the other folds only."""
    from springtail.scoring import ensemble as ens

    vals, tests = tables(["noise", "good", "fair"], n=90)
    rng = np.random.default_rng(1)  # random rows: the first member's row identifies its crop
    vals["noise"] = vals["noise"].assign(**dict(zip(PROBS, rng.dirichlet(np.ones(9), 90).T)))
    config = params_config(EnsembleConfig, "ensemble", method="mean", inner_folds=3)
    keys, P = ens._align(vals, "crop_id", "val")
    y, groups = keys["label"].to_numpy(dtype=int), keys["image_id"].astype(str).to_numpy()
    splits = ens.inner_splits(y, groups, 3, 0)
    seen = []
    real = ens.forward_select

    def recording(config, P_fit, y_fit, inner):
        seen.append({tuple(row) for row in P_fit[0]})  # the first member's rows identify the crops
        return real(config, P_fit, y_fit, inner)

    monkeypatch.setattr(ens, "forward_select", recording)
    oof = ens.nested_out_of_fold(config, P, y, groups, splits)
    assert len(seen) == len(splits) and not np.isnan(oof).any()
    for rows, (_, held_out) in zip(seen, splits):
        assert rows.isdisjoint({tuple(row) for row in P[0, held_out]})
