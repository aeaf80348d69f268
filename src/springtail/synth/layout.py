"""The plan of a synthetic data set: which images and crops exist and what they hold.

The plan is drawn in one process from the seed (ids, campaigns, classes,
expert votes, leaderboard split); rendering then only needs one plan item and
a per-item random stream, so any number of workers gives identical files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from springtail.common.classes import BACKGROUND, N_CLASSES
from springtail.synth.reference import MULTI_BOX_SAME_CLASS, PROJECTS, boxes_per_image_prior
from springtail.synth.votes import VoteModel, simulate_votes, truth_prior

# Independent random streams, one per purpose: SeedSequence([seed, STREAM, index]).
PLAN_STREAM, TRAIN_STREAM, TEST_STREAM = 0, 1, 2


@dataclass(frozen=True)
class TrainItem:
    """One training image: its id, campaign and boxes (true class and votes)."""

    index: int
    image_id: str
    project: str
    family: int                              # microscope set-up of the campaign
    truth: tuple[int, ...]                   # true class of each box, in line order
    votes: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True)
class TestItem:
    """One test crop: its file stem, true class, campaign set-up and leaderboard half."""

    index: int
    idx: str
    truth: int
    family: int
    usage: str                               # Public | Private


def stream(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """The random generator of one purpose (and item), independent of all others."""
    return np.random.default_rng(np.random.SeedSequence([seed, purpose, index]))


def image_id(rng: np.random.Generator, taken: set[str]) -> str:
    """A real-looking image id: three random floats' ``str()`` run together, unique."""
    while True:
        ident = "".join(repr(float(rng.random())) for _ in range(3))
        if ident not in taken:
            taken.add(ident)
            return ident


def _box_classes(n: int, prior: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    """Classes of the ``n`` boxes of one image: often one sample's single taxon."""
    first = int(rng.choice(N_CLASSES, p=prior))
    if n > 1 and rng.random() < MULTI_BOX_SAME_CLASS:
        return (first,) * n
    return (first,) + tuple(int(c) for c in rng.choice(N_CLASSES, size=n - 1, p=prior))


def box_counts(n_images: int, rng: np.random.Generator) -> np.ndarray:
    """(n_images,) boxes per image, in the real proportions (largest remainders), shuffled."""
    counts, p_counts = boxes_per_image_prior()
    quota = p_counts * n_images
    whole = np.floor(quota).astype(int)
    whole[np.argsort(whole - quota)[: n_images - whole.sum()]] += 1
    return rng.permutation(np.repeat(counts, whole))


def plan_train(seed: int, n_images: int, model: VoteModel = VoteModel()) -> list[TrainItem]:
    """The training images: ids, campaigns, box counts, true classes and votes."""
    rng = stream(seed, PLAN_STREAM, 0)
    n_boxes = box_counts(n_images, rng)
    names = [name for name, _ in PROJECTS]
    p_project = np.array([w for _, w in PROJECTS])
    prior = truth_prior()
    taken: set[str] = set()
    rows = []
    for index in range(n_images):
        project = int(rng.choice(len(names), p=p_project / p_project.sum()))
        n = int(n_boxes[index])
        rows.append((index, image_id(rng, taken), project, _box_classes(n, prior, rng)))
    truth = np.array([c for *_, classes in rows for c in classes], dtype=np.int64)
    votes = simulate_votes(truth, rng, model)
    items, start = [], 0
    for index, ident, project, classes in rows:
        box_votes = tuple(tuple(int(v) for v in row) for row in votes[start:start + len(classes)])
        start += len(classes)
        items.append(TrainItem(index, ident, names[project], project,  # type: ignore[arg-type]
                               classes, box_votes))
    return items


def plan_test(seed: int, n_crops: int, background: float) -> list[TestItem]:
    """The test crops: a ``background`` share shows no specimen (FOND); the rest
    follow the training class frequencies. Usage splits them 50/50 at random."""
    if not 0.0 <= background <= 1.0:
        raise ValueError(f"test_background must be in [0, 1], got {background}")
    rng = stream(seed, PLAN_STREAM, 1)
    prior = truth_prior()[:BACKGROUND]
    truth = rng.choice(BACKGROUND, size=n_crops, p=prior / prior.sum())
    n_fond = int(round(background * n_crops))
    truth[rng.permutation(n_crops)[:n_fond]] = BACKGROUND
    public = np.zeros(n_crops, dtype=bool)
    public[rng.permutation(n_crops)[: n_crops // 2]] = True
    families = rng.integers(len(PROJECTS), size=n_crops)
    return [
        TestItem(i, str(i), int(truth[i]), int(families[i]), "Public" if public[i] else "Private")
        for i in range(n_crops)
    ]
