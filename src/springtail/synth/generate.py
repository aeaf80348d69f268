"""Write a whole synthetic data set in the real competition's layout.

::

    train/<id>.jpg, train/<id>.txt   pictures and YOLO+ annotations (four votes per box)
    test/<idx>.jpg                   crops of variable size, one specimen or background
    sample_submission.csv            idx,gt (placeholder labels)
    solution.csv                     idx,gt,Usage  (answers; read by scoring only)
    train_truth.csv                  image_id,line,truth  (answers; read by scoring only)
    synthesize.yaml                  the resolved configuration

Everything is written into a hidden temporary directory beside the output and
renamed into place at the end (``io.atomic_directory``), so a killed run never leaves a
complete-looking data set. Workers render items independently and stream them to disk; only
the small per-box table is gathered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from springtail.common.config import to_dict
from springtail.common.io import atomic_directory, write_csv, write_yaml
from springtail.common.runtime import cpu_count, ordered_map
from springtail.common.yolo import Box, format_line
from springtail.synth.layout import TestItem, TrainItem, plan_test, plan_train
from springtail.synth.render import render_test, render_train


@dataclass(frozen=True)
class SynthConfig:
    """The ``synthesize`` section of params.yaml."""

    seed: int  # the whole synthetic data set is a function of this seed
    n_train: int  # training images (the real set has 1,117)
    n_test: int  # test crops (the real set has 1,344)
    width: int  # training image size in pixels (real: 3072 x 2048)
    height: int
    test_background: float  # fraction of test crops that show background only (class 8)
    jpeg_quality: int

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(
                f"synthesize: n_train and n_test must be >= 1, got {self.n_train}, {self.n_test}"
            )
        if self.width < 64 or self.height < 64:
            raise ValueError(f"synthesize: width and height must be >= 64, got {self.width}x{self.height}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"synthesize: jpeg_quality must be in 1..95, got {self.jpeg_quality}")
        if not 0.0 <= self.test_background <= 1.0:
            raise ValueError(f"synthesize: test_background must be in [0, 1], got {self.test_background}")


def _write(job: tuple[TrainItem | TestItem, SynthConfig, str]) -> list[tuple[str, int, int]]:
    """Render and write one training image (+ annotation) or one test crop.

    Returns the training image's truth rows (image_id, line, class); none for a crop.
    """
    item, cfg, out = job
    if isinstance(item, TestItem):
        crop = render_test(item, cfg.seed, cfg.width, cfg.height)
        crop.save(Path(out) / "test" / f"{item.idx}.jpg", "JPEG", quality=cfg.jpeg_quality)
        return []
    image, boxes = render_train(item, cfg.seed, cfg.width, cfg.height)
    image.save(Path(out) / "train" / f"{item.image_id}.jpg", "JPEG", quality=cfg.jpeg_quality)
    lines = [format_line(Box(votes, item.project, *box)) for votes, box in zip(item.votes, boxes)]
    (Path(out) / "train" / f"{item.image_id}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [(item.image_id, line, truth) for line, truth in enumerate(item.truth, start=1)]


def _tables(train_rows: list[tuple[str, int, int]], tests: list[TestItem]) -> dict[str, pd.DataFrame]:
    """The CSV files of the data set, by name."""
    return {
        "sample_submission.csv": pd.DataFrame({"idx": [t.idx for t in tests], "gt": 0}),
        "solution.csv": pd.DataFrame({
            "idx": [t.idx for t in tests], "gt": [t.truth for t in tests], "Usage": [t.usage for t in tests],
        }),
        "train_truth.csv": pd.DataFrame(train_rows, columns=["image_id", "line", "truth"]),
    }


def generate(cfg: SynthConfig, out: str | Path,
             progress: Callable[[int, int], None] | None = None, workers: int = 0) -> Path:
    """Write the synthetic data set described by ``cfg`` to the directory ``out``.

    An existing ``out`` is replaced only once the new data set is complete.

    Args:
        cfg: the resolved ``synthesize`` configuration.
        out: the output directory.
        progress: optional callback ``(done, total)`` over images and crops.
        workers: processes (0 = one per CPU); the files are the same for any number.

    Returns:
        the output directory.
    """
    workers = workers or cpu_count()
    with atomic_directory(out) as tmp:
        (tmp / "train").mkdir()
        (tmp / "test").mkdir()
        trains = plan_train(cfg.seed, cfg.n_train)
        tests = plan_test(cfg.seed, cfg.n_test, cfg.test_background)
        rows: list[tuple[str, int, int]] = []
        jobs = [(item, cfg, str(tmp)) for item in [*trains, *tests]]
        for done, result in enumerate(ordered_map(_write, jobs, workers), start=1):
            rows.extend(result)
            if progress:
                progress(done, len(jobs))
        for name, table in _tables(rows, tests).items():
            write_csv(tmp / name, table)
        write_yaml(tmp / "synthesize.yaml", to_dict(cfg))
    return Path(out)
