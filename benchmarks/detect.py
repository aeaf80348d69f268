"""Whole photos through the trained detector, one at a time as ``springtail-count`` does:
seconds per photo, decode included (the pipeline's outputs must exist: ``make repro``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from springtail.bundle.load import load_bundle
from springtail.common.config import load_params
from springtail.common.decode import image_size
from springtail.detect.photos import detect_photo


def load_detector(repo: Path, params_path: Path, photos: int) -> tuple[TrainedPipeline, BoxScorer, list[Path]]:
    """The trained pipeline and detector under ``repo``, and the first ``photos`` + 1 training
    photos of ``data.raw_dir`` (one to warm up).

    Raises:
        FileNotFoundError: the pipeline has not run (names the missing output).
    """
    model = load_bundle(repo / "models/springtail-model")
    pipeline, scorer = model.pipeline, model.scorer()
    raw = repo / load_params(params_path)["data"]["raw_dir"] / "train"
    paths = sorted(raw.glob("*.jpg"))[:photos + 1]
    if len(paths) < 2:
        raise FileNotFoundError(f"{raw}: missing (fewer than 2 photos to time)")
    return pipeline, scorer, paths


def bench_detect(pipeline: TrainedPipeline, scorer: BoxScorer, paths: list[Path]) -> dict:
    """Median and worst seconds per photo over ``paths[1:]`` (``paths[0]`` untimed first)."""
    detect_photo(paths[0], pipeline, scorer)  # warm-up: first-call allocations
    seconds, boxes = [], 0
    for path in paths[1:]:
        started = time.perf_counter()
        found, _ = detect_photo(path, pipeline, scorer)
        seconds.append(time.perf_counter() - started)
        boxes += int(found["accepted"].sum())
    width, height = image_size(paths[1])
    return {"detect_s_per_photo": round(float(np.median(seconds)), 3), "detect_s_per_photo_max": round(max(seconds), 3),
            "detect_photos": len(seconds), "detect_photo_px": f"{width}x{height}", "detect_springtails": boxes}
