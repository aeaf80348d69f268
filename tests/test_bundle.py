"""The model bundle: self-contained, checked against its manifest, fetched with `dvc artifacts get`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from springtail.bundle.manifest import FORMAT, MANIFEST, file_digests, read_manifest
from springtail.common.classes import CODES, PROB_COLUMNS
from springtail.common.store import read_predictions

from conftest import BIN, run

P_CODES = [f"p_{code}" for code in CODES]
BUNDLE = "models/springtail-model"


def fake_bundle(root):
    """A folder with two files and the manifest that lists them."""
    (root / "sub").mkdir(parents=True)
    (root / "a.json").write_text("{}")
    (root / "sub" / "w.bin").write_bytes(bytes(range(256)))
    manifest = {"format": FORMAT, "packages": {"springtail": "0"}, "files": file_digests(root)}
    (root / MANIFEST).write_text(json.dumps(manifest))
    return root


def test_manifest_lists_every_file_and_refuses_a_tampered_one(tmp_path):
    root = fake_bundle(tmp_path / "b")
    with pytest.warns(UserWarning, match="other package versions"):  # made with no torch at all
        assert sorted(read_manifest(root)["files"]) == ["a.json", "sub/w.bin"]
    (root / "sub" / "w.bin").write_bytes(bytes(range(255)) + b"\x00")
    with pytest.raises(ValueError, match=r"sub/w.bin: altered since the bundle was written"):
        read_manifest(root)
    (root / "sub" / "w.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"sub/w.bin: missing from the model bundle"):
        read_manifest(root)


def test_manifest_of_another_format_or_no_bundle_is_named(tmp_path):
    root = fake_bundle(tmp_path / "b")
    manifest = json.loads((root / MANIFEST).read_text())
    (root / MANIFEST).write_text(json.dumps(manifest | {"format": FORMAT + 1}))
    with pytest.raises(ValueError, match=rf"{MANIFEST}: bundle format {FORMAT + 1} .*reads format {FORMAT}"):
        read_manifest(root)
    (root / MANIFEST).write_text("[]")
    with pytest.raises(ValueError, match="not a springtail bundle manifest"):
        read_manifest(root)
    with pytest.raises(FileNotFoundError, match="no such model bundle folder"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=f"{MANIFEST}: missing"):
        read_manifest(tmp_path)


@pytest.fixture
def lone_bundle(tiny_repo, tmp_path):
    """An empty directory holding only a copy of the tiny run's bundle."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copytree(tiny_repo / BUNDLE, work / "bundle")
    return work


def identify(cwd, images, out, *extra, check=True):
    return run([str(BIN / "springtail-identify"), "--images", str(images), "--out", str(out), *extra], cwd,
               check=check)


def refused(cwd, images, monkeypatch, capsys) -> str:
    """springtail-identify run in-process from ``cwd`` on its ``bundle``: its stderr, once it
    has refused the bundle (exit status 2) and written nothing."""
    from springtail.cli.identify import main

    monkeypatch.chdir(cwd)
    assert main(["--images", str(images), "--out", "x.csv", "--model", "bundle"]) == 2
    assert not (cwd / "x.csv").exists()
    return capsys.readouterr().err


@pytest.mark.slow
def test_a_copied_bundle_alone_reproduces_the_test_predictions(tiny_repo, lone_bundle):
    """From a directory with nothing but the bundle: exactly the ensemble's test.csv."""
    identify(lone_bundle, tiny_repo / "data/synthetic/test", "species.csv", "--model", "bundle")
    table = pd.read_csv(lone_bundle / "species.csv", keep_default_na=False)
    expected = read_predictions(tiny_repo / "data/processed/ensemble/test.csv")
    merged = expected.merge(table.assign(idx=table["file"].str.removesuffix(".jpg")), on="idx", validate="1:1")
    assert len(merged) == len(expected) == len(table)
    np.testing.assert_array_equal(merged[P_CODES].to_numpy(float), merged[list(PROB_COLUMNS)].to_numpy(float))
    assert sorted(p.name for p in lone_bundle.iterdir()) == ["bundle", "species.csv"]  # nothing else needed


@pytest.mark.slow
def test_a_copied_bundle_counts_as_the_detect_stage(tiny_repo, lone_bundle):
    """springtail-count from the lone bundle finds and names the boxes the detect stage found."""
    stage = pd.read_csv(tiny_repo / "data/processed/detections/boxes.csv", keep_default_na=False)
    names = sorted(stage["photo"].unique())[:4]
    photos = lone_bundle / "photos"
    photos.mkdir()
    for name in names:
        shutil.copy(tiny_repo / "data/synthetic/train" / name, photos / name)
    run([str(BIN / "springtail-count"), "--photos", "photos", "--out", "counts", "--model", "bundle"], lone_bundle)
    found = pd.read_csv(lone_bundle / "counts/boxes.csv", keep_default_na=False)
    accepted = stage[stage["photo"].isin(names) & (stage["accepted"].astype(str) == "True")]
    keys = ["photo", "x0", "y0", "x1", "y1", "predicted"]
    pd.testing.assert_frame_equal(found[keys].sort_values(keys).reset_index(drop=True),
                                  accepted[keys].sort_values(keys).reset_index(drop=True))
    both = found.merge(accepted, on=keys, suffixes=("", "_stage"))
    np.testing.assert_allclose(both["probability"].astype(float), both["probability_stage"].astype(float), atol=2e-6)


@pytest.mark.slow
def test_params_edited_after_the_run_change_nothing(tiny_repo, tmp_path):
    """The commands read the bundle, never params.yaml: another ensemble.method there is ignored."""
    checkout = tmp_path / "checkout"
    shutil.copytree(tiny_repo / BUNDLE, checkout / BUNDLE)
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    method = params["ensemble"]["method"]
    params["ensemble"]["method"] = "stacking" if method != "stacking" else "mean"
    (checkout / "params.yaml").write_text(yaml.safe_dump(params))
    identify(tmp_path, tiny_repo / "data/synthetic/test", "edited.csv", "--pipeline", str(checkout))
    # exactly the run's own test predictions, as from the unchanged bundle (the test above)
    table = pd.read_csv(tmp_path / "edited.csv", keep_default_na=False)
    expected = read_predictions(tiny_repo / "data/processed/ensemble/test.csv")
    merged = expected.merge(table.assign(idx=table["file"].str.removesuffix(".jpg")), on="idx", validate="1:1")
    assert len(merged) == len(expected) == len(table)
    np.testing.assert_array_equal(merged[P_CODES].to_numpy(float), merged[list(PROB_COLUMNS)].to_numpy(float))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["combiner.json", "members/{member}/model.safetensors", "detector/scorer.json"])
def test_a_tampered_bundle_is_refused_naming_the_file(lone_bundle, tiny_repo, target, monkeypatch, capsys):
    member = json.loads((lone_bundle / "bundle/pipeline.json").read_text())["members"][0]
    path = lone_bundle / "bundle" / target.format(member=member)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    err = refused(lone_bundle, tiny_repo / "data/synthetic/test", monkeypatch, capsys)
    assert f"{path.relative_to(lone_bundle)}: altered since the bundle was written" in err


@pytest.mark.slow
def test_a_member_of_another_crop_size_is_refused(lone_bundle, tiny_repo, monkeypatch, capsys):
    bundle = lone_bundle / "bundle"
    settings = json.loads((bundle / "pipeline.json").read_text())
    settings["crops"]["crop_px"] += 16
    (bundle / "pipeline.json").write_text(json.dumps(settings))
    manifest = json.loads((bundle / MANIFEST).read_text())  # re-signed: the crop check itself must refuse
    (bundle / MANIFEST).write_text(json.dumps(manifest | {"files": file_digests(bundle)}))
    err = refused(lone_bundle, tiny_repo / "data/synthetic/test", monkeypatch, capsys)
    assert f"members/{settings['members'][0]}/config.yaml: trained on" in err, err


@pytest.mark.slow
def test_dvc_artifacts_get_fetches_the_bundle(tiny_repo, tmp_path):
    """`dvc artifacts get` from the repository (a local git repo) once a release is tagged:
    its latest version, then a version by number."""
    tag = "springtail-model@v0.1.0"  # a release of the bundle, as the team tags it (GTO's format)
    if tag not in run(["git", "tag"], tiny_repo).stdout.split():
        run(["git", "tag", "-a", tag, "-m", "Registering artifact springtail-model version 0.1.0"], tiny_repo)
    run(["dvc", "artifacts", "get", str(tiny_repo), "springtail-model", "-o", "latest"], tmp_path)
    assert file_digests(tmp_path / "latest") == file_digests(tiny_repo / BUNDLE)
    run(["dvc", "artifacts", "get", str(tiny_repo), "springtail-model", "--rev", "v0.1.0", "-o", "tagged"], tmp_path)
    assert file_digests(tmp_path / "tagged") == file_digests(tiny_repo / BUNDLE)
    card = (tmp_path / "tagged/README.md").read_text()
    assert "springtail-identify --model" in card and "90 % interval" in card
    result = run(["dvc", "artifacts", "get", str(tiny_repo), "springtail-model", "--rev", "v9.9.9", "-o", "x"],
                 tmp_path, check=False)
    assert result.returncode != 0 and not (tmp_path / "x").exists()


def test_the_model_card_renders_a_run_that_detected_nothing():
    """A tiny variant whose detector accepts no box has no precision: the card says "-"."""
    from springtail.bundle.card import model_card

    cfg = {"model": {"arch": "test_resnet", "pretrained": False, "epochs": 1}, "train": {"epochs": 1},
           "kind": "timm_net", "crop_size": 32, "val_fold": 0}
    val = pd.DataFrame({"label": [0, 1], **{f"p{k}": [1.0 if k == 0 else 0.0] * 2 for k in range(9)}})
    detect = {"iou": 0.5, "photos": 3, "recall": 0.0, "precision": None, "count_mae_per_photo": 1.0,
              "species_totals": {"Cer": {"annotated": 0, "predicted": 0, "relative_error": None}}}
    card = model_card(["m"], {"m": cfg}, {"m": {}}, {"method": "mean", "models": ["m"]}, val,
                      {"ensemble": {"val_macro_f1": 0.1}, "detect": detect}, {"raw_dir": "data/raw"})
    assert "| 0.000 / - |" in card and "Cer 0 found, none annotated" in card
    assert "synthetic" not in card  # the warning is for the demo data only
