"""The stages accept the real competition layout, built here by hand.

train/<id>.jpg (3072 x 2048) + train/<id>.txt (YOLO+), test/<idx>.jpg crops of
variable size and sample_submission.csv, with no answer file: what the
organisers published, not what the synthetic generator writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from springtail.common.yolo import read_annotations

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 3072, 2048
IMAGES = {  # real-looking ids: three random floats run together
    "0.0146642344262495340.0082065942776055060.4910173826970905": [
        "1_1_1_1 TIDM_URBA/DIJON2021_2/3 0.4596354166666667 0.49951171875 0.283203125 0.4150390625",
        "6_6_2_5 Parcelles Lysimétriques Sept 2007/2008-3 0.15 0.2 0.1 0.15",
    ],
    "0.0308416315181336830.323235835471991860.47350187023445245": [
        "0_1_1_0 Bioindicateur 2 2009/2010 0.6905924479166666 0.4609375 0.2327473958333333 0.3203125",
        "4_4_4_4 Pompey_1 2007 0.2 0.75 0.12 0.1",
        "7_7_7_3 PEY Benjamin 10_2007 0.85 0.2 0.1 0.12",
    ],
    "0.072624856471339760.45235693109567110.1552466259836196": [
        "5_5_5_5 VADEBIO 2010 0.5 0.5 0.3 0.4",
    ],
}
TEST_SIZES = {"0": (180, 240), "1": (96, 60), "12": (410, 300), "2": (33, 47)}


def write_layout(root: Path) -> Path:
    """The real layout with tiny content; CRLF line ends in one annotation file."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for i, (image_id, lines) in enumerate(IMAGES.items()):
        small = rng.integers(90, 200, size=(HEIGHT // 64, WIDTH // 64, 3), dtype=np.uint8)
        Image.fromarray(small).resize((WIDTH, HEIGHT)).save(root / "train" / f"{image_id}.jpg",
                                                            quality=85)
        ending = "\r\n" if i == 1 else "\n"
        (root / "train" / f"{image_id}.txt").write_bytes(
            (ending.join(lines) + ending).encode("utf-8"))
    for idx, (w, h) in TEST_SIZES.items():
        pixels = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "test" / f"{idx}.jpg", quality=90)
    pd.DataFrame({"idx": list(TEST_SIZES), "gt": 0}).to_csv(root / "sample_submission.csv",
                                                            index=False)
    return root


def tiny_params(path: Path) -> Path:
    """The repository's params.yaml with small crops, so every key stays the real contract."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["crops"].update(crop_px=32, n_folds=2, background_per_image=1.0)
    params["runtime"]["workers"] = 1
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


def run(stage: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=180)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("real_layout")
    return write_layout(root / "raw"), tiny_params(root / "params.yaml")


def test_parser_reads_every_line_with_multi_token_projects(layout):
    raw, _ = layout
    projects = []
    for image_id, lines in IMAGES.items():
        boxes = read_annotations(raw / "train" / f"{image_id}.txt")
        assert [b.line_no for b in boxes] == list(range(1, len(lines) + 1))
        projects += [b.project for b in boxes]
    assert "Parcelles Lysimétriques Sept 2007/2008-3" in projects
    assert "Bioindicateur 2 2009/2010" in projects and "PEY Benjamin 10_2007" in projects


def test_consensus_and_crops_stages_accept_the_layout(layout, tmp_path):
    raw, params = layout
    labels, crops = tmp_path / "labels.csv", tmp_path / "crops"
    done = run("consensus", "--raw-dir", str(raw), "--labels", str(labels),
               "--disputed", str(tmp_path / "disputed.csv"),
               "--metrics", str(tmp_path / "consensus.json"), "--params", str(params))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(labels, dtype={"image_id": str})
    assert len(table) == sum(len(v) for v in IMAGES.values())
    consensus = json.loads((tmp_path / "consensus.json").read_text())
    assert "truth_accuracy" not in consensus and consensus["files"]["images"] == 3
    disputed = pd.read_csv(tmp_path / "disputed.csv", dtype={"image_id": str, "idx": str})
    first = next(iter(IMAGES))
    assert f"{first}_6_6_2_5_307_256" in set(disputed["idx"])  # pixels from the JPEG's size

    done = run("crops", "--raw-dir", str(raw), "--labels", str(labels), "--out", str(crops),
               "--metrics", str(tmp_path / "crops.json"),
               "--timing", str(tmp_path / "crops.timing.json"), "--params", str(params))
    assert done.returncode == 0, done.stderr
    index = pd.read_csv(crops / "train_index.csv", dtype={"image_id": str})
    assert (index["source"] == "box").sum() == table["keep"].sum()
    shard = np.load(crops / "train_000.npy")
    assert shard.shape == (len(index), 32, 32, 3) and shard.dtype == np.uint8
    box = index[(index["image_id"] == first) & (index["line"] == 1)].iloc[0]
    assert [box.x0, box.y0, box.x1, box.y1] == [977, 598, 1847, 1448]
    test = pd.read_csv(crops / "test_index.csv", dtype={"idx": str})
    submission = pd.read_csv(raw / "sample_submission.csv", dtype={"idx": str})
    assert sorted(test["idx"]) == sorted(submission["idx"])
    assert np.load(crops / "test_000.npy").shape == (len(TEST_SIZES), 32, 32, 3)
    metrics = json.loads((tmp_path / "crops.json").read_text())
    assert metrics["skipped"]["total"] == 0 and metrics["test"]["crops"] == 4
