"""File I/O at the edges: atomic writes of JSON, CSV, YAML and arrays."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A stage killed midway therefore never leaves a half-written file that looks
    complete: either the old file (or none) is there, or the whole new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the usual umask-based mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a table as UTF-8 CSV without the index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Write an array as .npy (never pickled objects), atomically."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Read an .npy file, refusing pickled object arrays."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
