"""Training-speed variants of each model, side by side: what each setting is worth here.

    .venv/bin/python -m benchmarks.explore [--models resnet vit] [--variants ...] [--steps 4]

Every variant trains through ``springtail.training.fit_network`` (the naive
loop is ``benchmarks.naive``) on the same crops in the same process; variants
change one setting of the pipeline default (``default``: params.yaml as is):

- ``nchw``: channels_last off;  ``bs64``: batch 64 instead of the default;
- ``compile``: ``torch.compile(net)`` (inductor), compile time reported apart;
- ``compile_bs64``: both;  ``bf16``: bf16 autocast forced on, even where the CPU
  only emulates bf16 (a short probe at batch ``--bf16-batch``).

Rounds alternate all variants; the best of each is kept. The last line is JSON.
Not part of ``make bench``: torch.compile alone takes minutes on two cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as stages/train.py

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from benchmarks import data, machine, naive, nets  # noqa: E402
from springtail.config import load_params  # noqa: E402
from springtail.models.inference import Runtime  # noqa: E402
from springtail.models.timm_net import norm_of  # noqa: E402
from springtail.runtime import setup_torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("naive", "default", "nchw", "bs64", "compile", "compile_bs64", "bf16")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=4, help="timed batches of the default size per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bf16-batch", type=int, default=4)
    parser.add_argument("--crop-images", type=int, default=16)
    return parser.parse_args(argv)


def variant_setup(name: str, spec: nets.NetSpec):
    """(train config, runtime, batches to time) of a variant; None for the naive loop."""
    base, rt = spec.train, spec.runtime()
    bs = 64 if name.endswith("bs64") else base.batch_size
    if name == "bf16":
        bs = 0  # set by the caller (probe batch)
    train = dataclasses.replace(base, batch_size=bs or base.batch_size,
                                channels_last=name != "nchw")
    amp = torch.bfloat16 if name == "bf16" else rt.amp_dtype
    return train, Runtime(rt.device, amp, name != "nchw")


def time_variant(name, spec, nets_by_variant, images, targets, paths, labels, args, first: bool) -> dict:
    """One measurement of one variant: img/s, and compile seconds on its first call."""
    default_bs = spec.train.batch_size
    n_images = args.steps * default_bs
    if name == "naive":
        net = nets_by_variant.setdefault(name, spec.build())
        rate = naive.naive_train_img_s(net, paths, labels, norm_of(net), default_bs, args.steps, spec.lr,
                                       spec.train.weight_decay, spec.train.label_smoothing, 2 if first else 1)
        return {"img_s": rate}
    train, runtime = variant_setup(name, spec)
    if name == "bf16":
        train = dataclasses.replace(train, batch_size=args.bf16_batch)
    steps = 1 if name == "bf16" else max(1, n_images // train.batch_size)
    raw = nets_by_variant.get(name + ":raw") or spec.build()
    nets_by_variant[name + ":raw"] = raw
    net = nets_by_variant.get(name)
    out = {}
    if net is None:
        net = torch.compile(raw) if name.startswith("compile") else raw
        nets_by_variant[name] = net
        if name.startswith("compile"):  # first call: compile forward and backward
            tick = time.perf_counter()
            nets.pipeline_train_img_s(spec, net, images, targets, 1, warmup=0, train=train,
                                      runtime=runtime, norm=norm_of(raw))
            out["compile_s"] = time.perf_counter() - tick
    warm = 0 if name == "bf16" else (2 if first else 1)
    out["img_s"] = nets.pipeline_train_img_s(spec, net, images, targets, steps, warmup=warm, train=train,
                                             runtime=runtime, norm=norm_of(raw))
    return out


def explore_model(name: str, params: dict, crops, labels, workdir: Path, args) -> dict:
    spec = nets.net_spec(name, params, crops.shape[1])
    n = (args.steps + 2) * max(64, spec.train.batch_size)
    crops, labels = data.repeat_to(crops, labels, n)
    images, targets = nets.as_chw(crops), nets.soft_targets(labels, spec.train)
    paths = naive.write_jpegs(crops[: (args.steps + 2) * spec.train.batch_size], workdir / name)
    results: dict[str, dict] = {}
    cache: dict = {}
    for r in range(args.rounds):
        for variant in args.variants:
            if variant == "bf16" and r > 0:
                continue
            got = time_variant(variant, spec, cache, images, targets, paths, labels, args, r == 0)
            best = results.setdefault(variant, {})
            best["img_s"] = max(best.get("img_s", 0.0), got["img_s"])
            if "compile_s" in got:
                best["compile_s"] = got["compile_s"]
            print(f"explore: {name} {variant} round {r + 1}: {got}", file=sys.stderr, flush=True)
    return {"arch": spec.arch, "variants": results}


def render(out: dict, variants: list[str]) -> str:
    lines = [f"load avg start {out['load_avg_start']}  end {out['load_avg_end']}",
             f"{'model':9s} {'variant':13s} {'img/s':>8s} {'vs naive':>8s} {'vs default':>10s} {'compile s':>9s}"]
    for name, row in out["models"].items():
        v = row["variants"]
        for variant in variants:
            if variant not in v:
                continue
            rate = v[variant]["img_s"]
            vs_naive = rate / v["naive"]["img_s"] if "naive" in v else float("nan")
            vs_default = rate / v["default"]["img_s"] if "default" in v else float("nan")
            comp = v[variant].get("compile_s")
            lines.append(f"{name:9s} {variant:13s} {rate:8.1f} {vs_naive:7.2f}x {vs_default:9.2f}x "
                         f"{'' if comp is None else f'{comp:9.0f}'}")
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
    out["load_avg_end"] = machine.load_average()
    print(render(out, args.variants))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
