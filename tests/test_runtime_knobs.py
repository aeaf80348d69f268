"""The runtime section: knobs that change how a stage runs, never what it writes, re-run nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import yaml

from springtail.common.runtime import RuntimeConfig
from springtail.models.registry import create_model
from springtail.models.training import TrainConfig

from conftest import REPO, params_config, run

KNOB_NAMES = {"workers", "progress"}


def stage_params(dvc_yaml: dict) -> list[str]:
    """Every params entry of every stage (foreach bodies included), as written."""
    entries = []
    for stage in dvc_yaml["stages"].values():
        body = stage.get("do", stage)
        for entry in body.get("params", []):
            entries.extend(entry if isinstance(entry, dict) else [entry])
    return [str(e) for e in entries]


def test_no_stage_lists_the_runtime_section():
    listed = stage_params(yaml.safe_load((REPO / "dvc.yaml").read_text()))
    assert not [e for e in listed if e == "runtime" or e.startswith("runtime.")]


def test_hashed_sections_hold_no_runtime_knob():
    """A knob left in a hashed section would re-run its stages when toggled."""
    from springtail.crops.cutting import CropsConfig
    from springtail.detect.candidates import DetectConfig
    from springtail.synth import SynthConfig

    for config in (SynthConfig, CropsConfig, DetectConfig, TrainConfig):
        assert not KNOB_NAMES & {f.name for f in dataclasses.fields(config)}, config.__name__
    assert {f.name for f in dataclasses.fields(RuntimeConfig)} == KNOB_NAMES
    for name in ("params.yaml", "params.tiny.yaml"):
        assert set(yaml.safe_load((REPO / name).read_text())["runtime"]) == KNOB_NAMES
    with pytest.raises(ValueError, match="runtime.workers must be >= 0"):
        RuntimeConfig(workers=-1, progress=False)


def test_the_progress_bar_changes_nothing_learned():
    train = params_config(TrainConfig, "train", params="params.tiny.yaml", epochs=1, batch_size=8, device="cpu")
    section = yaml.safe_load((REPO / "params.tiny.yaml").read_text())["resnet"]
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 255, (36, 32, 32, 3), dtype=np.uint8), np.arange(36) % 9
    digests = []
    for progress in (True, False):
        model = create_model("resnet", section, train, 32).fit(X, y, progress=progress)
        digests.append(hashlib.md5(model.predict_proba(X).tobytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.slow
def test_toggling_a_runtime_knob_re_runs_nothing(tiny_repo):
    """From the committed tiny run: every runtime knob toggled, `dvc status` stays clean; a
    hashed key (train.num_threads, which changes the numbers) makes the train stages stale."""
    path = tiny_repo / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    try:
        params["runtime"] |= {"workers": 1 if params["runtime"]["workers"] != 1 else 2,
                              "progress": not params["runtime"]["progress"]}
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        assert json.loads(run(["dvc", "status", "--json"], tiny_repo).stdout or "{}") == {}
        params["train"]["num_threads"] = 1
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        stale = json.loads(run(["dvc", "status", "--json"], tiny_repo).stdout)
        assert stale and all(stage.startswith("train@") for stage in stale), stale
    finally:
        path.write_text(original)
    assert json.loads(run(["dvc", "status", "--json"], tiny_repo).stdout or "{}") == {}


def test_the_measured_knobs_table_is_current_and_backs_the_runtime_section():
    """docs/reliability.md's table is the render of benchmarks/results/knobs.json, where every
    runtime knob left `dvc status` clean and the outputs identical, and a thread count did not."""
    from benchmarks import knobs
    from benchmarks.pages import between

    data = json.loads((REPO / "benchmarks/results/knobs.json").read_text())
    assert between((REPO / "docs/reliability.md").read_text(), "knobs") == knobs.render(data)
    by_key = {k["key"]: k for k in data["knobs"]}
    assert {f"runtime.{name}" for name in KNOB_NAMES} <= set(by_key)
    for name in KNOB_NAMES:
        assert by_key[f"runtime.{name}"]["dvc_status_clean"] and by_key[f"runtime.{name}"]["outputs_identical"]
    assert not by_key["train.num_threads"]["dvc_status_clean"]
