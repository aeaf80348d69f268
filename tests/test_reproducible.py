"""Bit-for-bit reproducibility: a second run of the tiny pipeline, from scratch in another
directory on the same machine, gives the same md5 as the shared tiny run for every output
recorded in dvc.lock, checkpoints included (so no output depends on where the repository lies).

The only tolerated difference is a reading of the machine (seconds, workers, peak memory),
and only in ``metrics/timing/`` (DVC-cached files no stage depends on): a timing inside a
git-tracked metrics file would show in ``dvc metrics diff`` of two identical runs, and one
inside a checkpoint directory would change its hash and re-run every stage downstream.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import build_tiny_run, tool_env

pytestmark = pytest.mark.slow

# Keys whose values are measurements of this run, not results: tolerated in metrics files.
TIMING_KEYS = {"seconds", "seconds_per_photo", "peak_rss_mb", "train_img_per_s", "img_per_s", "wall_s"}


def outs(lock: dict) -> dict[tuple[str, str], str]:
    """(stage, path) -> md5 of every output recorded in a dvc.lock."""
    return {(stage, out["path"]): out["md5"]
            for stage, entry in lock["stages"].items() for out in entry.get("outs", [])}


def metric_files(repo: Path) -> set[str]:
    """Paths declared under ``metrics:`` in dvc.yaml (foreach stages expanded from dvc.lock)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    paths = {out["path"] for entry in lock["stages"].values() for out in entry.get("outs", [])}
    return {p for p in paths if p.startswith("metrics/") and p.endswith(".json")}


def without_timings(data):
    """``data`` with every TIMING_KEYS entry removed, at any depth."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def json_differences(a, b, where: str = "") -> list[str]:
    """Key paths where two JSON values differ, e.g. ``/history[0]/val_loss``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in json_differences(a.get(k), b.get(k), f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b))
                for d in json_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [where or "/"]


def read_dir_manifest(repo: Path, md5: str) -> dict[str, str]:
    """relpath -> md5 of a directory output, from the DVC cache."""
    name = md5.removesuffix(".dir")
    path = repo / ".dvc" / "cache" / "files" / "md5" / name[:2] / f"{name[2:]}.dir"
    return {e["relpath"]: e["md5"] for e in json.loads(path.read_text(encoding="utf-8"))}


def cached(repo: Path, md5: str) -> Path:
    return repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def explain(repos: tuple[Path, Path], path: str, old: str, new: str) -> str:
    """Which files of an output differ between the two runs and, for JSON files, at which keys."""
    if not old.endswith(".dir"):
        return path
    a, b = read_dir_manifest(repos[0], old), read_dir_manifest(repos[1], new)
    lines = []
    for rel in sorted(set(a) | set(b)):
        if a.get(rel) == b.get(rel):
            continue
        detail = ""
        if rel.endswith(".json") and rel in a and rel in b:
            ja, jb = (json.loads(cached(repo, h).read_text(encoding="utf-8"))
                      for repo, h in zip(repos, (a[rel], b[rel])))
            detail = f" at {', '.join(json_differences(ja, jb)[:6])}"
        lines.append(f"{path}/{rel}{detail}")
    return "; ".join(lines) or path


def test_a_second_run_from_scratch_reproduces_every_output(request, tmp_path):
    # Made before the shared run is asked for: under xdist, another worker makes that one
    # meanwhile (tests/conftest.py orders the modules so).
    second_repo = build_tiny_run(tmp_path / "second")
    first_repo = request.getfixturevalue("tiny_repo")
    first, second = (yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
                     for repo in (first_repo, second_repo))
    assert first["stages"].keys() == second["stages"].keys()
    for stage in first["stages"]:  # same sources and params: dvc.lock differs only in outputs
        for key in ("cmd", "deps", "params"):
            assert first["stages"][stage].get(key) == second["stages"][stage].get(key), (stage, key)
    before, after = outs(first), outs(second)
    assert set(before) == set(after)
    changed = {key for key in before if before[key] != after[key]}

    def timings_only(path: str) -> bool:  # a metrics file whose results are all equal
        a, b = (json.loads((repo / path).read_text(encoding="utf-8")) for repo in (first_repo, second_repo))
        return without_timings(a) == without_timings(b)

    unexplained = sorted((stage, path) for stage, path in changed
                         if not (path.startswith("metrics/timing/") and timings_only(path)))
    assert not unexplained, "outputs differ between two runs:\n" + "\n".join(
        f"{stage}: {explain((first_repo, second_repo), path, before[(stage, path)], after[(stage, path)])}"
        for stage, path in unexplained)
    # What a user compares: the first run's committed metrics against the second's workspace.
    env = {**tool_env(), "PYTHONPATH": str(second_repo / "src")}
    subprocess.run(["git", "fetch", "-q", str(first_repo), "main"], cwd=second_repo, env=env, check=True)
    diff = subprocess.run(["dvc", "metrics", "diff", "FETCH_HEAD"], cwd=second_repo, env=env,
                          capture_output=True, text=True)
    assert diff.returncode == 0 and diff.stdout.strip() == "", diff.stdout
