"""Model cost: parameter counts, per-NFE cost of the denoiser and once-per-window cost of the operator prior.

Default config (sr_model.DEFAULT_SPEC), untrained weights (cost does not depend on the values), one band,
scale x4 (LR = HR/4). Prints a markdown table; CPU always, GPU (bf16 autocast, batch 1..32) when CUDA is there.

    .venv/bin/python bench/bench_model.py [--sizes 64 128 256] [--repeats 5] [--threads N]
    .venv/bin/python bench/bench_model.py --quick     # 64² and 128², 2 repeats (make bench)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from contextlib import nullcontext

import torch

from rssr_cli.model.operator import grid_tensors
from rssr_cli.model.sr_model import DEFAULT_SPEC, SRModel

from benchlib import write_result


def timed(fn, *, repeats: int, device: torch.device) -> float:
    """Median wall time of fn() in seconds, after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def window(model: SRModel, hr: int, batch: int, device: torch.device, scale: float = 4.0):
    lr_size = max(1, round(hr / scale))
    lr = torch.rand(batch, 1, lr_size, lr_size, device=device)
    ys, xs, cell = grid_tensors(hr, hr, 0.0, 0.0, lr_size / hr, lr_size / hr, batch=batch, device=device)
    return lr, ys, xs, cell


def measure(model: SRModel, hr: int, batch: int, device: torch.device, repeats: int, autocast) -> dict[str, float]:
    lr, ys, xs, cell = window(model, hr, batch, device)
    with torch.inference_mode(), autocast():
        prior, _ = model.prior(lr, ys, xs, cell)
        cond = model.condition(prior)
        x = torch.randn_like(prior.estimate.float())
        t = torch.full((batch,), 800, device=device)
        t_op = timed(lambda: model.prior(lr, ys, xs, cell), repeats=repeats, device=device)
        t_cond = timed(lambda: model.condition(prior), repeats=repeats, device=device)
        t_nfe = timed(lambda: model.denoiser(x, t, cond), repeats=repeats, device=device)
        steps = model.sampler_defaults["steps"]
        t_win = timed(lambda: model.sample(lr, ys, xs, cell), repeats=max(1, repeats // 2), device=device)
    mpix = batch * hr * hr / 1e6
    return {
        "op_ms": 1e3 * t_op,
        "op_mpix_s": mpix / t_op,
        "cond_ms": 1e3 * t_cond,
        "nfe_ms": 1e3 * t_nfe,
        "nfe_mpix_s": mpix / t_nfe,
        "win_ms": 1e3 * t_win,
        "win_mpix_s": mpix / t_win,
        "steps": steps,
    }


def param_counts(model: SRModel) -> dict[str, int]:
    return {
        k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ("operator", "prior_features", "denoiser")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="HR window sides (default 64 128 256; --quick: 64 128)"
    )
    ap.add_argument("--repeats", type=int, default=None, help="default 5 (--quick: 2)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a 2-core box")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores of this process)")
    ap.add_argument("--gpu-size", type=int, default=128)
    args = ap.parse_args()
    args.sizes = args.sizes or ([64, 128] if args.quick else [64, 128, 256])
    args.repeats = args.repeats or (2 if args.quick else 5)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SRModel(DEFAULT_SPEC).eval()
    counts = param_counts(model)
    print(
        f"# Model bench — torch {torch.__version__}, {platform.processor() or platform.machine()}, {threads} CPU threads"
    )
    print(
        "\nParameters (default config): "
        + ", ".join(f"{k} {v / 1e6:.3f} M" for k, v in counts.items())
        + f", total {sum(counts.values()) / 1e6:.3f} M"
    )
    cpu = torch.device("cpu")
    print("\n## CPU, fp32, batch 1, one band, x4 (LR = HR/4)\n")
    print(
        "| HR window | operator prior ms (Mpix/s) | prior pyramid + modulations ms | denoiser ms / NFE (Mpix/s) | full window, default steps ms (Mpix/s) |"
    )
    print("|---|---|---|---|---|")
    rows = {}
    for hr in args.sizes:
        r = measure(model, hr, 1, cpu, args.repeats, nullcontext)
        rows[hr] = r
        print(
            f"| {hr}² | {r['op_ms']:.1f} ({r['op_mpix_s']:.3f}) | {r['cond_ms']:.1f} | {r['nfe_ms']:.1f} ({r['nfe_mpix_s']:.3f}) "
            f"| {r['win_ms']:.0f} ({r['win_mpix_s']:.3f}), {r['steps']} NFE |"
        )
    if len(rows) > 1:
        lo, hi = min(rows), max(rows)
        pix = (hi / lo) ** 2
        print(
            f"\nCost ratio {hi}² / {lo}² ({pix:.0f}x the pixels): operator {rows[hi]['op_ms'] / rows[lo]['op_ms']:.1f}x, "
            f"denoiser {rows[hi]['nfe_ms'] / rows[lo]['nfe_ms']:.1f}x"
        )
    figures: dict = {
        "parameters": counts,
        "cpu_fp32_batch1_x4": {f"{hr}": r for hr, r in rows.items()},
        "gpu_bf16_x4": {},
    }
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        gpu_model = SRModel(DEFAULT_SPEC).eval().to(dev)
        print(f"\n## GPU {torch.cuda.get_device_name(0)}, bf16 autocast, {args.gpu_size}² HR, x4\n")
        print("| batch | operator ms (Mpix/s) | denoiser ms / NFE (Mpix/s) | full window ms (Mpix/s) |")
        print("|---|---|---|---|")
        for batch in (1, 2, 4, 8, 16, 32):
            r = measure(
                gpu_model, args.gpu_size, batch, dev, args.repeats, lambda: torch.autocast("cuda", dtype=torch.bfloat16)
            )
            figures["gpu_bf16_x4"][f"batch{batch}"] = r
            print(
                f"| {batch} | {r['op_ms']:.1f} ({r['op_mpix_s']:.2f}) | {r['nfe_ms']:.2f} ({r['nfe_mpix_s']:.2f}) "
                f"| {r['win_ms']:.1f} ({r['win_mpix_s']:.2f}) |"
            )
    else:
        print("\n(no CUDA device: GPU section skipped)")
    write_result("model", figures, quick=args.quick)


if __name__ == "__main__":
    main()
