"""The evaluation's degradations on numpy arrays (float [C, H, W] in, float [C, h, w] out): the torch code of
degrade.py and sensor_degradation.py behind a numpy face, so evaluation/protocol.py can name them without importing
torch (it imports this module only when an image is degraded: `rssr` starts without torch, issue 22)."""

from __future__ import annotations

import numpy as np
import torch

from rssr_cli.degradation import sensor_degradation
from rssr_cli.degradation.degrade import downsample


def bicubic(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """degrade.downsample (anti-aliased bicubic) to size (h, w)."""
    x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None]
    with torch.no_grad():
        return downsample(x, size)[0].numpy()


def sentinel2(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """sensor_degradation.EVALUATION (Gaussian PSF of MTF 0.3 at the LR Nyquist, then the pixel's box aggregate) to
    size (h, w), at the scale H/h, W/w of each axis."""
    x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None]
    scale = (hr.shape[-2] / size[0], hr.shape[-1] / size[1])
    with torch.no_grad():
        return sensor_degradation.degrade(x, scale, size)[0].numpy()
