"""A timm image classifier behind the scikit-learn contract (effnet, resnet, convnext, vit,
and the hybrid ViT over a pretrained CNN's feature map)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from timm.models import FeatureListNet
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer_hybrid import HybridEmbed

from springtail.common.classes import CODES, N_CLASSES
from springtail.common.config import from_section, to_dict
from springtail.common.io import write_yaml
from springtail.models import checkpoint
from springtail.models.augment import to_chw
from springtail.models.inference import Runtime, feature_head, forward_views, softmax_head
from springtail.models.precision import check_precision
from springtail.models.training import FitResult, TrainConfig, fit_network, make_targets
from springtail.models.weights import WeightsReport, create_net


@dataclass(frozen=True)
class NetConfig:
    """A model section for a timm network (``effnet``, ``resnet``, ``convnext``)."""

    arch: str  # any timm architecture name
    pretrained: bool | str  # false | a packaged network (efficientnet_lite0) | true (hub) | a file
    lr: float | None  # null = train.lr
    epochs: int | None  # null = train.epochs
    backbone_lr: float  # learning-rate multiplier of the pretrained weights (new layers: 1)
    precision: str | None  # auto | fp32 | bf16; null = train.precision
    seed_offset: int  # added to train.seed: two members of one architecture start and shuffle apart

    def __post_init__(self) -> None:
        check_precision(self.precision, nullable=True)


@dataclass(frozen=True)
class VitConfig(NetConfig):
    """A model section for a vision transformer: the patch size is set for the crop size."""

    patch_size: int  # pixels per token side; must divide the crop size


@dataclass(frozen=True)
class HybridConfig(NetConfig):
    """A ViT whose tokens are the cells of a (pretrained) CNN's feature map: the ViT
    paper's hybrid, built from timm's ``HybridEmbed``. ``arch`` names the CNN."""

    feature_stride: int  # the CNN is cut after its deepest stage of at most this reduction
    embed_dim: int  # token width of the transformer
    depth: int  # transformer blocks (randomly initialised: they train at the full lr)
    num_heads: int
    freeze_stride: int  # 0 = train the whole trunk; else its layers up to its last stage of at most
    #                     this reduction keep their pretrained weights (no backward through them)


def config_class(section: dict[str, Any]) -> type[NetConfig]:
    """The config dataclass a saved model section was written from."""
    if "embed_dim" in section:
        return HybridConfig
    return VitConfig if "patch_size" in section else NetConfig


def hybrid_vit(config: HybridConfig, img_size: int, num_classes: int,
               pretrained: bool | str) -> tuple[torch.nn.Module, WeightsReport]:
    """A VisionTransformer over the feature map of CNN ``config.arch`` (weights loaded first).

    On 128 px crops and stride 16 the transformer sees 8 x 8 tokens plus the class token.
    """
    cnn, report = create_net(config.arch, 0, pretrained)
    stages = [i for i, f in enumerate(cnn.feature_info) if f["reduction"] <= config.feature_stride]
    if not stages or img_size % cnn.feature_info[stages[-1]]["reduction"]:
        raise ValueError(f"{config.arch}: no stage of reduction <= {config.feature_stride} that divides "
                         f"the crop size {img_size}")
    trunk = FeatureListNet(cnn, out_indices=(stages[-1],), flatten_sequential=True)
    net = VisionTransformer(img_size=img_size, patch_size=1, num_classes=num_classes,
                            embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads,
                            embed_layer=partial(HybridEmbed, backbone=trunk))
    return net, report


def freeze_early_layers(net: torch.nn.Module, config: HybridConfig) -> list[str]:
    """Stop gradients into a hybrid's trunk layers up to its last stage of reduction
    <= ``config.freeze_stride`` (stem included); returns the frozen layers' names.

    Those layers keep their pretrained weights (their BatchNorm statistics still adapt), and
    as they come first, no backward pass runs through them: at 128 px the high-resolution
    layers are the costly part of a step."""
    if config.freeze_stride <= 0:
        return []
    trunk = net.patch_embed.backbone
    last = [f["module"].replace(".", "_") for f in trunk.feature_info.info if f["reduction"] <= config.freeze_stride]
    if not last:
        raise ValueError(f"freeze_stride {config.freeze_stride}: {config.arch} has no stage of that reduction")
    frozen = []
    for name, module in trunk.named_children():
        module.requires_grad_(False)
        frozen.append(name)
        if name == last[-1]:
            return frozen
    raise ValueError(f"freeze_stride: layer {last[-1]} not found in the trunk of {config.arch}")


def resolved_runtime(runtime: Runtime) -> dict[str, Any]:
    """``train.precision`` / ``train.channels_last`` as ``runtime`` resolved them (fp16, the
    stand-in for bf16 on older GPUs, is saved as bf16: each machine picks its own stand-in)."""
    return {"precision": "bf16" if runtime.precision == "fp16" else runtime.precision,
            "channels_last": runtime.channels_last}


def pretrained_names(net: torch.nn.Module, weights: WeightsReport) -> frozenset[str]:
    """Names of the parameters that came with the pretrained weights (none without weights):
    a hybrid's CNN trunk, or every parameter of a plain network but its new head."""
    if not weights.pretrained:
        return frozenset()
    names = [n for n, _ in net.named_parameters()]
    if isinstance(getattr(net, "patch_embed", None), HybridEmbed):
        return frozenset(n for n in names if n.startswith("patch_embed.backbone."))
    head = {id(p) for p in net.get_classifier().parameters()}
    return frozenset(n for n, p in net.named_parameters() if id(p) not in head)


def norm_of(net: torch.nn.Module, weights: WeightsReport | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel that the pretrained weights (or else the architecture) expect."""
    if weights is not None and weights.norm is not None:
        return weights.norm
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    return tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))


def _or(value, default):
    """A model's own setting, or the train section's when the model says null."""
    return default if value is None else value


class TimmClassifier(BaseEstimator):
    """A timm network trained with ``springtail.models.training.fit_network``.

    Args:
        config: the model's params section. train: the ``train`` section.
        img_size: crop side in pixels. name: the model's name in params.yaml.
    Learned state (after ``fit`` or ``load``): ``net_``, ``classes_``, ``norm_``,
    ``weights_`` (what pretrained loading did) and ``result_`` (training history; fit only).
    """

    kind = "timm_net"

    def __init__(self, config: NetConfig, train: TrainConfig, img_size: int, name: str = "net"):
        self.config = config
        self.train = train
        self.img_size = img_size
        self.name = name

    def _build(self, pretrained: bool | str | None = None) -> tuple[torch.nn.Module, WeightsReport]:
        """A fresh network with a 9-class head; ``pretrained`` overrides the config's."""
        pretrained = self.config.pretrained if pretrained is None else pretrained
        if isinstance(self.config, HybridConfig):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed())
                return hybrid_vit(self.config, self.img_size, N_CLASSES, pretrained)
        kwargs: dict[str, Any] = {}
        if isinstance(self.config, VitConfig):
            if self.img_size % self.config.patch_size:
                raise ValueError(f"{self.name}.patch_size {self.config.patch_size} "
                                 f"must divide the crop size {self.img_size}")
            kwargs = {"img_size": self.img_size, "patch_size": self.config.patch_size}
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left untouched
            torch.manual_seed(self.seed())
            return create_net(self.config.arch, N_CLASSES, pretrained, **kwargs)

    def seed(self) -> int:
        """This member's seed: ``train.seed`` plus the section's ``seed_offset``."""
        return self.train.seed + self.config.seed_offset

    def runtime(self) -> Runtime:
        return Runtime.resolve(self.train.device, _or(self.config.precision, self.train.precision),
                               self.train.channels_last, self.config.arch)

    def fit(self, X: np.ndarray, y: np.ndarray, *, soft_targets: np.ndarray | None = None,
            eval_set: tuple[np.ndarray, np.ndarray] | None = None, on_epoch=None,
            progress: bool = True) -> TimmClassifier:
        """Train on uint8 crops ``X`` (N, S, S, 3) with labels ``y`` (N,).

        Args:
            soft_targets: (N, 9) label distributions, used instead of ``y`` when
                ``train.soft_labels`` is true.
            eval_set: (crops, labels) for early stopping on macro F1.
            on_epoch: callback receiving each epoch's metrics (e.g. a dvclive logger).
            progress: a tqdm bar per epoch (changes nothing learned).
        """
        net, self.weights_ = self._build()
        if isinstance(self.config, HybridConfig):
            freeze_early_layers(net, self.config)
        self.norm_ = norm_of(net, self.weights_)
        soft = soft_targets if self.train.soft_labels else None
        targets = make_targets(np.asarray(y), soft, self.train.label_smoothing)
        val = None if eval_set is None else (to_chw(eval_set[0]), np.asarray(eval_set[1], dtype=int))
        self.result_: FitResult = fit_network(
            net, to_chw(X), targets, val, cfg=self.train,
            epochs=_or(self.config.epochs, self.train.epochs), lr=_or(self.config.lr, self.train.lr),
            runtime=self.runtime(), norm=self.norm_,
            slow=pretrained_names(net, self.weights_), slow_lr_scale=self.config.backbone_lr,
            generator=torch.Generator().manual_seed(self.seed()), on_epoch=on_epoch, desc=self.name,
            progress=progress)
        net.load_state_dict(self.result_.state)
        self.net_ = net
        self.classes_ = np.arange(N_CLASSES)
        return self

    def frozen(self) -> TimmClassifier:
        """'Fit' without training: the pretrained network as it is (for frozen features)."""
        self.net_, self.weights_ = self._build()
        self.norm_, self.classes_ = norm_of(self.net_, self.weights_), np.arange(N_CLASSES)
        return self

    def restore(self, directory: str | Path, cfg: dict[str, Any]) -> TimmClassifier:
        """The fitted state saved in ``directory`` (``cfg``: its config.yaml), no pickle."""
        self.net_, self.weights_ = self._build(pretrained=False)  # the saved weights replace them
        self.net_.load_state_dict(checkpoint.load_tensors(Path(directory) / "model.safetensors"))
        self.norm_ = (tuple(cfg["norm"]["mean"]), tuple(cfg["norm"]["std"]))
        self.classes_ = np.arange(N_CLASSES)
        return self

    def _views(self, X: np.ndarray, head, tta: bool, batch_size: int) -> np.ndarray:
        runtime = self.runtime()
        return forward_views(runtime.place(self.net_), X, head, norm=self.norm_, runtime=runtime,
                             tta=tta, batch_size=batch_size)

    def features(self, X: np.ndarray, *, tta: bool = False, batch_size: int = 128) -> np.ndarray:
        """(V, N, D) pooled penultimate features of uint8 crops, one slice per TTA view."""
        return self._views(X, feature_head, tta, batch_size)

    def predict_proba_views(self, X: np.ndarray, *, tta: bool = True, batch_size: int = 128) -> np.ndarray:
        """(V, N, 9) class probabilities of uint8 crops, one slice per view: the 8 flips and
        quarter turns with ``tta`` (what ``predict_proba`` averages), else the crops as they are."""
        return self._views(X, softmax_head, tta, batch_size)

    def predict_proba(self, X: np.ndarray, *, tta: bool = False, batch_size: int = 128) -> np.ndarray:
        """(N, 9) class probabilities, averaged over the 8 symmetries with ``tta``."""
        probs = self.predict_proba_views(X, tta=tta, batch_size=batch_size).mean(axis=0).astype(np.float64)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray, **kwargs) -> np.ndarray:
        return self.classes_[self.predict_proba(X, **kwargs).argmax(axis=1)]

    def summary(self) -> dict[str, Any]:
        """Training summary for the checkpoint directory (best epoch, F1, time, speed)."""
        return checkpoint.fit_summary(self.result_, self.runtime(), self.weights_)

    def resolved_config(self) -> dict[str, Any]:
        """The configuration as trained, with ``auto`` replaced by the precision and memory
        format this machine resolved it to, so that a checkpoint runs the same way wherever
        it is loaded (features for the trees included), hardware permitting."""
        return {"name": self.name, "kind": self.kind, "model": to_dict(self.config) | {"precision": None},
                "train": to_dict(self.train) | resolved_runtime(self.runtime()), "crop_size": self.img_size,
                "val_fold": self.train.val_fold, "classes": list(CODES),
                "norm": {"mean": list(self.norm_[0]), "std": list(self.norm_[1])}}

    def save(self, directory: str | Path) -> None:
        """Write model.safetensors and config.yaml (the resolved configuration)."""
        checkpoint.save_tensors(Path(directory) / "model.safetensors", self.net_.state_dict())
        write_yaml(Path(directory) / "config.yaml", self.resolved_config())

    @classmethod
    def load(cls, directory: str | Path) -> TimmClassifier:
        """Rebuild a fitted classifier from ``save``'s files (no pickle involved)."""
        cfg = checkpoint.read_config(directory)
        model = cfg["model"]
        return cls(from_section(config_class(model), model, cfg["name"]),
                   from_section(TrainConfig, cfg["train"], "train"), cfg["crop_size"], cfg["name"]
                   ).restore(directory, cfg)
