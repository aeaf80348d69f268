"""Consensus: vote rules, Dawid-Skene, Fleiss' kappa, annotation policy, the stage end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from springtail.common.classes import N_CLASSES
from springtail.common.config import from_section
from springtail.common.policy import ErrorPolicy, SkipLog, TooManySkipped
from springtail.common.votes import agreement_patterns, strict_majority, vote_counts
from springtail.common.yolo import AnnotationError
from springtail.labels.annotations import read_train_annotations
from springtail.labels.build import competition_idx
from springtail.labels.consensus import (
    METHODS,
    ConsensusConfig,
    dawid_skene,
    fleiss_kappa,
    majority,
    run_consensus,
    unanimous,
)

from conftest import REFERENCE, params_config

REPO = Path(__file__).resolve().parents[1]

# Hand-made votes: unanimous, 3-1, 2-2, 2-1-1 and 1-1-1-1 boxes.
VOTES = np.array([
    [1, 1, 1, 1],
    [2, 2, 2, 5],
    [3, 3, 0, 0],
    [4, 4, 6, 7],
    [5, 6, 7, 8],
    [6, 2, 6, 6],
])


def test_vote_counts_and_patterns():
    counts = vote_counts(VOTES)
    assert counts.shape == (6, 9) and (counts.sum(axis=1) == 4).all()
    assert counts[3, 4] == 2 and counts[3, 6] == 1
    assert agreement_patterns(VOTES) == ["4", "3-1", "2-2", "2-1-1", "1-1-1-1", "3-1"]


def test_majority_tie_rules():
    assert strict_majority(VOTES).tolist() == [1, 2, -1, 4, -1, 6]
    dropped = majority(VOTES, "drop")
    assert dropped.label.tolist() == [1, 2, -1, 4, -1, 6]
    assert dropped.keep.tolist() == [True, True, False, True, False, True]
    lowest = majority(VOTES, "lowest_class")
    assert lowest.label.tolist() == [1, 2, 0, 4, 5, 6]  # 2-2 of 3 and 0 -> 0; 5,6,7,8 -> 5
    assert np.allclose(lowest.confidence, [1.0, 0.75, 0.5, 0.5, 0.25, 0.75])
    assert np.allclose(lowest.proba.sum(axis=1), 1.0)


def test_unanimous_keeps_only_full_agreement():
    result = unanimous(VOTES)
    assert result.label.tolist() == [1, -1, -1, -1, -1, -1]
    assert result.keep.tolist() == [True] + [False] * 5


def test_fleiss_kappa_known_value():
    # The worked example of Fleiss' kappa (10 subjects, 14 raters, 5 classes): 0.210.
    table = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-4)
    assert fleiss_kappa(vote_counts([[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]])) == 1.0
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[1, 1], [2, 1]])


def simulated_votes(n: int, accuracy: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth and votes of independent experts who err uniformly over the other classes."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(8, size=n, p=[0.3, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05])
    votes = np.repeat(truth[:, None], len(accuracy), axis=1)
    for j, acc in enumerate(accuracy):
        wrong = rng.random(n) > acc
        other = (truth + rng.integers(1, 9, size=n)) % 9
        votes[wrong, j] = other[wrong]
    return truth, votes


def test_dawid_skene_finds_the_bad_expert_and_breaks_ties_with_it():
    truth, votes = simulated_votes(400, [0.95, 0.93, 0.94, 0.45], seed=1)
    # Hand-made 2-2 ties: the two good experts 1-2 against expert 3 and the bad expert 4.
    ties = np.array([[2, 2, 5, 5], [7, 7, 1, 1], [3, 3, 4, 4]])
    result = dawid_skene(np.vstack([votes, ties]), smoothing=5.0)
    assert np.argmin(result.expert_accuracy) == 3
    assert result.expert_accuracy[3] < 0.7 < result.expert_accuracy[:3].min()
    assert result.label[-3:].tolist() == [2, 7, 3]
    assert np.allclose(result.proba.sum(axis=1), 1.0)
    assert result.info["converged"]
    assert (result.label[:400] == truth).mean() >= (majority(votes).label == truth).mean()


def test_dawid_skene_is_deterministic_and_confident_on_agreement():
    _, votes = simulated_votes(200, [0.9, 0.9, 0.9, 0.9], seed=2)
    a, b = dawid_skene(votes), dawid_skene(votes)
    assert np.array_equal(a.proba, b.proba)
    unanimous_rows = (votes == votes[:, :1]).all(axis=1)
    assert (a.label[unanimous_rows] == votes[unanimous_rows, 0]).all()
    assert a.confidence[unanimous_rows].min() > 0.99


def test_dawid_skene_never_trusts_an_expert_blindly():
    # Expert 3 agrees with the others on every clear box: on the tie it still is not an oracle.
    votes = np.array([[k % 8] * 4 for k in range(30)] + [[1, 1, 2, 1], [4, 5, 4, 5]])
    result = dawid_skene(votes)
    assert np.isfinite(result.proba).all()
    assert 0.5 < result.confidence[-1] < 0.999
    assert result.expert_accuracy.max() < 1.0


def test_min_confidence_and_config_errors():
    config = params_config(ConsensusConfig, "consensus", method="majority", min_confidence=0.6)
    assert run_consensus(VOTES, config).keep.tolist() == [True, True, False, False, False, True]
    with pytest.raises(ValueError, match="methd"):
        from_section(ConsensusConfig, {"methd": "majority"}, "consensus")
    with pytest.raises(ValueError, match="consensus.method"):
        params_config(ConsensusConfig, "consensus", method="vote")


def write_raw(root: Path, files: dict[str, str | bytes]) -> Path:
    """A raw layout with the given train/ files (text or bytes)."""
    train = root / "train"
    train.mkdir(parents=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (train / name).write_bytes(data)
    return root


GOOD = "1_1_1_1 Pompey_1 2007 0.5 0.5 0.2 0.2\n0_0_3_0 TIDM_URBA/DIJON2021_2/3 0.2 0.3 0.1 0.1\n"


def test_annotation_policy_fail_names_file_and_line(tmp_path):
    raw = write_raw(tmp_path, {"a.txt": GOOD, "b.txt": "1_1_1_1 P 0.5 0.5 0.2\n"})
    with pytest.raises(AnnotationError, match=r"b\.txt, line 1: expected"):
        read_train_annotations(raw, SkipLog(ErrorPolicy("fail", 0)))


def test_annotation_policy_skip_counts_by_reason(tmp_path):
    bad_lines = "1_1_1_1 P 0.5 0.5 0.2 0.2\n1_1_1 P 0.5 0.5 0.2 0.2\n2_2_2_2 P 1.5 0.5 0.2 0.2\n"
    raw = write_raw(tmp_path, {"a.txt": GOOD, "b.txt": bad_lines, "c.txt": b"\xff\xfe1_1",
                               "d.txt": "\n", "a.jpg": b"", "e.jpg": b""})
    log = SkipLog(ErrorPolicy("skip", 10))
    boxes, files = read_train_annotations(raw, log)
    assert boxes[["image_id", "line"]].values.tolist() == [["a", 1], ["a", 2], ["b", 1]]
    assert boxes.loc[1, "project"] == "TIDM_URBA/DIJON2021_2/3"
    assert log.to_dict()["by_reason"] == {"bad_votes": 1, "empty_file": 1, "encoding": 1,
                                          "missing_annotation": 1, "out_of_range": 1}
    assert files["annotations_without_image"] == 3 and files["images_without_annotation"] == 1
    with pytest.raises(TooManySkipped, match="data.max_skipped=4"):
        read_train_annotations(raw, SkipLog(ErrorPolicy("skip", 4)))


def test_competition_idx_matches_the_real_file():
    from springtail.common.yolo import read_annotations

    real = set(pd.read_csv(REFERENCE / "collembola_expert_votes.csv")["idx"])
    made = []
    for path in sorted((REFERENCE / "yolo_plus").glob("*.txt")):
        for box in read_annotations(path):
            row = pd.Series({"image_id": path.stem, "xc": box.xc, "yc": box.yc, "w": box.w,
                             "h": box.h, **{f"v{j + 1}": v for j, v in enumerate(box.votes)}})
            made.append(competition_idx(row, 3072, 2048))
    assert len(made) == 47 and set(made) <= real


def test_real_votes_dawid_skene_agrees_with_clear_majorities():
    idx = pd.read_csv(REFERENCE / "collembola_expert_votes.csv")["idx"]
    votes = idx.str.split("_", expand=True)[[1, 2, 3, 4]].astype(int).to_numpy()
    result = run_consensus(votes, params_config(ConsensusConfig, "consensus"))
    strict = strict_majority(votes)
    assert len(votes) == 1396 and (strict < 0).sum() == 53
    assert (result.label[strict >= 0] != strict[strict >= 0]).sum() <= 5
    assert ((result.expert_accuracy > 0.9) & (result.expert_accuracy < 0.99)).all()


def run_stage(raw: Path, out: Path, params: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "stages" / "consensus.py"), "--raw-dir", str(raw),
           "--labels", str(out / "labels.csv"), "--disputed", str(out / "disputed.csv"),
           "--metrics", str(out / "consensus.json"),
           "--params", str(params or REPO / "params.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_stage_on_the_real_annotation_files(tmp_path):
    raw = tmp_path / "raw"
    (raw / "train").mkdir(parents=True)
    for path in (REFERENCE / "yolo_plus").glob("*.txt"):
        shutil.copy(path, raw / "train" / path.name)
    done = run_stage(raw, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    labels = pd.read_csv(tmp_path / "out" / "labels.csv", dtype={"image_id": str})
    disputed = pd.read_csv(tmp_path / "out" / "disputed.csv", dtype={"image_id": str})
    metrics = json.loads((tmp_path / "out" / "consensus.json").read_text())
    assert len(labels) == 47 and labels["image_id"].nunique() == 38
    assert labels[["image_id", "line"]].equals(
        labels[["image_id", "line"]].sort_values(["image_id", "line"]).reset_index(drop=True))
    assert "Parcelles Lysimétriques Sept 2007/2008-3" in set(labels["project"])
    assert np.allclose(labels[[f"p{k}" for k in range(9)]].sum(axis=1), 1.0)
    assert len(disputed) == metrics["boxes_disputed"] == 6
    assert metrics["agreement"] == {"4": 41, "3-1": 3, "2-2": 2, "2-1-1": 1, "1-1-1-1": 0}
    assert metrics["files"]["annotations_without_image"] == 38
    assert set(disputed["code"]) <= {"AUTRE", "Cer", "CRY_THE", "HYP_MAN", "ISO_MIN", "LEP",
                                     "MET_AFF", "PAR_NOT", "FOND"}
    assert "truth_accuracy" not in metrics


def test_stage_scores_every_method_against_a_truth_file(tmp_path):
    truth, votes = simulated_votes(60, [0.9, 0.85, 0.9, 0.6], seed=3)
    lines = {}
    for i, row in enumerate(votes):
        lines.setdefault(f"img{i // 3:02d}", []).append(
            "_".join(map(str, row)) + " Projet Été 2021 0.5 0.5 0.1 0.1")
    raw = write_raw(tmp_path / "raw", {f"{k}.txt": "\n".join(v) + "\n" for k, v in lines.items()})
    pd.DataFrame({"image_id": [f"img{i // 3:02d}" for i in range(60)],
                  "line": [i % 3 + 1 for i in range(60)], "truth": truth}
                 ).to_csv(raw / "train_truth.csv", index=False)
    done = run_stage(raw, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "consensus.json").read_text())
    scores = metrics["truth_accuracy_by_method"]
    assert set(scores) == set(METHODS)
    assert all(0 <= scores[m]["calibration_error"] <= 1 for m in METHODS)
    assert scores["unanimous"]["kept"] == 1.0  # uniform slips never agree unanimously here
    assert metrics["truth_accuracy"]["all"] == scores["dawid_skene"]["all"] >= 0.8
    assert metrics["truth_expert_accuracy"]["v4"] < metrics["truth_expert_accuracy"]["v1"]


def test_settle_rounds_and_breaks_last_bit_ties_towards_the_lowest_class():
    from springtail.labels.consensus import Consensus, settle

    proba = np.zeros((2, 9))
    proba[0, [2, 5]] = [0.5 - 1e-16, 0.5 + 1e-16]  # a tie up to rounding noise: 5 wins unrounded
    proba[1, [0, 1]] = [0.1234567891, 0.8765432109]
    raw = Consensus(proba.argmax(axis=1), proba.max(axis=1), proba, np.ones(2, bool), np.ones(4))
    assert raw.label.tolist() == [5, 1]
    settled = settle(raw, relabel=True)
    assert settled.label.tolist() == [2, 1]
    assert settled.proba[1, :2].tolist() == [0.123457, 0.876543]
    assert settled.confidence.tolist() == [0.5, 0.876543]
    assert settle(raw, relabel=False).label.tolist() == [5, 1]  # vote-based labels are kept


def test_boxes_without_truth_are_counted_not_fatal():
    import pandas as pd

    from springtail.labels.build import truth_scores

    boxes = pd.DataFrame({"image_id": ["a", "a", "b"], "line": [1, 2, 1],
                          "v1": [3, 3, 1], "v2": [3, 3, 1], "v3": [3, 2, 1], "v4": [3, 3, 1]})
    truth = pd.DataFrame({"image_id": ["a", "a"], "line": [1, 2], "truth": [3, 2]})  # no row for b
    scores = truth_scores(boxes, truth, params_config(ConsensusConfig, "consensus", method="majority"))
    assert scores["boxes_without_truth"] == 1
    assert scores["truth_accuracy"]["all"] == 0.5  # a/1 right, a/2 wrong; b not scored


def test_calibration_error_of_honest_and_overconfident_labels():
    from springtail.labels.build import calibration_error

    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.2, 1.0, 20_000)
    honest = rng.random(20_000) < confidence  # right exactly as often as claimed
    assert calibration_error(confidence, honest) < 0.01
    assert calibration_error(np.full(1000, 0.9), np.arange(1000) < 600) == pytest.approx(0.3)
    assert calibration_error(np.array([]), np.array([], bool)) is None


def test_calibrated_dawid_skene_is_more_honest_on_over_dispersed_votes():
    """Votes from the synthetic experts (look-alike pulls: more 2-2 splits than independent
    slips give): plain Dawid-Skene is over-confident on disputed boxes; the held-out
    temperature lowers its calibration error there, without reading the truth."""
    from springtail.labels.build import calibration_error
    from springtail.synth.votes import simulate_votes, truth_prior

    rng = np.random.default_rng(11)
    truth = rng.choice(N_CLASSES, size=6000, p=truth_prior())
    votes = simulate_votes(truth, rng)
    disputed = vote_counts(votes).max(axis=1) < 4
    plain = dawid_skene(votes)
    tempered = dawid_skene(votes, calibrate=True)
    assert tempered.info["temperature"] > 1.0
    held_out = tempered.info["held_out_nll"]
    assert held_out[tempered.info["temperature"]] < held_out[1.0]
    errors = [calibration_error(r.confidence[disputed], (r.label == truth)[disputed]) for r in (plain, tempered)]
    assert errors[1] < errors[0] - 0.03, errors
    assert (tempered.label == truth).mean() >= (plain.label == truth).mean() - 0.005
