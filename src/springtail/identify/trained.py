"""A trained pipeline that identifies new crops exactly as the pipeline identified the
competition's test crops: the selected members, the ensemble's fitted combiner, and the
crop and predict settings. Nothing is fitted at load time.

:meth:`TrainedPipeline.from_parts` loads it from checkpoints and a saved combiner: the
train and ensemble stages' outputs (what the ``detect`` stage reads), or a model bundle's
copies of them (``springtail.bundle.load``, what ``springtail-identify`` and
``springtail-count`` read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from springtail.common.classes import N_CLASSES
from springtail.crops.cutting import CropsConfig
from springtail.models.checkpoint import CONFIG
from springtail.models.inference import PredictConfig
from springtail.models.registry import load_model
from springtail.scoring.combiners import Combiner, load_combiner


@dataclass
class TrainedPipeline:
    """The ensemble's members, its fitted combiner, and the crop and predict settings."""

    members: dict[str, Any]  # model name -> fitted classifier (registry contract), in the combiner's order
    combiner: Combiner  # fitted by the ensemble stage on the members' validation predictions
    crops: CropsConfig
    predict: PredictConfig

    @classmethod
    def from_parts(cls, models_dir: str | Path, combiner_path: str | Path, crops: CropsConfig,
                   predict: PredictConfig) -> TrainedPipeline:
        """The members named in the ensemble stage's ``combiner.json``, loaded from their
        checkpoints under ``models_dir``.

        Raises:
            FileNotFoundError: naming the missing output (run ``dvc repro`` or ``dvc pull``).
            ValueError: a checkpoint trained on another crop size than ``crops.crop_px``.
        """
        combiner, names = load_combiner(combiner_path)
        members = {name: load_model(Path(models_dir) / name) for name in names}
        for name, model in members.items():
            if model.img_size != crops.crop_px:
                raise ValueError(f"{Path(models_dir) / name / CONFIG}: trained on {model.img_size} px crops, "
                                 f"but the crops settings say crop_px = {crops.crop_px}")
        return cls(members, combiner, crops, predict)

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """(N, 9) ensemble probabilities of (N, S, S, 3) uint8 crops made by
        ``crops.cutting.crop_test_image`` with this pipeline's crop settings."""
        if not len(crops):
            return np.zeros((0, N_CLASSES))
        P = np.stack([model.predict_proba(crops, tta=self.predict.tta, batch_size=self.predict.batch_size)
                      for model in self.members.values()])
        return self.combiner.predict_proba(P)
