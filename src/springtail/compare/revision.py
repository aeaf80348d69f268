"""One revision's prediction tables and answers, read through DVC without checking it out.

A revision is a git branch, tag or commit, or a DVC experiment name (``dvc exp show``):
experiments live under ``refs/exps/...``, which git alone does not resolve, so names go
through DVC's own resolver. Tables tracked by DVC come from the local cache, else the remote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

ENSEMBLE = "ensemble"  # --model value that reads the ensemble's tables


@dataclass(frozen=True)
class Revision:
    """The tables of one revision that a comparison needs."""

    name: str  # as given on the command line: branch, tag, commit or experiment name
    commit: str  # the git commit it resolves to (40 hex digits)
    val: pd.DataFrame  # crop_id, image_id, label, p0..p8: one row per validation crop
    test: pd.DataFrame  # idx, p0..p8: one row per test crop
    solution: pd.DataFrame | None  # idx, <class_column>, Usage; None without solution.csv
    class_column: str  # the label column of solution.csv (params submission.class_column)

    @property
    def label(self) -> str:
        """``name (abc1234)``, how messages name this revision."""
        return f"{self.name} ({self.commit[:7]})"


def prediction_dir(model: str) -> str:
    """Where the pipeline writes ``model``'s val.csv and test.csv (``ensemble``: the ensemble's)."""
    return "data/processed/ensemble" if model == ENSEMBLE else f"data/processed/predictions/{model}"


def resolve(repo: Path, rev: str) -> str:
    """The commit of ``rev`` (branch, tag, commit, or DVC experiment name) in ``repo``.

    Raises:
        ValueError: naming ``repo`` and ``rev`` when neither git nor DVC knows it.
    """
    from dvc.exceptions import DvcException
    from dvc.scm import SCM, resolve_rev

    try:
        scm = SCM(str(repo))
    except DvcException as err:
        raise ValueError(f"{repo}: not a git repository ({err})") from err
    try:
        return resolve_rev(scm, rev)
    except DvcException as err:
        raise ValueError(f"{repo}: no branch, tag, commit or DVC experiment named {rev!r} ({err})") from err
    finally:
        scm.close()


def _read(fs, path: str, where: str, missing: str) -> bytes:
    """The bytes of ``path`` at a revision; a ValueError naming ``where`` and ``missing`` if absent."""
    from dvc.exceptions import DvcException

    try:
        with fs.open(path, mode="rb") as f:
            return f.read()
    except (FileNotFoundError, DvcException) as err:
        raise ValueError(f"{where}: cannot read {path}: {missing} ({type(err).__name__}: {err})") from err


def _csv(data: bytes) -> pd.DataFrame:
    import io

    return pd.read_csv(io.BytesIO(data), dtype={"image_id": str, "idx": str})


def read_revision(repo: Path, rev: str, model: str = ENSEMBLE) -> Revision:
    """Read ``model``'s val.csv and test.csv and the raw directory's solution.csv at ``rev``.

    The raw directory is ``data.raw_dir`` of params.yaml at that revision.

    Raises:
        ValueError: naming the revision and the file, when ``rev`` is unknown or a table was
            neither produced there (not run, or ``model`` not enabled) nor is in the cache/remote.
    """
    from dvc.fs import DVCFileSystem

    commit = resolve(repo, rev)
    where = f"{rev} ({commit[:7]})"
    fs = DVCFileSystem(repo=str(repo), rev=commit)
    try:
        params = yaml.safe_load(_read(fs, "params.yaml", where, "no params file")) or {}
        raw_dir = str((params.get("data") or {}).get("raw_dir", "")).rstrip("/")
        if not raw_dir:
            raise ValueError(f"{where}: params.yaml has no data.raw_dir")
        class_column = str((params.get("submission") or {}).get("class_column", "gt"))
        folder = prediction_dir(model)
        hint = (f"is `{model}` run there (`dvc repro`, then commit), and its outputs in the DVC "
                "cache (`dvc pull`)?")
        val = _csv(_read(fs, f"{folder}/val.csv", where, hint))
        test = _csv(_read(fs, f"{folder}/test.csv", where, hint))
        solution_path = f"{raw_dir}/solution.csv"
        solution = None
        if fs.exists(solution_path):
            solution = _csv(_read(fs, solution_path, where, "the raw directory is not in the DVC cache"))
    finally:
        fs.close()
    return Revision(rev, commit, val, test, solution, class_column)
