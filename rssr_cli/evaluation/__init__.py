"""Evaluation: how good and how faithful super-resolution is. Returns data; the CLI and bench/ render it.

- protocol: the folder benchmark (degrade HR images, super-resolve, PSNR/SSIM/detail vs the HR).
- pairs: a real LR/HR pair of rasters scored on their common area (co-registration: rssr_cli.geo.coregister).
- compare: what `rssr evaluate` runs: named backends (model variants, classical methods) over those.
- fidelity: the one streamed fidelity engine (degrade-back consistency, shift, uncertainty) behind both
  `upscale --report` and `evaluate --fidelity`; fidelity_report: its result types and thresholds.
- detail: high-frequency detail figures and bootstrap CIs.
Shared metric primitives (PSNR, SSIM, area averaging, shift) live in rssr_cli.scoring.metrics. This package
imports nothing at import time, so the upscale path pays only for the fidelity modules it uses.
"""
