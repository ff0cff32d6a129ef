"""The resampling kernels, written once for numpy arrays and torch tensors alike (no import of either).

Keys' cubic convolution with a = -0.5 (Keys 1981; GDAL's and PIL's bicubic) is *the* bicubic of rssr: the classical
`-m bicubic` backend (numpy matrices), the operator's bicubic base (torch matrices), the guided sharpener's band
resampling and Wald's `bicubic` row (torch taps) all evaluate this function, so "bicubic" means one thing everywhere.
(torch's `grid_sample`/`interpolate` bicubic uses a = -0.75, a sharper kernel: not used for upsampling.)
"""

from __future__ import annotations

from typing import Any

KEYS_A = -0.5
CUBIC_SUPPORT = 2  # the kernel is zero from |x| = 2 on: 4 taps per output position


def keys_cubic(x: Any, a: float = KEYS_A) -> Any:
    """Keys' cubic convolution kernel at offsets x (input pixels): a numpy array or a torch tensor in, the same out
    (only abs, powers, comparisons and products with the boolean masks: both libraries evaluate it alike)."""
    x = abs(x)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return near * (x <= 1) + far * ((x > 1) & (x < 2))
