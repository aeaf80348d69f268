"""The same input gives the same bytes on every CPU: the consensus and crops stages are
run with and without numpy's SIMD kernels and OpenBLAS's newest kernels, as on an older CPU.

numpy reads NPY_DISABLE_CPU_FEATURES and OpenBLAS reads OPENBLAS_CORETYPE at import, so
each run is a separate process. Without the rounding of the posteriors, labels.csv differs
in its last digits between the two runs (and so does every hash downstream of it).
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, tool_env

pytestmark = pytest.mark.slow


def older_cpu_env() -> dict[str, str]:
    """numpy's dispatched features found on this CPU, disabled, and OpenBLAS as on Haswell."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    if not found:
        pytest.skip("this CPU runs no numpy kernel beyond the baseline: nothing to disable")
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(found), "OPENBLAS_CORETYPE": "Haswell"}


def run_stages(raw: Path, out: Path, extra: dict[str, str]) -> None:
    env = tool_env() | {"PYTHONPATH": str(REPO / "src")} | extra
    for stage, args in (("consensus", ["--raw-dir", raw, "--labels", out / "labels.csv", "--disputed",
                                       out / "disputed.csv", "--metrics", out / "consensus.json"]),
                        ("crops", ["--raw-dir", raw, "--labels", out / "labels.csv", "--out",
                                   out / "crops", "--metrics", out / "crops.json",
                                   "--timing", out / "crops.timing.json"])):
        cmd = [sys.executable, str(REPO / "stages" / f"{stage}.py"), *map(str, args),
               "--params", str(REPO / "params.tiny.yaml")]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]


def test_consensus_and_crops_write_the_same_bytes_on_an_older_cpu(tiny_repo, tmp_path):
    raw = tiny_repo / "data" / "synthetic"
    extra = older_cpu_env()
    run_stages(raw, tmp_path / "here", {})
    run_stages(raw, tmp_path / "older", extra)
    here, older = tmp_path / "here", tmp_path / "older"
    for name in ("labels.csv", "disputed.csv"):
        assert filecmp.cmp(here / name, older / name, shallow=False), f"{name} differs with {extra}"
    files = sorted(p.relative_to(here / "crops") for p in (here / "crops").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(older / "crops") for p in (older / "crops").rglob("*")
                                     if p.is_file())
    for rel in files:
        assert filecmp.cmp(here / "crops" / rel, older / "crops" / rel, shallow=False), f"crops/{rel} differs"
