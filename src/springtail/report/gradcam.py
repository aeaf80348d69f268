"""Where a model looks: class-activation heatmaps for every kind of model in the registry.

* CNNs (resnet, convnext): Grad-CAM (Selvaraju et al., 2017). A forward hook keeps
  the activations A (N, C, h, w) of one stage; the gradient of the explained class's
  logit with respect to A, averaged over space, weights the channels:
  ``cam = relu(sum_c mean_hw(dlogit/dA_c) * A_c)``.
* cnn_xgb: the trees decide, and trees have no gradient. Their TreeSHAP
  contributions phi_c (XGBoost's ``pred_contribs``) to the explained class take the
  gradient's place: the pooled feature c is ``mean_hw(A_c)``, so spreading phi_c over
  space in proportion to A_c gives ``cam = relu(sum_c phi_c / mean_hw(A_c) * A_c)``,
  which is exactly Grad-CAM when the classifier is linear.
* ViT: attention rollout (Abnar & Zuidema, 2020): the class token's attention to the
  patches through all blocks, heads averaged and the residual added. It does not
  depend on the class.

Every explainer runs in fp32 on the CPU, without test-time augmentation, and
returns the maps with the probabilities of the same forward pass.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from springtail.models.augment import prepare_batch, to_chw

METHODS = {"grad_cam": "Grad-CAM", "tree_shap_cam": "TreeSHAP CAM", "attention_rollout": "attention rollout"}


@dataclass
class Explanation:
    """Heatmaps of one model over a batch of crops."""

    cams: np.ndarray  # (N, h, w) float, >= 0, any scale
    probs: np.ndarray  # (N, K) class probabilities of the explained forward pass
    target: np.ndarray  # (N,) the class each map explains (the predicted one)
    method: str  # a key of METHODS
    layer: str  # the module whose output was hooked


@contextlib.contextmanager
def capture(module: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Keep ``module``'s latest forward output under key "out" while the block runs."""
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, _inp, out: store.__setitem__("out", out))
    try:
        yield store
    finally:
        handle.remove()


def module_named(net: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule called ``name`` (e.g. "layer4", "stages.3").

    Raises:
        ValueError: no such module; names the deepest few that exist.
    """
    modules = dict(net.named_modules())
    if name not in modules:
        top = [n for n in modules if n and "." not in n]
        raise ValueError(f"{type(net).__name__} has no module '{name}'; top-level modules: "
                         f"{', '.join(top)}")
    return modules[name]


def cam_stage(net: torch.nn.Module, crop_size: int, min_cells: int = 3) -> str:
    """The deepest stage (timm's ``feature_info``) whose output keeps at least ``min_cells``
    cells per side on ``crop_size`` crops: the last stage for 96 px crops (3 x 3), an
    earlier one on smaller crops, where the last stage is a single cell.

    Raises:
        ValueError: the network lists no stages.
    """
    info = list(getattr(net, "feature_info", None) or [])
    if not info:
        raise ValueError(f"{type(net).__name__} lists no feature stages: set report.cam_layers")
    fitting = [f for f in info if crop_size // f["reduction"] >= min_cells]
    return (fitting or info[:1])[-1]["module"]


def evaluation_copy(net: torch.nn.Module) -> torch.nn.Module:
    """A float32 copy of ``net`` in eval mode: explaining a fitted model never changes it
    (its train/eval flags, dtype and memory format stay as the model left them)."""
    return copy.deepcopy(net).eval().float()


def _inputs(crops: np.ndarray, norm) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> normalised (N, 3, S, S) float32 on the CPU."""
    return prepare_batch(to_chw(crops), *norm, device="cpu")


def grad_cam(net: torch.nn.Module, crops: np.ndarray, norm, layer: str) -> Explanation:
    """Grad-CAM of each crop's predicted class on the output of module ``layer``.

    Args:
        net: a classifier returning (N, K) logits (left unchanged: a copy is explained).
        crops: (N, S, S, 3) uint8. norm: the (mean, std) the net was trained with.
    """
    net = evaluation_copy(net)
    x = _inputs(crops, norm).requires_grad_(True)  # keeps a graph even if weights are frozen
    with torch.enable_grad(), capture(module_named(net, layer)) as store:
        logits = net(x).float()  # (N, K)
        acts = store["out"]  # (N, C, h, w)
        if acts.ndim != 4:
            raise ValueError(f"Grad-CAM needs a (N, C, h, w) output; '{layer}' gives {tuple(acts.shape)}")
        target = logits.argmax(dim=1)
        (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    cams = torch.relu((weights * acts).sum(dim=1)).detach()  # (N, h, w)
    return Explanation(cams.numpy(), logits.softmax(dim=1).detach().numpy(), target.numpy(),
                       "grad_cam", layer)


@torch.no_grad()
def tree_shap_cam(net: torch.nn.Module, booster, crops: np.ndarray, norm, layer: str | None,
                  eps: float = 1e-6) -> Explanation:
    """Heatmaps of CNN features classified by XGBoost (see the module docstring).

    Raises:
        ValueError: the trees' features are not the plain average pool of ``layer``
            (e.g. a head that normalises after pooling) or ``layer`` has negative
            activations: the map would be wrong.
    """
    import xgboost as xgb

    net = evaluation_copy(net)
    x = _inputs(crops, norm)
    if layer is None:  # the map the trees' features pool, whatever module ends the trunk
        acts = net.forward_features(x).float()  # (N, D, h, w)
        features = net.forward_head(acts, pre_logits=True).float()  # (N, D)
        layer = "forward_features"
    else:
        with capture(module_named(net, layer)) as store:
            features = net.forward_head(net.forward_features(x), pre_logits=True).float()  # (N, D)
            acts = store["out"].float()  # (N, D, h, w)
    if acts.ndim != 4 or acts.shape[:2] != features.shape or not torch.allclose(
            acts.mean(dim=(2, 3)), features, rtol=1e-3, atol=1e-4):
        raise ValueError(f"the features of {type(net).__name__} are not the average pool of "
                         f"'{layer}': no TreeSHAP-weighted map")
    if acts.min() < 0:  # spreading phi_c in proportion to A_c needs A_c >= 0 (post-ReLU)
        raise ValueError(f"'{layer}' of {type(net).__name__} has negative activations: "
                         f"no TreeSHAP-weighted map")
    pooled = acts.mean(dim=(2, 3))  # (N, D)
    matrix = xgb.DMatrix(features.numpy())
    probs = booster.predict(matrix).reshape(len(crops), -1)  # (N, K)
    target = probs.argmax(axis=1)
    contribs = booster.predict(matrix, pred_contribs=True)  # (N, K, D + 1), last = bias
    phi = contribs[np.arange(len(crops)), target, :-1]  # (N, D)
    per_unit = phi / np.maximum(pooled.numpy(), eps)  # contribution per unit of activation
    cams = np.maximum(np.einsum("nd,ndhw->nhw", per_unit, acts.numpy()), 0)
    return Explanation(cams, probs, target, "tree_shap_cam", layer)


@torch.no_grad()
def attention_rollout(net: torch.nn.Module, crops: np.ndarray, norm) -> Explanation:
    """Attention rollout of a timm VisionTransformer: (N, g, g) maps over its patch grid.

    Raises:
        ValueError: the network has no ``blocks[i].attn.attn_drop`` to hook.
    """
    net = evaluation_copy(net)  # hooks and the unfused attention go on the copy
    blocks = list(getattr(net, "blocks", []))
    attns = [b.attn for b in blocks if hasattr(getattr(b, "attn", None), "attn_drop")]
    if not attns or len(attns) != len(blocks):
        raise ValueError(f"{type(net).__name__}: no attention weights to hook for a rollout")
    maps: list[torch.Tensor] = []
    fused = [getattr(a, "fused_attn", False) for a in attns]
    handles = [a.attn_drop.register_forward_hook(lambda _m, _i, out: maps.append(out))
               for a in attns]
    try:
        for a in attns:  # the fused kernel never materialises the weights
            a.fused_attn = False
        logits = net(_inputs(crops, norm)).float()
    finally:
        for a, was in zip(attns, fused):
            a.fused_attn = was
        for h in handles:
            h.remove()
    n, _, t, _ = maps[0].shape  # (N, heads, T, T)
    eye = torch.eye(t).expand(n, t, t)
    rollout = eye
    for attn in maps:
        step = 0.5 * attn.float().mean(dim=1) + 0.5 * eye  # the residual path
        rollout = (step / step.sum(dim=-1, keepdim=True)) @ rollout
    prefix = getattr(net, "num_prefix_tokens", 1)
    rows = rollout[:, 0] if prefix else rollout.mean(dim=1)  # class token, or every token
    side = int(round((t - prefix) ** 0.5))
    cams = rows[:, prefix:].reshape(n, side, side)
    return Explanation(cams.numpy(), logits.softmax(dim=1).numpy(), logits.argmax(dim=1).numpy(),
                       "attention_rollout", "all blocks")


def explain(model, crops: np.ndarray, layer: str | None = None, min_cells: int = 3) -> Explanation:
    """Heatmaps of a fitted registry model (TimmClassifier or CnnXgbClassifier) over crops.

    Args:
        layer: the module to hook; None picks :func:`cam_stage` (for cnn_xgb: the trunk's
            output, whose average pool is exactly what the trees read).
    """
    if hasattr(model, "booster_"):
        return tree_shap_cam(model.cnn_.net_, model.booster_, crops, model.cnn_.norm_, layer)
    net, norm = model.net_, model.norm_
    if hasattr(net, "blocks") and hasattr(net, "patch_embed"):
        return attention_rollout(net, crops, norm)
    return grad_cam(net, crops, norm, layer or cam_stage(net, crops.shape[1], min_cells))
