"""Crop store: a few uint8 ``.npy`` shards plus an index table per split.

Layout of a crops directory (written by the ``crops`` stage)::

    train_index.csv   one row per training crop, row i <-> crop_id i
    train_000.npy     (n, S, S, 3) uint8 RGB, crops in crop_id order
    test_index.csv    one row per test crop (column idx = test file stem)
    test_000.npy

DVC hashes, pushes and pulls a few large files far faster than thousands of
small images, and training decodes nothing: it maps the arrays directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import PROB_COLUMNS
from springtail.common.io import atomic_path, read_npy, write_csv, write_npy

SPLITS = ("train", "test")


class ShardWriter:
    """Stream crops into fixed-size ``<split>_NNN.npy`` shards, bounded memory.

    Shards are written atomically; ``close()`` flushes the last partial shard.
    """

    def __init__(self, directory: str | Path, split: str, size: int, shard_size: int = 4096):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.directory = Path(directory)
        self.split = split
        self.shard_size = shard_size
        self._buffer = np.empty((shard_size, size, size, 3), dtype=np.uint8)  # (B, S, S, 3)
        self._filled = 0
        self._shards = 0
        self.count = 0

    def add(self, crop: np.ndarray) -> int:
        """Append one (S, S, 3) uint8 crop; return its crop_id."""
        self._buffer[self._filled] = crop
        self._filled += 1
        self.count += 1
        if self._filled == self.shard_size:
            self._flush()
        return self.count - 1

    def extend(self, crops: Iterable[np.ndarray]) -> None:
        for crop in crops:
            self.add(crop)

    def _flush(self) -> None:
        if self._filled == 0 and self._shards > 0:
            return
        path = self.directory / f"{self.split}_{self._shards:03d}.npy"
        write_npy(path, self._buffer[: self._filled])
        self._shards += 1
        self._filled = 0

    def close(self) -> None:
        self._flush()


def write_index(directory: str | Path, split: str, index: pd.DataFrame) -> None:
    """Write ``<split>_index.csv``; its rows must be in crop_id order."""
    if not (index["crop_id"].to_numpy() == np.arange(len(index))).all():
        raise ValueError(f"{split} index: crop_id must run 0..{len(index) - 1} in row order")
    write_csv(Path(directory) / f"{split}_index.csv", index)


def load_crops(directory: str | Path, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Load one split of a crops directory.

    Returns:
        images: (N, S, S, 3) uint8 RGB, row i is crop_id i.
        index: the split's index table, N rows.

    Raises:
        FileNotFoundError: when the index or the shards are missing.
        ValueError: when the shards and the index disagree on the crop count.
    """
    directory = Path(directory)
    index_path = directory / f"{split}_index.csv"
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path}: missing crop index (run `dvc repro crops`)")
    index = pd.read_csv(index_path, dtype={"image_id": str, "idx": str})
    shards = sorted(directory.glob(f"{split}_[0-9][0-9][0-9].npy"))
    if not shards:
        raise FileNotFoundError(f"{directory}: no {split}_NNN.npy shards")
    images = np.concatenate([read_npy(p) for p in shards], axis=0)
    if len(images) != len(index):
        raise ValueError(
            f"{directory}: {len(images)} crops in {split} shards but {len(index)} rows in {index_path.name}"
        )
    return images, index


__all__ = ["ShardWriter", "write_index", "load_crops", "atomic_path"]


def prediction_table(keys, probs: np.ndarray):
    """Key columns (e.g. crop_id, image_id, label or idx) followed by p0..p8."""
    if len(keys) != len(probs):
        raise ValueError(f"{len(keys)} rows of keys but {len(probs)} rows of probabilities")
    return pd.concat([keys.reset_index(drop=True), pd.DataFrame(probs, columns=list(PROB_COLUMNS))], axis=1)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A prediction table (val.csv / test.csv: keys as strings, p0..p8)."""
    return pd.read_csv(path, dtype={"image_id": str, "idx": str})


def consensus_targets(index: pd.DataFrame) -> pd.DataFrame:
    """Training targets that are the crop index's own consensus labels (crop_id, label, p0..p8)."""
    return index[["crop_id", "label", *PROB_COLUMNS]].reset_index(drop=True)


def read_targets(path: str | Path) -> pd.DataFrame:
    """The review stage's training targets (crop_id, label, p0..p8); ``attrs["source"]``
    keeps the file name for error messages.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when it is missing or lacks a column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing training targets (run `dvc repro review`)")
    targets = pd.read_csv(path)
    missing = [c for c in ("crop_id", "label", *PROB_COLUMNS) if c not in targets.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    targets.attrs["source"] = str(path)
    return targets
