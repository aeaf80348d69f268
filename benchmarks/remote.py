"""Sharing the default pipeline's outputs through an SSH remote: seconds and sizes.

    .venv/bin/python -m benchmarks.remote [--workdir /tmp/x]

Needs the default run's outputs in this repository's DVC cache (``make repro``)
and ``sshd`` (Debian: openssh-server). A throwaway OpenSSH server on 127.0.0.1
(``benchmarks.sshd``) stands in for the team's server, so the figures are the
SSH/SFTP and hashing cost without a network. Clone A (this repository's cache)
runs ``dvc push``; clone B runs ``dvc fetch`` then ``dvc checkout`` (= ``dvc pull``),
then ``dvc status``. The last line printed is JSON: ``push_s``, ``fetch_s``,
``checkout_s``, ``status_s``, ``remote_mb``, ``remote_files``, ``push_mb_s``,
``fetch_mb_s``, ``outputs`` (path -> MB of each output of dvc.lock).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.repro import REPO, timed_dvc, tool_env
from benchmarks.sshd import local_sshd


def dvc(args: list[str], cwd: Path) -> float:
    """Seconds ``dvc args`` took in ``cwd`` (raises with dvc's output on failure)."""
    return timed_dvc(args, cwd, timeout=3600)["seconds"]


def credentials(repo: Path, server) -> None:
    """User and key in the clone's .dvc/config.local, as a teammate keeps them."""
    dvc(["remote", "modify", "--local", "bench", "user", server.user], repo)
    dvc(["remote", "modify", "--local", "bench", "keyfile", str(server.key)], repo)


def tree_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def lock_outputs(repo: Path) -> dict[str, float]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    return {out["path"]: round(out.get("size", 0) / 1e6, 1)
            for entry in lock["stages"].values() for out in entry.get("outs", [])}


def measure(workdir: Path) -> dict:
    status = subprocess.run(["dvc", "status", "--json"], cwd=REPO, env=tool_env(),
                            capture_output=True, text=True)
    if status.returncode or json.loads(status.stdout or "{}"):
        raise RuntimeError("the default pipeline's outputs are not up to date here: run `make repro`")
    a, b, store = workdir / "a", workdir / "b", workdir / "store"
    subprocess.run(["git", "clone", "-q", str(REPO), str(a)], check=True, env=tool_env())
    dvc(["cache", "dir", "--local", str(REPO / ".dvc" / "cache")], a)  # push from this cache
    with local_sshd(workdir / "sshd") as server:
        dvc(["remote", "add", "-d", "bench", server.url(store)], a)
        credentials(a, server)
        push_s = dvc(["push"], a)
        subprocess.run(["git", "commit", "-qam", "bench remote"], cwd=a, check=True, env=tool_env())
        subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True, env=tool_env())
        credentials(b, server)
        fetch_s = dvc(["fetch"], b)
    checkout_s = dvc(["checkout"], b)
    status_s = dvc(["status"], b)
    size, files = tree_bytes(store)
    mb = size / 1e6
    return {"push_s": round(push_s, 1), "fetch_s": round(fetch_s, 1), "checkout_s": round(checkout_s, 1),
            "status_s": round(status_s, 1), "remote_mb": round(mb, 1), "remote_files": files,
            "push_mb_s": round(mb / push_s, 1), "fetch_mb_s": round(mb / fetch_s, 1),
            "outputs": lock_outputs(REPO)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where the clones and the remote go "
                        "(default: a temporary directory, removed afterwards)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        out = measure(Path(tmp))
    for key, value in out.items():
        if key != "outputs":
            print(f"{key:>14}  {value}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
