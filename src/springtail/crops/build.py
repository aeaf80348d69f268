"""Training and test crops: boxes and background squares to square uint8 arrays.

Each kept box is cut with a context margin, centred in a square padded with
its mean colour (see :func:`springtail.common.decode.render_square`) and resized to
``crop_px``; background (FOND, class 8) squares sized like the image's crop
regions are sampled where they overlap no box; every test crop goes through the
same pad-to-square and resize. Images are decoded in worker processes, in
sorted order, and the crops are streamed into shards (bounded memory).
"""

from __future__ import annotations

import functools
import resource
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, PROB_COLUMNS
from springtail.common.config import to_dict
from springtail.common.io import atomic_directory, write_yaml
from springtail.common.policy import DataError, SkipLog
from springtail.common.runtime import cpu_count, ordered_map
from springtail.common.store import ShardWriter, write_index
from springtail.crops.cutting import CropsConfig, crop_image, crop_test_image
from springtail.crops.folds import assign_folds

LABEL_COLUMNS = ("image_id", "line", "xc", "yc", "w", "h", "label", "keep", *PROB_COLUMNS)
TRAIN_COLUMNS = ("crop_id", "image_id", "line", "source", "label", *PROB_COLUMNS,
                 "fold", "x0", "y0", "x1", "y1")


def bind(fn: Callable, config: CropsConfig) -> Callable:
    """``fn`` with ``config`` bound, picklable for a process pool."""
    return functools.partial(fn, config=config)


def check_labels(labels: pd.DataFrame, source: str = "labels.csv") -> pd.DataFrame:
    """Validate the consensus table the crops are cut from; return it sorted.

    Raises:
        ValueError: a missing column, or a kept box without a class label.
    """
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
    labels = labels.astype({"image_id": str, "keep": bool})
    bad = labels[labels["keep"] & ~labels["label"].between(0, len(CODES) - 1)]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(f"{source}: kept box {row['image_id']} line {row['line']} has label "
                         f"{row['label']} (expected a class id 0..{len(CODES) - 1})")
    return labels.sort_values(["image_id", "line"], kind="stable").reset_index(drop=True)


def train_jobs(labels: pd.DataFrame, train_dir: Path) -> list[tuple[str, str, list[dict]]]:
    """One (image_id, image path, boxes) job per image of labels.csv, sorted by id."""
    columns = ["line", "xc", "yc", "w", "h", "keep", "label", *PROB_COLUMNS]
    return [(str(image_id), str(train_dir / f"{image_id}.jpg"),
             group[columns].to_dict("records"))
            for image_id, group in labels.groupby("image_id", sort=True)]


def build_train(labels: pd.DataFrame, train_dir: Path, out: Path, config: CropsConfig,
                log: SkipLog, workers: int = 0) -> tuple[pd.DataFrame, dict]:
    """Cut, store and index every training crop; return the index and decode stats."""
    writer = ShardWriter(out, "train", config.crop_px, config.shard_size)
    rows, scales, missing = [], Counter(), 0
    workers = workers or cpu_count()
    for result in ordered_map(bind(crop_image, config), train_jobs(labels, train_dir), workers):
        if result.error is not None:
            log.handle(result.error)
            continue
        writer.extend(result.crops)
        rows.extend(result.rows)
        scales[result.scale] += 1
        missing += result.background_missing
    writer.close()
    if not rows:
        raise ValueError(f"{train_dir}: no training crop could be cut")
    index = pd.DataFrame(rows)
    index.insert(0, "crop_id", np.arange(len(index)))
    index["fold"] = assign_folds(index["label"].to_numpy(), index["image_id"].to_numpy(),
                                 config.n_folds, config.seed)
    index = index[list(TRAIN_COLUMNS)]
    write_index(out, "train", index)
    stats = {"images_cropped": sum(scales.values()), "background_missing": missing,
             "decode_scale": {str(k): n for k, n in sorted(scales.items())}}
    return index, stats


def build_test(test_dir: Path, out: Path, config: CropsConfig, log: SkipLog, workers: int = 0) -> pd.DataFrame:
    """Pad, resize, store and index every ``test/*.jpg`` in sorted file order.

    A bad test crop is handed to ``log`` with its reason prefixed ``test_``
    (``test_unreadable_image``): under ``skip`` it is left out of the index, and
    the submission stage then stops on its missing idx.
    """
    if not test_dir.is_dir():
        raise FileNotFoundError(f"{test_dir}: missing test/ directory (expected <idx>.jpg crops)")
    paths = sorted(test_dir.glob("*.jpg"))
    writer = ShardWriter(out, "test", config.crop_px, config.shard_size)
    ids = []
    workers = workers or cpu_count()
    for path, (crop, error) in zip(paths, ordered_map(
            bind(crop_test_image, config), [str(p) for p in paths], workers)):
        if error is not None:  # counted apart: its idx will be missing from the submission
            log.handle(DataError(error.path, error.detail, f"test_{error.reason}"))
            continue
        writer.add(crop)
        ids.append(path.stem)
    writer.close()
    index = pd.DataFrame({"crop_id": np.arange(len(ids)), "idx": ids})
    write_index(out, "test", index)
    return index


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest child, MiB."""
    to_mb = 1 / 1024  # Linux reports KiB
    return {"main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb, 1),
            "workers": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb, 1)}


def _counts(index: pd.DataFrame) -> dict[str, int]:
    counts = index["label"].value_counts()
    return {CODES[k]: int(counts.get(k, 0)) for k in range(len(CODES))}


def crop_metrics(index: pd.DataFrame, test: pd.DataFrame, stats: dict) -> dict:
    """Counts per class, split and fold, for ``metrics/crops.json``."""
    folds = {str(f): {"crops": int(len(part)), "images": int(part["image_id"].nunique()),
                      "per_class": _counts(part)}
             for f, part in index.groupby("fold", sort=True)}
    return {
        "train": {"crops": int(len(index)), "boxes": int((index["source"] == "box").sum()),
                  "background": int((index["source"] == "background").sum()),
                  "images": int(index["image_id"].nunique()), "per_class": _counts(index)},
        "test": {"crops": int(len(test))},
        "per_fold": folds,
        **stats,
    }


def build_crops(raw_dir: str | Path, labels: pd.DataFrame, out: str | Path,
                config: CropsConfig, log: SkipLog, workers: int = 0) -> tuple[dict, dict]:
    """The crops stage: ``out`` is replaced atomically by train/test shards and indexes.

    Args:
        raw_dir: the raw layout (train/<id>.jpg, test/<idx>.jpg).
        labels: the consensus table (labels.csv); only ``keep`` boxes become crops.
        out: the crops directory to (re)create.
        config: the ``crops`` params.
        log: the error policy; bad images are skipped or raised through it.
        workers: decoding processes (0 = one per CPU); the crops are the same for any number.

    Returns:
        the metrics (counts, skipped, decode mode, output size: the same on every run) and
        the timing (seconds, workers, peak RSS: the machine's, kept apart from the metrics).
    """
    raw_dir, start = Path(raw_dir), time.perf_counter()
    labels = check_labels(labels)
    with atomic_directory(out) as tmp:
        index, stats = build_train(labels, raw_dir / "train", tmp, config, log, workers)
        train_seconds = time.perf_counter() - start
        test = build_test(raw_dir / "test", tmp, config, log, workers)
        write_yaml(tmp / "crops.yaml", to_dict(config))
        output_bytes = sum(p.stat().st_size for p in tmp.iterdir())
    images = {p.stem for p in (raw_dir / "train").glob("*.jpg")}
    metrics = crop_metrics(index, test, stats)
    metrics.update({
        "images_without_labels": len(images - set(labels["image_id"])),
        "skipped": log.to_dict(),
        "decode": "draft" if config.draft else "full",
        "output_bytes": int(output_bytes),
    })
    timing = {"workers": workers or cpu_count(),
              "seconds": {"train": round(train_seconds, 2), "total": round(time.perf_counter() - start, 2)},
              "peak_rss_mb": peak_rss_mb()}
    return metrics, timing
