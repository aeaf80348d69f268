"""`make bench`: how fast the pipeline's hot paths run on this machine.

    .venv/bin/python -m benchmarks.bench [--steps 12] [--models resnet vit] [--skip repro ...]

Prints the machine, a table, and as its last line one JSON object. Keys:

- ``machine``: CPU model, cores (from the CPU affinity), torch version, bf16 support;
  ``load_avg_start`` / ``load_avg_end``: 1-, 5-, 15-minute load averages.
- ``matmul_gflops_fp32``, ``matmul_gflops_bf16``: best square ``torch.mm`` (size in
  ``matmul_n_*``; bf16 is measured at a smaller size where the CPU only emulates it).
- one nested object per model of params.yaml (``cnn_xgb`` = its CNN's fine-tuning), so
  ``json["vit_hybrid"]["step_vs_plain"]`` is "vit_hybrid.step_vs_plain":
  ``precision``, ``channels_last``, ``precision_rule`` (the table row behind ``auto``),
  ``auto_variant`` (e.g. ``fp32_cl``); ``plain_img_s`` (variant -> images/s of the plain
  loop, ``benchmarks.plain``), ``plain_fastest``, ``auto_vs_fastest``, ``auto_is_fastest``
  (within ``TIE``); ``train_img_s`` (the pipeline's step: ``make_loop`` + ``train_epoch``),
  ``plain_best_img_s`` (the plain loop in the fastest variant, timed alongside),
  ``step_vs_plain``, ``naive_train_img_s`` and ``train_speedup_vs_naive`` (``benchmarks.naive``),
  ``train_step_ms``, ``train_step_spread`` ((max - min) / median step time, the worst of
  the loops), ``train_flops_per_img`` (FlopCounterMode on a real forward+backward step,
  with ``nets.flop_formulas``' corrections), ``fwd_flops_per_img``, ``train_gflops``,
  ``train_mfu`` (achieved training FLOP/s / the better matmul peak), ``infer_img_s``
  (``forward_views``, one view), ``naive_load_ms_per_batch`` /
  ``pipeline_prepare_ms_per_batch`` (one batch's input path alone), ``batch_size``, ``arch``.
- ``crops_img_s``, ``crops_full_img_s``, ``crops_speedup_vs_naive``: the crops
  stage's per-image path (one process) with draft decoding vs full decoding.
- ``synthesize_s_estimated`` (or ``synthesize_s`` when the whole set was generated),
  ``synthesize_subset_images``: the real generator on a subset, extrapolated.
- ``detect_s_per_photo`` (median), ``detect_s_per_photo_max``, ``detect_photos``,
  ``detect_photo_px``: whole photos through the trained detector, decode included
  (``benchmarks.detect``; needs the pipeline's outputs, so after ``make repro``).
- ``e2e_tiny_s``, ``e2e_tiny_peak_rss_mb`` (largest process of the dvc tree),
  ``noop_repro_s``, ``incremental_s``, ``incremental_stages`` (those that ran;
  ``incremental_allowed``: ensemble and its downstream stages in dvc's graph):
  ``dvc repro`` in a tiny copy of the repository.
- ``skipped``: section -> reason, for any section whose inputs are absent (``detect`` in a
  checkout that has not run the pipeline); a skip is not a failure.
- ``errors``: section -> message, for any section that failed (exit status 1).

Ratios are measured side by side in one process (same crops, same threads), the
training loops alternating step by step so all see the same machine load
(``benchmarks.timing``); img/s = batch size / median step time.
``train_step_spread`` ((max - min) / median step time) shows how noisy that was.
Absolute figures move with the machine's load: read them with the load average.
"""

from __future__ import annotations

import os

# As in stages/train.py, before torch loads OpenMP: idle threads sleep instead of spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import data, detect, machine, naive, nets, plain, repro, timing  # noqa: E402
from benchmarks.table import render  # noqa: E402
from springtail.common.config import load_params  # noqa: E402
from springtail.common.runtime import setup_torch  # noqa: E402
from springtail.models.timm_net import norm_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("matmul", "synth", "crops", "models", "detect", "repro")
TIE = 0.03  # auto's pick counts as the fastest within this fraction of it (step-time noise)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose pipeline outputs detect reads")
    parser.add_argument("--models", nargs="*", help="models to time (default: params.yaml's list)")
    parser.add_argument("--steps", type=int, default=12,
                        help="timed training steps of each loop (pipeline and naive alternate)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each loop first")
    parser.add_argument("--synth-images", type=int, default=32, help="training images generated and timed")
    parser.add_argument("--crop-images", type=int, default=24, help="training images cut in both modes")
    parser.add_argument("--detect-photos", type=int, default=10, help="whole photos through the detector")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--repro-timeout", type=float, default=600.0)
    return parser.parse_args(argv)


def bench_matmul() -> dict:
    import torch

    fp32, bf16 = machine.matmul_peak(torch.float32), machine.matmul_peak(torch.bfloat16)
    return {"matmul_gflops_fp32": fp32["gflops"], "matmul_gflops_bf16": bf16["gflops"],
            "matmul_n_fp32": fp32["n"], "matmul_n_bf16": bf16["n"]}


def raw_images(params: dict, workdir: Path, args, out: dict) -> Path:
    """Time the generator on a subset; return a raw layout of default-size images to cut."""
    full, generated = data.synth_config(params), None
    if "synth" not in args.skip:
        n = min(args.synth_images, full.n_train)
        synth = data.time_synthesize(params, workdir / "synthetic", n)
        if n >= full.n_train:
            synth["synthesize_s"] = synth.pop("synthesize_s_estimated")
        out.update(synth)
        generated = workdir / "synthetic"
    raw, out["crops_source"] = data.source_images(params, REPO, workdir, args.crop_images, generated)
    return raw


def bench_plain_variants(spec: nets.NetSpec, images, labels: np.ndarray, norm,
                         args) -> tuple[dict[str, list[float]], dict]:
    """Step times of the plain loop in each variant (fp32 / bf16 x contiguous / channels-last)
    as this machine runs it, interleaved: an emulated bf16 is the fp32 variant (measured once),
    a GPU without bf16 runs fp16."""
    bs = spec.train.batch_size
    steps = {}
    for precision, channels_last in plain.VARIANTS.values():
        runtime = spec.runtime(precision, channels_last)
        variant = plain.variant_of(runtime)  # what runs: an emulated bf16 is fp32, an older GPU's fp16
        if variant not in steps:
            steps[variant] = plain.PlainSteps(spec.build(), images[:4 * bs], labels[:4 * bs], norm, runtime,
                                              bs, spec.lr, spec.train.weight_decay)
    times = timing.interleave(steps, rounds=args.steps, warmup=args.warmup)
    return times, {variant: step.runtime for variant, step in steps.items()}


def bench_model(name: str, params: dict, crops: np.ndarray, labels: np.ndarray,
                jpeg_dir: Path, args, peak: float | None) -> dict:
    """One model: the plain loop in every variant (which is fastest here, and is it the one
    ``auto`` picks), then the pipeline's step against the fastest plain loop and the naive
    DataLoader loop (interleaved step by step), inference and FLOPs."""
    spec = nets.net_spec(name, params, crops.shape[1])
    bs, predict_bs = spec.train.batch_size, nets.predict_batch_size(params)
    crops, labels = data.repeat_to(crops, labels, max(4 * bs, 2 * predict_bs))
    images, targets = nets.as_chw(crops), nets.soft_targets(labels, spec.train)
    paths = naive.write_jpegs(crops[: 4 * bs], jpeg_dir / name)
    runtime = spec.runtime()  # what the train stage uses: the table's pick under auto
    norm = norm_of(spec.build())
    row = {"arch": spec.arch, "batch_size": bs, "precision": runtime.precision,
           "channels_last": runtime.channels_last, "precision_rule": runtime.rule,
           "auto_variant": plain.variant_of(runtime)}
    row.update(nets.flops_per_image(spec, spec.build(), images, targets))
    variant_times, variant_runtimes = bench_plain_variants(spec, images, labels, norm, args)
    row["plain_img_s"] = {v: timing.rate(bs, t) for v, t in variant_times.items()}
    fastest = max(row["plain_img_s"], key=row["plain_img_s"].get)
    row["plain_fastest"] = fastest
    row["auto_vs_fastest"] = row["plain_img_s"].get(row["auto_variant"], float("nan")) / row["plain_img_s"][fastest]
    row["auto_is_fastest"] = bool(row["auto_vs_fastest"] >= 1 - TIE)
    pipeline_net = spec.build()
    times = timing.interleave({
        "pipeline": nets.PipelineSteps(spec, pipeline_net, images, targets, runtime=runtime),
        "plain": plain.PlainSteps(spec.build(), images[:4 * bs], labels[:4 * bs], norm,
                                  variant_runtimes[fastest], bs, spec.lr, spec.train.weight_decay),
        "naive": naive.NaiveSteps(spec.build(), paths, labels[: 4 * bs], norm, bs, spec.lr,
                                  spec.train.weight_decay, spec.train.label_smoothing),
    }, rounds=args.steps, warmup=args.warmup)
    row["train_img_s"] = timing.rate(bs, times["pipeline"])
    row["plain_best_img_s"] = timing.rate(bs, times["plain"])
    row["step_vs_plain"] = row["train_img_s"] / row["plain_best_img_s"]
    row["naive_train_img_s"] = timing.rate(bs, times["naive"])
    row["train_speedup_vs_naive"] = row["train_img_s"] / row["naive_train_img_s"]
    row["train_step_spread"] = max(timing.spread(t) for t in [*times.values(), *variant_times.values()])
    row["train_step_ms"] = 1000 * bs / row["train_img_s"]
    row["naive_load_ms_per_batch"] = 1000 * naive.load_seconds(paths, labels[: 4 * bs], norm, bs)
    row["pipeline_prepare_ms_per_batch"] = 1000 * nets.prepare_seconds(spec, images, norm)
    row["infer_img_s"] = nets.pipeline_infer_img_s(spec, pipeline_net, images, predict_bs)
    row["train_gflops"] = row["train_img_s"] * row["train_flops_per_img"] / 1e9
    row["train_mfu"] = row["train_gflops"] / peak if peak else None
    return row


class Skipped(Exception):
    """A section whose inputs are absent: reported with the reason, not as a failure."""


def needs_outputs(load):
    """``load()``, a section reading the pipeline's outputs; a missing one skips the section.

    The project's loaders name the missing path first (``<path>: missing (...)``, ``<path>: no such ...``)."""
    try:
        return load()
    except FileNotFoundError as err:
        missing = err.filename or str(err).split(": ")[0]
        raise Skipped(f"no pipeline outputs: run `make repro` first: {missing}") from None


@dataclass
class Outcome:
    """How the sections went: section -> message / reason / seconds."""

    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_section(name: str, fn, outcome: Outcome) -> None:
    """Run one section; a failure is recorded (and printed) instead of ending the run,
    absent inputs (:class:`Skipped`) are one line."""
    tick = time.perf_counter()
    try:
        fn()
    except Skipped as skip:
        outcome.skipped[name] = str(skip)
        print(f"bench: {name}: skipped ({skip})", file=sys.stderr, flush=True)
        return
    except Exception as err:  # noqa: BLE001 - every failure is reported in the JSON and the exit status
        outcome.errors[name] = f"{type(err).__name__}: {err}"[:2000]
        traceback.print_exc(file=sys.stderr)
    outcome.seconds[name] = round(time.perf_counter() - tick, 1)
    print(f"bench: {name} done in {outcome.seconds[name]:.0f} s", file=sys.stderr, flush=True)


def run_sections(args: argparse.Namespace, params: dict, models: list[str], workdir: Path, out: dict) -> Outcome:
    """Every section not in ``args.skip``, in order, filling ``out``."""
    outcome, state = Outcome(), {}
    if "matmul" not in args.skip:
        run_section("matmul", lambda: out.update(bench_matmul()), outcome)

    def crops_section() -> None:
        raw = raw_images(params, workdir, args, out)
        jobs = data.crop_jobs(raw, params, args.crop_images)
        metrics, state["crops"], state["labels"] = data.time_crops(jobs, params)
        if "crops" not in args.skip:
            out.update(metrics)

    if not {"synth", "crops", "models"} <= set(args.skip):
        run_section("data", crops_section, outcome)
    if "models" not in args.skip and "crops" in state:
        peak = max(out.get("matmul_gflops_fp32") or 0, out.get("matmul_gflops_bf16") or 0) or None
        for name in models:
            run_section(name, lambda: out.update({name: bench_model(
                name, params, state["crops"], state["labels"], workdir / "jpeg", args, peak)}), outcome)

    def detect_section() -> None:
        loaded = needs_outputs(lambda: detect.load_detector(args.repo, args.params, args.detect_photos))
        out.update(detect.bench_detect(*loaded))

    if "detect" not in args.skip:
        run_section("detect", detect_section, outcome)
    if "repro" not in args.skip:
        run_section("repro", lambda: repro.bench_repro(workdir / "tiny", args.repro_timeout, out), outcome)
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch = setup_torch(0)  # threads = CPUs in this process's affinity
    torch.manual_seed(0)
    params = load_params(args.params)
    models = args.models if args.models is not None else list(params["models"])
    started = time.perf_counter()
    out: dict = {"machine": machine.machine_info(), "load_avg_start": machine.load_average()}
    with tempfile.TemporaryDirectory(prefix="springtail-bench-") as tmp:
        outcome = run_sections(args, params, models, Path(tmp), out)
    out["load_avg_end"] = machine.load_average()
    out["section_s"] = outcome.seconds
    out["bench_s"] = round(time.perf_counter() - started, 1)
    out["skipped"] = outcome.skipped
    out["errors"] = outcome.errors
    print(render(out, models))
    print(json.dumps(out, default=_plain))
    return 1 if outcome.errors else 0


def _plain(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
