"""The pipeline through the real ``dvc`` command, in a tiny temporary copy of the repository.

Three timings on ``params.tiny.yaml``:

- ``e2e_tiny_s``: the first full ``dvc repro`` (every stage), with the peak
  resident memory of its process tree;
- ``noop_repro_s``: ``dvc repro`` again, nothing changed (hashing and checks only);
- ``incremental_s``: ``dvc repro`` after changing one ``ensemble`` param; only
  ``ensemble`` and the stages downstream of it may run (``submission``, and any
  stage that reads the ensemble's outputs, per dvc's own stage graph), which is
  checked against the "Running stage" lines of dvc's output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the virtualenv's bin: python, dvc
CHANGED_STAGE = "ensemble"
_RUNNING = re.compile(r"Running stage '([^']+)'")

# Run in a fresh interpreter so that RUSAGE_CHILDREN holds only the dvc process tree.
# Each output line is stamped with its arrival time, for per-stage durations.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
lines = [(time.perf_counter() - start, line) for line in child.stdout]
rc = child.wait()
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "seconds": seconds, "peak_rss_kib": peak_kib, "lines": lines}))
"""


def stage_seconds(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds from each "Running stage" line to the next (the last one: to the end)."""
    starts = [(t, m.group(1)) for t, line in lines for m in [_RUNNING.search(line)] if m]
    ends = [t for t, _ in starts[1:]] + [total]
    return {name: round(end - t, 2) for (t, name), end in zip(starts, ends)}


def tool_env() -> dict[str, str]:
    """The virtualenv first on PATH (stages call ``python``), no telemetry, a git identity."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    for key, value in (("GIT_AUTHOR_NAME", "springtail-bench"), ("GIT_COMMITTER_NAME", "springtail-bench"),
                       ("GIT_AUTHOR_EMAIL", "bench@springtail.invalid"),
                       ("GIT_COMMITTER_EMAIL", "bench@springtail.invalid")):
        env.setdefault(key, value)
    return env


def _git(args: list[str], cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} in {cwd} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def copy_repo(dest: Path, params: str = "params.tiny.yaml") -> Path:
    """Copy what git would clone (tracked and untracked-not-ignored files) into a fresh repo.

    Outputs (data/, models/, metrics/) and dvc.lock stay behind; ``params`` becomes
    params.yaml. Only reads the source repository.
    """
    listed = _git(["ls-files", "--cached", "--others", "--exclude-standard", "-z"], REPO).split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if not src.is_file() or rel == "dvc.lock" or rel.startswith(("data/", "models/", "metrics/")):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    shutil.copy2(REPO / params, dest / "params.yaml")
    for rel in ("data", "models", "metrics"):
        (dest / rel).mkdir(exist_ok=True)
    _git(["init", "-q", "-b", "main"], dest)
    _git(["add", "-A"], dest)
    _git(["commit", "-qm", "tiny copy"], dest)
    return dest


def timed_dvc(args: list[str], cwd: Path, timeout: float) -> dict:
    """Run ``dvc <args>`` under a fresh measuring interpreter.

    Returns seconds, peak RSS (MiB, largest process of the tree), the stages that
    ran, and the output. Raises RuntimeError with dvc's output when it fails.
    """
    cmd = [sys.executable, "-c", _MEASURE, str(BIN / "dvc"), *args]
    done = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"measuring wrapper failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    output = "".join(line for _, line in result["lines"])
    if result["rc"]:
        raise RuntimeError(f"dvc {' '.join(args)} exited {result['rc']} in {cwd}\n{output[-5000:]}")
    return {"seconds": result["seconds"], "peak_rss_mb": result["peak_rss_kib"] / 1024,
            "stages": _RUNNING.findall(output), "output": output,
            "stage_s": stage_seconds(result["lines"], result["seconds"])}


def change_ensemble_param(repo: Path) -> str:
    """Bump ``ensemble.seed`` in the copy's params.yaml (text edit keeps the comments)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    old = int(params["ensemble"]["seed"])
    lines, section, changed = path.read_text(encoding="utf-8").splitlines(keepends=True), None, False
    for i, line in enumerate(lines):
        if line and not line[0].isspace() and ":" in line:
            section = line.split(":", 1)[0].strip()
        elif section == "ensemble" and line.strip().startswith("seed:") and not changed:
            indent = line[: len(line) - len(line.lstrip())]
            comment = line[line.index("#"):] if "#" in line else "\n"
            lines[i] = f"{indent}seed: {old + 1}" + (f"  {comment}" if "#" in line else comment)
            changed = True
    if not changed:
        raise RuntimeError(f"{path}: no ensemble.seed line to change")
    path.write_text("".join(lines), encoding="utf-8")
    if yaml.safe_load(path.read_text(encoding="utf-8"))["ensemble"]["seed"] != old + 1:
        raise RuntimeError(f"{path}: editing ensemble.seed did not take")
    return f"ensemble.seed {old} -> {old + 1}"


def downstream(repo: Path, stage: str) -> set[str]:
    """``stage`` and every stage that depends on it, directly or not, in dvc's graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph  # edges run from a stage to the stages it depends on
        node = next(s for s in graph.nodes if s.name == stage)
        return {stage} | {s.name for s in nx.ancestors(graph, node)}


def bench_repro(workdir: Path, timeout: float = 900.0, out: dict | None = None) -> dict:
    """e2e, no-op and incremental ``dvc repro`` timings in a tiny copy under ``workdir``.

    Timings go into ``out`` (also returned) as they are measured, so a failed
    check below still leaves them.

    Raises:
        AssertionError: anything ran on the no-op repro, or a stage that does not
            depend on the ensemble ran after the ensemble param change.
    """
    out = {} if out is None else out
    repo = copy_repo(workdir / "repo")
    first = timed_dvc(["repro"], repo, timeout)
    out.update(e2e_tiny_s=first["seconds"], e2e_tiny_peak_rss_mb=first["peak_rss_mb"],
               e2e_tiny_stages=len(first["stages"]), e2e_tiny_stage_s=first["stage_s"])
    _git(["add", "-A"], repo)
    _git(["commit", "-qm", "tiny run"], repo)
    noop = timed_dvc(["repro"], repo, timeout)
    out["noop_repro_s"] = noop["seconds"]
    if noop["stages"]:
        raise AssertionError(f"no-op dvc repro ran stages {noop['stages']}")
    allowed = downstream(repo, CHANGED_STAGE)
    out["incremental_change"] = change_ensemble_param(repo)
    incremental = timed_dvc(["repro"], repo, timeout)
    out.update(incremental_s=incremental["seconds"], incremental_stages=incremental["stages"],
               incremental_stage_s=incremental["stage_s"], incremental_allowed=sorted(allowed))
    ran = set(incremental["stages"])
    if not ran <= allowed or CHANGED_STAGE not in ran:
        raise AssertionError(f"after {out['incremental_change']} dvc repro ran {incremental['stages']}; "
                             f"only {sorted(allowed)} may run")
    return out


if __name__ == "__main__":  # python -m benchmarks.repro: this part alone
    import tempfile

    with tempfile.TemporaryDirectory(prefix="springtail-bench-") as tmp:
        print(json.dumps(bench_repro(Path(tmp)), indent=1))
