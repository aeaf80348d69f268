"""Training and inference speed on the device the pipeline picks (a GPU when there is one).

    .venv/bin/python -m benchmarks.device [--profile default gpu] [--steps 20]

For each profile and model: ``train_img_s`` (the train stage's own step,
``make_loop`` + ``train_epoch`` of ``springtail.models.training``: batch augmentation
on the device, autocast, fused AdamW; ``loss.item()`` each step waits for the device), ``infer_img_s``
(``forward_views``, one view), ``train_mfu`` (model FLOPs x img/s over the better
measured matmul peak), the precision used. Profiles: ``default`` = params.yaml
as it is (96 px crops, small nets, batch 32); ``gpu`` = the README's GPU settings
(224 px, resnet50, convnext_base, vit_base_patch16_224, batch 64), from
scratch (no pretrained weights needed). Crops are random pixels: speed does not
depend on them. Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import numpy as np
import torch

from benchmarks import machine, nets, timing
from benchmarks.repro import REPO
from springtail.common.config import load_params
from springtail.common.runtime import setup_torch

GPU = {"crop_size": 224, "train": {"batch_size": 64},
       "resnet": {"arch": "resnet50"}, "convnext": {"arch": "convnext_base"},
       "vit": {"arch": "vit_base_patch16_224", "patch_size": 16}, "cnn_xgb": {"arch": "resnet50"}}


def matmul_tflops(device: str, dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    """Mean TFLOP/s of (n x n) @ (n x n) after warm-up, the device synchronised around it."""
    if not device.startswith("cuda"):  # adaptive size: emulated bf16 is ~100x slower
        return machine.matmul_peak(dtype)["gflops"] / 1e3
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    tick = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - tick) / 1e12


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def profile_params(name: str) -> tuple[dict, int]:
    params = load_params(REPO / "params.yaml")
    size = params["crops"]["crop_px"]
    if name == "gpu":
        params = copy.deepcopy(params)
        size = GPU["crop_size"]
        for section, values in GPU.items():
            if section != "crop_size":
                params[section] = {**params[section], **values}
    return params, size


def bench(model: str, params: dict, size: int, steps: int, peak: float) -> dict:
    spec = nets.net_spec(model, params, size)
    bs, runtime = spec.train.batch_size, spec.runtime()
    crops = np.random.default_rng(0).integers(0, 256, (4 * bs, size, size, 3), dtype=np.uint8)
    labels = np.arange(len(crops)) % 9
    images, targets = nets.as_chw(crops), nets.soft_targets(labels, spec.train)
    row = {"arch": spec.arch, "size": size, "batch_size": bs, "device": runtime.device,
           "precision": runtime.precision}
    row.update(nets.flops_per_image(spec, spec.build(), images[:bs], targets[:bs]))
    net = spec.build()
    times = timing.interleave({"pipeline": nets.PipelineSteps(spec, net, images, targets)},
                              rounds=steps, warmup=3)["pipeline"]
    row["train_img_s"] = timing.rate(bs, times)
    row["train_step_ms"] = 1000 * bs / row["train_img_s"]
    row["infer_img_s"] = nets.pipeline_infer_img_s(spec, net, images, min(len(images), 4 * bs),
                                                   batches=1)
    row["train_tflops"] = row["train_img_s"] * row["train_flops_per_img"] / 1e12
    row["train_mfu"] = row["train_tflops"] / peak
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", nargs="*", default=["default", "gpu"], choices=["default", "gpu"])
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    setup_torch(0, seed=0)
    params0, _ = profile_params("default")
    device = nets.net_spec(params0["models"][0], params0, 32).runtime().device
    out = {"device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
           "torch": torch.__version__,
           "matmul_tflops_fp32": matmul_tflops(device, torch.float32),
           "matmul_tflops_bf16": matmul_tflops(device, torch.bfloat16)}
    peak = max(out["matmul_tflops_fp32"], out["matmul_tflops_bf16"])
    print(f"{out['device']}  torch {out['torch']}  matmul fp32 {out['matmul_tflops_fp32']:.1f} "
          f"bf16 {out['matmul_tflops_bf16']:.1f} TFLOP/s", flush=True)
    for profile in args.profile:
        params, size = profile_params(profile)
        for model in args.models or params["models"]:
            row = bench(model, params, size, args.steps, peak)
            out.setdefault(profile, {})[model] = row
            print(f"{profile:8s} {model:9s} {row['arch']:22s} {size}px bs {row['batch_size']:3d} "
                  f"{row['precision']}: train {row['train_img_s']:8.1f} img/s "
                  f"({row['train_step_ms']:.1f} ms/step, MFU {100 * row['train_mfu']:.1f} %), "
                  f"infer {row['infer_img_s']:8.1f} img/s", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
