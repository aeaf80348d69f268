"""Interrupted runs: SIGTERM or SIGKILL in the middle of the crops stage, then a re-run.

The signal goes to the whole process group, as Ctrl-C in a terminal or a CI
timeout sends it. Checked after each interruption: no complete-looking partial
output (the crops directory is either absent or whole, never an index with
missing shards), the previous output untouched when the stage ran outside DVC,
no temporary file left after SIGTERM (a SIGKILL leftover is hidden and the next
run removes it), and a re-run gives exactly the uninterrupted run's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from springtail.common.io import atomic_directory, atomic_path, remove_stale
from springtail.common.store import load_crops

from conftest import copy_repo, run, tool_env

CROPS = Path("data/processed/crops")
METRICS = Path("metrics/crops.json")


def env(repo: Path) -> dict[str, str]:
    """Subprocess environment running the copy's own sources."""
    return {**tool_env(), "PYTHONPATH": str(repo / "src")}


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def results(repo: Path) -> tuple[dict[str, str], dict]:
    """The crops stage's files (md5 by name) and its metrics (the run's readings, seconds and
    peak RSS, are apart in metrics/timing/crops.json)."""
    return digest(repo / CROPS), json.loads((repo / METRICS).read_text(encoding="utf-8"))


def leftovers(repo: Path) -> list[str]:
    """Temporary files and directories under data/ and metrics/."""
    return sorted(str(p.relative_to(repo)) for top in ("data", "metrics")
                  for p in (repo / top).rglob(".*") if ".tmp" in p.name)


def crops_md5(repo: Path) -> str:
    """The crops directory's md5 recorded in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    return next(o["md5"] for o in lock["stages"]["crops"]["outs"] if o["path"] == str(CROPS))


def whole_or_absent(repo: Path, reference: dict[str, str]) -> None:
    """The crops directory is absent, or exactly the reference output (never partial)."""
    if (repo / CROPS).exists():
        assert digest(repo / CROPS) == reference
        for split in ("train", "test"):
            load_crops(repo / CROPS, split)


def group_running(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting to be reaped do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def interrupt(cmd: list[str], repo: Path, sig: int, timeout: float = 120) -> int:
    """Start ``cmd`` in its own process group; once the crops stage has written a shard into
    its temporary directory, send ``sig`` to the group. Returns the exit status."""
    proc = subprocess.Popen(cmd, cwd=repo, env=env(repo), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:  # (the deadline also bounds the clean-up after the signal)
        while not any((repo / CROPS.parent).glob(f".{CROPS.name}.*.tmp/train_*.npy")):
            if proc.poll() is not None:
                pytest.fail(f"{' '.join(cmd)} ended ({proc.returncode}) before it could be "
                            f"interrupted")
            if time.monotonic() > deadline:
                pytest.fail(f"{' '.join(cmd)} wrote no shard within {timeout} s")
            time.sleep(0.002)
        os.killpg(proc.pid, sig)
        status = proc.wait(timeout=60)
        while group_running(proc.pid):  # the stage itself may still be cleaning up
            if time.monotonic() > deadline:
                pytest.fail(f"{' '.join(cmd)}: processes left running {timeout} s after the signal")
            time.sleep(0.01)
        return status
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def repro(repo: Path, *args: str) -> None:
    done = subprocess.run(["dvc", "repro", *args], cwd=repo, env=env(repo), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_leftovers_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    dead = dead_pid()
    stale = [tmp_path / f".out.{dead}.k2j4.tmp", tmp_path / f".out.{dead}.a9_x.tmp.old"]
    stale[0].write_text("half")
    stale[1].mkdir()
    kept = [tmp_path / f".out.{os.getppid()}.zz.tmp",  # a live writer's
            tmp_path / f".out.5.{dead}.q1.tmp"]  # a temporary of the sibling "out.5"
    for path in kept:
        path.write_text("busy")
    assert sorted(remove_stale(tmp_path / "out")) == sorted(stale)
    with atomic_path(tmp_path / "out") as tmp:
        tmp.write_text("whole")
    with atomic_directory(tmp_path / "dir") as tmp:
        (tmp / "a").write_text("a")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["out", "dir", *(p.name for p in kept)])


def test_sigterm_unwinds_and_removes_temporaries(tmp_path):
    """Inside terminate_cleanly a SIGTERM exits with 143 after the clean-up; outside, Python's
    default would kill the process on the spot and leave the temporaries behind."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from springtail.common.io import atomic_directory, atomic_path, terminate_cleanly\n"
        "out = Path(sys.argv[1])\n"
        "with terminate_cleanly(), atomic_directory(out / 'crops') as d, "
        "atomic_path(out / 'm.json') as f:\n"
        "    (d / 'train_000.npy').write_bytes(b'x'); f.write_text('{')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    signal.pause()\n")
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "previous").write_text("whole")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], timeout=60)
    assert done.returncode == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crops"]
    assert [p.name for p in (tmp_path / "crops").iterdir()] == ["previous"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A tiny copy after ``dvc repro crops``; small shards, so writing takes many steps, and
    two worker processes, so the pool's shutdown is part of what is interrupted."""
    repo = copy_repo(tmp_path_factory.mktemp("interrupt") / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["synthesize"].update(n_train=24, n_test=24)
    params["crops"].update(shard_size=4, background_per_image=2.0)
    params["runtime"]["workers"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    repro(repo, "crops")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "crops"], repo)
    return repo


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_dvc_repro_interrupted_then_rerun_gives_the_same_outputs(repo, sig):
    reference, reference_metrics = results(repo)
    lock = crops_md5(repo)
    status = interrupt(["dvc", "repro", "--force", "--single-item", "crops"], repo, sig)
    assert status != 0
    whole_or_absent(repo, reference)
    if sig == signal.SIGTERM:
        assert leftovers(repo) == []
    else:  # what SIGKILL leaves is hidden, never a complete-looking output
        assert all(Path(p).name.startswith(".") for p in leftovers(repo))
    assert crops_md5(repo) == lock  # the interrupted run recorded nothing
    if sig == signal.SIGTERM:  # the usual recovery: `dvc repro` restores it from the cache...
        repro(repo, "crops")
        assert results(repo) == (reference, reference_metrics) and crops_md5(repo) == lock
    # ...and a recomputation gives the very same files, and clears any SIGKILL leftover.
    repro(repo, "--force", "--single-item", "crops")
    assert results(repo) == (reference, reference_metrics) and crops_md5(repo) == lock
    assert leftovers(repo) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stage_interrupted_outside_dvc_keeps_the_previous_output(repo, sig):
    reference, _ = results(repo)
    cmd = [sys.executable, "stages/crops.py", "--raw-dir", "data/synthetic",
           "--labels", "data/interim/labels.csv", "--out", str(CROPS), "--metrics", str(METRICS),
           "--timing", "metrics/timing/crops.json"]
    status = interrupt(cmd, repo, sig)
    assert status == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert digest(repo / CROPS) == reference  # the previous output, whole
    if sig == signal.SIGTERM:
        assert leftovers(repo) == []
    subprocess.run(cmd, cwd=repo, env=env(repo), check=True, capture_output=True, timeout=300)
    assert digest(repo / CROPS) == reference and leftovers(repo) == []
