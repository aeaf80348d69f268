"""The report: heatmaps that point at the right place, crop selection, the plot tables,
and the page itself rendered in headless Chromium (loads, no script errors, every
image decoded), with a screenshot kept as an artifact."""

from __future__ import annotations

import os
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml

from springtail.common.classes import CODES, N_CLASSES
from springtail.common.config import from_section
from springtail.report import gallery, gradcam
from springtail.report.build import ReportConfig, ReportData, build_report, scores_section
from springtail.report.html import Card, Section, grid, page
from springtail.report.images import data_uri, is_flat, overlay
from springtail.report.plots import STAGES, class_distribution, per_class_f1_long

from conftest import browse, model_section, params_config, run

PLAIN = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # normalisation that leaves pixels in [0, 1]
MODELS = ("resnet", "convnext", "vit", "cnn_xgb")


def square_image(corner: tuple[int, int], colour=(255, 0, 0), size: int = 32, side: int = 8) -> np.ndarray:
    """A grey (S, S, 3) uint8 image with one coloured square at ``corner`` (row, col)."""
    image = np.full((size, size, 3), 50, dtype=np.uint8)
    image[corner[0]:corner[0] + side, corner[1]:corner[1] + side] = colour
    return image


class ColourNet(torch.nn.Module):
    """Channel 0 fires on red, channel 1 on green (1x1 conv + ReLU); average pool; class 1
    is "red", class 0 "green". The pooled features are what timm calls pre-logits."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU())
        self.head = torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor([[1.0, -1, -1], [-1, 1, -1]]).view(2, 3, 1, 1))
            self.features[0].bias.zero_()
            self.head.weight.copy_(torch.tensor([[0.0, 10], [10, 0]]))
            self.head.bias.zero_()

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, a, pre_logits=False):
        pooled = a.mean(dim=(2, 3))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def in_square(cam: np.ndarray, corner, size=32, side=8) -> bool:
    """The map's maximum, upsampled to the image, falls inside the square."""
    from springtail.report.images import upsample

    r, c = np.unravel_index(np.argmax(upsample(cam, size)), (size, size))
    return corner[0] <= r < corner[0] + side and corner[1] <= c < corner[1] + side


def test_grad_cam_points_at_the_evidence():
    corner = (20, 4)
    e = gradcam.grad_cam(ColourNet(), square_image(corner)[None], PLAIN, "features")
    assert e.target.tolist() == [1] and e.cams.shape == (1, 32, 32)
    assert in_square(e.cams[0], corner)
    assert e.cams[0][:, 16:].max() == 0  # nothing outside the square's half counts


def test_tree_shap_cam_points_at_the_evidence():
    import xgboost as xgb

    rng = np.random.default_rng(0)
    net = ColourNet()
    colours = [(255, 0, 0) if k % 2 else (0, 255, 0) for k in range(40)]
    images = np.stack([square_image(tuple(rng.integers(0, 24, 2)), c) for c in colours])
    with torch.no_grad():
        feats = net.forward_head(net.forward_features(gradcam._inputs(images, PLAIN)), pre_logits=True)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 2, "max_depth": 2},
                        xgb.DMatrix(feats.numpy(), label=np.arange(40) % 2), num_boost_round=10)
    corner = (2, 22)
    model = SimpleNamespace(cnn_=SimpleNamespace(net_=net, norm_=PLAIN), booster_=booster)
    e = gradcam.explain(model, square_image(corner)[None], layer="features")
    assert e.method == "tree_shap_cam" and e.target.tolist() == [1]
    assert in_square(e.cams[0], corner)
    default = gradcam.explain(model, square_image(corner)[None])  # the trunk's output, unnamed
    assert default.layer == "forward_features"
    np.testing.assert_allclose(default.cams, e.cams, rtol=1e-5)


def test_tree_shap_cam_refuses_a_head_that_is_not_an_average_pool():
    net = timm.create_model("test_convnext", num_classes=N_CLASSES)  # pools, then normalises
    with pytest.raises(ValueError, match="not the average pool"):
        gradcam.tree_shap_cam(net, None, square_image((0, 0))[None], PLAIN, "stages.3")


def test_attention_rollout_maps_the_patch_grid_and_restores_the_fused_kernel():
    net = timm.create_model("test_vit", num_classes=N_CLASSES, img_size=32, patch_size=8)
    fused = [b.attn.fused_attn for b in net.blocks]
    e = gradcam.explain(SimpleNamespace(net_=net, norm_=PLAIN), np.stack([square_image((0, 0))] * 2))
    assert e.method == "attention_rollout" and e.cams.shape == (2, 4, 4)
    assert (e.cams >= 0).all() and np.allclose(e.probs.sum(axis=1), 1, atol=1e-5)
    assert [b.attn.fused_attn for b in net.blocks] == fused


def _state(net: torch.nn.Module) -> tuple:
    """Everything explaining could change: train/eval flags, dtypes, layouts, values."""
    return ([m.training for m in net.modules()],
            [(k, v.dtype, v.stride(), v.clone()) for k, v in net.state_dict().items()])


@pytest.mark.parametrize("kind", ["grad_cam", "attention_rollout", "tree_shap_cam"])
def test_explaining_leaves_the_fitted_network_unchanged(kind):
    """A fitted model in training mode, bf16 and channels-last stays exactly that way."""
    import xgboost as xgb

    if kind == "attention_rollout":
        net = timm.create_model("test_vit", num_classes=N_CLASSES, img_size=32, patch_size=8)
    else:
        net = ColourNet()
    net = net.train().to(torch.bfloat16).to(memory_format=torch.channels_last)
    before = _state(net)
    crops = np.stack([square_image((0, 0)), square_image((20, 20), (0, 255, 0))])
    if kind == "tree_shap_cam":
        booster = xgb.train({"objective": "multi:softprob", "num_class": 2, "max_depth": 1},
                            xgb.DMatrix(np.array([[1.0, 0], [0, 1]]), label=[1, 0]), num_boost_round=2)
        model = SimpleNamespace(cnn_=SimpleNamespace(net_=net, norm_=PLAIN), booster_=booster)
    else:
        model = SimpleNamespace(net_=net, norm_=PLAIN)
    e = gradcam.explain(model, crops, layer="features" if kind == "grad_cam" else None)
    assert e.method == kind
    after = _state(net)
    assert after[0] == before[0]
    for (k, dtype, stride, value), (k2, dtype2, stride2, value2) in zip(before[1], after[1]):
        assert (k, dtype, stride) == (k2, dtype2, stride2) and torch.equal(value, value2), k


@pytest.mark.parametrize("arch, size, stage", [("test_resnet", 96, "layer4"), ("test_resnet", 32, "layer2"),
                                               ("test_convnext", 96, "stages.3")])
def test_cam_stage_keeps_enough_cells(arch, size, stage):
    assert gradcam.cam_stage(timm.create_model(arch, num_classes=N_CLASSES), size) == stage


def test_overlay_and_data_uri():
    crop = square_image((0, 0))
    blended = overlay(crop, np.array([[0.0, 1.0], [0.0, 0.0]]), alpha=0.5)
    assert blended.shape == crop.shape and blended.dtype == np.uint8
    assert not np.array_equal(blended[:8, 24:], crop[:8, 24:])  # the hot corner is tinted
    assert is_flat(np.ones((3, 3))) and is_flat(np.ones((1, 1))) and not is_flat(np.eye(3))
    assert data_uri(crop, "PNG").startswith("data:image/png;base64,iVBOR")
    with pytest.raises(ValueError, match="uint8"):
        data_uri(crop.astype(float))


# --- tables in, rows out --------------------------------------------------------------

def probs_table(rng, n: int, labels: np.ndarray | None = None, sharp: float = 3.0) -> pd.DataFrame:
    logits = rng.normal(size=(n, N_CLASSES)) * sharp
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    table = pd.DataFrame(p, columns=[f"p{k}" for k in range(N_CLASSES)])
    return table if labels is None else table.assign(label=labels)


def fake_data(seed: int = 0, n_boxes: int = 40, n_background: int = 10, n_test: int = 30) -> ReportData:
    """A consistent set of report inputs: labels, crops, model and ensemble predictions."""
    rng = np.random.default_rng(seed)
    votes = rng.integers(0, 8, (n_boxes, 1)).repeat(4, axis=1)
    disputed = np.arange(n_boxes) < n_boxes // 3
    votes[disputed, 0] = (votes[disputed, 0] + 1) % 8  # a third are 3-1 disputes
    labels = pd.DataFrame({
        "image_id": [f"img{k // 2}" for k in range(n_boxes)], "line": np.arange(n_boxes) % 2,
        **{f"v{j + 1}": votes[:, j] for j in range(4)}, "label": votes[:, 1],
        "confidence": rng.uniform(0.5, 1, n_boxes), "agreement": np.where(disputed, "3-1", "4"),
        "keep": True})
    background = pd.DataFrame({"image_id": [f"img{k}" for k in range(n_background)], "line": -1,
                               "source": "background", "label": 8})
    train_index = pd.concat([labels[["image_id", "line", "label"]].assign(source="box"), background],
                            ignore_index=True)
    train_index = train_index.assign(crop_id=np.arange(len(train_index)),
                                     fold=np.arange(len(train_index)) % 3)
    val = train_index.loc[train_index["fold"] == 0, ["crop_id", "image_id", "label"]].reset_index(drop=True)
    test_index = pd.DataFrame({"crop_id": np.arange(n_test), "idx": [str(100 + k) for k in range(n_test)]})
    review = labels[disputed].assign(
        consensus=[CODES[k] for k in labels.loc[disputed, "label"]], model=CODES[0],
        model_probability=0.9, combined=CODES[0], gain=np.linspace(0.9, 0.1, disputed.sum()),
        crop_id=np.flatnonzero(disputed)).drop(columns=["label", "keep"])
    return ReportData(
        crops=rng.integers(0, 256, (len(train_index), 32, 32, 3), dtype=np.uint8),
        train_index=train_index,
        test_crops=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), test_index=test_index,
        labels=labels, vals={m: pd.concat([val, probs_table(rng, len(val))], axis=1) for m in MODELS},
        ensemble_val=pd.concat([val, probs_table(rng, len(val))], axis=1),
        ensemble_test=pd.concat([test_index[["idx"]], probs_table(rng, n_test, sharp=1.0)], axis=1),
        weights={"method": "per_class_f1", "oof_val_macro_f1": 0.5, "model_val_macro_f1": {"resnet": 0.4}},
        review=review)


def test_disputed_boxes_are_the_top_of_the_review_list_with_their_crop():
    data = fake_data()
    rows = gallery.disputed_boxes(data.review, data.train_index, n=5)
    assert len(rows) == 5 and (rows["agreement"] != "4").all()
    assert rows["gain"].is_monotonic_decreasing and rows["gain"].iloc[0] == data.review["gain"].max()
    crops = data.train_index.set_index("crop_id").loc[rows["crop_id"]]
    assert (crops["image_id"].to_numpy() == rows["image_id"].to_numpy()).all()
    assert (crops["fold"].to_numpy() == rows["fold"].to_numpy()).all()


def test_confident_errors_are_wrong_and_sorted():
    data = fake_data()
    rows = gallery.confident_errors(data.ensemble_val, n=4)
    assert len(rows) == 4 and (rows["pred"] != rows["label"]).all()
    assert rows["p_pred"].is_monotonic_decreasing


@pytest.mark.parametrize("by", ["entropy", "max_prob"])
def test_uncertain_test_crops_per_predicted_class(by):
    data = fake_data()
    rows = gallery.uncertain_test(data.ensemble_test, 2, by)
    assert rows.groupby("pred").size().max() <= 2
    assert (rows["p_pred"] >= rows["p_second"]).all()
    for _, group in rows.groupby("pred"):
        assert group["uncertainty"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="report.uncertainty"):
        gallery.uncertain_test(data.ensemble_test, 2, "margin")


def test_plot_tables_are_long_and_complete():
    data = fake_data()
    f1 = per_class_f1_long(data.vals, data.ensemble_val)
    assert list(f1.columns) == ["class", "model", "f1"] and len(f1) == N_CLASSES * (len(MODELS) + 1)
    assert list(dict.fromkeys(f1["model"])) == [*MODELS, "ensemble"]
    assert f1["f1"].between(0, 1).all()
    dist = class_distribution(data.labels, data.train_index, data.ensemble_test)
    assert list(dist.columns) == ["class", "stage", "count"]
    assert list(dict.fromkeys(dist["stage"])) == list(STAGES)
    totals = dist.groupby("stage", sort=False)["count"].sum()
    assert totals["training crops"] == len(data.train_index)
    assert totals["test predicted"] == len(data.ensemble_test)
    assert dist.set_index(["stage", "class"]).loc[("training crops", CODES[8]), "count"] == 10


def test_scores_show_macro_f1_with_its_interval():
    import re

    from springtail.common.f1 import macro_f1
    from springtail.scoring.bootstrap import f1_interval

    data = fake_data()
    data.weights["model_val_macro_f1"] = {"cnn_xgb": 0.4}
    body = scores_section(data, per_class_f1_long(data.vals, data.ensemble_val),
                          class_distribution(data.labels, data.train_index, data.ensemble_test)).body
    shown = re.findall(r"<b>([0-9.]+) \[([0-9.]+), ([0-9.]+)\]</b>", body)
    assert len(shown) == 2  # the ensemble and the best single model
    for (value, low, high), table in zip(shown, (data.ensemble_val, data.vals["cnn_xgb"])):
        y, pred = table["label"].to_numpy(int), table[[f"p{k}" for k in range(9)]].to_numpy().argmax(1)
        expected = f1_interval(y, pred, table["image_id"].to_numpy())
        assert value == f"{macro_f1(y, pred):.3f}" and (low, high) == tuple(f"{v:.2f}" for v in expected)


def test_report_config_names_a_bad_key():
    with pytest.raises(ValueError, match="n_disputd"):
        from_section(ReportConfig, {"n_disputd": 3}, "report")
    full = model_section("report")
    with pytest.raises(ValueError, match=r"params.tiny.yaml: section 'report': report.uncertainty must be"):
        from_section(ReportConfig, full | {"uncertainty": "vibes"}, "report", "params.tiny.yaml")
    with pytest.raises(ValueError, match=r"missing key\(s\) report.seed"):
        from_section(ReportConfig, {k: v for k, v in full.items() if k != "seed"}, "report")
    section = full | {"cam_models": ["resnet"], "cam_layers": {"resnet": "layer3"}}
    config = from_section(ReportConfig, section, "report")
    assert config.cam_models == ("resnet",) and config.cam_layers == {"resnet": "layer3"}


# --- the page, in a browser ----------------------------------------------------------

class Links(HTMLParser):
    """Every <img> src and every other src/href of a page, and its <link> tags."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.other: list[str] = []
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "body":
            self.body = {k: v or "" for k, v in attrs.items()}
        elif tag == "link" or "src" in attrs or "href" in attrs:
            self.other.append(f"<{tag}> {attrs.get('src') or attrs.get('href') or ''}")


def parse(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def assert_self_contained(html: str) -> Links:
    links = parse(html)
    assert links.images, "the report shows no image"
    assert all(src.startswith("data:image/") and len(src) > 100 for src in links.images)
    assert all(o.startswith("<a> #") for o in links.other), links.other  # only in-page anchors
    assert "url(" not in html and "@import" not in html
    return links


def render_and_check(chromium: str, page_path: Path, shot: Path, tmp: Path) -> dict[str, str]:
    """Load the page: its self-check must pass with no console message; keep a screenshot."""
    dom = browse(chromium, page_path, tmp / "profile-dom", "--dump-dom")
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages:\n" + "\n".join(console)
    body = parse(dom.stdout).body
    shot.parent.mkdir(parents=True, exist_ok=True)
    browse(chromium, page_path, tmp / "profile-shot", "--window-size=1280,2000", f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        grey = np.asarray(image.convert("L").resize((64, 100)))
    assert len(np.unique(grey)) > 10  # not a blank page
    return body


def artifact(tmp_path: Path, name: str, capsys) -> Path:
    """Where a screenshot is kept: $SPRINGTAIL_ARTIFACTS if set, else the test's tmp dir."""
    folder = Path(os.environ.get("SPRINGTAIL_ARTIFACTS") or tmp_path)
    path = folder / name
    with capsys.disabled():
        print(f"\nreport screenshot: {path}")
    return path


def test_the_self_check_catches_a_broken_image(chromium, tmp_path):
    broken = Card("data:image/png;base64,AAAA", [("broken", "")])
    path = tmp_path / "broken.html"
    path.write_text(page("broken", "", [Section("s", "S", "", grid([broken]))], 64), encoding="utf-8")
    body = parse(browse(chromium, path, tmp_path / "profile", "--dump-dom").stdout).body
    assert body["data-check"] == "failed" and body["data-broken"] == "1"


def stand_in_models() -> dict:
    """Untrained networks behind the attributes the explainers read (no training needed)."""
    import xgboost as xgb

    resnet = timm.create_model("test_resnet", num_classes=N_CLASSES)
    vit = timm.create_model("test_vit", num_classes=N_CLASSES, img_size=32, patch_size=8)
    features = np.random.default_rng(0).normal(size=(18, resnet.num_features))
    booster = xgb.train({"objective": "multi:softprob", "num_class": N_CLASSES},
                        xgb.DMatrix(features, label=np.arange(18) % N_CLASSES), num_boost_round=3)
    return {"resnet": SimpleNamespace(net_=resnet, norm_=PLAIN),
            "vit": SimpleNamespace(net_=vit, norm_=PLAIN),
            "cnn_xgb": SimpleNamespace(cnn_=SimpleNamespace(net_=resnet, norm_=PLAIN), booster_=booster)}


def test_report_of_made_up_data_renders(chromium, tmp_path, capsys):
    config = params_config(ReportConfig, "report", n_disputed=6, n_errors=6, n_per_class=2, cam_per_class=1)
    report = build_report(fake_data(), stand_in_models(), config, settings="seed: 0")
    links = assert_self_contained(report.html)
    for section in ("scores", "disputed", "errors", "uncertain", "heatmaps", "settings"):
        assert f'<section id="{section}">' in report.html
    assert "no heatmap" not in report.html
    path = tmp_path / "report.html"
    path.write_text(report.html, encoding="utf-8")
    body = render_and_check(chromium, path, artifact(tmp_path, "report-made-up.png", capsys), tmp_path)
    assert body["data-check"] == "ok", body
    assert int(body["data-images"]) == len(links.images)


@pytest.mark.slow
def test_tiny_pipeline_report_renders(tiny_repo, chromium, tmp_path, capsys):
    stages = yaml.safe_load((tiny_repo / "dvc.yaml").read_text())["stages"]
    if "report" in stages:  # built by `dvc repro` with the pipeline
        html_path, plots = tiny_repo / "reports" / "report.html", tiny_repo / "plots" / "report"
    else:
        html_path, plots = tmp_path / "report.html", tmp_path / "plots"
        run([sys.executable, "stages/report.py", "--crops", "data/processed/crops", "--labels",
             "data/interim/labels.csv", "--predictions", "data/processed/predictions", "--ensemble",
             "data/processed/ensemble", "--models-dir", "models/members",
             "--totals", "data/processed/detections/totals.csv", "--detect-metrics", "metrics/detect.json", "--out", str(html_path),
             "--plots", str(plots)], tiny_repo)
    models = yaml.safe_load((tiny_repo / "params.yaml").read_text())["models"]
    f1 = pd.read_csv(plots / "per_class_f1.csv")
    assert len(f1) == N_CLASSES * (len(models) + 1)
    assert len(pd.read_csv(plots / "class_distribution.csv")) == N_CLASSES * len(STAGES)
    html = html_path.read_text(encoding="utf-8")
    links = assert_self_contained(html)
    for model in models:  # every model explained, by a map or a stated reason
        assert f'alt="{model} heatmap' in html or f'alt="{model}: uniform map' in html, model
    body = render_and_check(chromium, html_path, artifact(tmp_path, "report-tiny.png", capsys), tmp_path)
    assert body["data-check"] == "ok", body
    assert int(body["data-images"]) == len(links.images)
