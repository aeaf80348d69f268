"""The human-readable part of the benchmark's output."""

from __future__ import annotations

TARGETS = {"step_vs_plain": 0.9, "crops_speedup_vs_naive": 5.0, "noop_repro_s": 5.0, "incremental_s": 20.0}


def _num(value, fmt: str = "{:.1f}") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return fmt.format(value)
    return str(value)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("  ok" if ok else "  MISSED")


def _machine(out: dict) -> list[str]:
    m = out.get("machine", {})
    load = " ".join(f"{v:.2f}" for v in out.get("load_avg_start", ()))
    load_end = " ".join(f"{v:.2f}" for v in out.get("load_avg_end", ()))
    return [
        f"machine   {m.get('cpu')}, {m.get('cores_affinity')} cores (affinity), "
        f"{m.get('torch_threads')} torch threads, torch {m.get('torch')} ({m.get('torch_cpu_capability')})",
        f"          SIMD {', '.join(m.get('simd', [])) or '-'}; native bf16: {m.get('bf16_native')}; "
        f"OMP_WAIT_POLICY={m.get('omp_wait_policy')}",
        f"load avg  start {load}   end {load_end}   (1, 5, 15 min)",
    ]


def _models(out: dict, models: list[str]) -> list[str]:
    head = (f"{'model':10s} {'arch':22s} {'auto picks':26s} {'step img/s':>10s} {'plain img/s':>11s} "
            f"{'step/plain':>10s} {'naive img/s':>11s} {'vs naive':>8s} {'MFU':>5s} {'infer img/s':>11s} "
            f"{'input ms naive/pipe':>19s}")
    lines = [head, "-" * len(head)]
    for name in models:
        row = out.get(name)
        if not row:
            lines.append(f"{name:10s} (not measured: {out.get('errors', {}).get(name, 'skipped')})"[:160])
            continue
        pick = f"{row['auto_variant']} ({row['precision_rule']})"
        lines.append(
            f"{name:10s} {row['arch'][:22]:22s} {pick[:26]:26s} {row['train_img_s']:10.1f} "
            f"{row['plain_best_img_s']:11.1f} {row['step_vs_plain']:9.2f}x {row['naive_train_img_s']:11.1f} "
            f"{row['train_speedup_vs_naive']:7.2f}x {_num(row.get('train_mfu'), '{:.0%}'):>5s} "
            f"{row['infer_img_s']:11.1f} {row['naive_load_ms_per_batch']:9.1f} / {row['pipeline_prepare_ms_per_batch']:<7.1f}")
        variants = "   ".join(f"{v} {r:.1f}{' *' if v == row['plain_fastest'] else ''}"
                               for v, r in row["plain_img_s"].items())
        lines.append(f"{'':10s} plain loop by variant (img/s, * fastest): {variants}")
    return lines


def verdicts(out: dict, models: list[str]) -> list[str]:
    """One line per target: met or missed, with the figure."""
    checks = []
    for name in models:
        row = out.get(name) or {}
        if "step_vs_plain" in row:
            checks.append((f"{name} step >= 0.9x plain loop", row["step_vs_plain"] >= 0.9,
                           f"{row['step_vs_plain']:.2f}x"))
            checks.append((f"{name} auto picks the fastest", row["auto_is_fastest"],
                           f"{row['auto_vs_fastest']:.2f}x"))
    if "synthesize_s" in out or "synthesize_s_estimated" in out:
        total = out.get("synthesize_s", out.get("synthesize_s_estimated"))
        checks.append(("synthesize <= 100 s", total <= 100, f"{total:.0f} s"))
    for key, label, fmt, ok in (
            ("detect_s_per_photo_max", "whole photo detected <= 2 s", "{:.2f} s", lambda v: v <= 2.0),
            ("crops_speedup_vs_naive", "crops >= 5x full decode", "{:.1f}x", lambda v: v >= 5.0),
            ("noop_repro_s", "no-op repro < 5 s", "{:.2f} s", lambda v: v < 5.0),
            ("incremental_s", "incremental repro < 20 s", "{:.1f} s", lambda v: v < 20.0)):
        if key in out:
            checks.append((label, ok(out[key]), fmt.format(out[key])))
    return [f"target    {label:32s} {value:>9s}  {'met' if ok else 'MISSED'}" for label, ok, value in checks]


def render(out: dict, models: list[str]) -> str:
    """The machine, the figures by section and each target's verdict, as text."""
    lines = ["", "=== springtail benchmark ===", *_machine(out), ""]
    if "matmul_gflops_fp32" in out:
        lines.append(f"matmul    fp32 {out['matmul_gflops_fp32']:.1f} GFLOP/s (n={out['matmul_n_fp32']})   "
                     f"bf16 {out['matmul_gflops_bf16']:.1f} GFLOP/s (n={out['matmul_n_bf16']})")
        lines.append("")
    lines += _models(out, models)
    lines.append("step = the pipeline's training step (augmentation, loss, fused AdamW, schedule) in auto's pick;")
    lines.append("plain = a plain loop on normalised tensors in memory, in this machine's fastest variant;")
    lines.append("naive = one JPEG per crop through a DataLoader, fp32; MFU = of the better matmul peak; infer = one view;")
    lines.append("input ms = one batch's decode/augment/normalise alone (naive DataLoader vs prepare_batch)")
    lines.append("")
    if "crops_img_s" in out:
        s = out["crops_speedup_vs_naive"]
        lines.append(f"crops     draft {out['crops_img_s']:.2f} img/s vs full decode {out['crops_full_img_s']:.2f} "
                     f"img/s: {s:.1f}x{_mark(s >= TARGETS['crops_speedup_vs_naive'])}   "
                     f"({out['crops_images']} images from {out.get('crops_source')}, "
                     f"{out['crops_per_image']:.1f} crops each, scales {out['crops_draft_scales']}, "
                     f"mean |draft - full| {out['crops_draft_vs_full_mean_abs_diff']:.2f} / 255)")
    if "synthesize_subset_s" in out:
        total = out.get("synthesize_s", out.get("synthesize_s_estimated"))
        kind = "measured" if "synthesize_s" in out else "estimated"
        lines.append(f"synth     {out['synthesize_subset_images']} images + {out['synthesize_subset_test_crops']} "
                     f"test crops ({out['synthesize_size']}) in {out['synthesize_subset_s']:.1f} s -> "
                     f"default set {total:.0f} s ({kind})")
    if "detect_s_per_photo" in out:
        lines.append(f"detect    {out['detect_photos']} whole photos ({out['detect_photo_px']}, decode included): "
                     f"median {out['detect_s_per_photo']:.3f} s, worst {out['detect_s_per_photo_max']:.3f} s per photo")
    if "e2e_tiny_s" in out:
        slowest = sorted(out["e2e_tiny_stage_s"].items(), key=lambda kv: -kv[1])[:4]
        lines.append(f"dvc       tiny e2e {out['e2e_tiny_s']:.1f} s ({out['e2e_tiny_stages']} stages, "
                     f"peak RSS {out['e2e_tiny_peak_rss_mb']:.0f} MiB; slowest: "
                     f"{', '.join(f'{k} {v:.0f} s' for k, v in slowest)})")
    if "noop_repro_s" in out:
        lines.append(f"          no-op repro {out['noop_repro_s']:.2f} s"
                     f"{_mark(out['noop_repro_s'] < TARGETS['noop_repro_s'])}")
    if "incremental_s" in out:
        lines.append(f"          incremental {out['incremental_s']:.1f} s"
                     f"{_mark(out['incremental_s'] < TARGETS['incremental_s'])} "
                     f"({out['incremental_change']}: ran {', '.join(out['incremental_stages'])}; "
                     f"allowed {', '.join(out['incremental_allowed'])})")
        lines.append(f"          incremental per stage (s, dvc's own work included): {out['incremental_stage_s']}")
    lines += ["", *verdicts(out, models)]
    for name, reason in out.get("skipped", {}).items():
        lines.append(f"{name}: skipped ({reason})"[:240])
    for name, message in out.get("errors", {}).items():
        lines.append(f"ERROR {name}: {message.splitlines()[0][:200]}")
    lines.append(f"sections (s): {out.get('section_s')}   total {out.get('bench_s')} s")
    return "\n".join(lines)
