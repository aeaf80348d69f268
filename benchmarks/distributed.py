"""One training process against torchrun with N processes, on the default crops.

    .venv/bin/python -m benchmarks.distributed [--model resnet] [--nproc 2] [--epochs 2]

Runs the train stage itself (``stages/train.py``, as ``dvc repro`` does) twice on
``data/processed/crops`` (``make repro`` first), with params.yaml's settings except
``train.nproc`` (1, then N) and ``train.epochs``; each torchrun worker gets
cores / N torch threads. The last line printed is JSON, one object per run:
``seconds`` and ``train_img_per_s`` (the stage's own timing), ``val_macro_f1``,
``best_epoch``, ``world_size``, and ``wall_s`` (the whole stage: start-up,
rendezvous, data loading, saving).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.repro import REPO, tool_env
from springtail.common.store import consensus_targets, load_crops


def train(model: str, nproc: int, epochs: int, crops: Path, workdir: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["train"].update({"nproc": nproc, "epochs": epochs})
    params["runtime"]["progress"] = False
    path = workdir / f"params-{nproc}.yaml"
    path.write_text(yaml.safe_dump(params))
    out, timing = workdir / f"model-{nproc}", workdir / f"timing-{nproc}.json"
    targets = workdir / "targets.csv"
    consensus_targets(load_crops(crops, "train")[1]).to_csv(targets, index=False)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py"), "--model", model, "--crops", str(crops),
         "--targets", str(targets), "--out", str(out), "--live", str(workdir / f"live-{nproc}"), "--timing", str(timing),
         "--params", str(path)], cwd=workdir, env=tool_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"training with nproc={nproc} exited {done.returncode}:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"nproc": nproc, "wall_s": round(wall, 1), **json.loads(timing.read_text()),
            **{k: summary.get(k) for k in ("val_macro_f1", "best_epoch", "world_size", "epochs_run")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--crops", type=Path, default=REPO / "data" / "processed" / "crops")
    args = parser.parse_args(argv)
    if not (args.crops / "train_index.csv").exists():
        raise SystemExit(f"{args.crops}: no crops; run `make repro` (or `dvc repro crops`) first")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [train(args.model, n, args.epochs, args.crops, Path(tmp)) for n in (1, args.nproc)]
    for run in runs:
        print("  ".join(f"{k}={v}" for k, v in run.items()))
    print(json.dumps({"model": args.model, "epochs": args.epochs, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
