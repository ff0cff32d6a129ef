"""The operator's inference stages: FLOPs per HR pixel, achieved GFLOP/s, share of a matmul microbenchmark's rate.

One band-window of the README demo (170² LR -> 765² HR, x4.5: the pipeline's default tile 114 + 2 x 28 halo), the
default operator (sr_model.DEFAULT_SPEC), untrained weights (cost does not depend on the values), 1 thread. Each
stage runs the operator's own methods in its row blocks (operator.forward_blocked's loop, timed stage by stage);
time = this process's least CPU time of a few runs (time.process_time: less moved by other jobs than wall time).
FLOPs count multiply and add as 2, elementwise ops as 1 per element and op (GELU, rsqrt as 1).
Peak: torch.mm at the operator's own matmul shape ([8192, 48] x [48, 96]) and at 1024³ (the CPU's practical peak).

    python bench/bench_operator_stages.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from rssr_cli.model.operator import BLOCK_TOKENS, grid_tensors
from rssr_cli.model.resample import bicubic_at, neighbours
from rssr_cli.model.sr_model import DEFAULT_SPEC, SRModel

from benchlib import write_result


def cpu_seconds(fn, repeats: int = 3) -> float:
    """The least CPU time of `repeats` calls after a warm-up (the least disturbed by other jobs)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def matmul_gflops(m: int, k: int, n: int) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    reps = max(3, int(2e9 / (2 * m * k * n)))
    return 2 * m * k * n / cpu_seconds(lambda: a @ b, reps) / 1e9


def conv_flops(module: torch.nn.Module, pixels: int) -> float:
    return sum(
        2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * pixels
        for m in module.modules()
        if isinstance(m, torch.nn.Conv2d)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lr", type=int, default=170, help="LR window side")
    ap.add_argument("--scale", type=float, default=4.5)
    ap.add_argument("--quick", action="store_true", help="an 80 px LR window")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    h = 80 if args.quick else args.lr
    hr = round(h * args.scale)
    op = SRModel(DEFAULT_SPEC).eval().operator
    width, n = op.lift_feature.out_channels, hr * hr
    heads = op.layers[0].attn.heads
    lr = torch.randn(1, 1, h, h)
    ys, xs, cell = grid_tensors(hr, hr, 0.0, 0.0, h / hr, h / hr)
    step = max(1, BLOCK_TOKENS // hr)
    blocks = [slice(r, min(r + step, hr)) for r in range(0, hr, step)]
    layers = list(op.layers)
    stages: dict[str, tuple[float, float]] = {}  # name -> (FLOPs per HR pixel, CPU seconds)
    with torch.inference_mode():
        feat = op.encoder(lr)
        stages["encoder (LR convs)"] = (conv_flops(op.encoder, h * h) / n, cpu_seconds(lambda: op.encoder(lr)))
        lifted = op.lift_feature(feat).permute(0, 2, 3, 1).contiguous()
        stages["lift (LR 1x1 conv)"] = (
            conv_flops(op.lift_feature, h * h) / n,
            cpu_seconds(lambda: op.lift_feature(feat)),
        )
        flat = lifted[0].reshape(h * h, width)
        cell_term = op.lift_cell(cell)
        rows = [(iy[0], op.lift_rel_y(ry[0, :, None]) + cell_term[0], wy[0]) for iy, ry, wy in neighbours(ys, h)]
        columns = [(ix[0], op.lift_rel_x(rx[0, :, None]), wx[0]) for ix, rx, wx in neighbours(xs, h)]
        x = torch.empty(n, width)

        def query():
            for b in blocks:
                op._query_block(
                    flat, h, [(iy[b], rt[b], wy[b]) for iy, rt, wy in rows], columns, x[b.start * hr : b.stop * hr]
                )

        stages["query (4-neighbour gather, GELU, weights)"] = (4 * width * 5, cpu_seconds(query, 2))
        for i, layer in enumerate(layers):
            kv = layer.attn.kv_map()
            context = sum(layer.attn.context_sum(x[b.start * hr : b.stop * hr], kv) for b in blocks)
            affine = layer.attn.affine(context / n)
            x0 = x.clone()
            flops_ctx = 2 * width * 2 * width + 2 * 2 * width * 2 * heads + 6 * 2 * width + 2 * width * width
            stages[f"layer {i}: K^T V pass"] = (
                flops_ctx,
                cpu_seconds(lambda: [layer.attn.context_sum(x[b.start * hr : b.stop * hr], kv) for b in blocks], 2),
            )

            def apply():
                x.copy_(x0)
                for b in blocks:
                    layer.apply_(x[b.start * hr : b.stop * hr], affine)

            flops_apply = (
                2 * width * width + 2 * width + 8 * width + 2 * (2 * width * 2 * width) + 2 * width + 2 * width
            )
            stages[f"layer {i}: attention + MLP pass"] = (flops_apply, cpu_seconds(apply, 2))
        stages["head (estimate only)"] = (
            8 * width + 2 * width * width + width + 2 * width,
            cpu_seconds(lambda: [op._head(x[b.start * hr : b.stop * hr], 1) for b in blocks], 2),
        )
        stages["bicubic base"] = (2 * 4 * 2, cpu_seconds(lambda: bicubic_at(lr, ys, xs)))
    peak_small, peak_big = matmul_gflops(BLOCK_TOKENS, width, 2 * width), matmul_gflops(1024, 1024, 1024)
    total_flops = sum(f for f, _ in stages.values())
    total_s = sum(s for _, s in stages.values())
    print(
        f"one band-window {h}² -> {hr}² (x{args.scale:g}), 1 thread; torch.mm: {peak_small:.1f} GFLOP/s at [8192,48]x[48,96], {peak_big:.1f} at 1024³"
    )
    print(
        "| stage | FLOPs per HR pixel | CPU s | achieved GFLOP/s | share of mm [8192,48]x[48,96] | share of mm 1024³ |\n|---|---|---|---|---|---|"
    )
    rows_out = []
    for name, (flops, secs) in [*stages.items(), ("total", (total_flops, total_s))]:
        rate = flops * n / secs / 1e9
        rows_out.append({"stage": name, "flops_per_hr_px": flops, "cpu_s": secs, "gflops": rate})
        print(f"| {name} | {flops:,.0f} | {secs:.3f} | {rate:.1f} | {rate / peak_small:.0%} | {rate / peak_big:.0%} |")
    write_result(
        "operator_stages",
        {
            "lr": h,
            "hr": hr,
            "scale": args.scale,
            "mm_gflops": {"8192x48x96": peak_small, "1024^3": peak_big},
            "stages": rows_out,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
