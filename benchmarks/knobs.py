"""Which params keys change the outputs: every output's md5 with a knob at each value.

    .venv/bin/python -m benchmarks.knobs [--out benchmarks/results/knobs.json]
    .venv/bin/python -m benchmarks.knobs --render --update docs/reliability.md

On a tiny copy of the repository (params.tiny.yaml): one ``dvc repro``, then for each
(knob, value) the key is set in params.yaml, ``dvc status`` says whether DVC would re-run
anything, and ``dvc repro --force`` of the stages that read the key says whether any output
changed (the md5 of every output in dvc.lock against the first run's; the timings under
metrics/timing/, readings of the machine, aside). A key in the
``runtime`` section must leave both untouched; a key that changes the numbers stays in a
hashed section. About 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.machine import machine_info
from benchmarks.repro import REPO, copy_repo, tool_env
from benchmarks.seeds import git, update_doc
from springtail.common.io import read_json, write_json

BIN = Path(sys.executable).parent
# (section, key, other value, the stages that read it)
KNOBS = (("runtime", "workers", 1, ("synthesize", "crops", "detector", "detect")),
         ("runtime", "progress", True, ("train@*",)),
         ("train", "num_threads", 1, ("train@*",)))


def dvc(args: list[str], cwd: Path) -> str:
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}")
    return done.stdout


TIMINGS = "metrics/timing/"  # the machine's readings (seconds, workers, peak memory): differ on every run


def output_md5s(repo: Path) -> dict[str, str]:
    """output path -> md5, every stage's outputs as dvc.lock records them, timings aside."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if not out["path"].startswith(TIMINGS)}


def measure(section: str, key: str, value, stages: tuple[str, ...], repo: Path, baseline: dict) -> dict:
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params[section][key] = value
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = dvc(["status", "--json"], repo)
        clean = status.strip() in ("{}", "")
        for pattern in stages:  # in pipeline order; only these stages run, forced
            dvc(["repro", "--force", "--single-item", "--glob", pattern], repo)
        after = output_md5s(repo)
    finally:
        params_path.write_text(original)
        dvc(["repro"], repo)  # back to the first run's outputs for the next knob
    changed = sorted(path for path in baseline if after.get(path) != baseline[path])
    return {"key": f"{section}.{key}", "value": value, "dvc_status_clean": clean, "outputs_identical": not changed,
            "changed": changed}


def run(out: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_repo(Path(tmp) / "repo")
        dvc(["repro"], repo)
        baseline = output_md5s(repo)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        results = [{**measure(section, key, value, stages, repo, baseline), "default": params[section][key]}
                   for section, key, value, stages in KNOBS]
    data = {"machine": machine_info(), "commit": git("rev-parse", "--short", "HEAD").strip(), "params": "params.tiny.yaml",
            "knobs": results}
    write_json(out, data)
    return data


def render(data: dict) -> str:
    rows = ["| key | default -> tried | `dvc status` after the change | outputs of a forced re-run |",
            "|---|---|---|---|"]
    for k in data["knobs"]:
        outputs = "identical" if k["outputs_identical"] else f"changed: {', '.join(f'`{p}`' for p in k['changed'])}"
        rows.append(f"| `{k['key']}` | {k['default']} -> {k['value']} | "
                    f"{'clean: nothing re-runs' if k['dvc_status_clean'] else 'stages to re-run'} | {outputs} |")
    rows.append(f"\n`python -m benchmarks.knobs` on {data['params']}, commit `{data['commit']}`, "
                f"{data['machine'].get('cpu', 'this machine')}.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/knobs.json")
    parser.add_argument("--render", action="store_true", help="render the table from --out instead of measuring")
    parser.add_argument("--update", type=Path, help="with --render: the page whose knobs block to rewrite")
    args = parser.parse_args(argv)
    if args.render:
        table = render(read_json(args.out))
        if args.update:
            update_doc(args.update, table, "<!-- knobs:begin -->", "<!-- knobs:end -->")
        else:
            print(table)
        return 0
    print(render(run(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
