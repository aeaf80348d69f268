"""The README's two commands from a fresh clone, timed: what a new user waits for.

    .venv/bin/python -m benchmarks.fresh_clone --command "bash .ci/run" [--command "make repro"]
                                               [--baseline REV]

Each command runs in its own fresh `git clone` of HEAD (so the set-up is included: the
environment from uv.lock, then the command), alone on the machine; run nothing else
meanwhile. Writes benchmarks/results/fresh_clone.json (one entry per command, replacing
that command's previous one, with the machine and commit); `python -m benchmarks.pages`
renders it into the README and the docs. For `make repro` it also records whether the
clone's dvc.lock holds the committed output hashes (timings under metrics/timing/ aside).
With ``--baseline REV``, `make repro` of revision REV is timed too, in its own fresh clone
right after HEAD's (back to back, on the same machine), and the ratio HEAD / REV is written
beside it: what a change to the defaults costs a user in waiting.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

from benchmarks.machine import machine_info
from benchmarks.repro import REPO, tool_env
from springtail.common.io import read_json, write_json

WHAT = {"make repro": "set-up included: the environment, then dvc repro of the default params",
        "bash .ci/run": "set-up included: the environment, then make test (the whole suite)",
        "make test": "set-up included: the environment, then the whole suite"}
PYTEST = re.compile(r"(\d+) passed.* in ([\d.]+)s")


def lock_outputs(path: Path) -> dict[str, str]:
    lock = yaml.safe_load(path.read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if not out["path"].startswith("metrics/timing/")}


def timed(command: str, commit: str, check_lock: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "springtail"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        env = {k: v for k, v in tool_env().items() if k != "VIRTUAL_ENV"}
        env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
        started = time.perf_counter()
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True)
        seconds = round(time.perf_counter() - started)
        if done.returncode:
            raise RuntimeError(f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        entry = {"command": command, "what": WHAT.get(command, command), "seconds": seconds, "commit": commit,
                 "date": date.today().isoformat()}
        found = PYTEST.findall(done.stdout)
        if found:
            entry |= {"tests": int(found[-1][0]), "pytest_seconds": round(float(found[-1][1]))}
        if command == "make repro" and check_lock:  # the working copy's dvc.lock is HEAD's
            entry["lock_reproduced"] = lock_outputs(clone / "dvc.lock") == lock_outputs(REPO / "dvc.lock")
        return entry


def rev_parse(rev: str = "HEAD") -> str:
    return subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", action="append", required=True, help="a README command, e.g. 'make repro'")
    parser.add_argument("--baseline", metavar="REV", help="also time `make repro` of this revision, after HEAD's")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fresh_clone.json")
    args = parser.parse_args(argv)
    commit = rev_parse()
    if args.baseline and "make repro" not in args.command:
        parser.error("--baseline compares `make repro`: add --command 'make repro'")
    data = read_json(args.out) if args.out.exists() else {"runs": []}
    data.pop("note", None)
    for command in args.command:
        entry = timed(command, commit)
        print(entry, file=sys.stderr)
        data["runs"] = [r for r in data["runs"] if r["command"] != command] + [entry]
        if command == "make repro" and args.baseline:
            base = timed(command, rev_parse(args.baseline), check_lock=False)
            print(base, file=sys.stderr)
            data["baseline"] = base | {"ratio": round(entry["seconds"] / base["seconds"], 2)}
    info = machine_info()
    data["machine"] = {"cpu": info["cpu"], "cores_affinity": info["cores_affinity"],
                       "bf16_native": info["bf16_native"]}
    write_json(args.out, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
