"""The model registry and the classifier contract, on timm's tiny test networks at 32 px."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from springtail.models.cnn_xgb import balance, expand_soft
from springtail.models.registry import MODELS, create_model, load_model
from springtail.models.training import TrainConfig
from springtail.models.weights import PretrainedUnavailableError, create_net, read_state_dict

from conftest import model_section, params_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SIZE = 32
# One tiny section per registered model: a new model must add its own here.
# Sections are params.yaml's with a tiny network, no pretrained weights and train.epochs.
TINY = {
    "effnet": model_section("effnet", arch="test_efficientnet", pretrained=False, epochs=None, backbone_lr=0.5),
    "vit_hybrid": model_section("vit_hybrid", arch="test_efficientnet", pretrained=False, epochs=None,
                                embed_dim=16, depth=1, num_heads=2),
    "resnet": model_section("resnet", arch="test_resnet", epochs=None),
    "convnext": model_section("convnext", arch="test_convnext"),
    "vit": model_section("vit", arch="test_vit", patch_size=8),
    "cnn_xgb": model_section("cnn_xgb", arch="test_resnet", pretrained=False, finetune_epochs=1,
                             n_estimators=8, max_depth=2),
}
TRAIN = params_config(TrainConfig, "train", epochs=1, batch_size=8, device="cpu")



@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (27, SIZE, SIZE, 3), dtype=np.uint8)
    y = np.arange(27) % 9
    soft = np.eye(9)[y] * 0.7 + 0.3 / 9
    return X, y, soft


def fitted(name, data, **section):
    X, y, soft = data
    model = create_model(name, TINY[name] | section, TRAIN, SIZE)
    return model.fit(X[:18], y[:18], soft_targets=soft[:18], eval_set=(X[18:], y[18:]))


def test_every_registered_model_has_a_tiny_section():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_gives_finite_probabilities(name, data):
    X = data[0]
    model = fitted(name, data)
    for tta in (False, True):
        probs = model.predict_proba(X, tta=tta, batch_size=10)
        assert probs.shape == (len(X), 9)
        assert np.isfinite(probs).all() and (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert list(model.classes_) == list(range(9))
    assert set(model.predict(X)) <= set(range(9))
    assert model.summary()["val_macro_f1"] is not None
    assert hasattr(model, "predict_proba_views") == (name != "cnn_xgb")  # the networks' per-view probabilities
    if name != "cnn_xgb":
        views = model.predict_proba_views(X, tta=True, batch_size=10)
        plain = model.predict_proba_views(X, tta=False, batch_size=10)
        mirrored = model.predict_proba_views(np.ascontiguousarray(X[:, :, ::-1]), tta=False, batch_size=10)
        assert views.shape == (8, len(X), 9) and plain.shape == mirrored.shape == (1, len(X), 9)
        np.testing.assert_allclose(views[0], plain[0], atol=1e-5)  # view 0: the crops as they are
        np.testing.assert_allclose(views[1], mirrored[0], atol=1e-5)  # view 1: mirrored left-right
        assert not np.allclose(views[0], views[1], atol=1e-5)  # the views differ


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip_is_exact(name, data, tmp_path):
    X = data[0]
    model = fitted(name, data)
    model.save(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.yaml").exists()
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt*"))
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(X, tta=True), model.predict_proba(X, tta=True))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="known models: effnet, vit_hybrid, resnet, convnext, vit, cnn_xgb"):
        create_model("efficientnet", {}, TRAIN, SIZE)


def test_a_second_member_of_one_family_is_built_by_its_factory():
    section = TINY["vit_hybrid"] | {"family": "vit_hybrid", "seed_offset": 1}
    second = create_model("vit_hybrid_b", section, TRAIN, SIZE)
    first = create_model("vit_hybrid", TINY["vit_hybrid"], TRAIN, SIZE)
    assert type(second) is type(first) and second.name == "vit_hybrid_b"
    assert second.seed() == first.seed() + 1 - TINY["vit_hybrid"]["seed_offset"]
    with pytest.raises(ValueError, match="vit_hybrid_b.family 'vit_hybird'; known models"):
        create_model("vit_hybrid_b", section | {"family": "vit_hybird"}, TRAIN, SIZE)


def test_frozen_early_layers_keep_their_weights_and_the_rest_trains(data):
    model = fitted("vit_hybrid", data, freeze_stride=4)
    fresh, _ = create_model("vit_hybrid", TINY["vit_hybrid"] | {"freeze_stride": 4}, TRAIN, SIZE)._build()
    trained, before = model.net_.state_dict(), fresh.state_dict()
    trunk = "patch_embed.backbone."
    frozen = [k for k in trained if k.startswith(trunk + "conv_stem") or k.startswith(trunk + "blocks_1.")]
    later = [k for k in trained if k.startswith(trunk + "blocks_2.") and k.endswith("weight")]
    assert frozen and later
    for key in frozen:
        if "running" not in key and "num_batches" not in key:  # BatchNorm statistics still adapt
            torch.testing.assert_close(trained[key], before[key], rtol=0, atol=0)
    assert any(not torch.equal(trained[k], before[k]) for k in later)


def test_unknown_section_key_is_named():
    with pytest.raises(ValueError, match="patch_size"):
        create_model("resnet", TINY["resnet"] | {"patch_size": 8}, TRAIN, SIZE)


def test_vit_patch_size_must_divide_the_crop(data):
    with pytest.raises(ValueError, match="must divide the crop size 32"):
        fitted("vit", data, patch_size=5)


def test_pretrained_from_unreachable_hub_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(PretrainedUnavailableError, match="hub is unreachable.*local .safetensors"):
        create_net("test_resnet", 9, True)


def source_state(arch="test_resnet", **kwargs):
    torch.manual_seed(123)
    return timm.create_model(arch, num_classes=1000, **kwargs).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin"])
def test_local_weights_file_is_loaded_without_its_head(suffix, tmp_path):
    state = source_state()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:  # a training checkpoint wrapping the weights, as many repositories publish them
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    net, report = create_net("test_resnet", 9, str(path))
    own = net.state_dict()
    assert report.dropped_head == ("fc.bias", "fc.weight")
    assert own["fc.weight"].shape == (9, state["fc.weight"].shape[1])
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(own[key], value), key


def test_vit_weights_are_resampled_to_the_crop_and_patch_size(tmp_path):
    save_file(source_state("test_vit"), str(tmp_path / "vit.safetensors"))  # 160 px, patch 16
    net, report = create_net("test_vit", 9, str(tmp_path / "vit.safetensors"), img_size=SIZE, patch_size=8)
    assert net.pos_embed.shape[1] == 1 + (SIZE // 8) ** 2
    assert set(report.missing) == {"head.weight", "head.bias"}


def test_weights_for_another_architecture_are_refused(tmp_path):
    save_file(source_state("test_convnext"), str(tmp_path / "convnext.safetensors"))
    with pytest.raises(ValueError, match="missing from the file"):
        create_net("test_resnet", 9, str(tmp_path / "convnext.safetensors"))


class Planted:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("suffix", [".pth", ".bin"])
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused_without_running(suffix, writer, tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / f"evil{suffix}"
    payload = {"conv1.weight": torch.zeros(1), "payload": Planted(str(marker))}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match="refused to load"):
        read_state_dict(path)
    with pytest.raises(ValueError, match="refused to load"):
        create_model("resnet", TINY["resnet"] | {"pretrained": str(path)}, TRAIN, SIZE).fit(
            np.zeros((4, SIZE, SIZE, 3), np.uint8), np.arange(4))
    assert not marker.exists()


def test_missing_or_unknown_weights_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        read_state_dict(tmp_path / "nowhere.safetensors")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown weights format"):
        read_state_dict(tmp_path / "w.npz")


def test_cnn_xgb_with_weights_keeps_the_cnn_frozen(data, tmp_path):
    state = source_state()
    save_file(state, str(tmp_path / "w.safetensors"))
    model = fitted("cnn_xgb", data, pretrained=str(tmp_path / "w.safetensors"), finetune_epochs=3)
    own = model.cnn_.net_.state_dict()
    assert all(torch.equal(own[k].cpu(), v) for k, v in state.items() if not k.startswith("fc."))
    assert model.summary()["cnn_finetune"] is None


def test_soft_labels_become_weighted_rows_for_the_trees():
    feats = np.arange(6, dtype=float).reshape(3, 2)
    soft = np.array([[0.9, 0.1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0], [0.5, 0, 0.5, 0, 0, 0, 0, 0, 0]])
    rows, labels, weights = expand_soft(feats, np.array([0, 1, 0]), soft)
    assert labels.tolist() == [0, 1, 1, 0, 2]
    np.testing.assert_allclose(weights, [0.9, 0.1, 1.0, 0.5, 0.5])
    np.testing.assert_array_equal(rows[2], feats[1])
    balanced = balance(labels, weights)  # class masses 1.4, 1.1, 0.5 -> equal after balancing
    masses = np.bincount(labels, weights=balanced)
    np.testing.assert_allclose(masses, masses[0])
    np.testing.assert_allclose(balanced.sum(), weights.sum())


def test_cnn_xgb_with_weights_logs_every_boosting_round(data, tmp_path):
    save_file(source_state(), str(tmp_path / "w.safetensors"))
    X, y, soft = data
    logged = []
    model = create_model("cnn_xgb", TINY["cnn_xgb"] | {"pretrained": str(tmp_path / "w.safetensors")}, TRAIN, SIZE)
    model.fit(X[:18], y[:18], soft_targets=soft[:18], eval_set=(X[18:], y[18:]), on_epoch=logged.append)
    assert [m["epoch"] for m in logged] == list(range(1, len(logged) + 1))
    assert len(logged) >= model.booster_.num_boosted_rounds() > 0
    assert {"train_mlogloss", "val_mlogloss"} <= set(logged[0])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sklearn_clone_gives_an_unfitted_twin(name, data):
    from sklearn.base import clone

    model = fitted(name, data)
    twin = clone(model)
    assert type(twin) is type(model) and twin.get_params() == model.get_params()
    assert not [k for k in vars(twin) if k.endswith("_")], "a clone carries no learned state"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_proba_leaves_the_model_unchanged(name, data):
    model = fitted(name, data)
    net = model.cnn_.net_ if hasattr(model, "cnn_") else model.net_
    before_attrs = {k: id(v) for k, v in vars(model).items()}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    training = net.training
    model.predict_proba(data[0], tta=True)
    assert {k: id(v) for k, v in vars(model).items()} == before_attrs
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training == training
