"""Issue 21's table for a residual-shifting chain: faithful (the prior) vs realistic (one draw, K draws judged) on
held-out images, the seven posterior bars with PSNR/SSIM/seconds, as a markdown table (BENCHMARKS.md).

    OMP_NUM_THREADS=1 python bench/bench_chain.py runs/rs-s2/denoiser/best --init models/s2-10m.safetensors \\
        --data runs/s2corpus/eval_tiles --degradation sentinel2 --limit 12 -o bench/out/chain_s2

The state is exported to <out>/model.{safetensors,json} first (bench/export_state.py), then `rssr evaluate DATA
--steps 0,T --samples K --scales 4` scores it; <out>/eval.json keeps everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rssr_cli.scoring.posterior import realistic_default_verdict

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("state", type=Path, help="training state without suffix (…/denoiser/best), or a model file")
    parser.add_argument("--init", type=Path, help="the model the run started from (when STATE is a training state)")
    parser.add_argument("--data", type=Path, required=True, help="HR images never trained or selected on")
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument(
        "--steps", default=None, help="chain steps to judge, comma-separated (default: the whole chain)"
    )
    parser.add_argument("--scale", default="4")
    parser.add_argument("--variance-correction", type=float, default=None, help="override the card's sampler value")
    parser.add_argument("--head-contrast", type=float, default=None, help="override the card's sampler value")
    parser.add_argument(
        "--sampler-json",
        type=Path,
        default=None,
        help="a JSON object of sampler settings that override the card's (e.g. a calibration kept under models/wip)",
    )
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.state
    if args.state.suffix != ".safetensors":
        model = args.out / "model"
        subprocess.run(
            [
                sys.executable,
                str(HERE / "export_state.py"),
                str(args.state),
                "--init",
                str(args.init),
                "-o",
                str(model),
            ],
            check=True,
        )
        model = model.with_suffix(".safetensors")
    card = json.loads(model.with_suffix(".json").read_text())
    overrides = json.loads(args.sampler_json.read_text()) if args.sampler_json else {}
    given = {"variance_correction": args.variance_correction, "head_contrast": args.head_contrast}
    overrides.update({key: value for key, value in given.items() if value is not None})
    if overrides:  # judged as a copy in OUT: the card given is never rewritten (two runs may share it)
        card["sampler"].update(overrides)
        judged = args.out / "judged.safetensors"
        judged.unlink(missing_ok=True)
        judged.symlink_to(model.resolve())
        judged.with_suffix(".json").write_text(json.dumps(card, indent=1))
        model = judged
    steps = args.steps or str(card["diffusion"].get("chain_steps", 1))
    report = args.out / "eval.json"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("rssr")),
            "evaluate",
            str(args.data),
            "--model",
            str(model),
            "--steps",
            f"0,{steps}",
            "--samples",
            str(args.samples),
            "--scales",
            args.scale,
            "--degradation",
            args.degradation,
            "--limit",
            str(args.limit),
            "--methods",
            "bicubic",
            "--json",
            str(report),
            "-q",
        ],
        check=True,
    )
    result = json.loads(report.read_text())
    print(table(result, card))
    print()
    print(default_rule(result))


def table(report: dict, card: dict) -> str:
    summary = {(s["scale"], s["backend"]): s for s in report["summary"]}
    lines = [
        f"model {card.get('id')}: {card['diffusion']}; {report['meta'].get('images')} images, K = {report['meta'].get('samples')}",
        "",
        "| setting | PSNR | SSIM | s/image | bars passed | " + " | ".join(f"bar {i}" for i in range(1, 8)) + " |",
        "|---|---|---|---|---|" + "---|" * 7,
    ]
    posterior = {(p["scale"], p["backend"]): p for p in report["posterior"]}
    for key, s in summary.items():
        bars = posterior.get(key)
        cells = ["—"] * 7 if bars is None else [_bar(b) for b in bars["bars"]]
        passed = "—" if bars is None else f"{bars['bars_passed']}/7"
        lines.append(
            f"| x{s['scale']:g} {s['backend']} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.2f} | {passed} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def default_rule(report: dict) -> str:
    """The default-mode rule (scoring.posterior.realistic_default_verdict) applied to each chain setting."""
    summary = {(s["scale"], s["backend"]): s for s in report["summary"]}
    detail = {(d["scale"], d["backend"]): d["figures"] for d in report.get("detail", [])}
    lines = []
    for p in report["posterior"]:
        if p["backend"] == "model-prior":  # faithful is what the chain is judged against
            continue
        key = (p["scale"], p["backend"])
        faithful = summary.get((p["scale"], "model-prior"))
        shares = detail.get(key)
        if faithful is None or shares is None:
            lines.append(f"x{p['scale']:g} {p['backend']}: no faithful row or no opensr-test shares to judge by")
            continue
        cost = faithful["psnr"] - summary[key]["psnr"]
        ok, failed = realistic_default_verdict(
            p["bars_passed"], cost, shares["hallucination"]["mean"], shares["improvement"]["mean"]
        )
        verdict = "realistic may become the default" if ok else "faithful stays the default: " + "; ".join(failed)
        lines.append(f"x{p['scale']:g} {p['backend']}: {verdict}")
    return "\n".join(lines)


def _bar(bar: dict) -> str:
    figures = "; ".join(f"{f['name']} {_value(f)}" for f in bar["figures"])
    return ("✓ " if bar["passed"] else "✗ ") + figures


def _value(figure: dict) -> str:
    mean = figure.get("mean")
    return "nan" if mean is None else f"{mean:.3g}"


if __name__ == "__main__":
    main()
