"""The answers are read only to report, never to choose.

The test answers' private half (solution.csv, Usage Private) and the demo's train_truth.csv
may change what the score files say and nothing else: in real data mode (data.raw_dir a
plain folder, not the synthesize stage's output), the Private rows' labels are shuffled and
train_truth.csv is deleted, and `dvc repro` must give every other output byte for byte.

Only the stages up to `submission` and `evaluate@*` are reproduced: every stage that depends on
the whole raw folder, where the answer files lie, is among them. By their declared deps the
others cannot see the answers (detector and detect read raw/train, report no raw file), and DVC
would not run them again after the change: running them too would prove nothing more.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run

pytestmark = pytest.mark.slow

RAW = "data/raw"  # real data mode: the folder README's "Running on the real competition data" names
TARGETS = ["submission", "evaluate"]  # evaluate@<model>: no stage depends on them


def outputs(repo: Path) -> dict[str, dict[str, str]]:
    """dvc.lock's outputs: stage -> {path: md5}."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: {out["path"]: out["md5"] for out in stage.get("outs", [])} for name, stage in stages.items()}


def answer_readers(repo: Path) -> list[str]:
    """Stages that depend on the whole raw folder: the only ones that may read the answers."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return [name for name, stage in stages.items() if any(d["path"] == RAW for d in stage.get("deps", []))]


def file_digests(repo: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of each output that is a file (folders are compared by dvc.lock's md5)."""
    return {p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in paths if (repo / p).is_file()}


def shuffle_private_labels(solution: Path, seed: int = 0) -> None:
    """Permute the label column ``gt`` among the rows with Usage Private, in place."""
    table = pd.read_csv(solution, dtype={"idx": str})
    private = (table["Usage"] == "Private").to_numpy()
    before = table.loc[private, "gt"].to_numpy()
    table.loc[private, "gt"] = np.random.default_rng(seed).permutation(before)
    assert private.any() and (table.loc[private, "gt"].to_numpy() != before).any(), "nothing to shuffle"
    table.to_csv(solution, index=False, lineterminator="\n")


@pytest.fixture
def real_mode(tiny_repo, tmp_path) -> Path:
    """A clone of the tiny run (sharing its cache) reading a copy of the demo data from data/raw."""
    repo = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_repo), str(repo)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc" / "cache")], repo)
    run(["dvc", "checkout"], repo)
    shutil.copytree(repo / "data" / "synthetic", repo / RAW)  # new files: the cache's stay untouched
    params = repo / "params.yaml"
    text = params.read_text()
    assert "raw_dir: data/synthetic" in text
    params.write_text(text.replace("raw_dir: data/synthetic", f"raw_dir: {RAW}"))
    ran = run(["dvc", "repro", *TARGETS], repo).stdout
    assert "Running stage 'train" not in ran, "the raw folder's name reached the training inputs"
    return repo


def test_private_answers_and_train_truth_change_only_the_scores(real_mode):
    repo = real_mode
    readers = answer_readers(repo)
    before = outputs(repo)
    scores = {p for stage in readers for p in before[stage] if p.startswith("metrics/")}
    assert {"metrics/ensemble.json", "metrics/consensus.json", "metrics/review.json"} <= scores
    others = sorted({p for outs in before.values() for p in outs} - scores)
    digests = file_digests(repo, others)
    reports = {p: json.loads((repo / p).read_text()) for p in scores}

    shuffle_private_labels(repo / RAW / "solution.csv")
    (repo / RAW / "train_truth.csv").unlink()
    ran = run(["dvc", "repro", *TARGETS], repo).stdout

    for stage in readers:  # they saw the changed answers: the comparison below means something
        assert f"Running stage '{stage}'" in ran, f"{stage} did not run again"
    after = outputs(repo)
    changed = [(stage, path) for stage, outs in before.items() for path, md5 in outs.items()
               if path not in scores and after.get(stage, {}).get(path) != md5]
    assert not changed, f"outputs that depend on the answers (stage, path): {changed}"
    assert file_digests(repo, others) == digests
    private_moved, lost = False, set()
    for path, old in reports.items():
        new = json.loads((repo / path).read_text())
        for key, value in new.items():
            if key.startswith("private"):
                private_moved |= key == "private_macro_f1" and value != old[key]
            else:
                assert old.get(key) == value, f"{path}: {key} changed with the private answers or the truth"
        lost |= {f"{path}:{key}" for key in old.keys() - new.keys()}
    assert private_moved, "no private_macro_f1 changed: the shuffle did not reach the scores"
    assert any(k.startswith("metrics/consensus.json:") for k in lost), "consensus scored no truth"
    assert any(k.startswith("metrics/review.json:") for k in lost), "review scored no truth"
