"""Data stages: the synthetic generator's time and the crops stage's per-image decode path."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from springtail.common.config import from_section
from springtail.common.policy import ErrorPolicy, SkipLog
from springtail.crops.build import check_labels, train_jobs
from springtail.crops.cutting import CropsConfig, crop_image
from springtail.labels.annotations import read_train_annotations
from springtail.labels.build import build_labels
from springtail.labels.consensus import ConsensusConfig
from springtail.synth import SynthConfig, generate


def synth_config(params: dict, **overrides) -> SynthConfig:
    return dataclasses.replace(from_section(SynthConfig, params.get("synthesize"), "synthesize"), **overrides)


def time_synthesize(params: dict, out: Path, n_train: int) -> dict:
    """Generate ``n_train`` default-size training images (and test crops in the default
    proportion) with the real generator and worker count; extrapolate to the full set.

    The extrapolation keeps the measured fixed cost (pool start, tables) once and
    scales the per-item part: training images and test crops have separate rates,
    taken from the progress callback's timestamps (the generator yields in job
    order: training images first, then test crops).
    """
    full = synth_config(params)
    n_test = max(2, round(n_train * full.n_test / full.n_train))
    cfg = synth_config(params, n_train=n_train, n_test=n_test)
    stamps: list[float] = []
    start = time.perf_counter()
    generate(cfg, out, lambda done, total: stamps.append(time.perf_counter() - start))
    seconds = time.perf_counter() - start
    # Steady-state seconds per item: first completion -> last training image, then -> last test crop.
    per_train = (stamps[n_train - 1] - stamps[0]) / max(1, n_train - 1)
    per_test = (stamps[-1] - stamps[n_train - 1]) / n_test
    estimate = seconds + (full.n_train - n_train) * per_train + (full.n_test - n_test) * per_test
    return {
        "synthesize_s_estimated": estimate,
        "synthesize_subset_images": n_train,
        "synthesize_subset_test_crops": n_test,
        "synthesize_subset_s": seconds,
        "synthesize_train_img_s": 1 / per_train if per_train > 0 else float("inf"),
        "synthesize_size": f"{cfg.width}x{cfg.height}",
    }


def source_images(params: dict, repo: Path, workdir: Path, n: int,
                  generated: Path | None = None) -> tuple[Path, str]:
    """A raw layout of ``n`` default-size training images, and where they come from.

    The repository's raw directory when it holds images of the default size
    (as links), else ``generated`` (a subset the generator wrote), else ``n``
    new images generated into ``workdir``.
    """
    raw, full = repo / params["data"]["raw_dir"], synth_config(params)
    made = raw / "synthesize.yaml"
    if (raw / "train").is_dir() and made.exists():
        with made.open(encoding="utf-8") as fh:
            size = yaml.safe_load(fh) or {}
        if (size.get("width"), size.get("height")) == (full.width, full.height):
            return subset_dir(raw, workdir / "subset", n), str(params["data"]["raw_dir"])
    label = f"generated ({full.width}x{full.height})"
    if generated is not None and (generated / "train").is_dir():
        return generated, label
    out = workdir / "generated"
    generate(synth_config(params, n_train=n, n_test=2), out)
    return out, label


def subset_dir(raw_dir: Path, out: Path, n: int) -> Path:
    """A raw layout holding the first ``n`` training images (and annotations) of ``raw_dir``, as links."""
    (out / "train").mkdir(parents=True, exist_ok=True)
    for image in sorted((raw_dir / "train").glob("*.jpg"))[:n]:
        for src in (image, image.with_suffix(".txt")):
            if src.exists():
                (out / "train" / src.name).symlink_to(src.resolve())
    return out


def crop_jobs(raw_dir: Path, params: dict, n: int) -> list[tuple[str, str, list[dict]]]:
    """The crops stage's jobs for the first ``n`` images: consensus labels made by the library."""
    boxes, _ = read_train_annotations(raw_dir, SkipLog(ErrorPolicy("fail", 0)))
    labels, _ = build_labels(boxes, from_section(ConsensusConfig, params.get("consensus"), "consensus"))
    return train_jobs(check_labels(labels), raw_dir / "train")[:n]


def time_crops(jobs: list, params: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """Per-image seconds of ``crop_image`` with draft decoding against full decoding.

    Both runs go through the same function on the same images (files read once
    beforehand, so both find them in the page cache); the two modes alternate
    image by image, so a change in machine load hits both alike.

    Returns:
        (metrics, crops (M, S, S, 3) uint8 from the draft path, their labels (M,)).
    """
    config = from_section(CropsConfig, params.get("crops"), "crops")
    draft, full = dataclasses.replace(config, draft=True), dataclasses.replace(config, draft=False)
    for _, path, _ in jobs:
        Path(path).read_bytes()
    seconds = {"draft": 0.0, "full": 0.0}
    crops, labels, diffs, scales = [], [], [], []
    for i, job in enumerate(jobs):
        results = {}
        for mode in (("draft", "full") if i % 2 == 0 else ("full", "draft")):
            tick = time.perf_counter()
            results[mode] = crop_image(job, draft if mode == "draft" else full)
            seconds[mode] += time.perf_counter() - tick
        fast, slow = results["draft"], results["full"]
        if fast.error is not None or slow.error is not None:
            raise RuntimeError(f"crop_image failed on {job[1]}: {fast.error or slow.error}")
        crops.append(fast.crops)
        labels.extend(row["label"] for row in fast.rows)
        scales.append(fast.scale)
        if len(fast.crops):
            diffs.append(np.abs(fast.crops.astype(np.int16) - slow.crops.astype(np.int16)).mean())
    n = len(jobs)
    metrics = {
        "crops_img_s": n / seconds["draft"],
        "crops_full_img_s": n / seconds["full"],
        "crops_speedup_vs_naive": seconds["full"] / seconds["draft"],
        "crops_images": n,
        "crops_per_image": sum(len(c) for c in crops) / n,
        "crops_draft_scales": dict(sorted(pd.Series(scales).value_counts().astype(int).to_dict().items())),
        "crops_draft_vs_full_mean_abs_diff": float(np.mean(diffs)) if diffs else 0.0,
    }
    return metrics, np.concatenate(crops), np.asarray(labels, dtype=int)


def cut_crops(jobs: list, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(M, S, S, 3) uint8 crops and (M,) labels of ``jobs``, cut as the crops stage does."""
    config = from_section(CropsConfig, params.get("crops"), "crops")
    results = [crop_image(job, config) for job in jobs]
    crops = np.concatenate([r.crops for r in results])
    return crops, np.asarray([row["label"] for r in results for row in r.rows], dtype=int)


def repeat_to(crops: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` crops: the given ones repeated in order (timing does not need them distinct)."""
    reps = -(-n // len(crops))
    return np.concatenate([crops] * reps)[:n], np.concatenate([labels] * reps)[:n]
