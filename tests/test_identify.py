"""springtail-identify: crops in, species out, from a trained pipeline's outputs alone."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from springtail.common.classes import CODES, PROB_COLUMNS
from springtail.common.store import read_predictions
from springtail.cli.identify import main

pytestmark = pytest.mark.slow  # needs the tiny pipeline's full run

P_CODES = [f"p_{code}" for code in CODES]


def test_identify_reproduces_the_pipelines_test_predictions(tiny_repo, tmp_path):
    """The competition's test crops through the command give the ensemble's test.csv exactly."""
    out = tmp_path / "species.csv"
    status = main(["--images", str(tiny_repo / "data/synthetic/test"), "--out", str(out),
                   "--pipeline", str(tiny_repo)])
    assert status == 0
    table = pd.read_csv(out, keep_default_na=False)
    expected = read_predictions(tiny_repo / "data/processed/ensemble/test.csv")
    table["idx"] = table["file"].str.removesuffix(".jpg")
    merged = expected.merge(table, on="idx", validate="1:1")
    assert len(merged) == len(expected) == len(table)
    np.testing.assert_array_equal(merged[P_CODES].to_numpy(float), merged[list(PROB_COLUMNS)].to_numpy(float))
    submission = pd.read_csv(tiny_repo / "data/submission.csv", dtype={"idx": str}).set_index("idx")["gt"]
    assert [CODES.index(c) for c in merged["predicted"]] == submission.loc[merged["idx"]].tolist()
    assert (merged["probability"] == merged[P_CODES].max(axis=1)).all()
    assert (merged["unsure"] == (merged["probability"] < 0.6)).all() and (merged["error"] == "").all()


def test_bad_files_are_named_and_the_others_still_identified(tiny_repo, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    good = sorted((tiny_repo / "data/synthetic/test").glob("*.jpg"))[:3]
    for path in good:
        shutil.copy(path, folder / path.name)
    Image.open(good[0]).save(folder / "as_png.PNG")  # another format and case
    (folder / "notes.jpg").write_text("not a picture")
    (folder / "cut.jpg").write_bytes(good[1].read_bytes()[:200])  # truncated
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "species.csv"
    assert main(["--images", str(folder), "--out", str(out), "--pipeline", str(tiny_repo)]) == 1
    table = pd.read_csv(out, keep_default_na=False).set_index("file")
    assert sorted(table.index) == sorted([p.name for p in good] + ["as_png.PNG", "notes.jpg", "cut.jpg"])
    for name in ("notes.jpg", "cut.jpg"):
        assert name in table.loc[name, "error"] and table.loc[name, "predicted"] == ""
    ok = table[table["error"] == ""]
    assert len(ok) == 4 and ok["predicted"].isin(CODES).all()
    np.testing.assert_allclose(ok[P_CODES].to_numpy(float).sum(axis=1), 1, atol=1e-6)
    err = capsys.readouterr().err
    assert "notes.jpg" in err and "cut.jpg" in err and "4 of 6 images identified" in err


def test_usage_errors_name_the_folder_or_the_missing_output(tiny_repo, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--images", str(empty), "--out", str(tmp_path / "x.csv"), "--pipeline", str(tiny_repo)]) == 2
    assert f"{empty}: no JPEG or PNG image" in capsys.readouterr().err
    assert main(["--images", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    images = tiny_repo / "data/synthetic/test"
    assert main(["--images", str(images), "--out", str(tmp_path / "x.csv"), "--pipeline", str(tmp_path)]) == 2
    assert f"{tmp_path / 'models/springtail-model'}: no such model bundle folder" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
