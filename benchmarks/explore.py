"""Training-speed variants of each model, side by side: what each setting is worth here.

    .venv/bin/python -m benchmarks.explore [--models resnet vit] [--variants ...] [--steps 6]

Every variant trains through the pipeline's own step (``nets.PipelineSteps``; the naive
loop is ``benchmarks.naive``) on the same crops in the same process; variants
change one setting of the pipeline default (``default``: params.yaml as is, fused AdamW):

- ``nchw``: channels_last off;  ``bs64``: batch 64 instead of the default;
- ``compile``: ``torch.compile(net, dynamic=False)`` (inductor), its compile time
  reported apart;  ``nchw_compile``, ``compile_bs64``: combinations;
- ``bf16``: bf16 autocast forced on, even where the CPU only emulates bf16
  (a separate short probe at batch ``--bf16-batch``: it can be 10x slower).

The variants run one training step each in turn (``benchmarks.timing``), so
all see the same machine load; img/s = batch / median step. The last line is
JSON. Not part of ``make bench``: torch.compile takes minutes on two cores.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as stages/train.py
if "--warm-compile-cache" not in sys.argv:  # compile times as a first run sees them: an empty cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="springtail-inductor-")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from benchmarks import data, machine, naive, nets, timing  # noqa: E402
from springtail.common.config import load_params  # noqa: E402
from springtail.common.runtime import setup_torch  # noqa: E402
from springtail.models.inference import Runtime  # noqa: E402
from springtail.models.timm_net import norm_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("naive", "default", "nchw", "bs64", "compile", "nchw_compile", "compile_bs64", "bf16")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=6, help="timed steps of each variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16-batch", type=int, default=4)
    parser.add_argument("--crop-images", type=int, default=16)
    parser.add_argument("--warm-compile-cache", action="store_true",
                        help="reuse inductor's cache (default: a fresh one, so compile times are cold)")
    return parser.parse_args(argv)


def variant_step(name: str, spec: nets.NetSpec, images, targets, bf16_batch: int):
    """(step function, batch size, compile seconds or None) of one pipeline variant."""
    base, rt = spec.train, spec.runtime()
    channels_last = False if "nchw" in name else rt.channels_last  # default: auto's layout
    bs = 64 if name.endswith("bs64") else (bf16_batch if name == "bf16" else base.batch_size)
    train = dataclasses.replace(base, batch_size=bs, channels_last=channels_last)
    runtime = Runtime(rt.device, torch.bfloat16 if name == "bf16" else rt.amp_dtype, channels_last)
    raw = spec.build()
    net = torch.compile(raw, dynamic=False) if "compile" in name else raw
    step = nets.PipelineSteps(spec, net, images, targets, train=train, runtime=runtime, norm=norm_of(raw))
    compile_s = None
    if "compile" in name:  # the first step compiles forward and backward
        tick = time.perf_counter()
        step()
        compile_s = time.perf_counter() - tick
    return step, bs, compile_s


def explore_model(name: str, params: dict, crops, labels, workdir: Path, args) -> dict:
    spec = nets.net_spec(name, params, crops.shape[1])
    bs = spec.train.batch_size
    crops, labels = data.repeat_to(crops, labels, 4 * max(64, bs))
    images, targets = nets.as_chw(crops), nets.soft_targets(labels, spec.train)
    steps, sizes, results = {}, {}, {}
    for variant in args.variants:
        if variant == "naive":
            net = spec.build()
            paths = naive.write_jpegs(crops[: 4 * bs], workdir / name)
            steps[variant] = naive.NaiveSteps(net, paths, labels[: 4 * bs], norm_of(net), bs, spec.lr,
                                              spec.train.weight_decay, spec.train.label_smoothing)
            sizes[variant] = bs
        elif variant != "bf16":
            steps[variant], sizes[variant], compile_s = variant_step(variant, spec, images, targets,
                                                                     args.bf16_batch)
            if compile_s is not None:
                results[variant] = {"compile_s": compile_s}
                print(f"explore: {name} {variant} compiled in {compile_s:.0f} s", file=sys.stderr, flush=True)
    times = timing.interleave(steps, args.steps, args.warmup, on_round=lambda r: print(
        f"explore: {name} round {r + 1}/{args.steps}", file=sys.stderr, flush=True))
    for variant, t in times.items():
        results.setdefault(variant, {}).update(img_s=timing.rate(sizes[variant], t), spread=timing.spread(t))
    if "bf16" in args.variants:  # alone: one warm and two timed steps at a small batch
        step, bs16, _ = variant_step("bf16", spec, images, targets, args.bf16_batch)
        probe = timing.interleave({"bf16": step}, rounds=2, warmup=1)["bf16"]
        results["bf16"] = {"img_s": timing.rate(bs16, probe), "batch_size": bs16}
    return {"arch": spec.arch, "variants": results}


def render(out: dict, variants: list[str]) -> str:
    lines = [f"load avg start {out['load_avg_start']}  end {out.get('load_avg_end', '-')}",
             f"{'model':9s} {'variant':13s} {'img/s':>8s} {'vs naive':>8s} {'vs default':>10s} "
             f"{'spread':>6s} {'compile s':>9s}"]
    for name, row in out["models"].items():
        v = row["variants"]
        for variant in variants:
            if variant not in v:
                continue
            rate = v[variant]["img_s"]
            vs_naive = f"{rate / v['naive']['img_s']:7.2f}x" if "naive" in v else f"{'-':>8s}"
            vs_default = f"{rate / v['default']['img_s']:9.2f}x" if "default" in v else f"{'-':>10s}"
            comp, spread = v[variant].get("compile_s"), v[variant].get("spread")
            lines.append(f"{name:9s} {variant:13s} {rate:8.1f} {vs_naive} {vs_default} "
                         f"{'' if spread is None else f'{spread:6.2f}'} {'' if comp is None else f'{comp:9.0f}'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_torch(0)
    params = load_params(args.params)
    models = args.models or list(params["models"])
    out = {"machine": machine.machine_info(), "load_avg_start": machine.load_average(), "models": {}}
    with tempfile.TemporaryDirectory(prefix="springtail-explore-") as tmp:
        workdir = Path(tmp)
        raw, _ = data.source_images(params, REPO, workdir, args.crop_images)
        crops, labels = data.cut_crops(data.crop_jobs(raw, params, args.crop_images), params)
        for name in models:
            out["models"][name] = explore_model(name, params, crops, labels, workdir / "jpeg", args)
            print(render(out, args.variants), file=sys.stderr, flush=True)
    out["load_avg_end"] = machine.load_average()
    print(render(out, args.variants))
    print(json.dumps(out))
    if not args.warm_compile_cache:
        shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
