"""Checkpoint files: safetensors weights, the resolved config.yaml, the training summary.

Nothing is pickled: tensors go through safetensors, everything else is YAML/JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from springtail.common.io import atomic_path, write_json

CONFIG = "config.yaml"
SUMMARY = "summary.json"


def save_tensors(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    """Write a state dict as safetensors, atomically (contiguous CPU copies)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing weights (run the train stage)")
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors' own error names neither the file nor the cause
        raise ValueError(f"{path}: refused to load: not a safetensors file ({err})") from None


def read_config(directory: str | Path) -> dict[str, Any]:
    """The resolved configuration a checkpoint was trained with.

    Raises:
        FileNotFoundError / ValueError: naming the file when it is missing or not a mapping.
    """
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing checkpoint config (run the train stage)")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: refused to load: not a plain YAML config ({err})") from None
    for key in ("name", "kind", "model", "train", "crop_size", "val_fold"):
        if not isinstance(cfg, dict) or key not in cfg:
            raise ValueError(f"{path}: expected a mapping with key '{key}'")
    return cfg


TIMING_KEYS = ("seconds", "train_img_per_s")


def split_timing(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a training summary into (deterministic part, wall-clock timings).

    Timings differ on every run; kept out of the checkpoint directory, they leave
    its hash (and every stage downstream of it) identical across re-runs.
    """
    kept, timing = {}, {}
    for key, value in summary.items():
        if key in TIMING_KEYS:
            timing[key] = value
        elif isinstance(value, dict):
            inner_kept, inner_timing = split_timing(value)
            kept[key] = inner_kept
            if inner_timing:
                timing[key] = inner_timing
        else:
            kept[key] = value
    return kept, timing


def save_fitted(model, directory: str | Path, timing_path: str | Path) -> None:
    """A fitted model's files (``model.save``) plus its summary.json in ``directory``; the
    wall-clock timings go to ``timing_path``, apart, so the directory's hash is the same on
    every re-run."""
    summary, timing = split_timing(model.summary())
    model.save(directory)
    write_json(Path(directory) / SUMMARY, summary)
    write_json(timing_path, timing)


def fit_summary(result, runtime, weights) -> dict[str, Any]:
    """A FitResult as plain data: best epoch, val macro F1, time, throughput, history."""
    return {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "val_macro_f1": result.val_macro_f1,
        "seconds": round(result.seconds, 2),
        "train_img_per_s": round(result.train_img_per_s, 1),
        "world_size": result.world_size,
        "device": runtime.device,
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "precision_rule": runtime.rule,  # the table row behind an auto choice, or "forced"
        "weights": weights.as_dict(),
        "history": result.history,
    }
