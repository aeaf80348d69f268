"""`make bench` in a checkout that has not run the pipeline: the sections that read its
outputs are skipped with a one-line reason, and the run does not fail for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench
from benchmarks.table import render
from springtail.common.config import load_params

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["matmul", "synth", "crops", "models", "repro"]  # timed work, not run here


def test_detect_without_pipeline_outputs_is_skipped_naming_the_missing_output(tmp_path, capsys):
    args = bench.parse_args(["--repo", str(tmp_path), "--skip", *HEAVY])
    out: dict = {}
    outcome = bench.run_sections(args, load_params(args.params), ["resnet"], tmp_path / "work", out)
    missing = tmp_path / "models/springtail-model"
    assert outcome.errors == {} and out == {}
    assert outcome.skipped == {"detect": f"no pipeline outputs: run `make repro` first: {missing}"}
    assert "data" not in outcome.seconds  # nothing asked for the crops: the data section never ran
    err = capsys.readouterr().err
    assert f"bench: detect: skipped (no pipeline outputs: run `make repro` first: {missing})\n" in err
    assert "Traceback" not in err
    table = render({"machine": {}, "skipped": outcome.skipped, "errors": {}}, [])
    assert f"detect: skipped (no pipeline outputs: run `make repro` first: {missing})" in table


def test_a_failing_section_is_still_an_error(capsys):
    """Only a missing pipeline output skips; any other failure, a missing file elsewhere
    included, is reported as an error (exit status 1)."""
    outcome = bench.Outcome()

    def broken():
        raise FileNotFoundError("/nowhere/model.yaml: not where the code expected it")

    bench.run_section("detect", broken, outcome)
    bench.run_section("repro", lambda: bench.needs_outputs(lambda: 1 / 0), outcome)
    assert outcome.skipped == {}
    assert set(outcome.errors) == {"detect", "repro"}
    assert outcome.errors["repro"].startswith("ZeroDivisionError")
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("message", ["/x/settings.json: missing (run `dvc repro detector` or `dvc pull`)",
                                     "/x/settings.json"])
def test_the_skip_names_the_path_the_loader_names(message):
    def load():
        raise FileNotFoundError(message)

    with pytest.raises(bench.Skipped, match=r"run `make repro` first: /x/settings.json$"):
        bench.needs_outputs(load)
