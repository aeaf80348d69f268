"""The seed study: aggregation of `dvc exp show --json`, the rendered table and the docs page."""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks import seeds
from conftest import REPO

COMMIT = "8381d20ca6d9526bce728f78ee90ce7195ba7349"
WHERE = {"commit": COMMIT, "dirty": False, "date": "2026-01-02"}
MACHINE = {"cpu": "Test CPU", "cores_affinity": 2, "torch_threads": 2, "bf16_native": False}
MODELS = ("effnet", "cnn_xgb")


def _rev(name: str, seed: int, metrics: dict[str, dict], sets: dict | None = None) -> dict:
    """One experiment commit as DVC 3.67 prints it (deps and outs left empty)."""
    params = {"train": {"val_fold": 0, "seed": seed}, "models": list(MODELS),
              "ensemble": {"method": "per_class_f1"}} | (sets or {})
    return {"rev": f"{seed:040x}", "name": name, "error": None, "experiments": None,
            "data": {"rev": f"{seed:040x}", "timestamp": "2026-01-02T03:04:05",
                     "params": {"params.yaml": {"data": params}},
                     "metrics": {path: {"data": data} for path, data in metrics.items()},
                     "deps": {}, "outs": {}, "meta": {}}}


def _scores(seed: int, base: float) -> dict:
    return {"val_macro_f1": base + 0.1 * seed, "public_macro_f1": base + 0.01 * seed,
            "private_macro_f1": base + 0.02 * seed, "per_class_f1": {}, "n_val": 23}


def _metrics(seed: int) -> dict[str, dict]:
    """Every metrics file of one seed: effnet 0.5 + ..., cnn_xgb 0.4 + ..., ensemble 0.6 + ..."""
    ensemble = _scores(seed, 0.6) | {"method": "per_class_f1", "best_single_model": "effnet",
                                     "selected": list(MODELS), "leave_one_out": {"effnet": -0.01 * seed}}
    return {"metrics/consensus.json": {"boxes_kept": 48}, "metrics/train/effnet.json": _scores(seed, 0.5),
            "metrics/train/cnn_xgb.json": _scores(seed, 0.4), "metrics/ensemble.json": ensemble}


def exp_show(runs: dict[int, str] | None = None, commit: str = COMMIT, **revs: dict) -> list:
    """`dvc exp show --json` of a workspace and one commit whose experiments are ``seed-<N>``
    (``runs``: seed -> executor state; "success" runs have metrics) and ``revs`` by name."""
    experiments = []
    for seed, state in (runs or {}).items():
        metrics = _metrics(seed) if state == "success" else {}
        experiments.append({"revs": [_rev(f"seed-{seed}", seed, metrics)], "name": f"seed-{seed}",
                            "executor": {"state": state, "name": "dvc-task", "local": {}}})
    experiments += [{"revs": [rev], "name": name, "executor": None} for name, rev in revs.items()]
    baseline = {"rev": commit, "timestamp": None, "params": {}, "metrics": _metrics(99), "deps": {},
                "outs": {}, "meta": {}}
    return [{"rev": "workspace", "name": None, "data": dict(baseline, rev="workspace"), "error": None,
             "experiments": None},
            {"rev": commit, "name": "main", "data": baseline, "error": None, "experiments": experiments}]


@pytest.fixture
def result(monkeypatch) -> dict:
    import benchmarks.machine

    monkeypatch.setattr(benchmarks.machine, "machine_info", lambda: MACHINE)
    return seeds.study([0, 1, 2], {}, exp_show({0: "success", 1: "success", 2: "success"}), WHERE)


def test_study_aggregates_every_model_and_the_ensemble(result):
    assert result["seeds"] == [0, 1, 2] and result["experiments"] == ["seed-0", "seed-1", "seed-2"]
    assert list(result["models"]) == list(MODELS) and result["std"] == "sample (ddof=1)"
    val = result["models"]["effnet"]["val_macro_f1"]
    assert val["values"] == pytest.approx([0.5, 0.6, 0.7])
    assert val["mean"] == pytest.approx(0.6) and val["std"] == pytest.approx(0.1)  # ddof=1, not 0.0816
    private = result["models"]["cnn_xgb"]["private_macro_f1"]
    assert private["values"] == pytest.approx([0.4, 0.42, 0.44]) and private["std"] == pytest.approx(0.02)
    ensemble = result["ensemble"]
    assert ensemble["public_macro_f1"]["mean"] == pytest.approx(0.61)
    assert ensemble["selected"] == [list(MODELS)] * 3 and ensemble["best_member"] == ["effnet"] * 3
    assert ensemble["leave_one_out"][2] == {"effnet": -0.02}
    gains = [0.6 + 0.02 * s - (0.5 + 0.02 * s) for s in range(3)]  # ensemble - effnet, private
    assert ensemble["gain_private_over_best_member"]["values"] == pytest.approx(gains)
    assert ensemble["gain_private_over_best_member_mean"] == pytest.approx(statistics.fmean(gains))
    assert result["machine"] == MACHINE and result["commit"] == COMMIT and result["dirty"] is False
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no numpy types


def test_spread_needs_two_values_for_a_deviation():
    assert seeds.spread([0.25]) == {"mean": 0.25, "std": None, "values": [0.25]}
    assert seeds.spread([0.5, None]) == {"mean": None, "std": None, "values": [0.5, None]}


def test_only_finished_experiments_of_the_commit_are_read():
    shown = exp_show({0: "success", 1: "failed", 2: "queued"}, **{"other": _rev("other", 7, _metrics(7))})
    assert list(seeds.experiment_runs(shown, ["seed-0"], COMMIT)) == ["seed-0"]
    with pytest.raises(RuntimeError, match=r"seed-1 \(failed\), seed-2 \(queued\), seed-3 \(not found\)"):
        seeds.experiment_runs(shown, ["seed-0", "seed-1", "seed-2", "seed-3"], COMMIT)
    with pytest.raises(RuntimeError, match="seed-0"):  # an experiment of another commit
        seeds.experiment_runs(shown, ["seed-0"], "0" * 40)


def test_a_run_with_other_params_is_refused():
    shown = exp_show({0: "success"})
    with pytest.raises(ValueError, match="seed-0: ensemble.method is 'per_class_f1', not mean"):
        seeds.study([0], {"ensemble.method": "mean"}, shown, WHERE)
    with pytest.raises(ValueError, match="train.seed is 0, not 5"):
        seeds.study([5], {}, exp_show(**{"seed-5": _rev("seed-5", 0, _metrics(0))}), WHERE)
    seeds.check_params("x", {"params.yaml": {"models": ["effnet"]}}, {"models": "[effnet]"})


def test_params_set_pairs():
    assert seeds.parse_sets(["models=[effnet]", "ensemble.method=mean"]) == {
        "models": "[effnet]", "ensemble.method": "mean"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        seeds.parse_sets(["models"])
    with pytest.raises(ValueError, match="--seeds"):
        seeds.parse_sets(["train.seed=3"])


def test_table_has_a_row_per_model_and_the_ensemble(result):
    table = seeds.render_table(result)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| model", "| effnet", "| cnn_xgb", "| **ensemble**"]
    assert "| effnet | 0.600 ± 0.100 (0.500, 0.600, 0.700) |" in table
    assert "0.420 ± 0.020 (0.400, 0.420, 0.440) |" in table  # cnn_xgb private
    assert "Seeds (`train.seed`) 0, 1, 2" in table and "`8381d20`" in table


def test_update_rewrites_only_between_the_markers(result, tmp_path, capsys):
    out = tmp_path / "seeds.json"
    out.write_text(json.dumps(result))
    doc = tmp_path / "seeds.md"
    doc.write_text(f"# Title\n\nBefore.\n\n{seeds.BEGIN}\nold table\n{seeds.END}\n\nAfter.\n")
    seeds.main(["--render", "--out", str(out), "--update", str(doc)])
    table = seeds.render_table(result)
    assert capsys.readouterr().out.strip() == table
    assert doc.read_text() == f"# Title\n\nBefore.\n\n{seeds.BEGIN}\n{table}\n{seeds.END}\n\nAfter.\n"
    assert documented_table(doc.read_text()) == table
    assert seeds.update_doc(doc, table) is False  # already up to date
    (tmp_path / "bad.md").write_text(f"{seeds.END}\n{seeds.BEGIN}\n")
    with pytest.raises(ValueError, match="bad.md"):
        seeds.update_doc(tmp_path / "bad.md", table)


def documented_table(text: str) -> str:
    """What lies between the seeds markers of a page."""
    start, end = text.index(seeds.BEGIN) + len(seeds.BEGIN), text.index(seeds.END)
    return text[start:end].strip("\n")


# Each page with a seeds table, and the study it is rendered from.
RENDERED = [("docs/seeds.md", "benchmarks/results/seeds.json", "seeds"),
            ("docs/decisions.md", "benchmarks/results/seeds-unanimous.json", "seeds"),
            ("docs/seeds.md", "benchmarks/results/seeds-demo7.json", "demo7")]


@pytest.mark.parametrize("page, result, marker", RENDERED)
def test_docs_table_is_rendered_from_the_committed_result(page, result, marker):
    if not (REPO / result).exists():
        pytest.skip(f"{result} not there yet (python -m benchmarks.seeds)")
    expected = seeds.render_table(json.loads((REPO / result).read_text(encoding="utf-8")))
    text = (REPO / page).read_text(encoding="utf-8")
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    assert text[text.index(begin) + len(begin):text.index(end)].strip("\n") == expected, (
        f"{page} is stale: python -m benchmarks.seeds --out {result} --render --update {page} --marker {marker}")
